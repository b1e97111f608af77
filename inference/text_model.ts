/**
 * A decoder-only text model (the built-in GPT or any export in the common decoder convention)
 * with KV-cached streaming generation and a teacher-forced full pass.
 *
 * `generate` returns a pull-based `ReadableStream`: the model computes token t only once the
 * consumer asks for chunk t (high-water mark 0; in worker mode, for chunk t − `runAhead`), so a
 * slow consumer slows the worker rather than filling a buffer, and a cancelled stream or
 * aborted signal stops compute within one step. In worker mode the first step (the prompt's
 * read) is sent when the stream is created, within that window: the consumer is often still
 * setting up (an HTTP response's head, a WebSocket frame), and the prompt is most of the time
 * to first token.
 * Each step feeds only the new token and carries the KV cache on (`present.N.*` back as
 * `past_key_values.N.*`, or a fixed-capacity cache updated in place: `_decoder_session.ts`).
 *
 * Sampling and the proof fingerprint are computed next to the logits, by the code that ran the
 * step (`_decoder_session.ts`): a chunk carries its token and the 4-byte fingerprint's two
 * values, never the `vocabSize × 4`-byte logits row. So the consumers of a stream — the
 * requester and the prover — hold O(1) per token, and in worker mode no row crosses the thread
 * boundary. A generation asked for `topLogprobs` also gets each row's k most likely tokens,
 * listed next to the row in the same way (O(k) per token), named here by the tokenizer.
 *
 * `forward` is what validators use: one pass over prompt+output with no past, all positions'
 * logits at once. Both paths run the same graph, so their logits agree to float rounding.
 *
 * Two execution modes, with the same API and the same results:
 * - **in-thread** (default): the session runs on the calling thread. onnxruntime-node computes
 *   synchronously, so each step blocks this thread's event loop for its duration, and
 *   concurrent generations take turns on one core.
 * - **worker** (`worker: true`): sessions and KV caches live in a pool of dedicated workers
 *   (`_model_worker_pool.ts`), which also sample and fingerprint; this thread only decodes,
 *   checks stop conditions and streams. Its event loop
 *   stays free during compute, and concurrent generations run on several cores. A generation
 *   runs ahead by a credit window (`runAhead`, default one step): the worker computes token t+1
 *   while this thread delivers token t, each pull granting one more step, so a consumer that
 *   stops pulling stops the worker after the window (plus the two steps its batcher may run
 *   ahead of the last asked) and a cancel stops it within one step.
 *
 * @module
 */
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { GENERATION_LIMITS, type GenerationParams } from "../protocols/job.ts";
import type { Fingerprint } from "../proof/fingerprint.ts";
import {
  DecoderSession,
  type DecoderShape,
  hasFixedCache,
  type SampledStep,
  type StepSampling,
} from "./_decoder_session.ts";
import {
  BatchedDecoder,
  type BatchStats,
  DEFAULT_MAX_BATCH,
  prefillGroupTokensFor,
} from "./_batch_decoder.ts";

export type { BatchStats } from "./_batch_decoder.ts";
import { ModelWorkerPool, poolSizing } from "./_model_worker_pool.ts";
import {
  IN_THREAD_HEALTH,
  type ModelHealth,
  type ModelWorkerEvent,
  type ModelWorkerRestartPolicy,
} from "./model_health.ts";
import { createSession, type ExecutionProvider, type SessionOptions } from "./_session.ts";
import {
  asModelLoadError,
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTokenError,
  ModelDisposedError,
  ModelLoadError,
} from "./errors.ts";
import { type SamplingParams, validateSamplingParams } from "./sampler.ts";
import { type TextTokenizer, tokenizerFromFiles } from "./text_tokenizer.ts";
import { readTextModelFiles, textModelId } from "./model_identity.ts";
import { refuseExternalData } from "./_onnx_graph.ts";
import { MAX_TOP_LOGPROBS, type TopLogprob } from "./top_logprobs.ts";
import { endTokenIds } from "./end_tokens.ts";

export type { ExecutionProvider } from "./_session.ts";

/** What the node knows about any loaded model (text or tensor). */
export interface BaseModelInfo {
  /**
   * The model's identity (`model_identity.ts`): for a text model, the CID naming its
   * `model.onnx`, `config.json` and tokenizer files; for a tensor model, the CID of `model.onnx`.
   */
  cid: string;
  /** Human-readable name (`config.json` `veriflow.name`, `_name_or_path`, or the directory). */
  name: string;
  /** `"text"` for decoder models, `"tensor"` for one-shot models. */
  kind: "text" | "tensor";
  /** Size of `model.onnx` in bytes. */
  sizeBytes: number;
  /** Execution provider actually in use. */
  executionProvider: ExecutionProvider;
  /** Why the provider asked for is not in use (the model then runs on CPU); unset otherwise. */
  executionProviderFallback?: string;
  /** Directory or file it was loaded from. */
  path: string;
}

