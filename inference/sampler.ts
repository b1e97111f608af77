/**
 * The sampling rule: which token a position's logits and the job's parameters select. It is a
 * pure function that workers run while generating and validators run again over teacher-forced
 * logits, so every step is spelled out and fixed (see `docs/MODELS.md`, "Sampling rule"):
 *
 * 1. **Greedy** (`temperature === 0`): the token with the largest logit; ties go to the
 *    smallest id. NaN counts as −∞. `topK`/`topP` are ignored.
 * 2. **Order**: all ids sorted by logit descending, ties by id ascending. Ids whose logit is −∞
 *    or NaN are dropped (probability 0).
 * 3. **Top-k** (`topK > 0`): keep the first `topK` ids of that order.
 * 4. **Weights**: `w_i = exp((l_i − l_max) / temperature)` in float64 from the float32 logits;
 *    `p_i = w_i / Σ w` summed in order over the ids kept so far.
 * 5. **Top-p** (`topP < 1`): walking the order, keep ids up to and including the first at
 *    which the running sum of `p_i` reaches `topP` (≥); at least one id is kept.
 * 6. **CDF**: over the kept ids, in order, `c_j = (Σ_{i ≤ j} w_i) / (Σ_kept w)`.
 * 7. **Draw**: `u = counterUniform(seed, t)`; the token is the first kept id with `c_j > u`
 *    (the last kept id if rounding leaves none). So id `j` owns the interval
 *    `[c_{j−1}, c_j)` (`c_{−1} = 0`, the last kept id's interval ends at 1).
 *
 * @module
 */
import { GENERATION_LIMITS, type GenerationParams } from "../protocols/job.ts";
import { counterUniform } from "./counter_rng.ts";
import { InvalidGenerationParamsError } from "./errors.ts";

/** The parameters the rule reads (a subset of {@link GenerationParams}). */
export type SamplingParams = Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">;

/** Result of {@link sampleToken}. */
export interface SampledToken {
  /** The selected token id. */
  token: number;
  /** The draw `counterUniform(seed, position)` (computed for greedy too, where it is unused). */
  u: number;
}

/** The kept ids of a sampled position in rule order, with their cumulative distribution. */
export interface SamplingDistribution {
  /** Kept token ids, most likely first. */
  ids: Int32Array;
  /** `cdf[j]` = probability mass of `ids[0..j]`; the last entry is forced to 1. */
  cdf: Float64Array;
}

/**
 * Check sampling parameters against {@link GENERATION_LIMITS}; throws
 * {@link InvalidGenerationParamsError} on the first bad one. Hand-written rather than the zod
 * `generationParamsSchema` because it runs on every draw; the bounds are the same.
 */
export function validateSamplingParams(params: SamplingParams): void {
  const { temperature, topK, topP, seed } = params;
  const { maxTemperature, maxTopK, minSeed, maxSeed } = GENERATION_LIMITS;
  if (!(temperature >= 0 && temperature <= maxTemperature)) {
    throw new InvalidGenerationParamsError(
      `temperature must be in [0, ${maxTemperature}], got ${temperature}`,
    );
  }
  if (!Number.isSafeInteger(topK) || topK < 0 || topK > maxTopK) {
    throw new InvalidGenerationParamsError(
      `topK must be an integer in [0, ${maxTopK}], got ${topK}`,
    );
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new InvalidGenerationParamsError(`topP must be in (0, 1], got ${topP}`);
  }
  if (!Number.isSafeInteger(seed) || seed < minSeed || seed > maxSeed) {
    throw new InvalidGenerationParamsError(
      `seed must be an integer in [${minSeed}, ${maxSeed}], got ${seed}`,
    );
  }
}

/** The greedy choice: largest logit, smallest id on ties, NaN as −∞. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * Steps 2–6 of the rule: the ids a sampled (temperature > 0) position can produce and their
 * CDF. Throws {@link InvalidGenerationParamsError} when every logit is −∞/NaN.
 */
export function samplingDistribution(
  logits: ArrayLike<number>,
  params: SamplingParams,
): SamplingDistribution {
  let order: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] > -Infinity) order.push(i);
  if (order.length === 0) throw new InvalidGenerationParamsError("no token has finite logit");
  order.sort((a, b) => (logits[b] - logits[a]) || (a - b));
  if (params.topK > 0 && order.length > params.topK) order = order.slice(0, params.topK);

  const max = logits[order[0]];
  const weights = new Float64Array(order.length);
  let total = 0;
  for (let j = 0; j < order.length; j++) {
    weights[j] = Math.exp((logits[order[j]] - max) / params.temperature);
    total += weights[j];
  }
  let kept = order.length;
  if (params.topP < 1) {
    let running = 0;
    for (let j = 0; j < order.length; j++) {
      running += weights[j] / total;
      if (running >= params.topP) {
        kept = j + 1;
        break;
      }
    }
  }
  let keptTotal = 0;
  for (let j = 0; j < kept; j++) keptTotal += weights[j];
  const ids = new Int32Array(kept);
  const cdf = new Float64Array(kept);
  let cumulative = 0;
  for (let j = 0; j < kept; j++) {
    ids[j] = order[j];
    cumulative += weights[j];
    cdf[j] = cumulative / keptTotal;
  }
  cdf[kept - 1] = 1;
  return { ids, cdf };
}

/**
 * Select the token for output position `position` (0-based index among generated tokens).
 * Pure: the same logits, params and position always give the same token.
 *
 * @example
 * ```ts
 * import { sampleToken } from "./sampler.ts";
 * const logits = new Float32Array([0.1, 2.0, 0.3]);
 * sampleToken(logits, { temperature: 0, topK: 0, topP: 1, seed: 0 }, 0).token; // 1
 * ```
 */
export function sampleToken(
  logits: ArrayLike<number>,
  params: SamplingParams,
  position: number,
): SampledToken {
  validateSamplingParams(params);
  const u = counterUniform(params.seed, position);
  if (params.temperature === 0) return { token: argmax(logits), u };
  const { ids, cdf } = samplingDistribution(logits, params);
  for (let j = 0; j < ids.length; j++) if (cdf[j] > u) return { token: ids[j], u };
  return { token: ids[ids.length - 1], u };
}

/**
 * The `[lo, hi)` interval of the draw `u` that selects `token` under the rule, or `null` when
 * the rule can never select it (cut by top-k/top-p, or not the argmax under greedy, where the
 * argmax owns `[0, 1)`). A validator checks `lo - margin ≤ u < hi + margin` to tolerate
 * floating-point differences between its logits and the worker's.
 */
export function samplingInterval(
  logits: ArrayLike<number>,
  params: SamplingParams,
  token: number,
): [number, number] | null {
  validateSamplingParams(params);
  if (params.temperature === 0) return argmax(logits) === token ? [0, 1] : null;
  const { ids, cdf } = samplingDistribution(logits, params);
  const j = ids.indexOf(token);
  if (j < 0) return null;
  return [j === 0 ? 0 : cdf[j - 1], cdf[j]];
}
