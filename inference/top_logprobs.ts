/**
 * The most likely tokens of a logits row and their log-probabilities: what OpenAI's
 * `top_logprobs` (and completions' `logprobs: N`) return next to each generated token.
 *
 * They are computed where the row is — next to the sampler and the fingerprint, in the model
 * worker in worker mode — and only when a request asks, so a token carries O(k) numbers and
 * never the row, and a request that asks for none pays nothing. They are an output of the
 * request, not part of the job: the sampled token, its fingerprint and so the receipt are the
 * same whether or not anyone asked.
 *
 * The log-probabilities are the model's log-softmax before temperature and cuts, computed with
 * the same float64 arithmetic as the fingerprint's `logProb` (`proof/fingerprint.ts`), so the
 * chosen token's entry equals its `logprob` bit for bit.
 *
 * @module
 */

/**
 * Most alternatives one token may carry: OpenAI's bound for chat `top_logprobs`. It bounds the
 * per-token cost (one insertion pass of this width over the row) and the size of each token
 * event on the wire.
 */
export const MAX_TOP_LOGPROBS = 20;

/** A token id and its log-probability under the model. */
export interface TokenLogprob {
  /** The token id. */
  tokenId: number;
  /** Natural log of its probability (log-softmax of the row), ≤ 0. */
  logprob: number;
}

/** One of the most likely tokens at a position, as a generated token carries it. */
export interface TopLogprob extends TokenLogprob {
  /** The token's text on its own (the tokenizer's decoding of this one id). */
  text: string;
}

/**
 * The `k` most likely tokens of `row`, most likely first (ties: smaller id first; a display
 * order only: greedy decoding breaks ties by the position's race noise), with their
 * log-probabilities. Ids whose logit is −∞ or NaN have
 * probability 0 and are never listed, so a row with fewer finite logits yields fewer entries.
 * `k` 0 returns `[]` without reading the row.
 *
 * @example
 * ```ts
 * import { topLogprobsOf } from "./top_logprobs.ts";
 * const top = topLogprobsOf(new Float32Array([0, 2, 1]), 2);
 * top.map((t) => t.tokenId); // [1, 2]
 * ```
 *
 * @param row One logits row (`vocabSize` values).
 * @param k How many to return.
 * @returns Up to `k` entries, log-probabilities descending.
 */
export function topLogprobsOf(row: ArrayLike<number>, k: number): TokenLogprob[] {
  if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`k must be an integer ≥ 0, got ${k}`);
  if (k === 0) return [];
  const ids = new Int32Array(k);
  const values = new Float64Array(k);
  let kept = 0;
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v > max) max = v;
    if (!(v > -Infinity)) continue; // NaN or −∞: probability 0
    if (kept === k && !(v > values[kept - 1])) continue;
    // Insertion from the end: an equal value stops the walk, so ties keep ascending ids.
    let j = kept < k ? kept++ : kept - 1;
    while (j > 0 && v > values[j - 1]) {
      values[j] = values[j - 1];
      ids[j] = ids[j - 1];
      j--;
    }
    values[j] = v;
    ids[j] = i;
  }
  // The normaliser exactly as the fingerprint computes it (`proof/fingerprint.ts`: over the
  // finite logits, NaN and −∞ having probability 0; a +∞ logit taking all the mass, shared with
  // the other +∞ ones), so the chosen token's entry and its `logProb` agree to the last bit.
  const top: TokenLogprob[] = [];
  if (max === Infinity) {
    let tied = 0;
    for (let i = 0; i < row.length; i++) if (row[i] === Infinity) tied++;
    for (let j = 0; j < kept; j++) {
      top.push({ tokenId: ids[j], logprob: values[j] === Infinity ? -Math.log(tied) : -Infinity });
    }
    return top;
  }
  let expSum = 0;
  for (let i = 0; i < row.length; i++) {
    if (Number.isFinite(row[i])) expSum += Math.exp(row[i] - max);
  }
  const lse = max + Math.log(expSum);
  for (let j = 0; j < kept; j++) top.push({ tokenId: ids[j], logprob: values[j] - lse });
  return top;
}
