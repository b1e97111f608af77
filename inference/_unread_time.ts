/**
 * How long the requester's side of a relayed job left the worker's events unread, over its last
 * few reads: what this side knows of its own for judging a worker's word that it stopped reading
 * (`reader_stalled`, `_remote_job.ts`).
 *
 * A worker says so once it had no credit for its reader stall timeout (60 s by default,
 * `serve_inference.ts`). This side grants credit as it reads, a batch per half credit window
 * (`protocols/_connection_requester.ts`), and while it waits in a read with nothing buffered the
 * worker holds at least half a window of credit: a worker can have gone without credit only while
 * this side was not reading. From the start of that wait to the read of the error, this side read
 * fewer than half a window of events (a whole half would have granted credit) and then at most a
 * window of events buffered before the error: so the time it left the events unread over its last
 * two windows of reads covers the worker's whole wait. A worker that says it waited while that
 * time is short says what this side knows to be false.
 *
 * @module
 */

/**
 * The time a job's events were left unread, over the last few reads of them (how many: the
 * constructor's `reads`).
 *
 * @example
 * ```ts
 * import { UnreadTime } from "./_unread_time.ts";
 * const unread = new UnreadTime(4, 0); // the job started at 0, unread until its first read
 * unread.reading(30_000);
 * unread.read(30_001);
 * unread.unreadMs(30_001); // 30_000
 * ```
 */
export class UnreadTime {
  /** Ms between the end of one read and the start of the next, for the last reads (a ring). */
  readonly #spans: number[] = [];
  readonly #reads: number;
  #next = 0;
  /** When the last read ended (NaN while a read is in progress). */
  #since: number;

  /**
   * Start counting at `now`: the job's events are unread from then until its first read.
   * @param reads How many of the last reads {@link unreadMs} sums over (at least 1).
   * @param now The clock's time now.
   */
  constructor(reads: number, now: number) {
    this.#reads = Math.max(1, Math.floor(reads));
    this.#since = now;
  }

  /** A read of the job's events begins at `now`. */
  reading(now: number): void {
    if (Number.isNaN(this.#since)) return;
    this.#spans[this.#next] = now - this.#since;
    this.#next = (this.#next + 1) % this.#reads;
    this.#since = NaN;
  }

  /** The read in progress ended at `now` (with an event, an error or the end). */
  read(now: number): void {
    this.#since = now;
  }

  /**
   * The ms the events were left unread before each of the last reads, and since the last one
   * ended when none is in progress.
   * @param now The clock's time now.
   * @returns The ms, summed.
   */
  unreadMs(now: number): number {
    let total = Number.isNaN(this.#since) ? 0 : now - this.#since;
    for (const span of this.#spans) total += span;
    return total;
  }
}
