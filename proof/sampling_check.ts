/**
 * The tolerant sampling check: could the job's sampling rule (`inference/sampler.ts`) have
 * produced this token from logits that differ from the validator's by at most
 * {@link SamplingTolerance.logitEps} each?
 *
 * The rule itself has discontinuities (argmax at near-ties, the CDF order of near-equal
 * logits, the top-k and top-p cut-offs), so checking "does `sampleToken` on my logits give the
 * same token" would flag honest workers whose floating point differs slightly. Instead the
 * check computes, from the validator's logits, the *widest* set of outcomes that any
 * perturbation within ±ε could produce, and rejects only tokens outside it:
 *
 * - greedy: the token's logit must be within 2ε of the largest logit;
 * - sampled: with `r = 2ε / temperature` (the largest change of a log-weight ratio), the token
 *   must be possibly kept by top-k (fewer than k ids beat it by more than 2ε) and by top-p
 *   (the smallest possible mass strictly before it is below `topP`), and the draw
 *   `u = counterUniform(seed, t)` must fall in `[loMin − δ, hiMax + δ]`, where `loMin` puts
 *   near-ties after the token and scales the mass before it down by `e^{−r}` (the rest up by
 *   `e^{r}`), and `hiMax` does the opposite.
 *
 * The bounds are monotone in the perturbation, so an honest token always passes; a token drawn
 * with a different seed or from a different distribution fails at most positions.
 *
 * @module
 */
import type { GenerationParams } from "../protocols/job.ts";
import { counterUniform } from "../inference/counter_rng.ts";

/** Tolerances of the sampling check. */
export interface SamplingTolerance {
  /** Largest per-logit difference between worker and validator that honest work can show (nats). */
  logitEps: number;
  /** Additive slack on the CDF interval (absorbs float64 summation-order differences). */
  cdfMargin: number;
}

/**
 * Defaults: ε = 0.05 logits is an order of magnitude above the largest cross-thread and
 * fp16-scale logit difference measured on the built-in models (docs/PROOF.md); δ = 1e-6 covers
 * float64 summation order only.
 */
export const DEFAULT_SAMPLING_TOLERANCE: Readonly<SamplingTolerance> = Object.freeze({
  logitEps: 0.05,
  cdfMargin: 1e-6,
});

/** The outcome of checking one position. */
export interface SamplingCheck {
  /** True when the token is consistent with the rule within tolerance. */
  ok: boolean;
  /** The draw for this position (sampled jobs), NaN for greedy. */
  u: number;
  /** Lower end of the accepted draw interval (sampled), or the logit gap to the max (greedy). */
  lo: number;
  /** Upper end of the accepted draw interval (sampled), or the allowed gap (greedy). */
  hi: number;
}

/** The part of a job's parameters that decides which token is sampled at a position. */
export type SamplingRule = Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">;

/**
 * Check that `token` at output position `position` follows the rule from the logits row
 * `logits[offset .. offset+vocabSize)`.
 *
 * @example
 * ```ts
 * import { checkSampledToken } from "./sampling_check.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * checkSampledToken(logits, 1, 0, { temperature: 0, topK: 0, topP: 1, seed: 0 }).ok; // true
 * ```
 */
