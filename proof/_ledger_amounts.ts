/**
 * The amounts the ledger's decisions compute, and the view of a ledger they read. What a receipt
 * earns ({@link rewardOf}) and locks ({@link lockOf}), what slashing it takes ({@link slashable},
 * {@link equivocationSlash}) and what of a key's stake is free ({@link freeStake}, re-exported by
 * `ledger.ts`). {@link LedgerView} is what `ledger.ts` hands every decision module
 * (`_ledger_receipts.ts`, `_ledger_training.ts`, `_ledger_accusations.ts`,
 * `_ledger_steering.ts`): the working state, the history index and the economics, read in the
 * writer's turn. Every amount is kept to a millionth of a credit ({@link roundCredits}). Not part
 * of the public API (but `freeStake`); {@link rewardOf} and {@link lockOf} are also what a router
 * and a worker price a job's worst-case lock with before the work (`network/_job_stake_lock.ts`).
 *
 * @module
 */
import { fromHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import { type EconomicParams, promptTokenPrice } from "./economics.ts";
import type { LedgerIndex } from "./ledger_index.ts";
import {
  type Account,
  type LedgerState,
  type ReceiptRecord,
  roundCredits,
} from "./ledger_state.ts";

/** What of a ledger its decisions read (built by `Ledger`'s constructor). */
export interface LedgerView {
  /** The working state (balances, pledges, open receipts). */
  readonly state: LedgerState;
  /** The history index (every receipt, job, settled accusation and verdict). */
  readonly index: LedgerIndex;
  /** Hex key of the ledger's owner. */
  readonly owner: string;
  /** Economics in force. */
  readonly economics: EconomicParams;
  /** Price per output token of a model CID. */
  tokenPrice(model: string): number;
  /** Clock in unix ms. */
  now(): number;
  /** The record of a receipt, open or closed (the live one when open: do not hand it out). */
  record(receiptId: string): ReceiptRecord | undefined;
  /** Balances of a key (a copy; zeros when unknown). */
  account(key: Uint8Array): Account;
}

/**
 * What of a ledger {@link rewardOf} and {@link lockOf} read: its economics and its prices. A
 * {@link LedgerView} is one; a router or a worker that asks whether a stake backs a job before
 * the work (`jobStakeLock`) hands the terms its ledger runs with, so the formula lives here once.
 */
export type LedgerTerms = Pick<LedgerView, "economics" | "tokenPrice">;

/** What {@link rewardOf} reads of a receipt: a job's worst case (`maxTokens`) has the same shape. */
export type RewardedWork = Pick<Receipt, "model" | "kind" | "tokenCount" | "promptTokens">;

/**
 * Useful work: output tokens × the model's price, plus the prompt tokens a text receipt signs ×
 * the model's prompt price ({@link promptTokenPrice}: the prefill is work too); a one-shot
 * (tensor) job counts as one unit. A receipt that signs no prompt count (one from before the
 * field) earns its output alone, as it always did. To a millionth of a credit, as every amount
 * ({@link roundCredits}), rounded once over the sum.
 *
 * @example
 * ```ts
 * import { DEFAULT_ECONOMICS } from "./economics.ts";
 * import { rewardOf } from "./_ledger_amounts.ts";
 * const terms = { economics: DEFAULT_ECONOMICS, tokenPrice: () => 1 };
 * rewardOf(terms, { model: "m", kind: "text", tokenCount: 8, promptTokens: 16 }); // 9
 * ```
 */
export function rewardOf(terms: LedgerTerms, receipt: RewardedWork): number {
  const price = terms.tokenPrice(receipt.model);
  if (receipt.kind === "tensor") return roundCredits(price);
  const prompt = (receipt.promptTokens ?? 0) * promptTokenPrice(terms.economics, price);
  return roundCredits(receipt.tokenCount * price + prompt);
}

/** The stake a receipt earning `reward` locks: `slashMultiplier ×` it, to the quantum. */
export function lockOf(terms: Pick<LedgerTerms, "economics">, reward: number): number {
  return roundCredits(reward * terms.economics.slashMultiplier);
}

/**
 * What slashing `rec` takes: its lock, or less when a steering conviction
 * (`Ledger.settleSteering`) has cut the worker's stake below its locks.
 */
export function slashable(view: LedgerView, rec: ReceiptRecord): number {
  return roundCredits(Math.min(rec.locked, Math.max(0, view.account(fromHex(rec.worker)).stake)));
}

/**
 * What equivocation on `first` (the receipt recorded for the job or round) takes, the
 * worker's other signed claim for it locking `other`: `slashMultiplier ×` the larger of the two
 * claims' rewards, so the cut does not depend on which of the two a ledger recorded first (it
 * used to be the lock of that one: 10 tokens claimed first and 1,000 second cost 200 there and
 * 20,000 where the 1,000 came first, and nothing after a fraud proof against the 10; review
 * s54). `first`'s own part as before (its lock, from what is left of the stake; nothing when
 * a fraud proof or a fault already slashed it); what the larger claim adds, only from stake no
 * open receipt locks: recorded first, that claim would have needed as much free, and the locks
 * of the worker's other receipts still back their slashes. `taken`: what of those locks a
 * steering conviction already cut from the stake (`steeringTakenLocks`, `_ledger_steering.ts`):
 * that stake backs nothing now, so the free stake is what is left beyond the other locks.
 */
export function equivocationSlash(
  view: LedgerView,
  first: ReceiptRecord,
  other: number,
  taken = 0,
): number {
  const account = view.account(fromHex(first.worker));
  // Open here: pending, challenged, or left unpaid inside its window with its lock kept.
  const open = view.state.open(first.receiptId) !== undefined;
  const own = first.status === "fraud" ? 0 : Math.min(first.locked, Math.max(0, account.stake));
  // An open `first`'s lock is among the locks: its part comes out of it, not out of the free.
  const locked = Math.max(0, roundCredits(account.locked - taken));
  const free = Math.max(0, roundCredits(account.stake - locked - (open ? 0 : own)));
  return roundCredits(own + Math.min(Math.max(0, other - first.locked), free));
}

/** What of `account`'s stake its pending receipts do not lock: never below zero, to the quantum. */
export function freeStake(account: Readonly<Account>): number {
  return Math.max(0, roundCredits(account.stake - account.locked));
}