/** What the node knows about a loaded text model. */
export interface ModelInfo extends BaseModelInfo {
  /** Always `"text"`. */
  kind: "text";
  /** Vocabulary size (length of a logits row). */
  vocabSize: number;
  /** Maximum sequence length (prompt + output). */
  contextLength: number;
  /** Transformer blocks. */
  numLayers: number;
  /** Model width. */
  hiddenSize: number;
  /** Key/value heads of the cache. */
  numKeyValueHeads: number;
  /** Per-head width of the cache. */
  headDim: number;
  /** End-of-text token id, if any: the first of {@link eosTokenIds}. */
  eosTokenId: number | undefined;
  /**
   * Every end token id, in `config.json`'s order (`eos_token_id`, one id or a list: Llama 3
   * Instruct lists three and ends a turn at the last). Generation stops at any of them.
   */
  eosTokenIds: readonly number[];
}

/** Worker execution mode: options shared by text models, tensor models and the registry. */
export interface ModelWorkerOptions {
  /**
   * Run the model in a pool of dedicated workers instead of on the calling thread: the calling
   * thread's event loop stays responsive while the model computes, and concurrent generations
   * use several cores. Same API, same results (bit-identical for the same `intraOpThreads`).
   * Default `false` (in-thread).
   */
  worker?: boolean;
  /**
   * Workers in worker mode, each holding its own session (one more copy of the model in
   * memory). Default: one per core, at most 4; 1 when running on CUDA. Each worker's
   * `intraOpThreads` then defaults to cores / workers.
   */
  workerCount?: number;
  /**
   * Workers of their own for `forward` passes (a validator's), so that a pass never queues
   * ahead of a generation step: each holds one more session (one more copy of the model in
   * memory) and competes for cores only while it computes. Default 0: forward passes share the
   * generation workers, each of which serves its queued steps first.
   */
  validationWorkers?: number;
  /** When a dead model worker is restarted, and when it is given up on; see the defaults. */
  restart?: Partial<ModelWorkerRestartPolicy>;
  /** Called on each crash, restart and give-up of a model worker (for the log). */
  onWorkerEvent?: (event: ModelWorkerEvent) => void;
  /**
   * The model worker's entry module; default the built-in one. For fault-injection tests and
   * instrumented workers: a replacement must import the built-in module (which installs the
   * request handler) and may add to it.
   */
  workerUrl?: string | URL;
}

/** Options of {@link TextModel.load}. */
export interface TextModelOptions extends SessionOptions, ModelWorkerOptions {
  /** Override the model name in {@link ModelInfo}. */
  name?: string;
}

/** Counters of one model worker (worker mode), from {@link TextModel.workerStats}. */
export interface ModelWorkerStats {
  /** Model executions it ran (steps, forward passes, tensor runs). */
  runs: number;
  /** Generations whose KV cache it holds now. */
  sequences: number;
  /** Requests it received (generation steps, passes, …). */
  requests: number;
  /**
   * Messages that carried them: requests made in the same turn travel together, so with several
   * generations stepping at once this is well below `requests`.
   */
  messages: number;
}

/** Why a generation ended (on the last chunk only). */
export type FinishReason =
  /** End-of-text token generated, or the output reached a stop sequence. */
  | "stop"
  /** `maxTokens` reached, or the context window is full. */
  | "length";

/** One generated token. */
export interface TokenChunk {
  /** Output position t (0-based among generated tokens; continues from `startIndex`). */
  index: number;
  /** The token id. */
  tokenId: number;
  /** Newly complete text; "" while a UTF-8 character is incomplete, and for the EOS token. */
  text: string;
  /**
   * `fingerprintOf(row, tokenId)` (`proof/fingerprint.ts`) of the logits row this token was
   * sampled from, computed where the row was (in the model worker in worker mode): what the
   * prover quantizes to 4 bytes and commits to for this position.
   */
  fingerprint: Fingerprint;
  /** The model's vocabulary size (length of the row), which sizes the prover's token packing. */
  vocabSize: number;
  /**
   * The row's most likely tokens, most likely first, when the generation was asked for them
   * ({@link GenerateOptions.topLogprobs}); absent otherwise. Each is named by decoding its id
   * alone. Not evidence: the prover ignores it.
   */
  topLogprobs?: TopLogprob[];
  /**
   * The logits row itself. Never set by {@link TextModel.generate}, which drops the row where it
   * was computed; scripted stand-ins for a model may set it instead of `fingerprint`.
   */
  logits?: Float32Array;
  /** Set on the last chunk of the stream. */
  finishReason?: FinishReason;
}

/** Options of {@link TextModel.generate}. */
export interface GenerateOptions {
  /** Aborting stops generation within one step; the stream errors with the abort reason. */
  signal?: AbortSignal;
  /**
   * Output position of the first generated token. Resuming a job after k tokens: pass the
   * prompt followed by those k tokens as `promptIds` and `startIndex: k`; the continuation is
   * identical because draw t depends only on (seed, t). `maxTokens` counts from 0, so
   * `maxTokens - k` tokens remain. Default 0.
   */
  startIndex?: number;
  /**
   * Worker mode only: steps the worker may compute beyond the chunks the consumer has pulled.
   * With 1, the worker computes token t+1 while this thread delivers token t (the consumer's
   * pull is the credit for one more step), so delivery overlaps compute; a consumer that stops
   * pulling stops the worker after this many steps, and a cancel or abort stops it after the
   * step already running. 0 computes strictly on demand (one round trip per token with the
   * worker idle meanwhile). Ignored in-thread, where compute blocks this thread anyway.
   * Default {@link DEFAULT_RUN_AHEAD}.
   */
  runAhead?: number;
  /**
   * List this many of each row's most likely tokens on every chunk
   * ({@link TokenChunk.topLogprobs}), 0 to {@link MAX_TOP_LOGPROBS}. An output only: the tokens
   * and fingerprints are the same with any value. Default 0 (none, at no cost).
   */
  topLogprobs?: number;
}

