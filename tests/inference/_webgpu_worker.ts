/**
 * A model worker entry that stands in for a machine whose WebGPU adapter starts: the real worker,
 * except that a session asked for `webgpu` is created on CPU (this machine has no adapter) and its
 * load is answered as if it ran on `webgpu`. A pool then holds the process's WebGPU device as it
 * would on a GPU machine, and a test sees which workers were asked for it: exactly those that
 * answer `webgpu`.
 *
 * @module
 */
import "../../inference/_model_worker.ts";
import { eachMessage } from "../../inference/_batched_post.ts";

interface Message {
  op?: string;
  id?: number;
  session?: { executionProvider?: string };
  ok?: boolean;
  result?: { executionProvider?: string; fallbackReason?: string };
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Message | Message[]>) => void) | null;
  postMessage(message: Message | Message[], options?: { transfer?: Transferable[] }): void;
};
const handle = scope.onmessage!;
const post = scope.postMessage.bind(scope);
/** Loads asked for `webgpu`, by request id: answered as running on it. */
const onWebgpu = new Set<number>();

scope.onmessage = (event) => {
  for (const data of eachMessage(event.data)) {
    if (data.op === "load" && data.session?.executionProvider === "webgpu") {
      onWebgpu.add(data.id!);
      data.session = { ...data.session, executionProvider: "cpu" };
    }
  }
  handle(event);
};

scope.postMessage = (message, options) => {
  for (const reply of eachMessage(message)) {
    if (reply.ok && reply.id !== undefined && onWebgpu.delete(reply.id) && reply.result) {
      reply.result.executionProvider = "webgpu";
      delete reply.result.fallbackReason;
    }
  }
  post(message, options);
};
