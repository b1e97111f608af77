/**
 * Reading a job's tokens a few ahead of the wire, so the serving side of `inference.submit`
 * can send every token that is ready in one event. One read is kept outstanding while fewer
 * than `limit` tokens wait: when the requester (or the link to it) falls behind, the tokens
 * computed meanwhile go out together — one frame, one write, one packet through each swarm
 * host, instead of one per token — and the worker is never more than `limit` tokens ahead of
 * what was sent.
 *
 * **Gathering** (`gatherMs`, when the requester asked for it): a token that comes within
 * `gatherMs` of the last event waits for that much to pass (or for `limit` tokens, or the end)
 * and goes out with the tokens that came meanwhile. The first token, and a token after a longer
 * pause, go out at once. A model faster than one token per `gatherMs` then sends an event per
 * `gatherMs` instead of one per token: each token is held back at most that long, and every
 * process between the worker and the client wakes up for several tokens at a time.
 *
 * @module
 */
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/** Options of {@link ReadAhead}. */
export interface ReadAheadOptions {
  /** Gather the tokens that come within this long of the last take (0: none; see the module doc). */
  gatherMs?: number;
  /** Clock of the gathering (default the real one; tests pass a fake clock). */
  timers?: ConnectionTimers;
}

/** Buffered reads of a stream, at most `limit` ahead; see the module doc. */
export class ReadAhead<T> {
  readonly #reader: ReadableStreamDefaultReader<T>;
  readonly #limit: number;
  readonly #gatherMs: number;
  readonly #timers: ConnectionTimers;
  readonly #buffer: T[] = [];
  #reading = false;
  #done = false;
  /** What the stream failed with, if it did. */
  #error: unknown;
  #waiter: (() => void) | undefined;
  /** When the last {@link take} returned items (undefined before the first). */
  #lastTake: number | undefined;

  /**
   * @param reader The stream to read (its errors end it, like its end: the caller learns the
   *   job's outcome elsewhere).
   * @param limit Most items kept ahead, and most returned by one {@link take}.
   * @param options Gathering and its clock.
   */
  constructor(
    reader: ReadableStreamDefaultReader<T>,
    limit: number,
    options: ReadAheadOptions = {},
  ) {
    this.#reader = reader;
    this.#limit = Math.max(1, limit);
    this.#gatherMs = Math.max(0, options.gatherMs ?? 0);
    this.#timers = options.timers ?? SYSTEM_TIMERS;
  }

  /**
   * What the stream failed with, once {@link take} returned `[]` for a failed stream; undefined
   * for one that ended (a finished job's evicted backlog tells its reader so: `slow_reader`).
   */
  get error(): unknown {
    return this.#error;
  }

  /** The items ready now (at least one, waiting for it), or `[]` once the stream ended. */
  async take(): Promise<T[]> {
    while (this.#buffer.length === 0 && !this.#done) await this.#next();
    if (this.#buffer.length > 0 && this.#lastTake !== undefined && this.#gatherMs > 0) {
      const left = this.#lastTake + this.#gatherMs - this.#timers.now();
      if (left > 0) await this.#gather(left);
    }
    const out = this.#buffer.splice(0, this.#limit);
    if (out.length > 0) this.#lastTake = this.#timers.now();
    this.#fill(); // keep one read going while the wire takes these
    return out;
  }

  /**
   * Read on until `limit` items wait, the stream ends, or `ms` pass: one timer for the whole
   * wait, not one per item (a timer costs more than the read it bounds: `setTimeout` and
   * `clearTimeout` were 6 % of a worker's main thread serving a 2,000 tokens/s model).
   */
  async #gather(ms: number): Promise<void> {
    let expired = false;
    const timer = this.#timers.setTimeout(() => {
      expired = true;
      this.#wake();
    }, ms);
    while (!expired && this.#buffer.length < this.#limit && !this.#done) await this.#next();
    this.#timers.clearTimeout(timer);
  }

  /** Until the read in progress settles (one is started), or {@link #wake}. */
  async #next(): Promise<void> {
    const settled = new Promise<void>((resolve) => this.#waiter = resolve);
    this.#fill();
    await settled;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  #fill(): void {
    if (this.#reading || this.#done || this.#buffer.length >= this.#limit) return;
    this.#reading = true;
    this.#reader.read().then(
      (result) => {
        if (result.done) this.#done = true;
        else this.#buffer.push(result.value);
      },
      (error) => {
        this.#error = error;
        this.#done = true;
      },
    ).finally(() => {
      this.#reading = false;
      this.#wake();
      this.#fill();
    });
  }
}