/**
 * Default {@link GenerateOptions.runAhead}: one step ahead hides the delivery of each token
 * behind the compute of the next; more only adds wasted steps after a cancel or a stop
 * sequence, since each step needs the previous token back here first (decoded and checked
 * against the stop conditions before it is fed).
 */
export const DEFAULT_RUN_AHEAD = 1;

/** Options of {@link TextModel.forward}. */
export interface ForwardOptions {
  /** Checked before the pass starts. */
  signal?: AbortSignal;
}

interface ModelConfig {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  eosTokenId: number | undefined;
  eosTokenIds: readonly number[];
  name: string | undefined;
}

/** Whether a parsed JSON value is an object with fields (not `null`, an array or a scalar). */
function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Hugging Face configs spell the same fields differently across architectures. Throws
 * {@link ModelLoadError} on a config that is not an object, lacks a dimension, or gives one that
 * is not a positive integer — the per-head width included when it is derived (width / heads):
 * these numbers size the KV cache and cut the logits rows, so a fraction, 0 or `1e300` would
 * otherwise surface mid-generation as an untyped onnxruntime or typed-array error.
 */
function parseConfig(config: unknown, dir: string): ModelConfig {
  if (!isJsonObject(config)) throw new ModelLoadError(`config.json in ${dir} is not a JSON object`);
  const text = isJsonObject(config.text_config) ? config.text_config : undefined;
  const dimension = (...keys: string[]): number | undefined => {
    for (const scope of [config, text]) {
      for (const k of keys) {
        const value = scope?.[k];
        if (typeof value !== "number") continue;
        if (!Number.isSafeInteger(value) || value <= 0) {
          throw new ModelLoadError(
            `config.json in ${dir}: ${k} must be a positive integer, got ${value}`,
          );
        }
        return value;
      }
    }
    return undefined;
  };
  const numLayers = dimension("n_layer", "num_hidden_layers", "num_layers");
  const numHeads = dimension("n_head", "num_attention_heads");
  const hiddenSize = dimension("n_embd", "hidden_size", "d_model");
  const vocabSize = dimension("vocab_size");
  const contextLength = dimension("n_positions", "max_position_embeddings", "n_ctx", "seq_length");
  if (!numLayers || !numHeads || !hiddenSize || !vocabSize || !contextLength) {
    throw new ModelLoadError(
      `config.json in ${dir} lacks layers/heads/width/vocab/context fields`,
    );
  }
  const headDim = dimension("head_dim") ?? hiddenSize / numHeads;
  if (!Number.isSafeInteger(headDim)) {
    throw new ModelLoadError(
      `config.json in ${dir}: width ${hiddenSize} is not a multiple of ${numHeads} heads, and ` +
        `no head_dim says the per-head width`,
    );
  }
  // One id or a list, every one an end: keeping only the first ran a model that ends its turn at
  // a later one (Llama 3 Instruct's `<|eot_id|>`) on to `maxTokens`, billed. Not numbers are
  // skipped, as a non-number `eos_token_id` always was; a repeated id is kept once. Looked up
  // where the dimensions are: at the top, else under `text_config` (a multimodal export's).
  const eos = config.eos_token_id ?? text?.eos_token_id;
  const eosTokenIds = [
    ...new Set(
      (Array.isArray(eos) ? eos : [eos]).filter((id): id is number => typeof id === "number"),
    ),
  ];
  const veriflow = isJsonObject(config.veriflow) ? config.veriflow : undefined;
  const name = [veriflow?.name, config._name_or_path].find((n): n is string =>
    typeof n === "string"
  );
  return {
    numLayers,
    numKeyValueHeads: dimension("num_key_value_heads", "n_head_kv") ?? numHeads,
    headDim,
    hiddenSize,
    vocabSize,
    contextLength,
    eosTokenId: eosTokenIds[0],
    eosTokenIds,
    name,
  };
}

/** A generation's KV cache, wherever the session runs. */
interface TextSequence {
  /**
   * Feed `tokens` after the cached ones; the token sampled under `sampling` from the logits row
   * of the last of them, that row's fingerprint and, with `topLogprobs` > 0, its most likely
   * tokens (the row stays where it was computed).
   */
  step(
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs: number,
    ahead: number,
  ): Promise<SampledStep>;
  /** Free the cache (after any step already running). */
  close(): void;
}

