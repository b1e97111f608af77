/**
 * The decoder convention on one onnxruntime session: building the feeds of a step
 * (`input_ids`, `attention_mask`, `position_ids` and the KV cache) and carrying the cache on to
 * the next step, in either of the two cache conventions a graph may have
 * (`inference/model_builder.ts`):
 *
 * - **concat** (a Hugging Face export): `past_key_values.N.*` in, `present.N.*` out; the present
 *   outputs are the next step's past as they are.
 * - **fixed** (Veriflow's built-in models): `kv_cache.N.*` in, `[b, h, capacity, d]` buffers this
 *   module owns, and `kv_new.N.*` out, which a step writes into the cache's next slots in place.
 *   A cache's capacity is {@link cacheCapacity}: a power of two up to {@link CACHE_SLOT_STEP}
 *   slots, then a multiple of it, grown by a copy when a step would overflow it; its unused
 *   slots hold zeros and are masked out (zeros, not whatever was there: a masked slot's weight
 *   is exactly 0, but 0 × NaN is not).
 *
 * Either way a cache is a {@link PastCache} of `[b, h, slots, d]` tensors whose rows keep their
 * valid positions right-aligned in the first `width` slots (`width` = what the caller's
 * `attention_mask` covers before the new tokens); slots past `width` (fixed only) are free.
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
import { ModelLoadError } from "./errors.ts";

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

/** Cache input name (`past_key_values.N.key|value` or `kv_cache.N.key|value`) → its tensor. */
export type PastCache = Record<string, ort.Tensor>;

/** Whether a graph with these inputs has the fixed-capacity cache convention (module doc). */
export function hasFixedCache(inputNames: readonly string[]): boolean {
  return inputNames.includes("kv_cache.0.key");
}

/** Fewest slots a fixed cache has (no input is ever empty; small prompts grow it rarely). */
export const MIN_CACHE_SLOTS = 16;

/**
 * Past this many slots a fixed cache grows by this many at a time. A step's attention reads
 * every slot of the cache, used or not, so its cost follows the capacity: measured on `small`
 * (2-core VM, 8 rows at 200-250 positions), a step took 7.4-7.6 ms at 256 slots, 8.1-8.4 at
 * 320, 8.6-9.3 at 384 and 9.7-10.0 at 512. Doubling left a batch at 257 positions paying for
 * 512; steps of 64 leave at most 63 unused slots, for a copy of the cache every 64 tokens.
 */
export const CACHE_SLOT_STEP = 64;

/**
 * Slots of a fixed cache that holds `needed` positions: the next power of two (at least
 * {@link MIN_CACHE_SLOTS}) up to {@link CACHE_SLOT_STEP}, the next multiple of it beyond.
 */
