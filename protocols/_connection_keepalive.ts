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
 * timer that fires early re-arms for what is left, so the hot path never touches timers.
 *
 * @module
 */
import type { ConnectionTimers } from "./connection_timers.ts";
import { PeerTimeoutError } from "./protocol_errors.ts";

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
    this.#timer = timers.setTimeout(() => this.#fire(), Math.max(1, next - now));
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