/** Where the model computes: this thread's session, or a pool of workers. */
interface TextEngine {
  sequence(): TextSequence;
  batchStats(): Promise<BatchStats[]>;
  forward(tokens: readonly number[]): Promise<Float32Array>;
  stats(): Promise<ModelWorkerStats[]>;
  health(): ModelHealth;
  dispose(): Promise<void>;
}

/** What an engine reports once its session exists. */
interface LoadedEngine {
  engine: TextEngine;
  executionProvider: ExecutionProvider;
  fallbackReason?: string;
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** The graph's declared types and shapes, checked against `config.json` at load. */
  inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
}

async function inThreadEngine(bytes: Uint8Array, shape: DecoderShape, options?: SessionOptions) {
  const { session, executionProvider, fallbackReason } = await createSession(bytes, options);
  const decoder = new DecoderSession(session, shape);
  // Concurrent generations share each execution (continuous batching), as in a worker.
  const batched = new BatchedDecoder(decoder, {
    maxBatch: options?.maxBatch,
    prefillGroupTokens: prefillGroupTokensFor(executionProvider),
  });
  const engine: TextEngine = {
    sequence: () => batched.sequence(),
    batchStats: () => Promise.resolve([batched.stats()]),
    forward: (tokens) => decoder.forward(tokens),
    stats: () => Promise.resolve([]),
    health: () => structuredClone(IN_THREAD_HEALTH),
    dispose: () => {
      batched.dispose();
      return session.release();
    },
  };
  return {
    engine,
    executionProvider,
    fallbackReason,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
  } satisfies LoadedEngine;
}

async function workerEngine(bytes: Uint8Array, shape: DecoderShape, options: TextModelOptions) {
  const { pool, loaded } = await ModelWorkerPool.start(bytes, {
    ...poolSizing(options),
    decoder: shape,
    restart: options.restart,
    onEvent: options.onWorkerEvent,
    workerUrl: options.workerUrl,
  });
  const engine: TextEngine = {
    sequence: () => pool.openSequence(),
    batchStats: async () => (await pool.stats()).flatMap((s) => s.batch ? [s.batch] : []),
    forward: (tokens) => pool.forward(tokens),
    stats: () => pool.stats(),
    health: () => pool.health(),
    dispose: () => pool.dispose(),
  };
  return {
    engine,
    executionProvider: loaded.executionProvider,
    fallbackReason: loaded.fallbackReason,
    inputNames: loaded.inputNames,
    outputNames: loaded.outputNames,
    inputMetadata: loaded.inputMetadata,
    outputMetadata: loaded.outputMetadata,
  } satisfies LoadedEngine;
}

/**
 * What a stream leaves behind when it is collected: its KV cache, and the listener it put on
 * its caller's `AbortSignal` (a long-lived signal, such as a server's shutdown, outlives it).
 */
interface StreamResources {
  sequence?: TextSequence;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * Closes the KV cache of a stream dropped without being cancelled or read to the end (in
 * worker mode the cache lives in the worker, which cannot see the stream being collected), and
 * takes its listener off the signal. Nothing here may reach the stream, or it is never collected:
 * the listener reaches its controller only through a `WeakRef`.
 */
const abandonedStreams = new FinalizationRegistry<StreamResources>((state) => {
  state.sequence?.close();
  if (state.onAbort) state.signal?.removeEventListener("abort", state.onAbort);
});

/**
 * A loaded decoder-only text model.
 *
 * @example
 * ```ts ignore
 * const dir = await ensureBuiltinModel("./.veriflow/models", "tiny", 0);
 * const model = await TextModel.load(dir);
 * const ids = model.tokenizer.encode("Hello");
 * for await (const chunk of model.generate(ids, { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8 })) {
 *   console.log(chunk.text);
 * }
 * ```
 */
export class TextModel {
  /** Model metadata, including the execution provider in use. */
  readonly info: ModelInfo;
  /** The model's tokenizer. */
  readonly tokenizer: TextTokenizer;
  #engine: TextEngine;
  #workerCount: number;
  #maxBatch = 1;
  #config: ModelConfig;
  #runs = 0;
  #disposing: Promise<void> | undefined;

  private constructor(
    engine: TextEngine,
    workerCount: number,
    config: ModelConfig,
    info: ModelInfo,
    tokenizer: TextTokenizer,
  ) {
    this.#engine = engine;
    this.#workerCount = workerCount;
    this.#config = config;
    this.info = info;
    this.tokenizer = tokenizer;
  }

  /**
   * Load a model directory: `model.onnx`, `config.json`, `tokenizer.json` (and optionally
   * `tokenizer_config.json`), each read once: `info.cid` is the id of those very bytes
   * (`model_identity.ts`). Throws {@link ModelLoadError} on a missing or malformed file, a
   * graph with a tensor kept in another file (which the id would not name), a graph that does
   * not follow the decoder convention, or a `config.json` whose dimensions
   * contradict the graph's (see `checkDecoderGraph`); any other failure while loading is
   * wrapped in one too, since it comes from the files an operator supplied. With
   * `worker: true` the sessions are created in the workers (in parallel), not on this thread.
   */
  static async load(dir: string, options?: TextModelOptions): Promise<TextModel> {
    try {
      return await TextModel.#load(dir, options);
    } catch (error) {
      // Typed errors (a worker that cannot start, …) keep their code; anything else a bad file
      // provokes becomes a load failure, so a caller refuses the one model instead of crashing.
      throw asModelLoadError(`cannot load the model in ${dir}`, error);
    }
  }

