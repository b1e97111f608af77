/**
 * Per-position fingerprints of a model's computation (scheme `vf-fp2`), and the statistical
 * test that compares a worker's fingerprints with a validator's recomputation.
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
 * the logits moves each number by O(ε).
 *
 * Each value is quantized to 16 bits (step {@link FINGERPRINT_STEP} = 1/1024 nat), so a
 * fingerprint is {@link FINGERPRINT_BYTES} = 4 bytes per token. (`vf-fp1` used 1/256: its
 * rounding error alone was as large as the honest noise of fp16 logits, and hid cheats of that
 * size.)
 *
 * **The test** ({@link fingerprintViolation}) normalises each difference by the honest noise
 * of that component, calibrated for the model on the validator's execution variants
 * (`calibration.ts`): `z = Δ/σ`, and per position `q = (z_logProb² + z_projection²)/2`. Honest
 * work has `q` about 1 on average; a changed model has `q` in the tens or thousands. The
 * validator does not know whether the worker's runtime returned its logits in fp32 or rounded
 * to fp16, so it scores both ways and a set must violate under both. A set of
 * n positions violates when its mean `q` exceeds `headroom × χ²₂ₙ(1 − α)/2n`: the level a
 * Gaussian noise `headroom` times the calibrated variance exceeds with probability α. The sets
 * tested: each single position (the tail), each prefix `0..m−1` (so a small change in every
 * position adds up), each suffix `j..n−1` (a cheaper copy after an honest head), and the prefixes
 * and suffixes of the even and of the odd positions (a cheaper copy on every other position).
 * Fixed families, not any subset: a validator cannot pick the worst honest positions out of a
 * receipt to manufacture a violation. α is the receipt's false-alarm budget split over every set
 * ({@link DEFAULT_FINGERPRINT_TOLERANCE}).
 *
 * @module
 */

/** Name of this fingerprint scheme, written into commitments so verifiers pick the right rules. */
export const FINGERPRINT_SCHEME = "vf-fp2";
/** Bytes per position of a quantized fingerprint (u16 −logProb, i16 projection). */
export const FINGERPRINT_BYTES = 4;
/**
 * Quantization step in nats (1/1024). Its rounding error (RMS step/√12 = 0.00028) is a third of
 * the honest noise of fp16-rounded logits (≈ 0.001 on the built-in models), so it barely adds to
 * the noise a cheat must hide in, while a 16-bit field still covers log-probabilities down to
 * −64 nats and projections of ±32 (a clamped value is compared clamped, see
 * {@link fingerprintDifference}).
 */
