/**
 * The decoder convention on one onnxruntime session: building the feeds of a step
 * (`input_ids`, `attention_mask`, `position_ids`, `past_key_values.N.*`) and carrying
 * `present.N.*` back as the next step's past.
 *
 * A generation step also samples its token and fingerprints the logits row right here, next to
 * the logits: a step's result is `(token, fingerprint)` — plus the row's k most likely tokens
 * when a request asks for them — and the row (`vocabSize × 4` bytes) never leaves the thread
 * that computed it.
 *
 * Both execution modes of `TextModel` run exactly this code — on the calling thread, or inside
 * a model worker (`_model_worker.ts`) — so the two modes feed onnxruntime identical tensors, get
 * bit-identical logits for the same session options, and so draw the same tokens and compute the
 * same fingerprints bit for bit.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { type Fingerprint, fingerprintOf } from "../proof/fingerprint.ts";
import { sampleToken, type SamplingParams } from "./sampler.ts";
import { type TokenLogprob, topLogprobsOf } from "./top_logprobs.ts";

/** The dimensions of a decoder's KV cache and logits, from its `config.json`. */
export interface DecoderShape {
  /** Transformer blocks (one key and one value cache tensor each). */
  numLayers: number;
  /** Key/value heads of the cache. */
  numKeyValueHeads: number;
  /** Per-head width of the cache. */
  headDim: number;
  /** Length of a logits row. */
  vocabSize: number;
}

/** How a step picks its token: the job's sampling rule at one output position. */
export interface StepSampling {
  /** The sampling parameters (already validated by the caller). */
  params: SamplingParams;
  /** Output position t of the token being sampled: the draw is `counterUniform(seed, t)`. */
  position: number;
}

/** What a generation step yields: the sampled token and the fingerprint of its logits row. */
export interface SampledStep {
  /** The token the sampling rule selected from the row. */
  tokenId: number;
  /** `fingerprintOf(row, tokenId)`: what the prover commits to for this position. */
  fingerprint: Fingerprint;
  /** `topLogprobsOf(row, k)`, only when the step was asked for k > 0 of them. */
  top?: TokenLogprob[];
}

/** `past_key_values.N.key|value` → cached tensor. */
export type PastCache = Record<string, ort.Tensor>;

/** One execution's results: all rows of logits, and the cache to feed next time. */
export interface StepResult {
  logits: Float32Array;
  present: PastCache;
}

/** A decoder-only session: runs steps over a KV cache. */
export class DecoderSession {
  /** The underlying onnxruntime session. */
  readonly session: ort.InferenceSession;
  /** Cache and logits dimensions. */
  readonly shape: DecoderShape;
  #hasPositionIds: boolean;
  #hasAttentionMask: boolean;
  /** Names of the cache inputs, in layer order (key then value). */
  readonly pastNames: readonly string[];

  /**
   * Wrap a session that follows the decoder convention.
   *
   * @param session The onnxruntime session.
   * @param shape Its cache and logits dimensions.
   */
  constructor(session: ort.InferenceSession, shape: DecoderShape) {
    this.session = session;
    this.shape = shape;
    this.#hasPositionIds = session.inputNames.includes("position_ids");
    this.#hasAttentionMask = session.inputNames.includes("attention_mask");
    const names: string[] = [];
    for (let l = 0; l < shape.numLayers; l++) {
      for (const kv of ["key", "value"]) names.push(`past_key_values.${l}.${kv}`);
    }
    this.pastNames = names;
  }

  /**
   * Whether sequences of different lengths can share one execution: the graph must take an
   * `attention_mask` (so a shorter sequence's left padding is ignored) and `position_ids` (so
   * each row is placed at its own positions rather than at its slot in the padded cache).
   */
  get canBatch(): boolean {
    return this.#hasAttentionMask && this.#hasPositionIds;
  }

  /** A fresh sequence with an empty KV cache. */
  sequence(): DecoderSequence {
    return new DecoderSequence(this);
  }

  /**
   * Teacher-forced full pass without cache: all rows of logits, `[tokens.length × vocabSize]`.
   */
  async forward(tokens: readonly number[]): Promise<Float32Array> {
    return (await this.run(tokens, 0, this.emptyPast())).logits;
  }