  static async #load(dir: string, options?: TextModelOptions): Promise<TextModel> {
    // Each file read once: the id is computed over the very bytes that are parsed and run.
    const files = await readTextModelFiles(dir);
    const cid = textModelId(files);
    const bytes = files["model.onnx"];
    refuseExternalData(bytes, join(dir, "model.onnx"));
    let rawConfig: unknown;
    try {
      rawConfig = JSON.parse(new TextDecoder().decode(files["config.json"]));
    } catch (cause) {
      throw new ModelLoadError(`config.json in ${dir} is not JSON`, { cause });
    }
    const config = parseConfig(rawConfig, dir);
    const tokenizer = tokenizerFromFiles(
      files["tokenizer.json"],
      files["tokenizer_config.json"],
      config.eosTokenId,
      dir,
    );
    const shape: DecoderShape = {
      numLayers: config.numLayers,
      numKeyValueHeads: config.numKeyValueHeads,
      headDim: config.headDim,
      vocabSize: config.vocabSize,
    };
    const loaded: LoadedEngine = options?.worker
      ? await workerEngine(bytes, shape, options)
      : await inThreadEngine(bytes, shape, options);
    const { engine, executionProvider, fallbackReason, inputNames } = loaded;
    try {
      checkDecoderGraph(loaded, config, dir);
    } catch (error) {
      await engine.dispose();
      throw error;
    }
    const info: ModelInfo = {
      cid,
      name: options?.name ?? config.name ?? dir.split(/[\\/]/).filter(Boolean).pop() ?? dir,
      kind: "text",
      sizeBytes: bytes.byteLength,
      executionProvider,
      ...(fallbackReason === undefined ? {} : { executionProviderFallback: fallbackReason }),
      path: dir,
      vocabSize: config.vocabSize,
      contextLength: config.contextLength,
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      numKeyValueHeads: config.numKeyValueHeads,
      headDim: config.headDim,
      eosTokenId: config.eosTokenId,
      eosTokenIds: config.eosTokenIds,
    };
    const workerCount = options?.worker ? poolSizing(options).workerCount : 0;
    // The operator asked for a GPU and gets CPU: say so where they look first.
    if (fallbackReason !== undefined) console.warn(`model ${info.name}: ${fallbackReason}`);
    const model = new TextModel(engine, workerCount, config, info, tokenizer);
    // As the batcher decides (`BatchedDecoder`): rows only where the graph tells padding apart.
    const canBatch = inputNames.includes("attention_mask") && inputNames.includes("position_ids");
    model.#maxBatch = canBatch ? options?.maxBatch ?? DEFAULT_MAX_BATCH : 1;
    return model;
  }

  /** Number of model executions so far (one per prompt pass, one per generated token). */
  get runCount(): number {
    return this.#runs;
  }

  /**
   * Generations computed together: the batch size (`maxBatch`) times the generation workers,
   * each of which batches its own generations. Jobs beyond it wait for a seat. A worker the
   * pool has given up on seats nobody (every generation goes to the others), so it is not
   * counted: else the InferenceActor would start jobs that wait inside a surviving worker's
   * batch, past their first token, for another job to end, instead of in its queue. A worker
   * being restarted still counts: it is back within its backoff.
   */
  get batchCapacity(): number {
    const workers = this.#workerCount === 0
      ? 1
      : this.#engine.health().workers.filter((w) => w.lane === "generation" && w.state !== "failed")
        .length;
    return this.#maxBatch * Math.max(1, workers);
  }