export const FINGERPRINT_STEP = 1 / 1024;
/** RMS of the quantization error (uniform over one step): the floor of any noise scale. */
export const FINGERPRINT_QUANTIZATION_RMS: number = FINGERPRINT_STEP / Math.sqrt(12);
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
 * Masked ids are allowed, as the sampler allows them: a −∞ or NaN logit has probability 0 (NaN
 * counts as −∞, so a token at one has `logProb` −∞, which the codes clamp to −64 nats), and the
 * projection's mean and sum run over the finite logits only, so one masked id does not turn
 * the whole sketch into NaN. (It is still divided by √V: a row without masked ids gives exactly
 * what it always did.) A row without a finite logit has projection 0.
 *
 * @example
 * ```ts
 * import { fingerprintOf } from "./fingerprint.ts";
 * const fp = fingerprintOf(new Float32Array([1, 2, 3, 4]), 3);
 * fp.logProb < 0; // true
 * Number.isFinite(fingerprintOf(new Float32Array([1, -Infinity, 3]), 0).projection); // true
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
  let finite = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i];
    if (v > max) max = v;
    if (Number.isFinite(v)) {
      sum += v;
      finite++;
    }
  }
  const mean = finite > 0 ? sum / finite : 0;
  let expSum = 0;
  let proj = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i];
    if (!Number.isFinite(v)) continue;
    expSum += Math.exp(v - max);
    proj += signs[i] * (v - mean);
  }
  return {
    logProb: logProbOf(logits[offset + token], max, expSum, logits, offset, vocabSize),
    projection: proj / Math.sqrt(vocabSize),
  };
}

/**
 * `l − logsumexp(row)` over the ids the sampler keeps (logit > −∞; NaN counts as −∞), given the
 * row's largest logit and `Σ e^{l − max}` over its finite logits. A +∞ logit takes all the mass,
 * shared with the other +∞ ones.
 */
function logProbOf(
  l: number,
  max: number,
  expSum: number,
  logits: Float32Array,
  offset: number,
  vocabSize: number,
): number {
  if (!(l > -Infinity) || !(max > -Infinity)) return -Infinity;
  if (max === Infinity) {
    if (l !== Infinity) return -Infinity;
    let tied = 0;
    for (let i = 0; i < vocabSize; i++) if (logits[offset + i] === Infinity) tied++;
    return -Math.log(tied);
  }
  return l - (max + Math.log(expSum));
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

/** The value a fingerprint takes after a quantize/dequantize round trip clamps it to range. */
function clampToCodes(fp: Fingerprint): Fingerprint {
  return {
    logProb: Math.max(-U16_MAX / SCALE, Math.min(0, fp.logProb)),
    projection: Math.max(I16_MIN / SCALE, Math.min(I16_MAX / SCALE, fp.projection)),
  };
}

/**
 * The component differences between a claimed (dequantized) fingerprint and a recomputed one,
 * with the recomputed one clamped to the range the codes cover (so a value beyond the 16-bit
 * range, honestly clamped by the worker, is not a difference).
 */
export function fingerprintDifference(
  claimed: Fingerprint,
  recomputed: Fingerprint,
): { logProb: number; projection: number } {
  const r = clampToCodes(recomputed);
  return { logProb: claimed.logProb - r.logProb, projection: claimed.projection - r.projection };
}

/** The larger of the two absolute component differences (nats), for reports. */
export function fingerprintDistance(claimed: Fingerprint, recomputed: Fingerprint): number {
  const d = fingerprintDifference(claimed, recomputed);
  return Math.max(Math.abs(d.logProb), Math.abs(d.projection));
}

/**
 * Tolerances of the fingerprint test: the honest noise of each component (from a calibration
 * profile, `calibration.ts`) and how far beyond it a test set may go.
 */
export interface FingerprintTolerance {
  /** Honest RMS difference of `logProb` (nats), quantization included. */
  logProbSigma: number;
  /** Honest RMS difference of `projection` (nats), quantization included. */
  projectionSigma: number;
  /**
   * How much larger than calibrated the honest noise variance may be (the mean `q` a machine
   * may show on average without being flagged): room for hardware nobody calibrated.
   */
  headroom: number;
  /** Probability that a test set of honest Gaussian noise at `headroom` trips (per set). */
  falseAlarm: number;
}

/**
 * Strides of the test's position sets. Stride 1: prefixes `0..m−1` and suffixes `j..n−1` of the
 * receipt. Stride 2: the same within the even and within the odd positions, so a cheap copy run on
 * every other position is not averaged away by the honest ones between (review s74). Longer
 * strides would each add two more families to pay for out of the false-alarm budget below.
 */
export const FINGERPRINT_STRIDES: readonly number[] = Object.freeze([1, 2]);

/**
 * Families of tested sets: single positions, and a prefix and a suffix family per stride. Each
 * holds at most n sets for n positions (a residue class of c positions has c − 1 prefixes and
 * c − 1 suffixes of two or more, and the classes of one stride partition the positions).
 */
export const FINGERPRINT_SET_FAMILIES: number = 1 + 2 * FINGERPRINT_STRIDES.length;

/**
 * The false-alarm budget of one receipt, which the docs promise (docs/PROOF.md, "Tolerances"):
 * α = 1e-12 for each of the 2 × 4096 sets that single positions and prefixes gave at the
 * longest output, `MAX_JOB_TOKENS` = 4096: 8.192e-9.
 */
export const RECEIPT_FALSE_ALARM = 2 * 4096 * 1e-12;

/**
 * Headroom 4: an honest machine may have twice the calibrated RMS noise. False alarm per test
 * set: the receipt's budget split over every set tested at 4096 positions, 5 families × 4096
 * sets: 8.192e-9 / 20,480 = 4e-13 (it was 1e-12 with two families). The noise scales are for a
 * model nobody calibrated: 0.01 nats, ten times the fp16-logit noise measured on the built-in
 * models, so a single position is a violation beyond about 0.1 nats (the old fixed `hard`
 * tolerance). Calibrated profiles replace them (`fingerprintToleranceOf` in `calibration.ts`).
 */
export const DEFAULT_FINGERPRINT_TOLERANCE: Readonly<FingerprintTolerance> = Object.freeze({
  logProbSigma: 0.01,
  projectionSigma: 0.01,
  headroom: 4,
  falseAlarm: RECEIPT_FALSE_ALARM / (FINGERPRINT_SET_FAMILIES * 4096),
});

/**
 * The normalised squared difference of one position: `(z_logProb² + z_projection²)/2` with
 * `z = Δ/σ`. About 1 on average for honest work at the calibrated noise.
 */
export function fingerprintScore(
  claimed: Fingerprint,
  recomputed: Fingerprint,
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
): number {
  const d = fingerprintDifference(claimed, recomputed);
  const a = d.logProb / tolerance.logProbSigma;
  const b = d.projection / tolerance.projectionSigma;
  const q = (a * a + b * b) / 2;
  return Number.isNaN(q) ? Infinity : q;
}

/**
 * The largest mean score `n` positions may have: `headroom × χ²₂ₙ(1 − falseAlarm) / 2n`. Each
 * score is half a sum of two squared z-values, so for Gaussian noise at the calibrated level
 * `2n × mean` is χ² with 2n degrees of freedom.
 */
export function meanScoreLimit(
  n: number,
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
): number {
  return tolerance.headroom * chiSquareUpper(2 * n, tolerance.falseAlarm) / (2 * n);
}

/**
 * Which positions violate the test, as the set to cite, or null when none does. The sets are
 * each single position, and for each stride s of {@link FINGERPRINT_STRIDES} every prefix and
 * every suffix (of two positions or more) of each residue class `{t : t ≡ r mod s}`. Single
 * positions and prefixes come first, the one whose last position is earliest (the cheapest to
 * check); then the suffix with the fewest positions. `tokenCount` is the receipt's: suffixes are
 * tested only when every one of its positions was scored, since a checker judges a suffix against
 * the receipt ({@link isTestedSet}), never against a shorter scored window (omitted: the scores
 * are the whole receipt). A set violates when it does under every
 * hypothesis: `scores[h][t]` is the {@link fingerprintScore} of position t under hypothesis h —
 * one per logits precision an honest worker may have sampled from (the validator recomputes the
 * fingerprint from its logits as computed and rounded to fp16; see `LOGITS_PRECISIONS` in
 * `_common.ts`): honest work matches one of them.
 *
 * @example
 * ```ts
 * import { fingerprintViolation } from "./fingerprint.ts";
 * // Honest for 64 positions, then 3σ off in every component: only a suffix shows it.
 * const q = Array.from({ length: 128 }, (_, t) => t < 64 ? 1 : 9);
 * fingerprintViolation([q])?.at(-1); // 127
 * ```
 */
export function fingerprintViolation(
  scores: readonly (readonly number[])[],
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
  tokenCount?: number,
): number[] | null {
  if (scores.length === 0) return null;
  const n = Math.min(...scores.map((s) => s.length));
  const single = meanScoreLimit(1, tolerance);
  const violates = (sums: Float64Array, count: number) => {
    if (count < 2) return false;
    const limit = meanScoreLimit(count, tolerance);
    return sums.every((sum) => sum / count > limit);
  };
  // Running sums per stride, residue class and hypothesis.
  const prefix = FINGERPRINT_STRIDES.map((s) =>
    Array.from({ length: s }, () => ({ sums: new Float64Array(scores.length), count: 0 }))
  );
  for (let t = 0; t < n; t++) {
    if (scores.every((s) => !(s[t] <= single))) return [t];
    for (const [i, s] of FINGERPRINT_STRIDES.entries()) {
      const run = prefix[i][t % s];
      scores.forEach((sc, h) => run.sums[h] += sc[t]);
      run.count++;
      if (violates(run.sums, run.count)) return progression(t % s, s, t);
    }
  }
  // A suffix of a shorter window is not one of the receipt: a checker would refute it.
  if (tokenCount !== undefined && n < tokenCount) return null;
  let best: number[] | null = null;
  for (const s of FINGERPRINT_STRIDES) {
    for (let r = 0; r < s && r < n; r++) {
      const last = r + Math.floor((n - 1 - r) / s) * s;
      const sums = new Float64Array(scores.length);
      let count = 0;
      for (let t = last; t >= 0 && (best === null || count + 1 < best.length); t -= s) {
        scores.forEach((sc, h) => sums[h] += sc[t]);
        count++;
        if (violates(sums, count)) {
          best = progression(t, s, last);
          break;
        }
      }
    }
  }
  return best;
}

/** The positions `first, first + step, …, last`. */
function progression(first: number, step: number, last: number): number[] {
  return Array.from({ length: Math.floor((last - first) / step) + 1 }, (_, i) => first + i * step);
}

/**
 * Whether `positions` (ascending) is a set {@link fingerprintViolation} tests on a receipt of
 * `tokenCount` positions: one position, or a prefix or suffix of a residue class of a stride of
 * {@link FINGERPRINT_STRIDES}. Without `tokenCount`, the rules of fraud proofs of version 1:
 * one position or a prefix `0..m−1` (what a checker of that version confirms).
 */
export function isTestedSet(positions: readonly number[], tokenCount?: number): boolean {
  const n = positions.length;
  if (n === 0 || positions.some((p) => !Number.isInteger(p) || p < 0)) return false;
  const last = positions[n - 1];
  if (tokenCount !== undefined && last >= tokenCount) return false;
  if (n === 1) return true;
  if (tokenCount === undefined) return positions.every((p, i) => p === i);
  const step = positions[1] - positions[0];
  if (!FINGERPRINT_STRIDES.includes(step)) return false;
  if (!positions.every((p, i) => p === positions[0] + i * step)) return false;
  return positions[0] < step || last + step >= tokenCount;
}

/**
 * True when cited positions are a tested set ({@link isTestedSet}) and violate the test by
 * themselves under every hypothesis (see {@link fingerprintViolation}); anything else proves
 * nothing. `scores[h]` are in the order of `positions`. `tokenCount` is the receipt's (it says
 * which sets are suffixes); without it, only the sets of version-1 fraud proofs count.
 *
 * @example
 * ```ts
 * import { citedScoresViolate, meanScoreLimit } from "./fingerprint.ts";
 * const high = Array(8).fill(meanScoreLimit(8) * 2);
 * citedScoresViolate([120, 121, 122, 123, 124, 125, 126, 127], [high], undefined, 128); // true
 * citedScoresViolate([120, 121, 122, 123, 124, 125, 126, 127], [high], undefined, 256); // false
 * ```
 */
export function citedScoresViolate(
  positions: readonly number[],
  scores: readonly (readonly number[])[],
  tolerance: FingerprintTolerance = DEFAULT_FINGERPRINT_TOLERANCE,
  tokenCount?: number,
): boolean {
  const n = positions.length;
  if (n === 0 || scores.length === 0 || scores.some((s) => s.length !== n)) return false;
  if (!isTestedSet(positions, tokenCount)) return false;
  const limit = meanScoreLimit(n, tolerance);
  return scores.every((s) => !(s.reduce((a, q) => a + q, 0) / n <= limit));
}

/**
 * Upper quantile of the χ² distribution with `k` (even) degrees of freedom: the x with
 * `P(χ²ₖ > x) = alpha`. Exact for small k (bisection on the Poisson form of the survival
 * function); Wilson–Hilferty above, where it is within a percent.
 */
export function chiSquareUpper(k: number, alpha: number): number {
  const key = `${k}:${alpha}`;
  const cached = chiCache.get(key);
  if (cached !== undefined) return cached;
  let x: number;
  if (k <= CHI_EXACT_MAX_DF) {
    const logAlpha = Math.log(alpha);
    let lo = 0;
    let hi = k + 20 * Math.sqrt(2 * k) - 2 * logAlpha;
    for (let i = 0; i < 100; i++) {
      const mid = (lo + hi) / 2;
      if (logChiSquareSurvival(k, mid) > logAlpha) lo = mid;
      else hi = mid;
    }
    x = hi;
  } else {
    const z = normalUpper(alpha);
    const c = 2 / (9 * k);
    x = k * (1 - c + z * Math.sqrt(c)) ** 3;
  }
  chiCache.set(key, x);
  return x;
}

const CHI_EXACT_MAX_DF = 256;
const chiCache = new Map<string, number>();

/** ln P(χ²ₖ > x) for even k: ln(e^{−x/2} Σ_{i<k/2} (x/2)^i / i!), summed in log space. */
function logChiSquareSurvival(k: number, x: number): number {
  const h = x / 2;
  let logTerm = -h; // i = 0
  let max = logTerm;
  const terms = [logTerm];
  for (let i = 1; i < k / 2; i++) {
    logTerm += Math.log(h) - Math.log(i);
    terms.push(logTerm);
    if (logTerm > max) max = logTerm;
  }
  let sum = 0;
  for (const t of terms) sum += Math.exp(t - max);
  return max + Math.log(sum);
}

/** Upper quantile of the standard normal (bisection on erfc). */
function normalUpper(alpha: number): number {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalSurvival(mid) > alpha) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** P(Z > z) for z ≥ 0, from a continued fraction of erfc (accurate to ~1e-15 relative). */
function normalSurvival(z: number): number {
  // Lentz's continued fraction for the Mills ratio.
  const x = z;
  let f = x;
  let c = x;
  let d = 0;
  for (let i = 1; i < 300; i++) {
    const a = i;
    d = x + a * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = x + a / c;
    if (c === 0) c = 1e-300;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI) / f;
}
