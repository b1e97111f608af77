/**
 * What a ledger pays for a text receipt, restated for tests that check a ledger outcome
 * (`proof/_ledger_amounts.ts`'s `rewardOf` under the default economics): its output tokens ×
 * the price, plus the prompt tokens it signs × the default prompt share of the price (none on a
 * receipt that signs no count). A receipt from the node's path signs its prompt tokens, so pay
 * is no longer `tokenCount × price` alone (batching review F2 of stop 77).
 *
 * @module
 */
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { roundCredits } from "../../proof/ledger.ts";
import type { Receipt } from "../../protocols/receipt.ts";

/**
 * The credit a final text `receipt` earns at `price` per output token (default the default
 * token price).
 */
export function paidFor(
  receipt: Pick<Receipt, "tokenCount" | "promptTokens">,
  price: number = DEFAULT_ECONOMICS.defaultTokenPrice,
): number {
  const prompt = (receipt.promptTokens ?? 0) * price * DEFAULT_ECONOMICS.promptTokenShare;
  return roundCredits(receipt.tokenCount * price + prompt);
}
