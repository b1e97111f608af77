/**
 * Test fixture: a stand-in for `_held_out_evaluator_worker.ts` that answers its first evaluations
 * as the real worker does, then dies, the way its worker's `name` (`MODE@ANSWERS`) says: `exit`
 * ends the thread with `Deno.exit` (no error event reaches the evaluator), `throw` throws from a
 * timer (an uncaught error, as a tfjs async callback might). `ANSWERS` (default 0): evaluations
 * answered before it dies.
 *
 * @module
 */
import {
  evaluateHeldOut,
  type EvaluatorReply,
  type EvaluatorRequest,
  type HeldOutEvaluation,
} from "../../training/held_out_evaluator.ts";

const port = globalThis as unknown as {
  name: string;
  postMessage(message: EvaluatorReply): void;
  onmessage: ((event: MessageEvent<EvaluatorRequest>) => void) | null;
};
const [mode, answers] = port.name.split("@");
let left = Number(answers ?? 0);
let evaluation: HeldOutEvaluation | undefined;
let queue: Promise<void> = Promise.resolve();

port.onmessage = (event) => {
  const request = event.data;
  if (request.op === "init") {
    evaluation = request.evaluation;
    return;
  }
  queue = queue.then(async () => {
    if (left-- > 0) {
      const loss = await evaluateHeldOut(evaluation!, request.weights);
      port.postMessage({ id: request.id, ok: true, loss });
      return;
    }
    if (mode === "exit") Deno.exit(1);
    setTimeout(() => {
      throw new Error("the evaluator's worker broke");
    }, 0);
  });
};
