/**
 * The worker of a {@link WorkerStepRerun} (`step_rerun.ts`): `checkVerifiedStep` on a thread of
 * its own, so a validator's re-run of opened steps never holds the node's event loop. It answers
 * each step by its id, one after another in the order they came (one tfjs engine).
 *
 * Started by `WorkerStepRerun` with `new Worker(...)`; imported only by tests' stand-ins that wrap it
 * (`tests/training/_step_rerun_stand_in.ts`).
 *
 * @module
 */
import { IN_PROCESS_STEP_RERUN, type StepRerunReply, type StepRerunRequest } from "./step_rerun.ts";

const port = globalThis as unknown as {
  postMessage(message: StepRerunReply): void;
  onmessage: ((event: MessageEvent<StepRerunRequest>) => void) | null;
};

/** One re-run at a time, in the order asked: their answers come back in that order. */
let queue: Promise<void> = Promise.resolve();

port.onmessage = (event) => {
  const { id, receipt, step, options, only } = event.data;
  queue = queue.then(async () => {
    try {
      const result = await IN_PROCESS_STEP_RERUN.check(receipt, step, options, only);
      port.postMessage({ id, ok: true, result });
    } catch (error) {
      port.postMessage({
        id,
        ok: false,
        code: (error as { code?: string }).code ?? "step_rerun_error",
        message: (error as Error).message,
      });
    }
  });
};
