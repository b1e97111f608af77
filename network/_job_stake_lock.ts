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
import { boundedWindow } from "../inference/remote_port.ts";

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
 * vocabularies, which a normalizing tokenizer can exceed; the validators re-count what is signed),
 * and, where `window` is known (the model's as its workers list it, capped by `boundedWindow`),
 * no more than it leaves room for: a router without the model priced an input job's prompt at
 * the whole 256 KiB input room, 206 times the worker's own lock, so a worker with ample stake
 * ranked "not backed" and an unstaked stranger got the job (review s79 vmoney F5).
 *
 * @param window The model's window as this node knows it (its workers' listings), if it does.
 */
export function jobPromptTokens(
  job: TextJob,
  count: PromptTokenCount | undefined,
  window?: number,
): number {
  if (typeof count === "number") return count;
  if (count !== undefined) return count.atMost;
  const bytes = promptTokenBound(job.prompt, job.input === undefined ? 0 : MAX_JOB_INPUT_BYTES);
  return window === undefined ? bytes : Math.min(bytes, Math.max(0, boundedWindow(window) - 1));
}

/**
 * The stake `job`'s receipt locks at most under `terms`: `maxTokens` output tokens and
 * {@link jobPromptTokens} prompt tokens (with `window`, the model's known window, where this node
 * has no `count`), priced and locked as the ledger prices and locks them.
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
  window?: number,
): number {
  const work = {
    model: job.model,
    kind: "text" as const,
    tokenCount: job.params.maxTokens,
    promptTokens: jobPromptTokens(job, count, window),
  };
  return lockOf(terms, rewardOf(terms, work));
}
