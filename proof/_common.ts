/**
 * Shared internals of the validator and the fraud checker: the model surface they need, the
 * recomputation of chosen positions from one teacher-forced pass, and the token-only rules
 * (output text, termination) that mirror `TextModel.generate`.
 *
 * The validator and the checker must apply *identical* rules, or an honest validator's proof
 * could fail to check (and cost it) — so both call these functions and nothing else.
 *
 * @module
 */
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { GenerationParams, TensorData, TextJob } from "../protocols/job.ts";
import type { ReceiptEnd } from "../protocols/receipt.ts";
import { type Fingerprint, fingerprintOf, type FingerprintTolerance } from "./fingerprint.ts";
import {
  checkSampledToken,
  DEFAULT_SAMPLING_TOLERANCE,
  type SamplingCheck,
  type SamplingTolerance,
} from "./sampling_check.ts";
import { type CalibrationLookup, type Tolerances, tolerancesFor } from "./calibration.ts";
import { fp16Logits } from "./_precision.ts";
import { sampleToken } from "../inference/sampler.ts";
import { endTokenIds } from "../inference/end_tokens.ts";

/** The part of a text model (`inference/text_model.ts` `TextModel`) proofs need. */
export interface ProofModel {
  /** Identity and shape. */
  readonly info: {
    readonly cid: string;
    readonly vocabSize: number;
    readonly contextLength: number;
    readonly eosTokenId: number | undefined;
    /**
     * Every end id (`TextModel`'s `info.eosTokenIds`: an output ends at any of them); without
     * it, `eosTokenId` alone.
     */
    readonly eosTokenIds?: readonly number[];
  };
  /** Prompt encoding and streaming decoding exactly as generation does it. */
  readonly tokenizer: {
    encode(text: string): number[];
    streamDecoder(): { push(id: number): string; flush(): string };
    /**
     * The bytes a token adds to the output (a byte token's one byte, which the stream decoder
     * holds back while its character is incomplete). Without it, end choices measure a stop
     * string's progress on decoded text only, blind to the first bytes of a non-ASCII stop.
     */
    bytesOf?(id: number): Uint8Array;
  };
  /** Teacher-forced pass: logits `[tokens.length × vocabSize]`. */
  forward(tokens: readonly number[], options?: { signal?: AbortSignal }): Promise<Float32Array>;
  /**
   * KV-cached generation after `promptIds` by the job's rule, its first token at output position
   * `startIndex` (`TextModel.generate`). Optional: the end choices' branch play-outs
   * (`end_choices.ts`) use it when present, one cached step per token; without it, one
   * teacher-forced {@link forward} pass per token.
   */
  generate?(
    promptIds: readonly number[],
    params: GenerationParams,
    options?: { signal?: AbortSignal; startIndex?: number },
  ): ReadableStream<{ readonly tokenId: number }>;
}

/** The part of a one-shot model (`inference/tensor_model.ts`) tensor checks need. */
export interface ProofTensorModel {
  /** Identity. */
  readonly info: { readonly cid: string };
  /** Run once. */
  run(inputs: Record<string, TensorData>): Promise<Record<string, TensorData>>;
}

/**
 * The logits an honest worker may have sampled from, relative to the validator's: as computed,
 * or returned by its runtime rounded to fp16. Both are deterministic functions of the logits,
 * so the validator recomputes the fingerprint both ways and the worker's must match one of them
 * within the (small) noise of the computation itself: a calibrated profile measures each variant
 * against its own hypothesis.
 */
export const LOGITS_PRECISIONS = ["fp32", "fp16"] as const;

/** The fingerprint of a row under each of {@link LOGITS_PRECISIONS}, in that order. */
export function fingerprintsOf(
  logits: Float32Array,
  token: number,
  offset = 0,
  vocabSize: number = logits.length - offset,
): Fingerprint[] {
  const row = logits.subarray(offset, offset + vocabSize);
  return [fingerprintOf(row, token), fingerprintOf(fp16Logits(row), token)];
}

