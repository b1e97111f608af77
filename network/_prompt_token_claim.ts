/**
 * A router's check of the prompt-token count a worker's receipt signs (`Receipt.promptTokens`),
 * before it accepts the receipt and hands it to its validator (`network_inference_port.ts`). The
 * count is paid (`proof/_ledger_amounts.ts`), so a worker gains by inflating it; the router sent
 * the prompt and can count it itself, for free, where a validator re-counts only the receipts
 * it samples. With its own tokenizer for the job's model the router asks the exact count; without
 * one it still refuses a count no prompt of these bytes can have ({@link maxPromptTokens}).
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";
import { maxPromptTokens } from "../inference/remote_port.ts";

/**
 * The router's own count of `job`'s prompt tokens, with the tokenizer of the job's model; undefined
 * where it has none (it holds no copy of the model, or the job names an input it does not hold).
 */
export type PromptTokenCounter = (job: TextJob) => number | undefined;

/**
 * Why a receipt's signed prompt-token count cannot be accepted for `job`: it is not `count`'s
 * (when that counts the job), or it is more than the prompt's bytes allow; undefined when it
 * holds, or the receipt signs no count (one from before the field, paid for its output alone).
 *
 * @example
 * ```ts ignore
 * promptTokensRefusal({ promptTokens: 500 }, job, () => 5); // "it signs 500 prompt tokens, …"
 * ```
 */
export function promptTokensRefusal(
  receipt: { promptTokens?: number },
  job: TextJob,
  count?: PromptTokenCounter,
): string | undefined {
  const signed = receipt.promptTokens;
  if (signed === undefined) return undefined;
  const counted = count?.(job);
  if (counted !== undefined) {
    return signed === counted
      ? undefined
      : `it signs ${signed} prompt tokens, and the prompt sent has ${counted}`;
  }
  const most = maxPromptTokens(job);
  return signed > most
    ? `it signs ${signed} prompt tokens, more than the prompt sent can have (${most})`
    : undefined;
}
