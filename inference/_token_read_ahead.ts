/**
 * Reading a job's tokens a few ahead of the wire, so the serving side of `inference.submit`
 * can send every token that is ready in one event. One read is kept outstanding while fewer
 * than `limit` tokens wait: when the requester (or the link to it) keeps up, each pull finds one
 * token and sends it alone, as before; when it falls behind, the tokens computed meanwhile go
 * out together — one frame, one write, one packet through each swarm host, instead of one per
 * token — and the worker is never more than `limit` tokens ahead of what was sent.
 *
 * **Gathering.** A requester that keeps up with a fast model still gets one frame per token, and
 * each frame costs a wake-up in every process it crosses whatever it carries. With `gatherMs`,
 * while tokens arrive less than `gatherMs` apart, a take that finds fewer than `limit` waits up
 * to `gatherMs` for the ones right behind: each token leaves at most that much later, and a
 * model slower than that is never waited for (nor is the first token).
 *
 * @module
 */

/** How a {@link ReadAhead} waits while gathering: `fn` after `ms`; returns a cancel. */
export type GatherTimer = (fn: () => void, ms: number) => () => void;

/** Options of {@link ReadAhead}. */
export interface ReadAheadOptions {
  /** Gather tokens that arrive less than this apart (ms; default 0: no gathering). */
  gatherMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /** Timer (default setTimeout). */
  timer?: GatherTimer;
}

const defaultTimer: GatherTimer = (fn, ms) => {
  const id = setTimeout(fn, ms);
  return () => clearTimeout(id);
};

/** Buffered reads of a stream, at most `limit` ahead; see the module doc. */
export class ReadAhead<T> {
  readonly #reader: ReadableStreamDefaultReader<T>;
  readonly #limit: number;
  readonly #gatherMs: number;
  readonly #now: () => number;
  readonly #timer: GatherTimer;
  readonly #buffer: T[] = [];
  #reading = false;
  #done = false;
  #waiter: (() => void) | undefined;
  /** When the last item arrived, and how long after the one before it (ms). */
  #lastArrival = NaN;
  #interval = Infinity;

  /**
   * @param reader The stream to read (its errors end it, like its end: the caller learns the
   *   job's outcome elsewhere).
   * @param limit Most items kept ahead, and most returned by one {@link take}.
   * @param options Gathering (see the module doc).
   */
  constructor(
    reader: ReadableStreamDefaultReader<T>,
    limit: number,
    options: ReadAheadOptions = {},
  ) {
    this.#reader = reader;
    this.#limit = Math.max(1, limit);
    this.#gatherMs = Math.max(0, options.gatherMs ?? 0);
    this.#now = options.now ?? (() => performance.now());
    this.#timer = options.timer ?? defaultTimer;
  }

  /** The items ready now (at least one, waiting for it), or `[]` once the stream ended. */
  async take(): Promise<T[]> {
    while (this.#buffer.length === 0 && !this.#done) {
      const ready = this.#wait();
      this.#fill();
      await ready;
    }
    if (
      this.#gatherMs > 0 && this.#buffer.length > 0 && this.#buffer.length < this.#limit &&
      !this.#done && this.#interval < this.#gatherMs
    ) {
      await this.#gather();
    }
    const out = this.#buffer.splice(0, this.#limit);
    this.#fill(); // keep one read going while the wire takes these
    return out;
  }

  /** Wait until `limit` items are ready, the stream ends, or `gatherMs` has passed. */
  async #gather(): Promise<void> {
    let expired = false;
    const cancel = this.#timer(() => {
      expired = true;
      this.#wake();
    }, this.#gatherMs);
    try {
      while (!expired && this.#buffer.length < this.#limit && !this.#done) {
        const ready = this.#wait();
        this.#fill();
        await ready;
      }
    } finally {
      cancel();
    }
  }

  #wait(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiter = resolve);
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
        if (result.done) {
          this.#done = true;
          return;
        }
        this.#buffer.push(result.value);
        const now = this.#now();
        this.#interval = now - this.#lastArrival;
        this.#lastArrival = now;
      },
      () => {
        this.#done = true;
      },
    ).finally(() => {
      this.#reading = false;
      this.#wake();
      this.#fill();
    });
  }
}
