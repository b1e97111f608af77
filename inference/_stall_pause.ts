/**
 * Telling a hung model worker from a process that was not run. The pool's stall watch looks every
 * `everyMs` (real time) and takes a worker for hung once a request of its has gone unanswered for
 * `stallMs`. When this whole process is not scheduled — stopped (SIGSTOP, a debugger), its VM or
 * laptop paused, the machine starved — its workers are not either, and at the first look after it
 * resumes every request looks unanswered for the length of the pause: a healthy worker was killed
 * as hung and its jobs failed `model_worker_failed … it stalled` (review s72, F3: a node stopped
 * 15 s under a 10 s stall limit lost 8 jobs). A look that comes more than {@link PAUSE_FACTOR}
 * intervals after the last one says the process itself was away: the waits start again then,
 * and a worker that is really hung is found `stallMs` later.
 *
 * @module
 */

/**
 * How many look intervals may pass between two looks before the gap is taken for a pause of the
 * process: a timer fires late under load by a fraction of its interval, not by several.
 */
export const PAUSE_FACTOR = 3;

/** The gaps between the stall watch's looks, on a clock of real time. */
export class StallPause {
  readonly #everyMs: number;
  readonly #now: () => number;
  #last: number | undefined;

  /**
   * @param everyMs The interval between looks.
   * @param now Real time in ms (`performance.now` by default; tests pass their own).
   */
  constructor(everyMs: number, now: () => number = () => performance.now()) {
    this.#everyMs = everyMs;
    this.#now = now;
  }

  /**
   * Record a look; how long the process was away before it (ms), or 0 when the look came in
   * time.
   */
  look(): number {
    const now = this.#now();
    const gap = this.#last === undefined ? 0 : now - this.#last;
    this.#last = now;
    return gap > PAUSE_FACTOR * this.#everyMs ? gap : 0;
  }
}