/** What one recomputed position shows. */
export interface RecomputedPosition {
  /** Output position. */
  position: number;
  /** Recomputed fingerprint (logits as computed). */
  fingerprint: Fingerprint;
  /** Recomputed fingerprints under each of {@link LOGITS_PRECISIONS}. */
  fingerprints: Fingerprint[];
  /** Sampling-rule check of the committed token. */
  sampling: SamplingCheck;
  /**
   * The tokens the job's sampling rule picks here from the validator's own logits, under each
   * of {@link LOGITS_PRECISIONS} (an honest worker's token is one of them except at a genuine
   * near-tie); only when asked ({@link RecomputeOptions.winners}), empty for a row with no
   * finite logit (no rule picks from it).
   */
  winners?: number[];
}

/** Options of {@link recomputePositions}. */
export interface RecomputeOptions {
  /** Abort the forward pass. */
  signal?: AbortSignal;
  /** Also compute each position's {@link RecomputedPosition.winners} (validation's end choices). */
  winners?: boolean;
}

/**
 * The tolerances for `job`: its model's calibration profile (if the lookup has one) for the
 * precision the job declares (or the coarser class standing in for it, `tolerancesFor`), then
 * any explicit override.
 */
export function tolerancesOf(
  job: TextJob,
  options: {
    calibration?: CalibrationLookup;
    fingerprint?: FingerprintTolerance;
    sampling?: SamplingTolerance;
  },
): Tolerances {
  const profiled = tolerancesFor(options.calibration?.(job.model), job.precision ?? "fp32");
  return {
    fingerprint: options.fingerprint ?? profiled.fingerprint,
    sampling: options.sampling ?? profiled.sampling,
    calibrated: profiled.calibrated,
    ...(profiled.standIn ? { standIn: profiled.standIn } : {}),
    ...(profiled.classMissing ? { classMissing: true } : {}),
  };
}

/**
 * Run one forward pass over `prompt ‖ tokens[0 .. upTo)` and recompute the fingerprint and the
 * sampling check of each position in `positions` (all `< upTo + 1`). The logits row for output
 * position t sits at input position `prompt.length − 1 + t`.
 */
export async function recomputePositions(
  model: ProofModel,
  promptIds: readonly number[],
  tokens: readonly number[],
  positions: readonly number[],
  params: Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">,
  tolerance: SamplingTolerance = DEFAULT_SAMPLING_TOLERANCE,
  options: RecomputeOptions = {},
): Promise<{ results: RecomputedPosition[]; forwardTokens: number }> {
  const { signal } = options;
  if (positions.length === 0) return { results: [], forwardTokens: 0 };
  const last = Math.max(...positions);
  const input = [...promptIds, ...tokens.slice(0, last)];
  const logits = await model.forward(input, { signal });
  const vocab = model.info.vocabSize;
  const results = positions.map((t) => {
    const offset = (promptIds.length - 1 + t) * vocab;
    const fingerprints = fingerprintsOf(logits, tokens[t], offset, vocab);
    const result: RecomputedPosition = {
      position: t,
      fingerprint: fingerprints[0],
      fingerprints,
      sampling: checkSampledToken(logits, tokens[t], t, params, tolerance, offset, vocab),
    };
    if (options.winners) {
      result.winners = winnersOf(logits.subarray(offset, offset + vocab), params, t, tokens[t]);
    }
    return result;
  });
  return { results, forwardTokens: input.length };
}

/**
 * The tokens the sampling rule picks from `row` at output position `t` under each of
 * {@link LOGITS_PRECISIONS}; none for a row without a finite logit. The fp16 pick is drawn only
 * where the worker's `token` is not the pick as computed (rare: near-ties), the one place it can
 * matter, so most positions cost one draw and no fp16 copy of the row.
 */