export function cacheCapacity(needed: number): number {
  if (needed > CACHE_SLOT_STEP) return Math.ceil(needed / CACHE_SLOT_STEP) * CACHE_SLOT_STEP;
  let slots = MIN_CACHE_SLOTS;
  while (slots < needed) slots *= 2;
  return slots;
}

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
  /** Names of the outputs each cache input is carried on from, in the same order. */
  #outputNames: readonly string[];
  /** Whether the graph has the fixed-capacity cache convention (see the module doc). */
  readonly fixedCache: boolean;

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
    this.fixedCache = hasFixedCache(session.inputNames);
    const names: string[] = [];
    const outputs: string[] = [];
    for (let l = 0; l < shape.numLayers; l++) {
      for (const kv of ["key", "value"]) {
        names.push(this.fixedCache ? `kv_cache.${l}.${kv}` : `past_key_values.${l}.${kv}`);
        outputs.push(this.fixedCache ? `kv_new.${l}.${kv}` : `present.${l}.${kv}`);
      }
    }
    this.pastNames = names;
    this.#outputNames = outputs;
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
    return (await this.run(tokens, 0, this.emptyPast(), false)).logits;
  }

  /** The cache of `batch` sequences with no tokens yet. */
  emptyPast(batch = 1): PastCache {
    return this.allocatePast(batch, 0);
  }

  /**
   * A zeroed cache of `batch` rows with room for `width` positions (fixed: and at least the next
   * one, so the next step does not grow it at once; concat: exactly `width`).
   */
  allocatePast(batch: number, width: number): PastCache {
    const past: PastCache = {};
    const { numKeyValueHeads, headDim } = this.shape;
    const slots = this.fixedCache ? cacheCapacity(width + 1) : width;
    for (const name of this.pastNames) {
      past[name] = new ort.Tensor(
        "float32",
        new Float32Array(batch * numKeyValueHeads * slots * headDim),
        [batch, numKeyValueHeads, slots, headDim],
      );
    }
    return past;
  }

  /** One model execution over `tokens` placed after `pastLength` cached positions. */
  run(
    tokens: readonly number[],
    pastLength: number,
    past: PastCache,
    keepCache = true,
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
      keepCache,
    );
  }

  /**
   * One model execution over `batch` rows of `inputIds.length / batch` new tokens each:
   * `mask` is `[batch, total]` (the padded cache's `width` slots then the new tokens; 0 =
   * padding) and `positions` `[batch, new tokens]`, each row's own positions. Inputs the graph
   * does not take are not fed (a graph without them can only run one row: see
   * {@link canBatch}). The result's `present` is the cache with the new tokens after the `width`
   * slots: for a fixed cache, `past` itself updated in place (or its grown copy); with
   * `keepCache` false (a pass whose cache nobody keeps) a fixed cache is left as it was.
   */
  async runRows(
    inputIds: BigInt64Array,
    batch: number,
    mask: BigInt64Array,
    positions: BigInt64Array,
    past: PastCache,
    keepCache = true,
  ): Promise<StepResult> {
    const n = inputIds.length / batch;
    const width = mask.length / batch - n;
    const slots = this.fixedCache ? past[this.pastNames[0]].dims[2] : width;
    if (this.fixedCache && width > slots) {
      throw new RangeError(`the mask covers ${width} cache slots, the cache has ${slots}`);
    }
    const feeds: Record<string, ort.Tensor> = { ...past };
    feeds.input_ids = new ort.Tensor("int64", inputIds, [batch, n]);
    if (this.#hasAttentionMask) {
      const fed = this.fixedCache ? slotMask(mask, batch, width, n, slots) : mask;
      feeds.attention_mask = new ort.Tensor("int64", fed, [batch, slots + n]);
    }
    if (this.#hasPositionIds) feeds.position_ids = new ort.Tensor("int64", positions, [batch, n]);
    const out = await this.session.run(feeds);
    this.#checkOutputs(out, batch, n, width);
    const logits = out.logits.data as Float32Array;
    if (!this.fixedCache) {
      const present: PastCache = {};
      this.pastNames.forEach((name, i) => present[name] = out[this.#outputNames[i]]);
      return { logits, present };
    }
    if (!keepCache) return { logits, present: past };
    const present = width + n > slots ? this.#grown(past, batch, width, width + n) : past;
    const { numKeyValueHeads: heads, headDim } = this.shape;
    const capacity = present[this.pastNames[0]].dims[2];
    this.pastNames.forEach((name, i) => {
      const cache = present[name].data as Float32Array;
      const fresh = out[this.#outputNames[i]].data as Float32Array;
      for (let row = 0; row < batch * heads; row++) {
        cache.set(
          fresh.subarray(row * n * headDim, (row + 1) * n * headDim),
          (row * capacity + width) * headDim,
        );
      }
    });
    return { logits, present };
  }

  /**
   * Throws {@link ModelLoadError} unless `logits` is `[batch, n, vocabSize]` and each cache
   * output `[batch, heads, positions, headDim]` as `config.json` says (positions: the `n` new
   * ones, or for a concat cache the `width + n` of the next step's past). The load checks the
   * shapes the graph declares; one it leaves to run time is known only here, and a config that
   * contradicts it would cut the logits into rows at the wrong places and store keys and values
   * in the wrong slots: wrong tokens, served as if right.
   */
  #checkOutputs(
    out: ort.InferenceSession.OnnxValueMapType,
    batch: number,
    n: number,
    width: number,
  ): void {
    const { numKeyValueHeads: heads, headDim, vocabSize } = this.shape;
    const expect = (name: string, dims: number[], configSays: string) => {
      const got = out[name]?.dims;
      if (got?.length === dims.length && got.every((d, i) => d === dims[i])) return;
      throw new ModelLoadError(
        `config.json contradicts model.onnx: "${name}" came out [${got?.join(", ") ?? ""}], ` +
          `expected [${dims.join(", ")}] (${configSays})`,
      );
    };
    expect("logits", [batch, n, vocabSize], `vocab_size ${vocabSize}`);
    const positions = this.fixedCache ? n : width + n;
    for (const name of this.#outputNames) {
      expect(name, [batch, heads, positions, headDim], `${heads} heads of width ${headDim}`);
    }
  }

  /** A copy of fixed cache `past` (its first `width` slots) with room for `needed` positions. */
  #grown(past: PastCache, batch: number, width: number, needed: number): PastCache {
    const grown = this.allocatePast(batch, needed - 1);
    for (let row = 0; row < batch; row++) copySlots(this, past, row, 0, grown, row, 0, width);
    return grown;
  }
}

/**
 * Copy `count` positions of every cache tensor of a decoder: row `srcRow` from slot `srcFrom` of
 * `src` to row `dstRow` from slot `dstFrom` of `dst` (each with its own slot count; `src` may be
 * `dst`, the ranges may overlap).
 */
export function copySlots(
  decoder: Pick<DecoderSession, "shape" | "pastNames">,
  src: PastCache,
  srcRow: number,
  srcFrom: number,
  dst: PastCache,
  dstRow: number,
  dstFrom: number,
  count: number,
): void {
  if (count === 0) return;
  const { numKeyValueHeads: heads, headDim } = decoder.shape;
  for (const name of decoder.pastNames) {
    const from = src[name].data as Float32Array;
    const to = dst[name].data as Float32Array;
    const fromSlots = src[name].dims[2];
    const toSlots = dst[name].dims[2];
    const same = from.buffer === to.buffer && from.byteOffset === to.byteOffset;
    for (let h = 0; h < heads; h++) {
      const a = ((srcRow * heads + h) * fromSlots + srcFrom) * headDim;
      const b = ((dstRow * heads + h) * toSlots + dstFrom) * headDim;
      if (same) to.copyWithin(b, a, a + count * headDim);
      else to.set(from.subarray(a, a + count * headDim), b);
    }
  }
}

/**
 * The fixed-cache mask `[batch, slots + n]` of a caller's `[batch, width + n]` one: each row's
 * first `width` entries, zeros for the free slots, then its `n` new tokens' entries.
 */
function slotMask(
  mask: BigInt64Array,
  batch: number,
  width: number,
  n: number,
  slots: number,
): BigInt64Array {
  const fed = new BigInt64Array(batch * (slots + n));
  for (let row = 0; row < batch; row++) {
    const from = row * (width + n);
    const to = row * (slots + n);
    fed.set(mask.subarray(from, from + width), to);
    fed.set(mask.subarray(from + width, from + width + n), to + slots);
  }
  return fed;
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
  if (topLogprobs > 0) sampled.top = chosenFirst(topLogprobsOf(row, topLogprobs), row, token);
  return sampled;
}

/**
 * `top` with `token` first among its entries as likely as it. The list breaks a tie by the
 * smaller id, greedy decoding by the position's race noise: without this, a tie taken by the
 * larger id listed another token first, and `top_logprobs: 1` left the chosen one out. Two
 * passes over at most k entries, only for a step that asked for them.
 */
function chosenFirst(top: TokenLogprob[], row: Float32Array, token: number): TokenLogprob[] {
  const value = row[token];
  let tie = 0;
  while (tie < top.length && row[top[tie].tokenId] !== value) tie++;
  if (tie === top.length || top[tie].tokenId === token) return top;
  let at = tie + 1;
  while (at < top.length && top[at].tokenId !== token) at++;
  const entry = at < top.length ? top[at] : { tokenId: token, logprob: top[tie].logprob };
  // Shift the tied entries before it down one place (the last falls off when it was not listed).
  for (let j = Math.min(at, top.length - 1); j > tie; j--) top[j] = top[j - 1];
  top[tie] = entry;
  return top;
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