  /** The cache of `batch` sequences with no tokens yet. */
  emptyPast(batch = 1): PastCache {
    const past: PastCache = {};
    const { numLayers, numKeyValueHeads, headDim } = this.shape;
    for (let l = 0; l < numLayers; l++) {
      for (const kv of ["key", "value"]) {
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
          batch,
          numKeyValueHeads,
          0,
          headDim,
        ]);
      }
    }
    return past;
  }

  /** One model execution over `tokens` placed after `pastLength` cached positions. */
  run(
    tokens: readonly number[],
    pastLength: number,
    past: PastCache,
  ): Promise<StepResult> {
    const n = tokens.length;
    const positions = new BigInt64Array(n);
    for (let i = 0; i < n; i++) positions[i] = BigInt(pastLength + i);
    return this.runRows(
      BigInt64Array.from(tokens, BigInt),
      1,
      new BigInt64Array(pastLength + n).fill(1n),
      positions,
      past,
    );
  }

  /**
   * One model execution over `batch` rows of `inputIds.length / batch` new tokens each:
   * `mask` is `[batch, total]` (the padded cache's slots then the new tokens; 0 = padding) and
   * `positions` `[batch, new tokens]`, each row's own positions. Inputs the graph does not take
   * are not fed (a graph without them can only run one row: see {@link canBatch}).
   */
  async runRows(
    inputIds: BigInt64Array,
    batch: number,
    mask: BigInt64Array,
    positions: BigInt64Array,
    past: PastCache,
  ): Promise<StepResult> {
    const n = inputIds.length / batch;
    const feeds: Record<string, ort.Tensor> = { ...past };
    feeds.input_ids = new ort.Tensor("int64", inputIds, [batch, n]);
    if (this.#hasAttentionMask) {
      feeds.attention_mask = new ort.Tensor("int64", mask, [batch, mask.length / batch]);
    }
    if (this.#hasPositionIds) feeds.position_ids = new ort.Tensor("int64", positions, [batch, n]);
    const out = await this.session.run(feeds);
    const present: PastCache = {};
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (const kv of ["key", "value"]) {
        present[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
      }
    }
    return { logits: out.logits.data as Float32Array, present };
  }
}

/**
 * Sample the token of one logits row under `sampling`, fingerprint the row and, with
 * `topLogprobs` > 0, list its most likely tokens: what a step yields, wherever the row came from
 * (a sequence alone or a row of a batch). The row is only read.
 */
export function sampleRow(
  row: Float32Array,
  sampling: StepSampling,
  topLogprobs: number,
): SampledStep {
  const { token } = sampleToken(row, sampling.params, sampling.position);
  const sampled: SampledStep = { tokenId: token, fingerprint: fingerprintOf(row, token) };
  if (topLogprobs > 0) sampled.top = topLogprobsOf(row, topLogprobs);
  return sampled;
}

/** One generation's KV cache on a {@link DecoderSession}. */
export class DecoderSequence {
  #decoder: DecoderSession;
  #past: PastCache | null;
  #length = 0;

  /**
   * An empty sequence.
   *
   * @param decoder The session it runs on.
   */
  constructor(decoder: DecoderSession) {
    this.#decoder = decoder;
    this.#past = decoder.emptyPast();
  }

  /** Tokens in the cache. */
  get length(): number {
    return this.#length;
  }

  /**
   * Feed `tokens` after the cached ones, sample the next token from the logits row of the last
   * of them under `sampling`, and fingerprint that row; with `topLogprobs` > 0, also list that
   * many of the row's most likely tokens (an output only: the token and the fingerprint do not
   * depend on it).
   * The row itself is dropped here.
   */
  async step(
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs = 0,
  ): Promise<SampledStep> {
    if (!this.#past) throw new Error("the sequence is closed");
    if (tokens.length === 0) throw new RangeError("a step needs at least one token");
    const { logits, present } = await this.#decoder.run(tokens, this.#length, this.#past);
    // Closed while the step ran: keep nothing.
    if (this.#past) {
      this.#past = present;
      this.#length += tokens.length;
    }
    const vocab = this.#decoder.shape.vocabSize;
    // A view, not a copy: the row is read a few times here and then released with the output.
    const row = logits.subarray((tokens.length - 1) * vocab, tokens.length * vocab);
    return sampleRow(row, sampling, topLogprobs);
  }

  /** Drop the cache. */
  close(): void {
    this.#past = null;
  }
}
