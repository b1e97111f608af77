/**
 * A model worker entry whose thread hangs at its first generation step, as one stuck in a graph
 * that never ends would: the real worker, except that a `step` request never returns, so nothing
 * after it (a `dispose` included) is ever read. The thread hangs blocked, not spinning (see
 * `_hang.ts`).
 *
 * @module
 */
import "../../inference/_model_worker.ts";
import { eachMessage } from "../../inference/_batched_post.ts";
import { hangForever } from "./_hang.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ op: string } | { op: string }[]>) => void) | null;
};
const handle = scope.onmessage!;

scope.onmessage = (event) => {
  if (eachMessage(event.data).some((request) => request.op === "step")) {
    hangForever(); // the graph that never ends
  }
  handle(event);
};
