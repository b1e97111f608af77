/**
 * Per-position fingerprints of a model's computation (scheme `vf-fp1`).
 *
 * At every output position the worker has the full logit vector it sampled from. The
 * fingerprint keeps two numbers that depend on all of it and are cheap to recompute from a
 * teacher-forced forward pass:
 *
 * - `logProb`: log-probability of the emitted token, `logit[tok] − logsumexp(logits)`. It
 *   depends on the token (so a token swapped after the fact shows) and on the normaliser
 *   (so a different model, prompt or prefix shows).
 * - `projection`: a fixed ±1 random projection of the centred logits, divided by √V. It is a
 *   one-number sketch of the whole distribution: a model whose logits differ anywhere moves it,
 *   while floating-point noise (independent small errors) averages out to a tiny change.
 *
 * Both are continuous functions of the logits. That is the main design choice: a scheme built
 * on top-k *indices* (or argmax) has discontinuities at near-ties, where a harmless rounding
 * difference flips an index and an honest worker is flagged. Here a perturbation of size ε in
 * the logits moves each number by O(ε), so a tolerance a few times the measured noise can never
 * be crossed by honest work, while a changed model moves them by orders of magnitude more.
 *
 * Each value is quantized to 16 bits (step {@link FINGERPRINT_STEP} nats), so a fingerprint is
 * {@link FINGERPRINT_BYTES} = 4 bytes per token.
 *
 * @module
 */

/** Name of this fingerprint scheme, written into commitments so verifiers pick the right rules. */
export const FINGERPRINT_SCHEME = "vf-fp1";
/** Bytes per position of a quantized fingerprint (u16 −logProb, i16 projection). */
export const FINGERPRINT_BYTES = 4;
/**
 * Quantization step in nats (1/256). Chosen so that the rounding error (≤ half a step, 0.002)
 * sits below measured cross-thread / fp16-scale noise and well below the tolerances, while a
 * 16-bit field still covers log-probabilities down to −256 nats and projections of ±128.
 */
export const FINGERPRINT_STEP = 1 / 256;
const SCALE = 1 / FINGERPRINT_STEP;
const U16_MAX = 0xffff;
const I16_MIN = -0x8000;
const I16_MAX = 0x7fff;

/** The unquantized fingerprint of one position. */
export interface Fingerprint {
  /** `logit[token] − logsumexp(logits)`, ≤ 0. */
  logProb: number;
  /** `Σ sᵢ (logitᵢ − mean) / √V` with the fixed signs sᵢ of {@link projectionSigns}. */
  projection: number;
}

const signCache = new Map<number, Int8Array>();

/**
 * The fixed ±1 projection signs for a vocabulary of `vocabSize` tokens, from a public
 * seeded generator (splitmix32), so every node derives the same vector. Secrecy adds nothing:
 * the projection is not forgeable without the logits, whatever the signs.
 */
export function projectionSigns(vocabSize: number): Int8Array {
  let signs = signCache.get(vocabSize);
  if (signs) return signs;
  signs = new Int8Array(vocabSize);
  let state = 0x5eed_f00d;
  for (let i = 0; i < vocabSize; i++) {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    signs[i] = (z & 1) === 0 ? 1 : -1;
  }
  signCache.set(vocabSize, signs);
  return signs;
}

/**
 * Compute the fingerprint of the logits `logits[offset .. offset+vocabSize)` for `token`.
 * Sums run in float64 so the prover's and validator's own arithmetic adds no noise.
 *
 * @example
 * ```ts
 * import { fingerprintOf } from "./fingerprint.ts";
 * const fp = fingerprintOf(new Float32Array([1, 2, 3, 4]), 3);
 * fp.logProb < 0; // true
 * ```
 */
export function fingerprintOf(
  logits: Float32Array,
  token: number,
  offset = 0,
  vocabSize: number = logits.length - offset,
): Fingerprint {
  if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
    throw new RangeError(`token ${token} outside vocabulary of ${vocabSize}`);
  }
  const signs = projectionSigns(vocabSize);
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i];
    if (v > max) max = v;
    sum += v;
  }
  const mean = sum / vocabSize;
  let expSum = 0;
  let proj = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i];
    expSum += Math.exp(v - max);
    proj += signs[i] * (v - mean);
  }
  const lse = max + Math.log(expSum);
  return { logProb: logits[offset + token] - lse, projection: proj / Math.sqrt(vocabSize) };
}