function winnersOf(
  row: Float32Array,
  params: Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">,
  t: number,
  token: number,
): number[] {
  try {
    const pick = sampleToken(row, params, t).token;
    if (pick === token) return [pick];
    return [pick, sampleToken(fp16Logits(row), params, t).token];
  } catch {
    return []; // no finite logit: the sampling check has failed this position already
  }
}

/**
 * The output text `generate` would have streamed for `tokens` (an end token renders as ""). With
 * `end` `cancelled` (the receipt's {@link ReceiptEnd}), the text streamed up to the cancel: the
 * bytes the decoder still holds back (a character not yet complete) never went out, since only
 * a generation's last chunk flushes them.
 */
export function reconstructOutput(
  model: ProofModel,
  tokens: readonly number[],
  end?: ReceiptEnd,
): string {
  const decoder = model.tokenizer.streamDecoder();
  const ends = endTokenIds(model.info);
  let out = "";
  for (const t of tokens) if (!ends.has(t)) out += decoder.push(t);
  return end === "cancelled" ? out : out + decoder.flush();
}

/**
 * `generate`'s stopping rule, fed one output token at a time: whether generation stops after it
 * (an end token: any of the model's `eosTokenIds`, a stop string completed in the output text,
 * `maxTokens` reached, the context window full). One rule for the termination check and the end
 * choices' branch play-outs. A stop string found now ends within the text the token added, so
 * only the output's last characters are kept and searched: constant work per token, however long
 * the output.
 */
export class GenerationEnd {
  readonly #ends: ReadonlySet<number>;
  readonly #stops: string[];
  readonly #keep: number;
  readonly #decoder: { push(id: number): string };
  readonly #maxTokens: number;
  readonly #room: number;
  #tail = "";
  #count = 0;

  /**
   * Start at output position 0.
   * @param model The model's end ids, context window and stream decoder.
   * @param promptLength Prompt tokens before the output.
   * @param params The job's `maxTokens` and stop strings.
   */
  constructor(
    model: Pick<ProofModel, "info" | "tokenizer">,
    promptLength: number,
    params: Pick<GenerationParams, "maxTokens" | "stop">,
  ) {
    this.#ends = endTokenIds(model.info);
    this.#stops = params.stop.filter((s) => s.length > 0);
    this.#keep = Math.max(0, ...this.#stops.map((s) => s.length - 1));
    this.#decoder = model.tokenizer.streamDecoder();
    this.#maxTokens = params.maxTokens;
    this.#room = model.info.contextLength - promptLength;
  }

