/**
 * A router's check of the prompt-token count a worker's receipt signs (`Receipt.promptTokens`),
 * before it accepts the receipt and hands it to its validator (`network_inference_port.ts`). The
 * count is paid (`proof/_ledger_amounts.ts`), so a worker gains by inflating it. Where this node
 * holds the job's model (`_held_model_prompt_counter.ts`) it asks the exact count, or, for a job
 * whose input it does not hold, no more than the model's window allows. Where it does not hold
 * the model it refuses only a count past the window the worker itself stated for the job's model
 * (its `start` event's `contextLength`; the window the workers' listings give the model only where
 * it stated none: a listing is any key's claim, review s79 vlate F1), capped by
 * `MAX_STATED_CONTEXT_TOKENS` and by `NFKC_MAX_EXPANSION` tokens a byte of the prompt
 * (`inference/remote_port.ts`): generation refuses a prompt that fills the window, and no
 * normalizer makes more of a byte, so an honest worker never signs one (stop 78 left it open: such
 * a router took any count; review s79 vlate F4: a stated 2^20 passed 1,048,575 for "a"). Every
 * receipt must also sign the count its worker's own `start` gave, the count its client was told
 * (review s79 vmoney F3: a worker told 1 and signed 255; after a failover, the start of the worker
 * that finished the job, not the lost first worker's: review s81 failover F2). The prompt's
 * bytes themselves bound a count only where no window is stated or listed: a tokenizer whose
 * normalizer lengthens text counts more (NFKC counts the 3-byte "ﷺ" as 33 tokens, review s78
 * vprompt F4), and refusing an honest count kept the worker off the model. The validators that
 * hold the model re-count every receipt they record (`proof/prompt_token_check.ts`,
 * `promptTokensAtIntake`), and a wrong count is slashed there.
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";
import {
  MAX_STATED_CONTEXT_TOKENS,
  maxPromptTokens,
  NFKC_MAX_EXPANSION,
} from "../inference/remote_port.ts";

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

/** What a router saw of the worker for a receipt's prompt count (see {@link promptTokensRefusal}). */
export interface PromptTokenSeen {
  /**
   * The count the worker's own `start` gave (held to its ceiling: what a client of it is told);
   * absent where no start was seen (a `duplicate_job`'s receipt).
   */
  started?: number;
  /** The window the worker stated in its `start` (`ServedModelInfo.contextLength`). */
  stated?: number;
  /** The model's window as the router knows it (the workers' listings): used where none is stated. */
  known?: number;
}

/**
 * Why a receipt's signed prompt-token count cannot be accepted for `job`: it is not the count
 * the worker's own `start` gave (`seen.started`: what the client was told; an honest worker
 * signs the count it counted); it is not `count`'s, or past its `atMost`; where nothing here
 * counts the job, past `maxPromptTokens` (`inference/remote_port.ts`). Undefined when it holds, or the receipt signs
 * no count (one from before the field, paid for its output alone).
 *
 * @param seen What the router saw of the worker for this job.
 * @example
 * ```ts ignore
 * promptTokensRefusal({ promptTokens: 500 }, job, () => 5); // "it signs 500 prompt tokens, …"
 * promptTokensRefusal({ promptTokens: 500 }, job, () => ({ atMost: 255 })); // "… (255)"
 * promptTokensRefusal({ promptTokens: 500 }, job, undefined, { stated: 256 }); // "… (255)"
 * promptTokensRefusal({ promptTokens: 500 }, job, undefined, { started: 3 }); // "… start …"
 * ```
 */
export function promptTokensRefusal(
  receipt: { promptTokens?: number },
  job: TextJob,
  count?: PromptTokenCounter,
  seen: PromptTokenSeen = {},
): string | undefined {
  const signed = receipt.promptTokens;
  if (signed === undefined) return undefined;
  // What the count may be first (the more telling reason), then what its start said.
  const bounded = boundRefusal(signed, job, count, seen);
  if (bounded !== undefined) return bounded;
  return seen.started !== undefined && signed !== seen.started
    ? `it signs ${signed} prompt tokens, and its start counted ${seen.started} (the count its ` +
      `client was told)`
    : undefined;
}

/** Why `signed` is not a count `job` may have, by `count` or else the windows `seen`. */
function boundRefusal(
  signed: number,
  job: TextJob,
  count: PromptTokenCounter | undefined,
  seen: PromptTokenSeen,
): string | undefined {
  const counted = count?.(job);
  if (counted === undefined) {
    const ceiling = maxPromptTokens(job, seen.stated, seen.known);
    return signed > ceiling
      ? `it signs ${signed} prompt tokens, more than the model's window allows (${ceiling}: the ` +
        `window its worker stated, else the one its model is listed with, at most ` +
        `${MAX_STATED_CONTEXT_TOKENS} and ${NFKC_MAX_EXPANSION} a byte of the prompt; with ` +
        `neither, the prompt's bytes)`
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
