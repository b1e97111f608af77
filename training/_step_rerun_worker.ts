/**
 * The worker of a {@link WorkerStepRerun} (`step_rerun.ts`): `checkVerifiedStep` on a thread of
 * its own, so a validator's re-run of opened steps never holds the node's event loop. It answers
 * each step by its id, one after another in the order they came (one tfjs engine).
 *
 * It also unseals a trainer's answer (`unsealStepOpenings`, in turn with the steps) with the
 * validator's secret key, sent with each such request and zeroed once the identity holds it; the
 * plaintext goes back transferred. Unsealing never throws on the answer's account.
 *
 * A `TrainingError` is the step's answer (its inputs do not fit). Any other error is this worker's:
 * a tfjs-wasm engine that once ran out of memory answers `Aborted()` or "memory access out of
 * bounds" to every later re-run, for good (review s77 vtrain F2). So it is answered `fatal`, and
 * the worker closes itself, runs nothing more, and is replaced by the main thread.
 *
 * Started by `WorkerStepRerun`, in a worker with a heap limit of its own
 * (`_heap_limited_worker.ts`); imported only by tests' stand-ins that wrap it
 * (`tests/training/_step_rerun_stand_in.ts`, `tests/training/_engine_abort_stand_in.ts`,
 * `tests/training/_heap_hog_worker.ts`).
 *
 * @module
 */
import { Identity } from "../protocols/identity.ts";
import { unsealStepOpenings } from "./step_opening.ts";
import {
  IN_PROCESS_STEP_RERUN,
  type StepRerunReply,
  type StepRerunRequest,
  type UnsealRequest,
} from "./step_rerun.ts";
import { TrainingError } from "./training_error.ts";

const port = globalThis as unknown as {
  postMessage(message: StepRerunReply, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<StepRerunRequest | UnsealRequest>) => void) | null;
  close(): void;
};

/** One re-run at a time, in the order asked: their answers come back in that order. */
let queue: Promise<void> = Promise.resolve();
/** Set once a re-run failed as the worker's own: nothing more runs on its engine. */
let broken = false;

/** The answer unsealed, and its plaintext's buffer to transfer back. */
function unseal(request: UnsealRequest): { reply: StepRerunReply; transfer: Transferable[] } {
  const validator = Identity.fromSecretKey(request.validatorSecret);
  request.validatorSecret.fill(0);
  const unsealed = unsealStepOpenings(
    request.sealed,
    request.challenge,
    request.receipt,
    validator,
  );
  return {
    reply: { id: request.id, ok: true, unsealed },
    // Its own buffer (the cipher allocates it): the worker keeps nothing of it.
    transfer: unsealed.ok ? [unsealed.plaintext.buffer as ArrayBuffer] : [],
  };
}

port.onmessage = (event) => {
  const request = event.data;
  const { id } = request;
  queue = queue.then(async () => {
    if (broken) return;
    try {
      if ("op" in request && request.op === "unseal") {
        const { reply, transfer } = unseal(request);
        port.postMessage(reply, transfer);
        return;
      }
      const { receipt, step, options, only } = request as StepRerunRequest;
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
