/**
 * The entry point of a model worker (worker execution mode): a dedicated `Worker` that owns one
 * onnxruntime session and the KV caches of the sequences placed on it, and answers the requests
 * of `_worker_protocol.ts` one at a time, generation steps before forward passes.
 *
 * onnxruntime-node computes synchronously on the thread that calls `session.run`; here that is
 * this worker's thread, so the main thread's event loop (HTTP, WebSocket writes, actors) keeps
 * running while the model computes, and workers of one pool compute on different cores. A
 * generation step's sampling and fingerprint run here too, next to the logits (the O(V) passes
 * over the row), and only `(token, fingerprint)` (and the top tokens a request asked for) is
 * posted back.
 *
 * Not imported by anything: started by `_model_worker_pool.ts` with
 * `new Worker(new URL("./_model_worker.ts", import.meta.url), { type: "module" })`.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import {
  BatchedDecoder,
  type BatchedSequence,
  idlePrefillPieceFor,
  prefillGroupTokensFor,
} from "./_batch_decoder.ts";
import { DecoderSession } from "./_decoder_session.ts";
import { createSession } from "./_session.ts";
import {
  type LoadedSession,
  serializeError,
  type WorkerOps,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStats,
} from "./_worker_protocol.ts";
import { runTensorSession } from "./_tensor_data.ts";
import { BatchedPost, eachMessage } from "./_batched_post.ts";

/** The worker side of `postMessage`, typed for what this file sends. */
const port = globalThis as unknown as {
  postMessage(message: WorkerReply | WorkerReply[], options?: { transfer?: Transferable[] }): void;
  onmessage: ((event: MessageEvent<WorkerRequest | WorkerRequest[]>) => void) | null;
};
/**
 * Replies, those without transfers posted together: a tick answers the steps of all its
 * generations at once (`_batched_post.ts`).
 */
const outbox = new BatchedPost<WorkerReply>(
  (replies, transfer = []) => port.postMessage(replies, { transfer }),
  (replies, error) => {
    // A reply that cannot be posted as it is: its request fails instead, each on its own.
    for (const { id } of replies) port.postMessage({ id, ok: false, error: serializeError(error) });
  },
);

let session: ort.InferenceSession | undefined;
let decoder: DecoderSession | undefined;
/** The generations on this worker, batched together (`_batch_decoder.ts`). */
let batched: BatchedDecoder | undefined;
const sequences = new Map<number, BatchedSequence>();
let runs = 0;
let requests = 0;
let messages = 0;

/** A result and the buffers to transfer with it. */
interface Answer<R> {
  result: R;
  transfer?: Transferable[];
}

type Handlers = {
  [K in keyof WorkerOps]: (args: WorkerOps[K]["args"]) => Promise<Answer<WorkerOps[K]["result"]>>;
};

const handlers: Handlers = {
  async load({ bytes, session: options, decoder: shape }) {
    const created = await createSession(bytes, options);
    session = created.session;
    if (shape) {
      decoder = new DecoderSession(session, shape);
      batched = new BatchedDecoder(decoder, {
        maxBatch: options.maxBatch,
        prefillTokensPerTick: options.prefillTokensPerTick,
        prefillGroupTokens: prefillGroupTokensFor(created.executionProvider),
        prefillIdlePieceTokens: idlePrefillPieceFor(created.executionProvider),
      });
    }
    const result: LoadedSession = {
      executionProvider: created.executionProvider,
      ...(created.fallbackReason === undefined ? {} : { fallbackReason: created.fallbackReason }),
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
      inputMetadata: [...session.inputMetadata],
      outputMetadata: [...session.outputMetadata],
    };
    return { result };
  },

  async step({ seq, tokens, sampling, topLogprobs, ahead }) {
    requireDecoder();
    let sequence = sequences.get(seq);
    if (!sequence) {
      sequence = batched!.sequence();
      sequences.set(seq, sequence);
    }
    runs++;
    return { result: await sequence.step(tokens, sampling, topLogprobs, ahead) };
  },

  async forward({ tokens }) {
    const model = requireDecoder();
    runs++;
    const logits = ownedFloat32(await model.forward(tokens));
    return { result: logits, transfer: [logits.buffer] };
  },

  async run({ feeds }) {
    if (!session) throw new Error("the model worker has no session");
    runs++;
    // Feeds were validated and aligned on the main side (`prepareTensor`): no copy here.
    const result = await runTensorSession(session, feeds);
    const transfer = Object.values(result).map((t) => t.data.buffer as ArrayBuffer);
    return { result, transfer };
  },

  drop({ seq }) {
    sequences.get(seq)?.close();
    sequences.delete(seq);
    return Promise.resolve({ result: undefined });
  },

  stats() {
    const result: WorkerStats = { runs, sequences: sequences.size, requests, messages };
    if (batched) result.batch = batched.stats();
    return Promise.resolve({ result });
  },

  async dispose() {
    sequences.clear();
    batched?.dispose();
    batched = undefined;
    decoder = undefined;
    const current = session;
    session = undefined;
    await current?.release();
    return { result: undefined };
  },
};

function requireDecoder(): DecoderSession {
  if (!decoder) throw new Error("the model worker has no decoder session");
  return decoder;
}

/**
 * `data` itself when it owns its whole buffer (transferable as is), else a copy that does.
 * onnxruntime allocates each output in a buffer of its own, so this normally copies nothing.
 */
function ownedFloat32(data: Float32Array): Float32Array<ArrayBuffer> {
  const buffer = data.buffer;
  if (
    buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength
  ) {
    return data as Float32Array<ArrayBuffer>;
  }
  return data.slice();
}

/**
 * Requests are handled one after another: first every queued request but forward passes (the
 * generation steps clients wait on, each a few milliseconds), in arrival order, so a `drop`
 * still follows the steps of its sequence; then forward passes (a validator's, one costing as
 * much as dozens of steps) and `dispose`, which goes last. A generation step is handed to the
 * batcher and answered when its tick has run, without holding up the queue: the steps of all
 * the worker's generations run together (`_batch_decoder.ts`).
 */
const urgent: WorkerRequest[] = [];
const background: WorkerRequest[] = [];
const BACKGROUND_OPS: ReadonlySet<WorkerRequest["op"]> = new Set(["forward", "dispose"]);
let draining = false;

port.onmessage = (event) => {
  messages++;
  for (const request of eachMessage(event.data)) {
    requests++;
    (BACKGROUND_OPS.has(request.op) ? background : urgent).push(request);
  }
  if (!draining) void drain();
};

async function drain(): Promise<void> {
  draining = true;
  while (urgent.length > 0 || background.length > 0) {
    if (urgent.length === 0) {
      // About to start a long pass: let a step already posted to this worker arrive first.
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (urgent.length > 0) continue;
    }
    const request = urgent.shift() ?? background.shift()!;
    // Registered with the batcher synchronously, answered when its tick has run.
    if (request.op === "step") void handle(request);
    else await handle(request);
  }
  draining = false;
}

async function handle(request: WorkerRequest): Promise<void> {
  const { id } = request;
  try {
    const handler = handlers[request.op] as (args: unknown) => Promise<Answer<unknown>>;
    const { result, transfer } = await handler(request);
    outbox.post({ id, ok: true, result }, transfer);
  } catch (error) {
    outbox.post({ id, ok: false, error: serializeError(error) });
  }
}
