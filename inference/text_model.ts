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
 * The parts live beside it, in private modules: `config.json` read into the model's dimensions
 * (`_model_config.ts`) and the graph held to them (`_decoder_graph_check.ts`); where the model
 * computes, in-thread or in workers (`_text_engine.ts`); the token stream with its run-ahead
 * credit and its clean-up when dropped (`_generation_stream.ts`); and the stop sequences
 * (`_stop_sequences.ts`). This file holds the public types and `TextModel`, which composes them.
 *
 * @module
 */
import { join } from "node:path";
import type { GenerationParams } from "../protocols/job.ts";
import type { Fingerprint } from "../proof/fingerprint.ts";
import type { DecoderShape } from "./_decoder_session.ts";
import type { BatchStats } from "./_batch_decoder.ts";

export type { BatchStats } from "./_batch_decoder.ts";
import { batchSeats, poolSizing } from "./_model_worker_pool.ts";
import type { ModelHealth, ModelWorkerEvent, ModelWorkerRestartPolicy } from "./model_health.ts";
import type { ExecutionProvider, SessionOptions } from "./_session.ts";
import {
  asModelLoadError,
  checkPromptFits,
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTokenError,
  ModelDisposedError,
  ModelLoadError,
} from "./errors.ts";
import { validateSamplingParams } from "./sampler.ts";
import { type TextTokenizer, tokenizerFromFiles } from "./text_tokenizer.ts";
import { readTextModelFiles, textModelId } from "./model_identity.ts";
import { refuseExternalData } from "./_onnx_graph.ts";
import { MAX_TOP_LOGPROBS, type TopLogprob } from "./top_logprobs.ts";
import { type ModelConfig, parseConfig } from "./_model_config.ts";
import { checkDecoderGraph } from "./_decoder_graph_check.ts";
import {
  inThreadEngine,
  type LoadedEngine,
  type TextEngine,
  workerEngine,
} from "./_text_engine.ts";
import { checkStopSequences } from "./_stop_sequences.ts";
import { generationStream, type StreamModel } from "./_generation_stream.ts";

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
  /**
   * Worker mode: longest the workers' first session loads may take, in ms, before the load fails
   * with `ModelLoadTimeoutError` (the workers still loading terminated); meanwhile a
   * `loading` event ({@link onWorkerEvent}) says every 30 s that it is still going. Default
   * `DEFAULT_LOAD_TIMEOUT_MS` (10 minutes: a multi-gigabyte export on a slow machine can take
   * minutes); 0: never. In-thread the session loads on the calling thread, which it blocks, so
   * nothing can time it.
   */
  loadTimeoutMs?: number;
  /**
   * Worker mode: aborting it during the workers' first session loads gives them up as
   * {@link loadTimeoutMs} does (the workers still loading terminated), and the load rejects with
   * the signal's reason.
   */
  loadSignal?: AbortSignal;
  /**
   * Called on each crash, restart and give-up of a model worker, and while a first load goes on
   * (for the log).
   */
  onWorkerEvent?: (event: ModelWorkerEvent) => void;
  /**
   * The model worker's entry module; default the built-in one. For fault-injection tests and
   * instrumented workers: a replacement must import the built-in module (which installs the
   * request handler) and may add to it.
   */
  workerUrl?: string | URL;
  /**
   * What the pool's supervision reads as the time (ms, monotonic): when a worker's requests or a
   * replacement's load went unanswered (`restart.stallMs`), how long the first load took, and
   * the restart window (`restart.withinMs`). Default `performance.now`. For tests: a fake clock
   * takes a worker for hung without waiting `stallMs` in real time (the watch still looks every
   * quarter of `stallMs`, at most 5 s, of real time).
   */
  supervisionClock?: () => number;
  /**
   * Real time as the stall watch reads it to tell a pause of the whole process (stopped, its VM
   * or laptop paused) from hung workers: a look more than three intervals after the last starts
   * every wait again rather than killing workers that were not run either. Default
   * `performance.now`; tests move it by hand.
   */
  pauseClock?: () => number;
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

/**
 * A loaded decoder-only text model. `await using` disposes it at the end of the block.
 *
 * @example
 * ```ts ignore
 * const dir = await ensureBuiltinModel("./.veriflow/models", "tiny", 0);
 * await using model = await TextModel.load(dir);
 * const ids = model.tokenizer.encode("Hello");
 * for await (const chunk of model.generate(ids, { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8 })) {
 *   console.log(chunk.text);
 * }
 * ```
 */
export class TextModel implements AsyncDisposable {
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
  /** Who hears that `batchCapacity` may have changed ({@link onCapacityChange}). */
  #capacityListeners: Set<() => void>;
  /** What `generate`'s streams read of this model (`_generation_stream.ts`). */
  readonly #streamModel: StreamModel;

