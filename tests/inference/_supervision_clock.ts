/**
 * A model worker pool's supervision clock (`supervisionClock` of `TextModel.load`) that a test
 * moves on by hand. It stands still until told, so the stall watch takes a worker for hung
 * exactly when the test has set the hang up (never because a loaded machine was slow) and
 * without waiting `restart.stallMs` in real time; the watch still looks every quarter of
 * `stallMs` of real time.
 *
 * @module
 */

/** A supervision clock at 0 until the test moves it on. */
export class SupervisionClock {
  /** The time it reads (ms). */
  t = 0;

  /** The clock, as `supervisionClock` takes it. */
  readonly now = (): number => this.t;

  /** Move on by `ms`. */
  pass(ms: number): void {
    this.t += ms;
  }

  /**
   * Move on by `ms` every `everyMs` of real time until `until` settles; its outcome. For a
   * request the test keeps unanswered (a held step) whose posting it cannot see: the watch
   * finds it stalled at its next look after the post. Take `ms` well under `stallMs`: a step or
   * two more may pass before `until` settles, and a replacement loading then must not be taken
   * for hung too.
   */
  async passUntil<T>(ms: number, until: Promise<T>, everyMs = 20): Promise<T> {
    const timer = setInterval(() => this.pass(ms), everyMs);
    try {
      return await until;
    } finally {
      clearInterval(timer);
    }
  }
}
