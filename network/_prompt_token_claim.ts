/**
 * A router's check of the prompt-token count a worker's receipt signs (`Receipt.promptTokens`),
 * before it accepts the receipt and hands it to its validator (`network_inference_port.ts`). The
 * count is paid (`proof/_ledger_amounts.ts`), so a worker gains by inflating it. Where this node
 * holds the job's model (`_held_model_prompt_counter.ts`) it asks the exact count, or, for a job
 * whose input it does not hold, no more than the model's window allows. Where it does not hold
 * the model it refuses only a count past the window the worker itself stated for the job's model
 * (its `start` event's `contextLength`): generation refuses a prompt that fills it, so an honest
 * worker never signs one (stop 78 left it open: such a router took any count). That window is
 * the worker's word, not the model's (the model's `config.json` is not here), so a worker that
 * states a larger one passes here. The prompt's bytes are no bound: a tokenizer whose normalizer
 * lengthens text counts more (NFKC counts the 3-byte "ﷺ" as 33 tokens, review s78 vprompt F4),
 * and refusing an honest count kept the worker off the model. The validators that hold the model re-count
 * every receipt they record (`proof/prompt_token_check.ts`, `promptTokensAtIntake`), and a wrong
 * count is slashed there.
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";

/**
 * A router's count of a job's prompt tokens: exact (a number), or only the most an honest
 * worker can count (`atMost`: the model's window, where the router cannot count the whole prompt).
 */
export type PromptTokenCount = number | { atMost: number };

/**
 * The router's own count of `job`'s prompt tokens, with the tokenizer of the job's model; undefined
 * where it holds no copy of the model.
 */
export type PromptTokenCounter = (job: TextJob) => PromptTokenCount | undefined;

/**
 * Why a receipt's signed prompt-token count cannot be accepted for `job`: it is not `count`'s,
 * or past its `atMost`; where nothing here counts the job, past `statedWindow − 1`. Undefined
 * when it holds, when nothing here bounds the job, or the receipt signs no count (one from before
 * the field, paid for its output alone).
 *
 * @param statedWindow The context length the worker stated for the job's model in its `start`
 *   (`ServedModelInfo.contextLength`), when the router saw one.
 * @example
 * ```ts ignore
 * promptTokensRefusal({ promptTokens: 500 }, job, () => 5); // "it signs 500 prompt tokens, …"
 * promptTokensRefusal({ promptTokens: 500 }, job, () => ({ atMost: 255 })); // "… (255)"
 * promptTokensRefusal({ promptTokens: 500 }, job, undefined, 256); // "… it stated is 256"
 * promptTokensRefusal({ promptTokens: 500 }, job); // undefined: the validators re-count it
 * ```
 */
export function promptTokensRefusal(
  receipt: { promptTokens?: number },
  job: TextJob,
  count?: PromptTokenCounter,
  statedWindow?: number,
): string | undefined {
  const signed = receipt.promptTokens;
  if (signed === undefined) return undefined;
  const counted = count?.(job);
  if (counted === undefined) {
    return statedWindow !== undefined && signed >= statedWindow
      ? `it signs ${signed} prompt tokens, and the model's window it stated is ${statedWindow}`
      : undefined;
  }
  if (typeof counted === "number") {
    return signed === counted
      ? undefined
      : `it signs ${signed} prompt tokens, and the prompt sent has ${counted}`;
  }
  return signed > counted.atMost
    ? `it signs ${signed} prompt tokens, more than the model's window allows (${counted.atMost})`
    : undefined;
}
