/**
 * The sampling rule: which token a position's logits and the job's parameters select. It is a
 * pure function that workers run while generating and validators run again over teacher-forced
 * logits, so every step is spelled out and fixed (see `docs/MODELS.md`, "Sampling rule"):
 *
 * 1. **Greedy** (`temperature` below `MIN_SAMPLING_TEMPERATURE`, 1e-6, 0 included:
 *    `isGreedyTemperature` in `protocols/job.ts`): the token with the largest logit; ties go to
 *    the id with the larger race noise `g_i` of step 6 (a coin keyed by seed, position and id,
 *    so no id is favoured: with the smallest id, a runtime that returns fp16 logits, whose
 *    rounding makes exact ties, always decided them against EOS, whose id is the highest, and
 *    the steering test saw an honest worker pass over ends it never took). NaN counts as −∞.
 *    `topK`/`topP` are ignored.
 * 2. **Order**: all ids sorted by logit descending, ties by id ascending. Ids whose logit is −∞
 *    or NaN are dropped (probability 0).
 * 3. **Top-k** (`topK > 0`): keep the first `topK` ids of that order.
 * 4. **Weights**: `w_i = exp((l_i − l_max) / temperature)` in float64 from the float32 logits;
 *    `p_i = w_i / Σ w` summed in order over the ids kept so far.
 * 5. **Top-p** (`topP < 1`): walking the order, keep ids up to and including the first at
 *    which the running sum of `p_i` reaches `topP` (≥); at least one id is kept.
 * 6. **Race noise**: `u = counterUniform(seed, t)` keys the position; each kept id i gets the
 *    uniform `U_i = raceUniform(u, i)` in (0, 1) and the Gumbel draw `g_i = −ln(−ln U_i)`
 *    (float64, `Math.log`).
 * 7. **Pick** the kept id with the largest score `s_i = l_i / temperature + g_i` (float64);
 *    ties go to the smallest id.
 *
 * Steps 6–7 are the Gumbel-max race: id i wins with probability `w_i / Σ_kept w`, the same
 * distribution an inverse-CDF draw gives, but the outcome depends on the logits only through
 * the comparison of the two best scores. Another machine's rounding of the logits (a few
 * thousandths of a nat) changes the winner only when those two are that close — a genuine
 * near-tie, at about 1 % of positions. An inverse-CDF draw moves every interval boundary with
 * the masses before it (and, in logit order, by a whole token's mass when two near-equal logits
 * swap), so a validator had to accept two or more tokens at 40–75 % of sampled positions: room
 * for a worker to steer the output (`proof/sampling_check.ts`, docs/PROOF.md "Sampling check").
 *
 * `raceUniform(u, i)`: with `K = u·2^53` (an integer), `kh = ⌊K / 2^21⌋`, `kl = K mod 2^21`,
 * `h(s) = fmix32(fmix32(fmix32(s ⊕ kh) ⊕ kl) ⊕ i)` (murmur3's 32-bit finaliser), it is
 * `(h(0x243f6a88)·2^21 + ⌊h(0x85a308d3) / 2^11⌋ + 0.5) / 2^53`.
 *
 * @module
 */
import { GENERATION_LIMITS, type GenerationParams, isGreedyTemperature } from "../protocols/job.ts";
import { counterUniform } from "./counter_rng.ts";
import { InvalidGenerationParamsError } from "./errors.ts";

/** The parameters the rule reads (a subset of {@link GenerationParams}). */
export type SamplingParams = Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">;

/** Result of {@link sampleToken}. */
export interface SampledToken {
  /** The selected token id. */
  token: number;
}

