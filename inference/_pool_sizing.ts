/**
 * How big a worker pool is, and how its sessions are threaded: {@link poolSizing} turns the
 * worker-mode options (`workerCount`, `validationWorkers`, `intraOpThreads`, the execution
 * provider) into the pool's size and each lane's session options, {@link webgpuPoolClamp}
 * says, for the log, what it changed of a pool asked for on WebGPU, and {@link batchSeats} how
 * many generations each batcher computes together.
 *
 * Used by `text_model.ts`, `tensor_model.ts` and `_text_engine.ts` before they start a
 * `ModelWorkerPool`, and by the node's model setup (`node/_node_models.ts`) for the log line;
 * all import them from `_model_worker_pool.ts`, which re-exports them. Not part of the public
 * API.
 *
 * @module
 */
import { cudaProviderInstalled, type SessionOptions } from "./_session.ts";
import { DEFAULT_MAX_BATCH } from "./_batch_decoder.ts";

/**
 * Most workers a pool starts by default. Every worker holds a whole session (the model's weights
 * once more in memory); past a few workers, cores are better spent as intra-op threads of each
 * (`intraOpThreads` defaults to cores / workers), which also speeds up a single stream.
 */
export const DEFAULT_MAX_MODEL_WORKERS = 4;

/** Worker-mode options as the pool reads them (declared publicly in `text_model.ts`). */
export interface PoolSizing extends SessionOptions {
  /** Generation workers in the pool. */
  workerCount?: number;
  /** Validation workers (forward passes only); default 0. */
  validationWorkers?: number;
}

/**
 * The pool size and per-worker session options for `options`: `workerCount` (default one per
 * core up to {@link DEFAULT_MAX_MODEL_WORKERS}; one on CUDA, where sessions would share a single
 * device and each would hold its own copy of the weights in GPU memory), `intraOpThreads`
 * (default cores / workers, so a busy pool does not oversubscribe the CPU), and the validation
 * lane's workers and threads.
 *
 * On WebGPU the pool is always one worker and no validation lane, whatever was asked
 * ({@link webgpuPoolClamp}): onnxruntime-node has one WebGPU device per process, shared by every
 * session, and sessions run from two threads at once corrupt its command encoder (seen on an
 * H200: "CommandEncoder is already finished", then SIGSEGV, as a node with a generation and a
 * validation worker started).
 */
export function poolSizing(
  options: PoolSizing | undefined,
): {
  workerCount: number;
  session: SessionOptions;
  validationWorkers: number;
  validationSession: SessionOptions;
} {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const cuda = options?.executionProvider === "cuda" && cudaProviderInstalled();
  const asked = options?.workerCount ?? (cuda ? 1 : Math.min(cores, DEFAULT_MAX_MODEL_WORKERS));
  if (!Number.isSafeInteger(asked) || asked < 1) {
    throw new RangeError(`workerCount must be a positive integer`);
  }
  const askedValidation = options?.validationWorkers ?? 0;
  if (!Number.isSafeInteger(askedValidation) || askedValidation < 0) {
    throw new RangeError(`validationWorkers must be an integer ≥ 0`);
  }
  const webgpu = options?.executionProvider === "webgpu";
  const workerCount = webgpu ? 1 : asked;
  const validationWorkers = webgpu ? 0 : askedValidation;
  const session = {
    executionProvider: options?.executionProvider,
    intraOpThreads: options?.intraOpThreads ?? Math.max(1, Math.floor(cores / workerCount)),
    spinning: options?.spinning,
    maxBatch: options?.maxBatch,
    prefillTokensPerTick: options?.prefillTokensPerTick,
  };
  // Validation threads come on top of generation's, which keep every core they had: an idle
  // validation worker costs nothing (its threads do not spin), a busy one shares the cores.
  const validationSession = {
    ...session,
    intraOpThreads: options?.intraOpThreads ??
      Math.max(1, Math.floor(cores / (workerCount + validationWorkers))),
  };
  return { workerCount, session, validationWorkers, validationSession };
}

/**
 * What {@link poolSizing} changes of a worker pool asked for on WebGPU (one generation worker,
 * no validation lane), as a sentence for the log; undefined when it changes nothing.
 */
export function webgpuPoolClamp(options: PoolSizing | undefined): string | undefined {
  if (options?.executionProvider !== "webgpu") return undefined;
  const workers = options.workerCount ?? 1;
  const validation = options.validationWorkers ?? 0;
  if (workers <= 1 && validation === 0) return undefined;
  return `webgpu: one model worker${
    validation > 0 ? ", and the validator's forward passes share it" : ""
  } (asked: ${workers} worker(s), ${validation} validation worker(s)): onnxruntime has one ` +
    `WebGPU device per process, and sessions run on it from two threads at once crash`;
}

/**
 * The generations one batcher (`BatchedDecoder`, in-thread or in each model worker) computes
 * together for a graph with these inputs: `maxBatch` (default `DEFAULT_MAX_BATCH`), or 1 for a
 * graph without `attention_mask` and `position_ids`, whose rows cannot be told apart in one
 * execution (`DecoderSession.canBatch`, which the batcher reads). One rule for the model's
 * `batchCapacity` and the pool's placement, so both count the seats the batchers have.
 */
export function batchSeats(inputNames: readonly string[], maxBatch: number | undefined): number {
  const canBatch = inputNames.includes("attention_mask") && inputNames.includes("position_ids");
  return canBatch ? maxBatch ?? DEFAULT_MAX_BATCH : 1;
}