export function checkSampledToken(
  logits: Float32Array,
  token: number,
  position: number,
  params: SamplingRule,
  tolerance: SamplingTolerance = DEFAULT_SAMPLING_TOLERANCE,
  offset = 0,
  vocabSize: number = logits.length - offset,
): SamplingCheck {
  const eps2 = 2 * tolerance.logitEps;
  if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
    return { ok: false, u: NaN, lo: Infinity, hi: eps2 };
  }
  const lt = logits[offset + token];
  if (!(lt > -Infinity)) return { ok: false, u: NaN, lo: Infinity, hi: eps2 };
  if (params.temperature === 0) {
    let max = -Infinity;
    for (let i = 0; i < vocabSize; i++) {
      const v = logits[offset + i];
      if (v > max) max = v;
    }
    const gap = max - lt;
    return { ok: gap <= eps2, u: NaN, lo: gap, hi: eps2 };
  }

  const u = counterUniform(params.seed, position);
  const t = params.temperature;
  const r = eps2 / t;
  // Candidate ids (finite logits), descending. Weights relative to the max, in float64.
  const order: number[] = [];
  for (let i = 0; i < vocabSize; i++) if (logits[offset + i] > -Infinity) order.push(i);
  order.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  const max = logits[offset + order[0]];
  const weight = (i: number) => Math.exp((logits[offset + i] - max) / t);

  // Top-k: possibly kept ids are those with fewer than k ids beating them by more than 2ε.
  let pool = order;
  if (params.topK > 0 && order.length > params.topK) {
    const kth = logits[offset + order[params.topK - 1]];
    const possibly = order.filter((i) => logits[offset + i] >= kth - eps2);
    const definitely = order.filter((_, j) => j < params.topK).filter((i) =>
      countAbove(logits, offset, order, logits[offset + i] - eps2, i) < params.topK
    );
    if (!possibly.includes(token)) return { ok: false, u, lo: Infinity, hi: -Infinity };
    pool = possibly;
    return intervalCheck(pool, new Set(definitely), token, u, r, weight, logits, offset, eps2, {
      topP: params.topP,
      margin: tolerance.cdfMargin,
    });
  }
  return intervalCheck(pool, new Set(pool), token, u, r, weight, logits, offset, eps2, {
    topP: params.topP,
    margin: tolerance.cdfMargin,
  });
}

/** Number of ids in `order` other than `self` whose logit is ≥ `threshold`. */
function countAbove(
  logits: Float32Array,
  offset: number,
  order: readonly number[],
  threshold: number,
  self: number,
): number {
  let n = 0;
  for (const i of order) {
    if (logits[offset + i] < threshold) break;
    if (i !== self) n++;
  }
  return n;
}

function intervalCheck(
  pool: readonly number[],
  definitelyInPool: ReadonlySet<number>,
  token: number,
  u: number,
  r: number,
  weight: (i: number) => number,
  logits: Float32Array,
  offset: number,
  eps2: number,
  opts: { topP: number; margin: number },
): SamplingCheck {
  const lt = logits[offset + token];
  const er = Math.exp(r);
  const enr = Math.exp(-r);
  // Split the pool around the token: strictly above (by > 2ε), near-ties, strictly below.
  let above = 0;
  let ties = 0;
  let below = 0;
  let definiteBelow = 0;
  const wt = weight(token);
  // The top-k set itself is ambiguous at its boundary: normalise with the largest possible set
  // for lower bounds and the smallest (definite) set for upper bounds.
  let totalMax = 0;
  let totalMin = 0;
  for (const i of pool) {
    const w = weight(i);
    totalMax += w;
    if (definitelyInPool.has(i)) totalMin += w;
    if (i === token) continue;
    const l = logits[offset + i];
    if (l > lt + eps2) above += w;
    else if (l >= lt - eps2) ties += w;
    else {
      below += w;
      if (definitelyInPool.has(i)) definiteBelow += w;
    }
  }
  // Top-p: the token is possibly kept when the smallest possible mass before it is < topP.
  if (opts.topP < 1) {
    const beforeMin = (above * enr) / (above * enr + (totalMax - above) * er);
    if (beforeMin >= opts.topP + opts.margin) {
      return { ok: false, u, lo: Infinity, hi: -Infinity };
    }
    // Ids after the token may be cut: hiMax may only count those surely kept, i.e. whose
    // largest possible mass before them is still below topP.
    definiteBelow = 0;
    let running = above + ties + wt;
    for (const i of pool) {
      const l = logits[offset + i];
      if (i === token || l >= lt - eps2) continue;
      const rest = totalMin - running;
      const beforeMax = rest > 0 ? (running * er) / (running * er + rest * enr) : 1;
      if (beforeMax < opts.topP - opts.margin && definitelyInPool.has(i)) {
        definiteBelow += weight(i);
      } else break;
      running += weight(i);
    }
  }
  const loMin = (above * enr) / (above * enr + (wt + ties + below) * er);
  const hiNum = (above + ties + wt) * er;
  const hiMax = definiteBelow > 0 ? hiNum / (hiNum + definiteBelow * enr) : 1;
  const lo = loMin - opts.margin;
  const hi = hiMax + opts.margin;
  return { ok: u >= lo && u < hi, u, lo, hi };
}
