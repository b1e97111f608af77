/**
 * The worker of a {@link WorkerStepRerun} (`step_rerun.ts`): `checkVerifiedStep` on a thread of
 * its own, so a validator's re-run of opened steps never holds the node's event loop. It answers
 * each step by its id, one after another in the order they came (one tfjs engine).
 *
 * A `TrainingError` is the step's answer (its inputs do not fit). Any other error is this worker's:
 * a tfjs-wasm engine that once ran out of memory answers `Aborted()` or "memory access out of
 * bounds" to every later re-run, for good (review s77 vtrain F2). So it is answered `fatal`, and
 * the worker closes itself, runs nothing more, and is replaced by the main thread.
 *
 * Started by `WorkerStepRerun` with `new Worker(...)`; imported only by tests' stand-ins that wrap it
 * (`tests/training/_step_rerun_stand_in.ts`, `tests/training/_engine_abort_stand_in.ts`).
 *
 * @module
 */
import { IN_PROCESS_STEP_RERUN, type StepRerunReply, type StepRerunRequest } from "./step_rerun.ts";
import { TrainingError } from "./training_error.ts";

const port = globalThis as unknown as {
  postMessage(message: StepRerunReply): void;
  onmessage: ((event: MessageEvent<StepRerunRequest>) => void) | null;
  close(): void;
};

/** One re-run at a time, in the order asked: their answers come back in that order. */
let queue: Promise<void> = Promise.resolve();
/** Set once a re-run failed as the worker's own: nothing more runs on its engine. */
let broken = false;

port.onmessage = (event) => {
  const { id, receipt, step, options, only } = event.data;
  queue = queue.then(async () => {
    if (broken) return;
    try {
      const result = await IN_PROCESS_STEP_RERUN.check(receipt, step, options, only);
      port.postMessage({ id, ok: true, result });
    } catch (error) {
      if (error instanceof TrainingError) {
        port.postMessage({ id, ok: false, code: error.code, message: error.message });
        return;
      }
      broken = true;
      port.postMessage({ id, ok: false, fatal: true, message: String(error) });
      port.close();
    }
  });
};