  /**
   * The batchers' counters (`BatchStats`: executions, rows, largest batch, reallocations, prompt
   * pieces): one in-thread, one per worker in worker mode. For diagnostics, benches and tests.
   */
  batchStats(): Promise<BatchStats[]> {
    if (this.#disposing) return Promise.reject(new ModelDisposedError());
    return this.#engine.batchStats();
  }

  /** Workers computing for this model: 0 in-thread, the pool size in worker mode. */
  get workerCount(): number {
    return this.#workerCount;
  }

  /**
   * The model runtime's health: each worker running, being restarted after a crash, or given
   * up on (worker mode); always `ok` with no workers in-thread.
   */
  health(): ModelHealth {
    return this.#engine.health();
  }

  /**
   * Each worker's counters (worker mode; `[]` in-thread), for diagnostics and tests: what the
   * workers actually computed, and how many KV caches they hold.
   */
  workerStats(): Promise<ModelWorkerStats[]> {
    if (this.#disposing) return Promise.reject(new ModelDisposedError());
    return this.#engine.stats();
  }

  /**
   * Teacher-forced full pass: logits of every position of `tokens`, row-major
   * `[tokens.length × vocabSize]` (row i predicts token i+1). No cache is used.
   */
  async forward(tokens: readonly number[], options?: ForwardOptions): Promise<Float32Array> {
    this.#checkUsable();
    this.#checkTokens(tokens);
    if (tokens.length > this.#config.contextLength) {
      throw new ContextLengthError(tokens.length, this.#config.contextLength);
    }
    options?.signal?.throwIfAborted();
    this.#runs++;
    return await this.#engine.forward(tokens);
  }

  /**
   * Stream generated tokens after `promptIds` under `params` (greedy when
   * `temperature === 0`, else the sampling rule of `sampler.ts` with draw
   * `counterUniform(seed, index)`). Each chunk carries its token's fingerprint and the
   * vocabulary size, not the logits row (see {@link TokenChunk}).
   *
   * Throws synchronously (typed) on bad params, an empty prompt, an out-of-vocabulary id, or a
   * prompt that leaves no room in the context window. Generation ends after `maxTokens`
   * outputs, on an end token (any of `info.eosTokenIds`: emitted, with text ""), when the output
   * text contains a stop sequence (the token completing it is emitted), or when the context
   * window is full.
   */
  generate(
    promptIds: readonly number[],
    params: GenerationParams,
    options?: GenerateOptions,
  ): ReadableStream<TokenChunk> {
    this.#checkUsable();
    validateSamplingParams(params);
    const stops = checkStopSequences(params.stop);
    if (!Number.isSafeInteger(params.maxTokens) || params.maxTokens < 0) {
      throw new InvalidGenerationParamsError(`maxTokens must be an integer ≥ 0`);
    }
    const startIndex = options?.startIndex ?? 0;
    if (!Number.isSafeInteger(startIndex) || startIndex < 0) {
      throw new InvalidGenerationParamsError(`startIndex must be an integer ≥ 0`);
    }
    const requestedRunAhead = options?.runAhead ?? DEFAULT_RUN_AHEAD;
    if (!Number.isSafeInteger(requestedRunAhead) || requestedRunAhead < 0) {
      throw new InvalidGenerationParamsError(`runAhead must be an integer ≥ 0`);
    }
    const topLogprobs = options?.topLogprobs ?? 0;
    if (!Number.isSafeInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new InvalidGenerationParamsError(
        `topLogprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topLogprobs}`,
      );
    }
    if (promptIds.length === 0) throw new EmptyPromptError();
    this.#checkTokens(promptIds);
    const contextLength = this.#config.contextLength;
    if (promptIds.length >= contextLength) {
      throw new ContextLengthError(promptIds.length + 1, contextLength);
    }
    const signal = options?.signal;
    signal?.throwIfAborted();

    // Only what the rule reads travels with each step (not the stop list, not maxTokens).
    const { temperature, topK, topP, seed } = params;
    const rule: SamplingParams = { temperature, topK, topP, seed };
    const vocabSize = this.#config.vocabSize;
    const decoder = this.tokenizer.streamDecoder();
    const ends = endTokenIds(this.#config);
    const sequence = [...promptIds];
    // The KV cache, opened at the first pull (in worker mode: placed on a worker then), and the
    // abort listener: what `abandonedStreams` frees if the stream is dropped.
    const cache: StreamResources = {};
    let fed = 0; // tokens of `sequence` already in the cache
    let index = startIndex;
    let output = "";
    let finished = false;
    // Weak: the signal holds `onAbort`, and a signal that outlives the stream must not keep it
    // (and its cache) alive; a live stream keeps its controller.
    let controllerRef: WeakRef<ReadableStreamDefaultController<TokenChunk>> | undefined;
    const release = () => {
      cache.sequence?.close();
      abandonedStreams.unregister(cache);
    };
    const onAbort = () => {
      if (finished) return;
      finished = true;
      release();
      controllerRef?.deref()?.error(signal?.reason);
    };

    const finish = () => {
      finished = true;
      release();
      signal?.removeEventListener("abort", onAbort);
    };

    // Run-ahead (worker mode): the step of chunk t+1 is sent as soon as chunk t is back, so
    // the worker computes it while this thread delivers chunk t. The consumer's pulls are the
    // credit: a step starts only while fewer than `runAhead` computed chunks wait beyond what
    // was pulled, so a consumer that stops pulling stops the worker after the window.
    const runAhead = this.#workerCount > 0 ? requestedRunAhead : 0;
    const ready: TokenChunk[] = []; // computed, not yet delivered
    let failure: { error: unknown } | undefined; // a failed step, delivered after `ready`
    let producing: Promise<void> | undefined; // the step in flight, if any
    let produced = startIndex; // index of the next chunk to compute
    let pulled = startIndex; // chunks the consumer has asked for (last asked index + 1)
    let exhausted = false; // the last chunk has been computed

    /** Compute and sample one chunk (where the model runs), then decode it here. */
    const produce = async () => {
      this.#checkUsable();
      const newTokens = sequence.slice(fed);
      cache.sequence ??= this.#engine.sequence();
      this.#runs++;
      // With a run-ahead window the worker may compute the next steps (each feeding back the
      // token before) before they are asked for: as many as there can be (this promises them),
      // of which it runs at most two beyond the last asked; a stop sequence or a cancel then
      // wastes those.
      const ahead = runAhead > 0
        ? Math.max(0, Math.min(params.maxTokens - index - 1, contextLength - sequence.length - 1))
        : 0;
      const { tokenId: token, fingerprint, top } = await cache.sequence.step(
        newTokens,
        {
          params: rule,
          position: index,
        },
        topLogprobs,
        ahead,
      );
      // Aborted or cancelled while the step ran: drop its result, compute nothing more.
      if (finished) return;
      fed = sequence.length;
      sequence.push(token);
      let finishReason: FinishReason | undefined;
      let text = "";
      if (ends.has(token)) {
        finishReason = "stop";
      } else {
        text = decoder.push(token);
        const searchFrom = Math.max(0, output.length - maxLength(stops) + 1);
        output += text;
        if (stops.some((s) => output.indexOf(s, searchFrom) >= 0)) finishReason = "stop";
      }
      if (!finishReason && index + 1 >= params.maxTokens) finishReason = "length";
      if (!finishReason && sequence.length >= contextLength) finishReason = "length";
      if (finishReason) text += decoder.flush();
      const chunk: TokenChunk = {
        index,
        tokenId: token,
        text,
        fingerprint,
        vocabSize,
        finishReason,
      };
      if (top !== undefined) {
        chunk.topLogprobs = top.map(({ tokenId, logprob }) => ({
          tokenId,
          text: this.tokenizer.decode([tokenId]),
          logprob,
        }));
      }
      ready.push(chunk);
      index++;
      produced++;
      if (finishReason) exhausted = true;
    };

    /** Start the next step if none is running and the consumer's credit allows it. */
    const pump = () => {
      if (producing || finished || exhausted || failure) return;
      if (produced >= pulled + runAhead) return;
      producing = produce().catch((error) => {
        failure = { error };
        // The cache is useless after a failed step: free it now, not at the next pull.
        release();
      }).finally(() => {
        producing = undefined;
        pump();
      });
    };

    const stream = new ReadableStream<TokenChunk>({
      start: (controller) => {
        controllerRef = new WeakRef(controller);
        if (signal) {
          signal.addEventListener("abort", onAbort, { once: true });
          cache.signal = signal;
          cache.onAbort = onAbort;
        }
        if (index >= params.maxTokens) {
          finish();
          controller.close();
        }
        // Worker mode: the prompt's read starts now, within the run-ahead credit (none
        // in-thread, where it would block this thread before the stream is even returned).
        pump();
      },
      pull: async (controller) => {
        if (finished) return;
        try {
          // A chunk computed ahead must not outlive the model's disposal.
          this.#checkUsable();
        } catch (error) {
          finish();
          throw error;
        }
        pulled++;
        pump();
        while (ready.length === 0 && !failure && !finished && producing) await producing;
        if (finished) return;
        const chunk = ready.shift();
        if (!chunk) {
          finish();
          throw failure?.error ?? new Error("generation stalled without a chunk or an error");
        }
        controller.enqueue(chunk);
        if (chunk.finishReason) {
          finish();
          controller.close();
        }
      },
      cancel: () => {
        finish();
      },
    }, { highWaterMark: 0 });
    abandonedStreams.register(stream, cache, cache);
    return stream;
  }

  /**
   * Release the onnxruntime session (in worker mode: every worker's, then terminate the
   * workers; a step already running finishes first). The model is unusable afterwards: its
   * methods throw {@link ModelDisposedError}. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#engine.dispose();
    return this.#disposing;
  }

  #checkUsable(): void {
    if (this.#disposing) throw new ModelDisposedError();
  }

  #checkTokens(tokens: readonly number[]): void {
    const vocab = this.#config.vocabSize;
    for (const t of tokens) {
      if (!Number.isSafeInteger(t) || t < 0 || t >= vocab) throw new InvalidTokenError(t, vocab);
    }
  }
}

/** Element type of every cache tensor and of the logits: what the runtime allocates and reads. */
const FLOAT_TENSOR = "float32";
/** Element type of the token, mask and position inputs the runtime feeds. */
const INDEX_TENSOR = "int64";
/** Rank of a cache tensor: `[batch, heads, positions, head width]`. */
const CACHE_RANK = 4;
/** Where a cache tensor's shape gives its heads and its per-head width. */
const CACHE_HEADS_AXIS = 1;
const CACHE_HEAD_DIM_AXIS = 3;

/**
 * Throws {@link ModelLoadError} unless the graph follows the decoder-with-past convention with
 * the dimensions `config.json` gives. The config sizes every cache tensor the runtime feeds and
 * cuts the logits into rows, and nothing else checks that it fits `model.onnx` (the model's id
 * names both files, a config that contradicts the graph as faithfully as one that fits it): such
 * a config would load under its id and then sample from the wrong row, or fail mid-generation.
 * So each cache tensor the runtime names must be declared, float32, `[batch, heads, positions,
 * head width]`, `logits` float32 with rows of the vocabulary's length, and the index inputs
 * int64. A dimension the graph declares symbolic is
 * not checked here: nothing can know it short of running the graph, so each run checks its
 * outputs' shapes against the config (`DecoderSession`), and fails the job on a contradiction.
 */
function checkDecoderGraph(
  graph: Pick<LoadedEngine, "inputNames" | "outputNames" | "inputMetadata" | "outputMetadata">,
  config: ModelConfig,
  dir: string,
): void {
  const { inputNames, outputNames } = graph;
  for (const name of ["input_ids", "logits"]) {
    if (!inputNames.includes(name) && !outputNames.includes(name)) {
      throw new ModelLoadError(`model in ${dir} has no "${name}" input/output`);
    }
  }
  // Either cache convention (`_decoder_session.ts`): a Hugging Face export's past/present, or
  // the built-in models' fixed-capacity cache.
  const fixed = hasFixedCache(inputNames);
  const perLayer = (names: readonly string[], prefix: string, what: string, hint = "") => {
    const found = names.filter((n) => n.startsWith(prefix)).length;
    if (found !== 2 * config.numLayers) {
      throw new ModelLoadError(
        `model in ${dir} has ${found} ${prefix.slice(0, -1)} ${what}, expected ${
          2 * config.numLayers
        }${hint}`,
      );
    }
  };
  const pastPrefix = fixed ? "kv_cache." : "past_key_values.";
  const newPrefix = fixed ? "kv_new." : "present.";
  perLayer(inputNames, pastPrefix, "inputs", ' (use an export "with past")');
  perLayer(outputNames, newPrefix, "outputs");

  const declared = new Map(
    [...graph.inputMetadata, ...graph.outputMetadata].map((m) => [m.name, m]),
  );
  const tensor = (name: string, type: string) => {
    const meta = declared.get(name);
    if (!meta) throw new ModelLoadError(`model in ${dir} has no "${name}" input/output`);
    if (!meta.isTensor || meta.type !== type) {
      throw new ModelLoadError(
        `model in ${dir}: "${name}" is ${meta.isTensor ? meta.type : "not a tensor"}, ` +
          `expected ${type}`,
      );
    }
    return meta.shape;
  };
  const mismatch = (name: string, graphSays: string, configSays: string) =>
    new ModelLoadError(
      `config.json in ${dir} contradicts model.onnx: "${name}" has ${graphSays}, ` +
        `config.json says ${configSays}`,
    );
  for (const name of ["input_ids", "attention_mask", "position_ids"]) {
    if (name === "input_ids" || inputNames.includes(name)) tensor(name, INDEX_TENSOR);
  }
  const logits = tensor("logits", FLOAT_TENSOR);
  const rowLength = logits.at(-1);
  if (typeof rowLength === "number" && rowLength !== config.vocabSize) {
    throw mismatch("logits", `rows of ${rowLength} tokens`, `${config.vocabSize}`);
  }
  for (let l = 0; l < config.numLayers; l++) {
    for (const kv of ["key", "value"]) {
      for (const name of [`${pastPrefix}${l}.${kv}`, `${newPrefix}${l}.${kv}`]) {
        const shape = tensor(name, FLOAT_TENSOR);
        // An empty shape is one the graph does not declare at all.
        if (shape.length === 0) continue;
        if (shape.length !== CACHE_RANK) {
          throw new ModelLoadError(
            `model in ${dir}: "${name}" has ${shape.length} dimensions, expected ${CACHE_RANK}`,
          );
        }
        const heads = shape[CACHE_HEADS_AXIS];
        if (typeof heads === "number" && heads !== config.numKeyValueHeads) {
          throw mismatch(name, `${heads} heads`, `${config.numKeyValueHeads}`);
        }
        const width = shape[CACHE_HEAD_DIM_AXIS];
        if (typeof width === "number" && width !== config.headDim) {
          throw mismatch(name, `heads of width ${width}`, `${config.headDim}`);
        }
      }
    }
  }
}

/**
 * `params.stop` checked by hand against the wire's limits (`generationParamsSchema`, which the
 * edge and the InferenceActor parse with zod): a direct caller of `generate` gets the same
 * typed refusal instead of a `TypeError` from a string, silently dropped non-strings, or more
 * or longer sequences than every job may carry. An empty sequence would end every generation
 * at its first token, so it is refused too. Absent means none. Returns a copy, so a caller that
 * reuses its array cannot change a running generation's stop list.
 */
function checkStopSequences(stop: unknown): string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop)) {
    throw new InvalidGenerationParamsError(
      `stop must be an array of strings, got ${stop === null ? "null" : typeof stop}`,
    );
  }
  const { maxStopSequences, maxStopChars } = GENERATION_LIMITS;
  if (stop.length > maxStopSequences) {
    throw new InvalidGenerationParamsError(
      `stop holds ${stop.length} sequences, at most ${maxStopSequences} are allowed`,
    );
  }
  for (const s of stop) {
    if (typeof s !== "string" || s.length === 0 || s.length > maxStopChars) {
      throw new InvalidGenerationParamsError(
        `each stop sequence must be a string of 1 to ${maxStopChars} characters, got ${
          typeof s === "string" ? `${s.length} characters` : typeof s
        }`,
      );
    }
  }
  return [...stop];
}

function maxLength(strings: string[]): number {
  let max = 0;
  for (const s of strings) max = Math.max(max, s.length);
  return max;
}
