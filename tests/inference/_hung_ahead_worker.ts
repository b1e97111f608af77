/**
 * A model worker entry whose thread hangs in an execution that no request of the main thread waits
 * for: the real worker, except that the first execution starting after it has received two
 * generation steps never ends. That is a step its batcher computes ahead of the caller
 * (`_batch_decoder.ts`, "Running ahead"): the requests for the steps before it have been answered
 * already. The worker writes `?flag=PATH` when it hangs, and a worker started once that file exists
 * (a replacement) runs as the real one. The hung thread blocks, not spinning (see `_hang.ts`).
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import "../../inference/_model_worker.ts";
import { eachMessage } from "../../inference/_batched_post.ts";
import { hangForever } from "./_hang.ts";

const flag = new URL(import.meta.url).searchParams.get("flag");
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ op: string } | { op: string }[]>) => void) | null;
};
const handle = scope.onmessage!;
let steps = 0;
let runs = 0;
scope.onmessage = (event) => {
  for (const request of eachMessage(event.data)) if (request.op === "step") steps++;
  handle(event);
};

/** Whether a worker hung already (its flag is written): a replacement runs as the real one. */
function hungBefore(): boolean {
  if (flag === null) return false;
  try {
    Deno.statSync(flag);
    return true;
  } catch {
    return false;
  }
}

// The first execution (the prompt) answers step 0; the second computes the step ahead that
// answers step 1. A later one, once step 1 is here (and so answered from those), hangs.
// The class behind `ort.InferenceSession.create` (its declared type is only the factory).
const prototype = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession })
  .prototype;
const run = prototype.run;
prototype.run = function (this: ort.InferenceSession, ...args: Parameters<typeof run>) {
  runs++;
  if (runs >= 3 && steps >= 2 && !hungBefore()) {
    // After this turn's replies have left: the hang holds no reply back.
    return new Promise(() => {
      setTimeout(() => {
        if (flag) Deno.writeTextFileSync(flag, "");
        hangForever(); // the graph that never ends (blocked, not spinning: see `_hang.ts`)
      });
    });
  }
  return run.apply(this, args);
} as typeof run;
