/**
 * Liveness of a `Connection`: keepalive pings and the idle timeout, on one timer.
 *
 * - Nothing sent, or nothing received, for `keepaliveMs` → send a `ping` (at most one per
 *   `keepaliveMs`). Pinging when we have been silent keeps the peer's idle timer fed; pinging
 *   when the peer has been silent asks it for a `pong`, which proves it is still there.
 * - Nothing received for `idleTimeoutMs` → the peer is gone: {@link PeerTimeoutError}.
 * - Bytes queued for the transport and none taken for `idleTimeoutMs` → the peer stopped
 *   reading (its window is shut): {@link PeerTimeoutError} too, since it costs us the same.
 *
 * One timer is armed at the earliest of these deadlines; activity only stamps times, and a
 * timer that fires early re-arms for what is left, so the hot path never touches timers. A timer
 * that fires late (this side's event loop was held) judges nothing: it checks again one short
 * turn later, once the reads that completed meanwhile have run ({@link LATE_FIRE_SLACK_MS}).
 *
 * @module
 */
import type { ConnectionTimers } from "./connection_timers.ts";
import { PeerTimeoutError } from "./protocol_errors.ts";

/**
 * How late a timer may fire and still judge the peer; past it, the verdict waits one short turn
 * (this long). In Deno a timer that came due while the event loop was held (tfjs on the main
 * thread, a machine loaded 9 on 2 cores) runs before the reads that completed meanwhile: measured,
 * a 6 s block and a peer writing every 100 ms, the timer saw 6092 ms of silence, one timer turn
 * later 6 ms. So a held loop dropped every peer that never went quiet, "nothing received for
 * 5000 ms" (stop 76: both trainers at once; a trainer dropped so lost its challenge answer). 100 ms
 * is far above a timer's lateness on a turning loop and costs a dead peer 100 ms more at most;
 * only one wait per verdict, so a loop that is always late still drops a dead peer.
 */
export const LATE_FIRE_SLACK_MS = 100;

/** Options of a {@link Keepalive}. */
export interface KeepaliveOptions {
  /** The clock. */
  timers: ConnectionTimers;
  /** Ping after this much silence either way (0 = never ping). */
  keepaliveMs: number;
  /** Give up on the peer after this much silence from it (0 = never). */
  idleTimeoutMs: number;
  /** How long the write queue has held bytes the transport did not take. */
  stalledFor(now: number): number;
  /** Send a best-effort ping. */
  ping(): void;
  /** The peer timed out. */
  onTimeout(error: PeerTimeoutError): void;
}

/** See the module doc. */
export class Keepalive {
  readonly #options: KeepaliveOptions;
  #lastReceived: number;
  #lastSent: number;
  #lastPing: number;
  #timer: unknown = undefined;
  /** When the armed timer is due (how late it fired, when it fires). */
  #due = 0;
  /** The last fire was late and judged nothing: the next one judges, late or not. */
  #waitedForReads = false;
  #stopped = false;

  /** @param options Intervals, clock and hooks. Starts at once. */
  constructor(options: KeepaliveOptions) {
    this.#options = options;
    this.#lastReceived = this.#lastSent = this.#lastPing = options.timers.now();
    this.#arm();
  }

  /** Bytes arrived from the peer. */
  received(): void {
    this.#lastReceived = this.#options.timers.now();
  }

  /** A frame was handed to the transport. */
  sent(): void {
    this.#lastSent = this.#options.timers.now();
  }

  /** Stop for good (the connection is closing). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#options.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#stopped) return;
    const { keepaliveMs, idleTimeoutMs, timers } = this.#options;
    const now = timers.now();
    let next = Infinity;
    if (idleTimeoutMs > 0) {
      next = Math.min(next, this.#lastReceived + idleTimeoutMs);
      const stalled = this.#options.stalledFor(now);
      // While bytes wait, check again when they would have waited idleTimeoutMs; while the
      // queue is empty, the receive deadline (≤ now + idleTimeoutMs) wakes us in time to see
      // any stall that starts later.
      if (stalled > 0) next = Math.min(next, now - stalled + idleTimeoutMs);
    }
    if (keepaliveMs > 0) next = Math.min(next, this.#pingDue());
    if (next === Infinity) return;
    this.#due = Math.max(now + 1, next);
    this.#timer = timers.setTimeout(() => this.#fire(), this.#due - now);
  }

  #pingDue(): number {
    const { keepaliveMs } = this.#options;
    const quietSince = Math.min(this.#lastSent, this.#lastReceived);
    return Math.max(quietSince, this.#lastPing) + keepaliveMs;
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const { keepaliveMs, idleTimeoutMs, timers } = this.#options;
    const now = timers.now();
    if (now - this.#due > LATE_FIRE_SLACK_MS && !this.#waitedForReads) {
      // Held past its time: what the peer sent meanwhile is still unread (see the constant).
      this.#waitedForReads = true;
      this.#due = now + LATE_FIRE_SLACK_MS;
      this.#timer = timers.setTimeout(() => this.#fire(), LATE_FIRE_SLACK_MS);
      return;
    }
    this.#waitedForReads = false;
    if (idleTimeoutMs > 0) {
      if (now - this.#lastReceived >= idleTimeoutMs) {
        this.#options.onTimeout(
          new PeerTimeoutError(`nothing received from the peer for ${idleTimeoutMs} ms`),
        );
        return;
      }
      if (this.#options.stalledFor(now) >= idleTimeoutMs) {
        this.#options.onTimeout(
          new PeerTimeoutError(`the peer has not read what we sent for ${idleTimeoutMs} ms`),
        );
        return;
      }
    }
    if (keepaliveMs > 0 && now >= this.#pingDue()) {
      this.#lastPing = now;
      this.#options.ping();
    }
    this.#arm();
  }
}