/** The ids a sampled position keeps (steps 2–5), with their probabilities. */
export interface SamplingDistribution {
  /** Kept token ids in rule order (most likely first). */
  ids: Int32Array;
  /** `probs[j]`: probability of `ids[j]`, `w / Σ_kept w`. */
  probs: Float64Array;
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
 * Steps 2–5 of the rule: the ids a sampled (not greedy) position can produce and their
 * probabilities. Throws {@link InvalidGenerationParamsError} when every logit is −∞/NaN.
 */
export function samplingDistribution(
  logits: ArrayLike<number>,
  params: SamplingParams,
): SamplingDistribution {
  const { ids, weights } = keptIds(logits, params, true);
  let total = 0;
  for (const w of weights) total += w;
  return { ids, probs: weights.map((w) => w / total) };
}

/**
 * The kept ids and their weights. Rule order is needed only for a cut: without one (`topK` 0 or
 * ≥ the ids, `topP` 1) every finite id is kept and, unless `sorted`, they come in id order.
 */
function keptIds(
  logits: ArrayLike<number>,
  params: SamplingParams,
  sorted: boolean,
): { ids: Int32Array; weights: Float64Array } {
  let order: number[] = [];
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > -Infinity) {
      order.push(i);
      if (logits[i] > max) max = logits[i];
    }
  }
  if (order.length === 0) throw new InvalidGenerationParamsError("no token has finite logit");
  const cutK = params.topK > 0 && order.length > params.topK;
  if (sorted || cutK || params.topP < 1) {
    order.sort((a, b) => (logits[b] - logits[a]) || (a - b));
  }
  if (cutK) order = order.slice(0, params.topK);
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
  return { ids: Int32Array.from(order.slice(0, kept)), weights: weights.subarray(0, kept) };
}

/** murmur3's 32-bit finaliser: a bijection on 32-bit words with full avalanche. */
function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** 2^21 and 2^-53, for splitting and scaling 53-bit integers. */
const TWO_POW_21 = 2 ** 21;
const TWO_POW_MINUS_53 = 2 ** -53;
/**
 * Step 1, the greedy choice at output position `position`: the largest logit, NaN as −∞; equal
 * logits go to the larger race noise of the position ({@link raceNoise}), drawn only for them.
 */
function greedyToken(logits: ArrayLike<number>, seed: number, position: number): number {
  let best = 0;
  let bestValue = -Infinity;
  let noise: ((id: number) => number) | undefined;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    } else if (v === bestValue && v > -Infinity) {
      noise ??= raceNoise(seed, position);
      if (noise(i) > noise(best)) best = i;
    }
  }
  return best;
}

/** The two finaliser seeds of `raceUniform` (digits of π, as in many hash constants). */
const RACE_SEED_HIGH = 0x243f6a88;
const RACE_SEED_LOW = 0x85a308d3;

/**
 * Step 6: the race noise of output position `position` under `seed`, as a function of the
 * token id: `g(i) = −ln(−ln raceUniform(counterUniform(seed, position), i))`, a standard Gumbel
 * draw. Validators use it to recompute the scores of step 7.
 *
 * @example
 * ```ts
 * import { raceNoise } from "./sampler.ts";
 * const g = raceNoise(42, 0);
 * g(7) === raceNoise(42, 0)(7); // true: a pure function of (seed, position, id)
 * ```
 */
export function raceNoise(seed: number, position: number): (id: number) => number {
  const key = counterUniform(seed, position) / TWO_POW_MINUS_53;
  const kh = Math.floor(key / TWO_POW_21) >>> 0;
  const kl = key % TWO_POW_21;
  const h = (s: number, id: number) => fmix32(fmix32(fmix32(s ^ kh) ^ kl) ^ id);
  return (id) => {
    const u = (h(RACE_SEED_HIGH, id) * TWO_POW_21 + (h(RACE_SEED_LOW, id) >>> 11) + 0.5) *
      TWO_POW_MINUS_53;
    return -Math.log(-Math.log(u));
  };
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
  if (isGreedyTemperature(params.temperature)) {
    return { token: greedyToken(logits, params.seed, position) };
  }
  const { ids } = keptIds(logits, params, false);
  const noise = raceNoise(params.seed, position);
  // The first kept id starts the race, so a token is always one of them (keptIds keeps ≥ 1).
  let token = ids[0];
  let best = logits[token] / params.temperature + noise(token);
  for (let j = 1; j < ids.length; j++) {
    const id = ids[j];
    const score = logits[id] / params.temperature + noise(id);
    if (score > best || (score === best && id < token)) {
      best = score;
      token = id;
    }
  }
  return { token };
}
