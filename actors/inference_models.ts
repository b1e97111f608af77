/**
 * The models as the InferenceActor sees them: the few members of `TextModel` and `TensorModel`
 * it calls, where it finds them by CID, and the prover hook it hands every text job's chunks
 * to. Declared structurally so tests drive the actor with scripted models and any model with
 * these shapes can serve.
 *
 * @module
 */
import type { ServedModelInfo } from "../inference/inference_port.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import type { GenerationParams, TensorData, TextJob } from "../protocols/job.ts";

/** The part of `TextModel` (inference/text_model.ts) the actor uses. */
export interface GenerativeModel {
  /** Identity and shape of the model (`cid`, `name`, `contextLength`, `executionProvider`). */
  readonly info: ServedModelInfo;
  /** Text ↔ token ids. */
  readonly tokenizer: { encode(text: string): number[] };
  /**
   * Generations the model computes together in one batched step (`TextModel.batchCapacity`:
   * its batch size × workers). The actor runs this many of its jobs at once, whatever its
   * `concurrency`: a batch's seats are not left empty while jobs wait in the queue, and no job
   * starts beyond them only to stand still mid-stream. Absent: the actor's `concurrency`.
   */
  readonly batchCapacity?: number;
  /**
   * Hear that `batchCapacity` may have changed (`TextModel.onCapacityChange`: a model worker
   * crashed, came back or was given up on); returns the function that stops it. The actor then
   * starts queued jobs on seats that came back. Absent: the seats change only when read again.
   */
  onCapacityChange?(listener: () => void): () => void;
  /**
   * Pull-based token stream; stops within one step when `signal` aborts or it is cancelled.
   * With `topLogprobs` > 0 each chunk lists that many of the most likely tokens
   * (`TokenChunk.topLogprobs`); a model that cannot list them leaves the field unset.
   */
  generate(
    promptIds: number[],
    params: GenerationParams,
    options?: { signal?: AbortSignal; topLogprobs?: number },
  ): ReadableStream<TokenChunk>;
}

/** The part of a one-shot `TensorModel` the actor uses: named tensors in, named tensors out. */
export interface OneShotModel {
  /** Identity of the model. */
  readonly info: ServedModelInfo;
  /** Run the model once. */
  run(inputs: Record<string, TensorData>): Promise<Record<string, TensorData>>;
}

/** Where the actor finds a model by CID. `ModelRegistry` (inference/model_registry.ts) is one. */
export interface ModelSource {
  /**
   * The loaded model with this CID; `undefined` or a rejection with `UnknownModelError` when
   * the node does not serve it. Any rejection refuses the one job and never stops the actor: a
   * typed one (`VeriflowError`) with that error, anything else as a `ModelLoadError` whose
   * `cause` it is.
   */
  get(cid: string): Promise<GenerativeModel | OneShotModel | undefined>;
  /**
   * The models the source serves now (`ModelRegistry.list`). The actor keeps a lane (queue,
   * seats, a capacity listener) per model a job named; a lane whose model is no longer listed
   * (a training round's model retired, `node/_round_model_retirement.ts`) is dropped once no job
   * of it runs or waits. Absent: lanes are kept for the actor's life.
   */
  list?(): readonly { cid: string }[];
}

/**
 * The prover hook: receives the job, its id, the prover's branch of the token stream (the
 * model's own chunks, with whatever evidence they carry) and, for a job that names an input, its
 * bytes (kept with the proof data for validators), and resolves to the job's receipt when the
 * stream ends.
 */
export type ProverHook = (
  job: TextJob,
  jobId: string,
  chunks: ReadableStream<TokenChunk>,
  input?: Uint8Array,
) => Promise<unknown>;
