/**
 * A decoder-only text model (the built-in GPT or any export in the common decoder convention)
 * with KV-cached streaming generation and a teacher-forced full pass.
 *
 * `generate` returns a pull-based `ReadableStream`: the model computes token t only when the
 * consumer asks for chunk t (high-water mark 0), so a slow consumer slows the worker rather than
 * filling a buffer, and a cancelled stream or aborted signal stops compute within one step.
 * Each step feeds only the new token and carries `present.N.*` back as `past_key_values.N.*`.
 *
 * `forward` is what validators use: one pass over prompt+output with no past, all positions'
 * logits at once. Both paths run the same graph, so their logits agree to float rounding.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { cidOf } from "../protocols/cid.ts";
import type { GenerationParams } from "../protocols/job.ts";
import { createSession, type ExecutionProvider, type SessionOptions } from "./_session.ts";
import {
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTokenError,
  ModelLoadError,
} from "./errors.ts";
import { sampleToken, validateSamplingParams } from "./sampler.ts";
import { loadTokenizer, type TextTokenizer } from "./text_tokenizer.ts";

export type { ExecutionProvider } from "./_session.ts";

/** What the node knows about any loaded model (text or tensor). */
export interface BaseModelInfo {
  /** CID of `model.onnx`: the model's identity. */
  cid: string;
  /** Human-readable name (`config.json` `veriflow.name`, `_name_or_path`, or the directory). */
  name: string;
  /** `"text"` for decoder models, `"tensor"` for one-shot models. */
  kind: "text" | "tensor";
  /** Size of `model.onnx` in bytes. */
  sizeBytes: number;
  /** Execution provider actually in use. */
  executionProvider: ExecutionProvider;
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
  /** End-of-text token id, if any. */
  eosTokenId: number | undefined;
}

/** Options of {@link TextModel.load}. */
export interface TextModelOptions extends SessionOptions {
  /** Override the model name in {@link ModelInfo}. */
  name?: string;
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
  /** The logits row this token was sampled from (in-process only, never serialized). */
  logits: Float32Array;
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
}

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
  name: string | undefined;
}

/** Hugging Face configs spell the same fields differently across architectures. */
function parseConfig(config: Record<string, unknown>, dir: string): ModelConfig {
  const pick = (...keys: string[]): number | undefined => {
    for (const k of keys) if (typeof config[k] === "number") return config[k] as number;
    const text = config.text_config as Record<string, unknown> | undefined;
    for (const k of keys) if (typeof text?.[k] === "number") return text[k] as number;
    return undefined;
  };
  const numLayers = pick("n_layer", "num_hidden_layers", "num_layers");
  const numHeads = pick("n_head", "num_attention_heads");
  const hiddenSize = pick("n_embd", "hidden_size", "d_model");
  const vocabSize = pick("vocab_size");
  const contextLength = pick("n_positions", "max_position_embeddings", "n_ctx", "seq_length");
  if (!numLayers || !numHeads || !hiddenSize || !vocabSize || !contextLength) {
    throw new ModelLoadError(
      `config.json in ${dir} lacks layers/heads/width/vocab/context fields`,
    );
  }
  const eos = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id;
  const veriflow = config.veriflow as { name?: string } | undefined;
  return {
    numLayers,
    numKeyValueHeads: pick("num_key_value_heads", "n_head_kv") ?? numHeads,
    headDim: pick("head_dim") ?? hiddenSize / numHeads,
    hiddenSize,
    vocabSize,
    contextLength,
    eosTokenId: typeof eos === "number" ? eos : undefined,
    name: veriflow?.name ?? (config._name_or_path as string | undefined),
  };
}