  /** Feed the next output token; true when generation stops right after it. */
  push(token: number): boolean {
    const t = this.#count++;
    let finished = t + 1 >= this.#maxTokens || t + 1 >= this.#room;
    if (this.#ends.has(token)) return true;
    const piece = this.#decoder.push(token);
    if (piece.length > 0 && this.#stops.length > 0) {
      const text = this.#tail + piece;
      if (this.#stops.some((s) => text.includes(s))) finished = true;
      this.#tail = this.#keep === 0 ? "" : text.slice(Math.max(0, text.length - this.#keep));
    }
    return finished;
  }
}

/**
 * Why the output's end breaks `generate`'s stopping rule, or null when it ends exactly where
 * generation would have: at the first position that emits an end token, completes a stop
 * string, reaches `maxTokens`, or fills the context window.
 *
 * `tokens` may be a prefix of an output of `tokenCount` tokens (the receipt signs the count): a
 * stop inside the prefix before the output's last position is an `overrun` there, which the
 * prefix alone proves; a prefix without a stop proves nothing (null), and `truncated` needs the
 * whole output.
 *
 * A receipt whose `end` is `cancelled` (its requester cancelled after `tokenCount` tokens) may
 * end anywhere without a stop: only a stop before its last position is a violation (`overrun`:
 * the job ended there, and the tokens after it were no cancel's), never `truncated`.
 *
 * A prompt that leaves no room in the context window (`promptLength ≥ contextLength`) is one
 * `generate` refuses before any token, so every receipt for it is a violation at position 0,
 * `prompt_too_long`, whatever its tokens (the validator would otherwise forward more tokens
 * than the model takes). So is an empty prompt, `empty_prompt`: `generate` has no position to
 * start from and refuses it too.
 */
export function terminationViolation(
  model: ProofModel,
  promptLength: number,
  tokens: readonly number[],
  params: Pick<GenerationParams, "maxTokens" | "stop">,
  tokenCount: number = tokens.length,
  receiptEnd?: ReceiptEnd,
): {
  reason: "truncated" | "overrun" | "prompt_too_long" | "empty_prompt";
  position: number;
} | null {
  if (promptLength === 0) return { reason: "empty_prompt", position: 0 };
  if (promptLength >= model.info.contextLength) return { reason: "prompt_too_long", position: 0 };
  const end = new GenerationEnd(model, promptLength, params);
  for (let t = 0; t < tokens.length; t++) {
    if (end.push(tokens[t])) {
      return t === tokenCount - 1 ? null : { reason: "overrun", position: t };
    }
  }
  if (tokens.length < tokenCount) return null;
  if (tokens.length === 0 && params.maxTokens === 0) return null;
  if (receiptEnd === "cancelled" && tokens.length > 0) return null; // the requester ended it here
  return { reason: "truncated", position: tokens.length };
}

/**
 * How the float element types a one-shot model may output are read, and the one rounding step
 * of each that two honest machines may differ by (relative, and the smallest step near zero).
 * float32's step is far below any tolerance; a half-precision output's is not (2⁻¹⁰ of it), so
 * it is allowed on top of the tolerance. Other types (integers, bool) are compared bit for bit.
 */
const FLOAT_TYPES: Record<
  string,
  { bytes: number; read: (v: DataView, i: number) => number; step: number; tiny: number }
> = {
  float32: { bytes: 4, read: (v, i) => v.getFloat32(i, true), step: 0, tiny: 0 },
  // Before, float64 and float16 outputs were compared bit for bit: an honest worker whose machine
  // rounded one element differently was convicted (`tests/proof/tensor_validation_test.ts`).
  float64: { bytes: 8, read: (v, i) => v.getFloat64(i, true), step: 0, tiny: 0 },
  float16: { bytes: 2, read: (v, i) => v.getFloat16(i, true), step: 2 ** -10, tiny: 2 ** -24 },
};

/**
 * Largest element-wise difference of two float tensors (float32, float64, float16) relative to
 * `atol + rtol·|b|` (plus one rounding step of the type, {@link FLOAT_TYPES}). Equal elements
 * differ by 0, the same infinity and two NaNs included (`∞ − ∞` is NaN, which would count as an
 * infinite difference and convict a bit-identical honest output); an infinity or a NaN against
 * anything else differs infinitely. Other types differ infinitely unless bit-identical.
 */
export function tensorExcess(
  a: TensorData,
  b: TensorData,
  rtol: number,
  atol: number,
): number {
  if (a.type !== b.type || a.dims.join(",") !== b.dims.join(",")) return Infinity;
  const float = Object.hasOwn(FLOAT_TYPES, a.type) ? FLOAT_TYPES[a.type] : undefined;
  if (float === undefined) return bytesEqual(a.data, b.data) ? 0 : Infinity;
  const { bytes, read, step, tiny } = float;
  if (a.data.length !== b.data.length || a.data.length % bytes !== 0) return Infinity;
  const fa = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const fb = new DataView(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  let worst = 0;
  for (let i = 0; i < a.data.length; i += bytes) {
    const x = read(fa, i);
    const y = read(fb, i);
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const excess = Math.abs(x - y) / (atol + tiny + (rtol + step) * Math.abs(y));
    if (!(excess <= worst)) worst = Number.isNaN(excess) ? Infinity : Math.max(worst, excess);
  }
  return worst;
}
