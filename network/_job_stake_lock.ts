/**
 * The most stake a text job's receipt can lock in a ledger, known before the work: the receipt
 * locks `slashMultiplier ×` its reward (`proof/_ledger_amounts.ts`, the ledger's own
 * `rewardOf`/`lockOf`), and its reward grows with the output (at most the job's `maxTokens`) and
 * with the prompt tokens it signs. A worker whose free stake is less has its honest receipt
 * refused `insufficient_stake`, unpaid, after the work (review s78 vprompt F2). So the router
 * ranks a worker as backed for a job only when its free stake covers this (`worker_choice.ts`),
 * and a worker refuses a job its own ledger shows it cannot back before computing it
 * (`node/_stake_backed_port.ts`). Not part of the public API.
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";
import { MAX_JOB_INPUT_BYTES, promptTokenBound } from "../protocols/prompt_token_bound.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { type LedgerTerms, lockOf, rewardOf } from "../proof/_ledger_amounts.ts";
import type { PromptTokenCount } from "./_prompt_token_claim.ts";

/**
 * The terms a node's ledger runs with: `node/_node_children.ts` opens the validator's ledger with
 * the default economics and no price table, so every model at `defaultTokenPrice`.
 */
export const DEFAULT_LEDGER_TERMS: LedgerTerms = Object.freeze({
  economics: DEFAULT_ECONOMICS,
  tokenPrice: () => DEFAULT_ECONOMICS.defaultTokenPrice,
});

/**
 * The most prompt tokens `job`'s receipt can honestly sign, by what this node can count: its own
 * `count` (exact with the model's tokenizer, else the model's window), or without one, one token
 * per byte of the prompt and of the largest input (`promptTokenBound`: a bound for byte-level
 * vocabularies, which a normalizing tokenizer can exceed; the validators re-count what is signed).
 */
export function jobPromptTokens(job: TextJob, count: PromptTokenCount | undefined): number {
  if (typeof count === "number") return count;
  if (count !== undefined) return count.atMost;
  return promptTokenBound(job.prompt, job.input === undefined ? 0 : MAX_JOB_INPUT_BYTES);
}

/**
 * The stake `job`'s receipt locks at most under `terms`: `maxTokens` output tokens and
 * {@link jobPromptTokens} prompt tokens, priced and locked as the ledger prices and locks them.
 *
 * @example
 * ```ts
 * import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
 * import { jobStakeLock } from "./_job_stake_lock.ts";
 * const job = {
 *   kind: "text" as const,
 *   model: "m",
 *   prompt: "hi",
 *   params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8 },
 *   nonce: "n",
 * };
 * jobStakeLock(job, 16); // 20 × (8 + 16 / 16) = 180 at the default price of 1
 * ```
 */
export function jobStakeLock(
  job: TextJob,
  count: PromptTokenCount | undefined,
  terms: LedgerTerms = DEFAULT_LEDGER_TERMS,
): number {
  const work = {
    model: job.model,
    kind: "text" as const,
    tokenCount: job.params.maxTokens,
    promptTokens: jobPromptTokens(job, count),
  };
  return lockOf(terms, rewardOf(terms, work));
}