type PastCache = Record<string, ort.Tensor>;

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
  #session: ort.InferenceSession;
  #config: ModelConfig;
  #hasPositionIds: boolean;
  #hasAttentionMask: boolean;
  #runs = 0;

  private constructor(
    session: ort.InferenceSession,
    config: ModelConfig,
    info: ModelInfo,
    tokenizer: TextTokenizer,
  ) {
    this.#session = session;
    this.#config = config;
    this.info = info;
    this.tokenizer = tokenizer;
    this.#hasPositionIds = session.inputNames.includes("position_ids");
    this.#hasAttentionMask = session.inputNames.includes("attention_mask");
  }

  /**
   * Load a model directory: `model.onnx`, `config.json`, `tokenizer.json` (and optionally
   * `tokenizer_config.json`). Throws {@link ModelLoadError} on a missing file or a graph that
   * does not follow the decoder convention.
   */
  static async load(dir: string, options?: TextModelOptions): Promise<TextModel> {
    let bytes: Uint8Array;
    let rawConfig: Record<string, unknown>;
    try {
      bytes = await Deno.readFile(join(dir, "model.onnx"));
      rawConfig = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    } catch (cause) {
      throw new ModelLoadError(`cannot read model.onnx and config.json in ${dir}`, { cause });
    }
    const config = parseConfig(rawConfig, dir);
    const tokenizer = await loadTokenizer(dir, config.eosTokenId);
    const { session, executionProvider } = await createSession(bytes, options);
    const required = ["input_ids", "logits"];
    for (const name of required) {
      if (!session.inputNames.includes(name) && !session.outputNames.includes(name)) {
        throw new ModelLoadError(`model in ${dir} has no "${name}" input/output`);
      }
    }
    const pastInputs = session.inputNames.filter((n) => n.startsWith("past_key_values."));
    if (pastInputs.length !== 2 * config.numLayers) {
      throw new ModelLoadError(
        `model in ${dir} has ${pastInputs.length} past_key_values inputs, expected ${
          2 * config.numLayers
        } (use an export "with past")`,
      );
    }
    const info: ModelInfo = {
      cid: cidOf(bytes),
      name: options?.name ?? config.name ?? dir.split(/[\\/]/).filter(Boolean).pop() ?? dir,
      kind: "text",
      sizeBytes: bytes.byteLength,
      executionProvider,
      path: dir,
      vocabSize: config.vocabSize,
      contextLength: config.contextLength,
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      numKeyValueHeads: config.numKeyValueHeads,
      headDim: config.headDim,
      eosTokenId: config.eosTokenId,
    };
    return new TextModel(session, config, info, tokenizer);
  }

  /** Number of model executions so far (one per prompt pass, one per generated token). */
  get runCount(): number {
    return this.#runs;
  }

  /**
   * Teacher-forced full pass: logits of every position of `tokens`, row-major
   * `[tokens.length × vocabSize]` (row i predicts token i+1). No cache is used.
   */
  async forward(tokens: readonly number[], options?: ForwardOptions): Promise<Float32Array> {
    this.#checkTokens(tokens);
    if (tokens.length > this.#config.contextLength) {
      throw new ContextLengthError(tokens.length, this.#config.contextLength);
    }
    options?.signal?.throwIfAborted();
    const { logits } = await this.#run(tokens, 0, this.#emptyPast());
    return logits;
  }

  /**
   * Stream generated tokens after `promptIds` under `params` (greedy when
   * `temperature === 0`, else the sampling rule of `sampler.ts` with draw
   * `counterUniform(seed, index)`).
   *
   * Throws synchronously (typed) on bad params, an empty prompt, an out-of-vocabulary id, or a
   * prompt that leaves no room in the context window. Generation ends after `maxTokens`
   * outputs, on the EOS token (emitted, with text ""), when the output text contains a stop
   * sequence (the token completing it is emitted), or when the context window is full.
   */
  generate(
    promptIds: readonly number[],
    params: GenerationParams,
    options?: GenerateOptions,
  ): ReadableStream<TokenChunk> {
    validateSamplingParams(params);
    if (!Number.isSafeInteger(params.maxTokens) || params.maxTokens < 0) {
      throw new InvalidGenerationParamsError(`maxTokens must be an integer ≥ 0`);
    }
    const startIndex = options?.startIndex ?? 0;
    if (!Number.isSafeInteger(startIndex) || startIndex < 0) {
      throw new InvalidGenerationParamsError(`startIndex must be an integer ≥ 0`);
    }
    if (promptIds.length === 0) throw new EmptyPromptError();
    this.#checkTokens(promptIds);
    const contextLength = this.#config.contextLength;
    if (promptIds.length >= contextLength) {
      throw new ContextLengthError(promptIds.length + 1, contextLength);
    }
    const signal = options?.signal;
    signal?.throwIfAborted();

    const stops = (params.stop ?? []).filter((s) => s.length > 0);
    const decoder = this.tokenizer.streamDecoder();
    const eos = this.#config.eosTokenId;
    const sequence = [...promptIds];
    let past: PastCache | null = this.#emptyPast();
    let fed = 0; // tokens of `sequence` already in the cache
    let index = startIndex;
    let output = "";
    let finished = false;
    let controllerRef: ReadableStreamDefaultController<TokenChunk> | undefined;
    const onAbort = () => {
      if (finished) return;
      finished = true;
      past = null;
      controllerRef?.error(signal?.reason);
    };

    const finish = () => {
      finished = true;
      past = null;
      signal?.removeEventListener("abort", onAbort);
    };

    return new ReadableStream<TokenChunk>({
      start: (controller) => {
        controllerRef = controller;
        signal?.addEventListener("abort", onAbort, { once: true });
        if (index >= params.maxTokens) {
          finish();
          controller.close();
        }
      },
      pull: async (controller) => {
        if (finished) return;
        const newTokens = sequence.slice(fed);
        const step = await this.#run(newTokens, fed, past!);
        // Aborted or cancelled while the step ran: drop its result, compute nothing more.
        if (finished) return;
        past = step.present;
        fed = sequence.length;
        const row = step.logits.slice(
          (newTokens.length - 1) * this.#config.vocabSize,
          newTokens.length * this.#config.vocabSize,
        );
        const { token } = sampleToken(row, params, index);
        sequence.push(token);
        let finishReason: FinishReason | undefined;
        let text = "";
        if (token === eos) {
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
        controller.enqueue({ index, tokenId: token, text, logits: row, finishReason });
        index++;
        if (finishReason) {
          finish();
          controller.close();
        }
      },
      cancel: () => {
        finish();
      },
    }, { highWaterMark: 0 });
  }

  /** Release the onnxruntime session. The model is unusable afterwards. */
  async dispose(): Promise<void> {
    await this.#session.release();
  }

  #checkTokens(tokens: readonly number[]): void {
    const vocab = this.#config.vocabSize;
    for (const t of tokens) {
      if (!Number.isSafeInteger(t) || t < 0 || t >= vocab) throw new InvalidTokenError(t, vocab);
    }
  }

  #emptyPast(): PastCache {
    const past: PastCache = {};
    const { numLayers, numKeyValueHeads, headDim } = this.#config;
    for (let l = 0; l < numLayers; l++) {
      for (const kv of ["key", "value"]) {
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
          1,
          numKeyValueHeads,
          0,
          headDim,
        ]);
      }
    }
    return past;
  }

  /** One model execution over `tokens` placed after `pastLength` cached positions. */
  async #run(
    tokens: readonly number[],
    pastLength: number,
    past: PastCache,
  ): Promise<{ logits: Float32Array; present: PastCache }> {
    const n = tokens.length;
    const feeds: Record<string, ort.Tensor> = { ...past };
    feeds.input_ids = new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, n]);
    if (this.#hasAttentionMask) {
      const mask = new BigInt64Array(pastLength + n).fill(1n);
      feeds.attention_mask = new ort.Tensor("int64", mask, [1, pastLength + n]);
    }
    if (this.#hasPositionIds) {
      const positions = new BigInt64Array(n);
      for (let i = 0; i < n; i++) positions[i] = BigInt(pastLength + i);
      feeds.position_ids = new ort.Tensor("int64", positions, [1, n]);
    }
    this.#runs++;
    const out = await this.#session.run(feeds);
    const present: PastCache = {};
    for (let l = 0; l < this.#config.numLayers; l++) {
      for (const kv of ["key", "value"]) {
        present[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
      }
    }
    return { logits: out.logits.data as Float32Array, present };
  }
}

function maxLength(strings: string[]): number {
  let max = 0;
  for (const s of strings) max = Math.max(max, s.length);
  return max;
}
