/**
 * A model worker entry whose thread hangs at its first generation step, as one stuck in a graph
 * that never ends would (review s52): the real worker, except that a `step` request never
 * returns, so nothing after it (a `dispose` included) is ever read. Only `terminate()` stops it.
 *
 * @module
 */
import "../../inference/_model_worker.ts";
import { eachMessage } from "../../inference/_batched_post.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ op: string } | { op: string }[]>) => void) | null;
};
const handle = scope.onmessage!;

scope.onmessage = (event) => {
  if (eachMessage(event.data).some((request) => request.op === "step")) {
    for (;;) { /* the graph that never ends */ }
  }
  handle(event);
};
