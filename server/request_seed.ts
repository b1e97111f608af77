/**
 * The seed of an OpenAI request that samples without one. OpenAI's answers to the same sampled
 * request vary from call to call unless it sends a `seed`, and clients count on that: a chat UI's
 * "regenerate", self-consistency voting, or N requests standing in for `n: N` (which the node
 * refuses). A job's seed is part of its params, so one drawn here is as reproducible as one sent:
 * the receipt signs it, and a validator re-runs the job with it. A request that sets `top_p` or
 * `top_k` without a `temperature` samples at 1 (`toGenerationParams`), so it draws one too. A
 * greedy request (temperature below `MIN_SAMPLING_TEMPERATURE`, or `top_k` 1) draws nothing: its seed picks no token, and it
 * keeps the job the default seed makes. The WebSocket API is Veriflow's own and keeps its
 * documented default seed.
 *
 * @module
 */
import { type GenerationParams, MIN_SAMPLING_TEMPERATURE } from "../protocols/job.ts";

/** Random bits of a drawn seed: a safe integer has 53. */
const SEED_HIGH_BITS = 2 ** 21;
const LOW_WORD = 2 ** 32;

/**
 * A fresh job seed: a uniformly random integer in [0, 2^53 − 1], a safe integer within the job's
 * seed range (`GENERATION_LIMITS`).
 *
 * @example
 * ```ts
 * import { drawRequestSeed } from "./request_seed.ts";
 * Number.isSafeInteger(drawRequestSeed()); // true
 * ```
 */
export function drawRequestSeed(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high % SEED_HIGH_BITS) * LOW_WORD + low;
}

/**
 * The job seed of an OpenAI request: `params.seed` when the request sent a `seed` or does not
 * sample, else `draw()`.
 *
 * @param params The request's generation params (defaults filled in).
 * @param sentSeed The request's `seed` as sent (`null` counts as absent, as for every field).
 * @param draw Where a fresh seed comes from; default {@link drawRequestSeed}.
 *
 * @example
 * ```ts
 * import { requestJobSeed } from "./request_seed.ts";
 * import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
 * const sampled = { ...DEFAULT_GENERATION_PARAMS, temperature: 0.8 };
 * requestJobSeed(sampled, 7); // 7
 * requestJobSeed(sampled, undefined, () => 42); // 42
 * requestJobSeed(DEFAULT_GENERATION_PARAMS, undefined, () => 42); // 0: greedy
 * ```
 */
export function requestJobSeed(
  params: Readonly<GenerationParams>,
  sentSeed: number | null | undefined,
  draw: () => number = drawRequestSeed,
): number {
  const samples = params.temperature >= MIN_SAMPLING_TEMPERATURE && params.topK !== 1;
  return sentSeed != null || !samples ? params.seed : draw();
}
