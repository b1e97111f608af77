/**
 * The worker of a {@link WorkerHeldOutEvaluator} (`held_out_evaluator.ts`): `evaluateHeldOut` on a
 * thread of its own, so a coordinator's evaluations never hold the node's event loop. It gets the
 * architecture and the held-out samples once (`init`), then answers each `evaluate` by its id,
 * one after another in the order they came.
 *
 * Not imported by anything: started by `WorkerHeldOutEvaluator` with `new Worker(...)`.
 *
 * @module
 */
import {
  evaluateHeldOut,
  type EvaluatorReply,
  type EvaluatorRequest,
  type HeldOutEvaluation,
} from "./held_out_evaluator.ts";

const port = globalThis as unknown as {
  postMessage(message: EvaluatorReply): void;
  onmessage: ((event: MessageEvent<EvaluatorRequest>) => void) | null;
};

let evaluation: HeldOutEvaluation | undefined;
/** One evaluation at a time (one tfjs engine), in the order asked. */
let queue: Promise<void> = Promise.resolve();

port.onmessage = (event) => {
  const request = event.data;
  if (request.op === "init") {
    evaluation = request.evaluation;
    return;
  }
  queue = queue.then(async () => {
    try {
      if (evaluation === undefined) throw new Error("evaluator worker used before init");
      const loss = await evaluateHeldOut(evaluation, request.weights);
      port.postMessage({ id: request.id, ok: true, loss });
    } catch (error) {
      port.postMessage({
        id: request.id,
        ok: false,
        code: (error as { code?: string }).code ?? "evaluator_error",
        message: (error as Error).message,
      });
    }
  });
};