/** The 16-bit codes of a fingerprint: `[round(−logProb/step) as u16, round(proj/step) as i16]`. */
export function quantizeFingerprint(fp: Fingerprint): [number, number] {
  const a = Math.min(U16_MAX, Math.max(0, Math.round(-fp.logProb * SCALE)));
  const b = Math.min(I16_MAX, Math.max(I16_MIN, Math.round(fp.projection * SCALE)));
  return [a, b];
}

/** The fingerprint a pair of 16-bit codes stands for (the centre of its quantization cell). */
export function dequantizeFingerprint(codes: readonly [number, number]): Fingerprint {
  // `+ 0` turns −0 into 0 so equal values compare equal in tests and CBOR.
  return { logProb: -codes[0] / SCALE + 0, projection: codes[1] / SCALE };
}

/** Write the quantized fingerprint of position `index` into `out` (big-endian). */
export function writeFingerprint(out: Uint8Array, index: number, fp: Fingerprint): void {
  const [a, b] = quantizeFingerprint(fp);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint16(index * FINGERPRINT_BYTES, a);
  view.setInt16(index * FINGERPRINT_BYTES + 2, b);
}

/** Read the (dequantized) fingerprint of position `index` from packed bytes. */
export function readFingerprint(bytes: Uint8Array, index: number): Fingerprint {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return dequantizeFingerprint([
    view.getUint16(index * FINGERPRINT_BYTES),
    view.getInt16(index * FINGERPRINT_BYTES + 2),
  ]);
}

/**
 * Tolerances of the fingerprint comparison, in nats. Defaults come from measured noise (see
 * docs/PROOF.md): the largest honest deviation seen across thread counts and fp16-scale logit
 * perturbation, times a safety factor, plus the quantization half-step.
 */
export interface FingerprintTolerance {
  /** A single position whose |Δ| exceeds this is a mismatch on its own. */
  hard: number;
  /** The mean |Δ| over at least {@link FingerprintTolerance.minPositions} positions above this is a mismatch. */
  soft: number;
  /** How many positions the soft (aggregate) rule needs. */
  minPositions: number;
}

/** Default tolerances of `vf-fp1` (see docs/PROOF.md for the measurements behind them). */
export const DEFAULT_FINGERPRINT_TOLERANCE: Readonly<FingerprintTolerance> = Object.freeze({
  hard: 0.1,
  soft: 0.04,
  minPositions: 8,
});

/** The larger of the two component differences between a claimed and a recomputed fingerprint. */
export function fingerprintDistance(claimed: Fingerprint, recomputed: Fingerprint): number {
  return Math.max(
    Math.abs(claimed.logProb - recomputed.logProb),
    Math.abs(claimed.projection - recomputed.projection),
  );
}

/**
 * Pick the smallest set of positions that violates the tolerance rules, or null when none
 * does: one position over `hard`, else the `minPositions` largest distances if their mean is
 * over `soft`. Positions are returned in ascending order.
 */
export function fingerprintViolation(
  distances: readonly { position: number; distance: number }[],
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
): number[] | null {
  if (distances.length === 0) return null;
  const sorted = distances.slice().sort((x, y) => y.distance - x.distance);
  if (sorted[0].distance > tolerance.hard) return [sorted[0].position];
  if (sorted.length < tolerance.minPositions) return null;
  const top = sorted.slice(0, tolerance.minPositions);
  const mean = top.reduce((s, d) => s + d.distance, 0) / top.length;
  return mean > tolerance.soft ? top.map((d) => d.position).sort((a, b) => a - b) : null;
}

/** True when the cited distances (all of them) violate the rules by themselves. */
export function citedDistancesViolate(
  distances: readonly number[],
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
): boolean {
  if (distances.length === 0) return false;
  if (distances.some((d) => d > tolerance.hard)) return true;
  if (distances.length < tolerance.minPositions) return false;
  return distances.reduce((s, d) => s + d, 0) / distances.length > tolerance.soft;
}
