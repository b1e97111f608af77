/**
 * The check of a receipt's signed prompt-token count (`Receipt.promptTokens`): what the worker
 * is paid for its prefill (`_ledger_amounts.ts`), so a count it inflates earns it credit for work
 * it never did. The validator holds the prompt when it re-runs a job (the job, and an input's
 * bytes served with the proof data), so it re-tokenizes the prompt with the model's tokenizer and
 * compares: nothing else is needed, no forward pass. A count that differs is fraud of kind
 * `termination` at position 0, the kind that already convicts on the prompt alone (an empty
 * prompt, one too long for the context), so any node that checks fraud proofs re-counts it the
 * same way (`fraud_check.ts`) and the worker is slashed as for any other refuted receipt.
 *
 * A receipt without the field (signed before it existed) claims nothing here and passes.
 *
 * @module
 */
import type { Receipt } from "../protocols/receipt.ts";

/** The verdict reason (and fraud reason) of a receipt whose prompt-token count is not the prompt's. */
export const PROMPT_TOKENS_REASON = "prompt_tokens";

/** A receipt's prompt-token count that is not the prompt's: where it is cited, and the two counts. */
export interface PromptTokensViolation {
  /** Always {@link PROMPT_TOKENS_REASON}. */
  reason: typeof PROMPT_TOKENS_REASON;
  /** Cited position: 0, since the lie is about the prompt, before any output. */
  position: 0;
  /** What the receipt signs. */
  signed: number;
  /** What the model's tokenizer counts for the prompt. */
  counted: number;
}

/**
 * The violation when `receipt` signs a prompt-token count other than `promptLength` (the
 * prompt's tokens as the receipt's model encodes them); null when it signs that count or none.
 *
 * @example
 * ```ts
 * import { promptTokensViolation } from "./prompt_token_check.ts";
 * promptTokensViolation({ promptTokens: 500 }, 5)?.reason; // "prompt_tokens"
 * promptTokensViolation({}, 5); // null: an older receipt claims nothing
 * ```
 */
export function promptTokensViolation(
  receipt: Pick<Receipt, "promptTokens">,
  promptLength: number,
): PromptTokensViolation | null {
  const signed = receipt.promptTokens;
  if (signed === undefined || signed === promptLength) return null;
  return { reason: PROMPT_TOKENS_REASON, position: 0, signed, counted: promptLength };
}
