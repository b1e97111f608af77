/**
 * Test fixture: `globalThis.Worker` swapped while a test runs, so that the held-out evaluator's
 * first workers are `_dying_evaluator_worker.ts`, each named as the test says (`MODE@ANSWERS`),
 * and the later ones the real evaluator worker. What was started, and what terminated, is kept.
 *
 * @module
 */

const DYING = new URL("./_dying_evaluator_worker.ts", import.meta.url).href;
const EVALUATOR_WORKER = "/_held_out_evaluator_worker.ts";

/** One evaluator worker started while the test ran. */
export interface StartedWorker {
  /** Its stand-in's name, or undefined for the real worker. */
  dying: string | undefined;
  terminated: boolean;
}

/**
 * Run `body` with the evaluator's first workers the dying stand-ins named in `dying` (one name
 * each, in order); `endless`: every later one too, as the last name says.
 */
export async function withDyingWorkers(
  dying: string[],
  body: (started: StartedWorker[]) => Promise<void>,
  endless = false,
): Promise<void> {
  const RealWorker = globalThis.Worker;
  const started: StartedWorker[] = [];
  class StandInWorker extends RealWorker {
    readonly #seen: StartedWorker;
    constructor(url: string | URL, options?: WorkerOptions) {
      const evaluator = String(url).endsWith(EVALUATOR_WORKER);
      const index = started.length;
      const name = !evaluator
        ? undefined
        : dying[index] ?? (endless ? dying[dying.length - 1] : undefined);
      super(name === undefined ? url : DYING, name === undefined ? options : { ...options, name });
      this.#seen = { dying: name, terminated: false };
      if (evaluator) started.push(this.#seen);
    }
    override terminate(): void {
      this.#seen.terminated = true;
      super.terminate();
    }
  }
  globalThis.Worker = StandInWorker;
  try {
    await body(started);
  } finally {
    globalThis.Worker = RealWorker;
  }
}