  private constructor(
    engine: TextEngine,
    workerCount: number,
    config: ModelConfig,
    info: ModelInfo,
    tokenizer: TextTokenizer,
    capacityListeners: Set<() => void>,
  ) {
    this.#engine = engine;
    this.#capacityListeners = capacityListeners;
    this.#workerCount = workerCount;
    this.#config = config;
    this.info = info;
    this.tokenizer = tokenizer;
    this.#streamModel = {
      tokenizer,
      config,
      workerCount,
      checkUsable: () => this.#checkUsable(),
      sequence: () => this.#engine.sequence(),
      countRun: () => {
        this.#runs++;
      },
    };
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
      // Stopped (`loadSignal` aborted): the caller hears its own reason, not a load failure.
      if (options?.loadSignal?.aborted && error === options.loadSignal.reason) throw error;
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
    // A worker's crash, restart or give-up changes the seats (`batchCapacity`): the model's
    // listeners ({@link onCapacityChange}) hear of each.
    const capacityListeners = new Set<() => void>();
    const name = options?.name ?? config.name ?? dir.split(/[\\/]/).filter(Boolean).pop() ?? dir;
    const loaded: LoadedEngine = options?.worker
      ? await workerEngine(bytes, shape, {
        ...options,
        onWorkerEvent: (event) => {
          options.onWorkerEvent?.(event);
          callEach(capacityListeners);
        },
      }, `model ${name} (${dir})`)
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
      name,
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
    const model = new TextModel(engine, workerCount, config, info, tokenizer, capacityListeners);
    // As the batcher decides (`BatchedDecoder`): rows only where the graph tells padding apart.
    model.#maxBatch = batchSeats(inputNames, options?.maxBatch);
    return model;
  }

  /** Number of model executions so far (one per prompt pass, one per generated token). */
  get runCount(): number {
    return this.#runs;
  }

  /**
   * Generations computed together now: the batch size (`maxBatch`) times the running generation
   * workers, each of which batches its own generations. Jobs beyond it wait for a seat. Read it
   * when a job may start, not once: it changes as workers crash, come back or are given up on,
   * and {@link onCapacityChange} says when.
   *
   * Only running workers count. A worker the pool has given up on seats nobody. One being
   * restarted seats nobody until it is back (a backoff and a model load, longer if its
   * replacement dies too), and counting it made the InferenceActor start jobs that the pool
   * could only put on the surviving workers past their seats: each had its prompt read and its
   * first token sent, then stood still for another job's whole generation, and the replacement
   * idled beside them once back (a sequence stays on its worker). Left out, those jobs wait in
   * the actor's queue, told their place, and start the moment the worker is back. With every
   * generation worker restarting it is one worker's seats: jobs then wait for the first
   * replacement, as there is nowhere else to run them.
   */
  get batchCapacity(): number {
    const workers = this.#workerCount === 0
      ? 1
      : this.#engine.health().workers.filter((w) =>
        w.lane === "generation" && w.state === "running"
      ).length;
    return this.#maxBatch * Math.max(1, workers);
  }

  /**
   * Call `listener` whenever {@link batchCapacity} may have changed: a model worker crashed, came
   * back or was given up on (worker mode; never in-thread). A job queue that admits by seats
   * reads the capacity again then, so jobs it holds while a worker restarts start when the worker
   * is back, not when a running job next ends. Called synchronously from the pool's supervision:
   * a listener should only schedule work (send a message), and one that throws is ignored.
   *
   * @param listener Called with no arguments.
   * @returns A function that removes the listener (idempotent).
   */
  onCapacityChange(listener: () => void): () => void {
    // Wrapped so one function subscribed twice is two subscriptions, each removed by its own.
    const subscription = () => listener();
    this.#capacityListeners.add(subscription);
    return () => this.#capacityListeners.delete(subscription);
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
      throw new ContextLengthError(tokens.length, this.#config.contextLength, "sequence");
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
    checkPromptFits(promptIds.length, this.#config.contextLength);
    const signal = options?.signal;
    signal?.throwIfAborted();

    return generationStream(this.#streamModel, {
      promptIds,
      params,
      stops,
      startIndex,
      requestedRunAhead,
      topLogprobs,
      signal,
    });
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

  /** {@link dispose}, so that `await using model = await TextModel.load(…)` releases it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
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

/** Call every listener; one that throws stops neither the others nor the caller. */
function callEach(listeners: Iterable<() => void>): void {
  for (const listener of listeners) {
    try {
      listener();
    } catch {
      // The caller is the pool's supervision, which must go on whatever a listener does.
    }
  }
}
