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
import type { TextJob } from "../protocols/job.ts";
import { jobPromptText } from "../protocols/job_input.ts";

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
  /**
   * What the model's tokenizer counts for the prompt; at intake, for a job whose input is not at
   * hand or a count past the model's window, the most that window allows
   * ({@link promptTokensAtIntake}).
   */
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

/** What {@link promptTokensAtIntake} needs of the receipt's model: its tokenizer and window. */
export interface PromptCountingModel {
  /** The model's context window, in tokens: an honest prompt leaves room for one more. */
  readonly info: { readonly contextLength: number };
  /** The model's tokenizer, as generation encodes the prompt. */
  readonly tokenizer: { encode(text: string): number[] };
}

/**
 * The violation a validator sees in `receipt`'s prompt-token count when it records the receipt,
 * before its coin: tokenizing is free next to a forward pass, so every receipt is re-counted,
 * not only the sampled ones (review s78 vprompt F1). A job without an input is counted exactly
 * ({@link promptTokensViolation}), and so is one that names an input whose bytes the validator
 * holds (`input`, read from its own store: the job's text is then whole); one whose input it does
 * not hold (its bytes come only with the proof data, and a CID says nothing of the size) is held
 * to the model's window: generation refuses a prompt that fills it
 * (`checkPromptFits`), so no honest count reaches `contextLength`, and a count that does is a
 * violation without tokenizing (its `counted` is then the window's most, `contextLength − 1`,
 * whether the job names an input or not). Null when the count holds, or
 * the receipt signs none. A violation is the same `prompt_tokens` fraud a challenge proves: the
 * caller opens the challenge whatever the coin, and the challenge convicts on the prompt alone.
 *
 * @example
 * ```ts
 * import { promptTokensAtIntake } from "./prompt_token_check.ts";
 * import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../protocols/job.ts";
 * const job: TextJob = {
 *   kind: "text", model: "m", prompt: "hi", params: { ...DEFAULT_GENERATION_PARAMS }, nonce: "1",
 * };
 * const model = { info: { contextLength: 256 }, tokenizer: { encode: (s: string) => [...s].map(() => 0) } };
 * promptTokensAtIntake({ promptTokens: 5 }, job, model)?.counted; // 2
 * promptTokensAtIntake({ promptTokens: 100_000 }, job, model)?.counted; // 255: not tokenized
 * ```
 */
export function promptTokensAtIntake(
  receipt: Pick<Receipt, "promptTokens">,
  job: TextJob,
  model: PromptCountingModel,
  input?: Uint8Array,
): PromptTokensViolation | null {
  const signed = receipt.promptTokens;
  if (signed === undefined) return null;
  const most = model.info.contextLength - 1;
  // Past the window, the count is wrong on its face: no prompt is tokenized for it, so a prompt
  // of 440,000 characters signed so costs a comparison (review s78 vfinal F3).
  if (signed > most) return { reason: PROMPT_TOKENS_REASON, position: 0, signed, counted: most };
  if (job.input !== undefined && input === undefined) return null;
  // With an input: throws `JobInputError` for bytes no honest worker reads (not the CID's, not
  // text, past the job's room); the caller challenges what it cannot count.
  return promptTokensViolation(receipt, model.tokenizer.encode(jobPromptText(job, input)).length);
}
