/**
 * A receipt refused for want of free stake, kept as its worker's claim: an inference receipt
 * ({@link stakeRefusedClaim}) or a training receipt ({@link stakeRefusedTrainingClaim}) whose
 * worker has staked but whose free stake cannot back its lock is kept for its job (a trainer's
 * round slot) by an `unrecorded_claim` entry saying `refused: "insufficient_stake"`, then refused
 * `insufficient_stake` as before ({@link stakeRefusal}). It locks and credits nothing; the index
 * keeps it as `LedgerIndex.unrecordedClaim`, with its own window
 * (`LedgerIndex.refusedClaimUntil`). So the worker's other claim for the slot is its equivocation
 * whichever came first (`unrecordedEquivocation` in `_ledger_unrecorded.ts` for inference,
 * {@link keptTrainingEquivocation} for training), slashed the larger claim's lock, what is left of
 * the stake at most, as where the other came first and was recorded. Stop 64: the larger receipt
 * refused first was forgotten, and the smaller one recorded and paid, the cheat keeping its stake
 * (3 of 6 orders, inference and training alike). The same receipt sent again (the node holds it
 * until a pledge) is not another claim: recorded once the stake backs it.
 *
 * Bound: one entry per slot and worker; only for a key that has staked (a made-up key writes
 * nothing); and only while its stake covers this claim's lock and those of its claims kept so far
 * whose windows are not over, each counted at most at the stake (`claimKeepable`). A worker
 * thus makes the ledger keep claims for no more slots per window than its stake could lock
 * receipts for (one, while a claim's lock is over it): no more entries than the same stake gets
 * written recording receipts, and each is evidence that can cost it its stake. An honest worker
 * or another key loses nothing by it: a claim keeps nothing locked, changes no refusal (the
 * receipt is refused `insufficient_stake` exactly where it was), and weighs only on its own
 * worker's claims kept later, never on what its receipts may lock. Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { TrainingReceipt } from "../training/training_receipt.ts";
import type { LedgerEntry } from "./ledger_entry.ts";
import { InsufficientStakeError } from "./ledger_errors.ts";
import type { ReceiptRecord } from "./ledger_state.ts";
import { equivocationSlash, freeStake, type LedgerView } from "./_ledger_amounts.ts";
import { claimBody, claimKeepable } from "./_ledger_unrecorded.ts";

/** What an `unrecorded_claim` entry kept for want of stake says in its body (`refused`). */
const REFUSED = "insufficient_stake";

/**
 * The `unrecorded_claim` entry keeping `receipt` (`receiptId`, locking `locked`), about to be
 * refused `insufficient_stake`, as its worker's claim for its job; undefined (refused, nothing
 * written) unless its worker may keep one ({@link mayKeep}).
 */
export function stakeRefusedClaim(
  view: LedgerView,
  receipt: Receipt,
  receiptId: string,
  locked: number,
) {
  if (!mayKeep(view, receipt.worker, receipt.jobId, locked)) return undefined;
  const window = { pendingUntil: view.now() + view.economics.challengeWindowMs };
  return {
    kind: "unrecorded_claim" as const,
    body: {
      jobId: receipt.jobId,
      receipt: receipt as unknown as Record<string, unknown>,
      refused: REFUSED,
      unrecorded: claimBody(receipt, receiptId, locked, window),
    },
  };
}

/**
 * The `unrecorded_claim` entry keeping the training `receipt` (`receiptId`, locking `locked`),
 * about to be refused `insufficient_stake`, as its trainer's claim for its round `slot`;
 * undefined unless its trainer may keep one ({@link mayKeep}). A training claim is its receipt's
 * id (signing is deterministic: another id is another claim), so it keeps no output or count.
 */
export function stakeRefusedTrainingClaim(
  view: LedgerView,
  receipt: TrainingReceipt,
  receiptId: string,
  slot: string,
  locked: number,
) {
  if (!mayKeep(view, receipt.trainer, slot, locked)) return undefined;
  return {
    kind: "unrecorded_claim" as const,
    body: {
      jobId: slot,
      trainingReceipt: receipt as unknown as Record<string, unknown>,
      refused: REFUSED,
      unrecorded: {
        jobId: slot,
        worker: toHex(receipt.trainer),
        receiptId,
        locked,
        pendingUntil: view.now() + view.economics.challengeWindowMs,
      },
    },
  };
}

/**
 * The `training_equivocation` entry the training `receipt` (`receiptId`, locking `locked`) is
 * when no receipt holds its round `slot` here and its trainer's other claim for the slot was kept
 * for want of stake ({@link stakeRefusedTrainingClaim}): that claim slashed the larger claim's
 * lock, what is left of the stake at most (`equivocationSlash`), once; the convicted claim holds
 * the slot from then on (the entry carries it as `unrecorded`). Undefined otherwise.
 */
export function keptTrainingEquivocation(
  view: LedgerView,
  receipt: TrainingReceipt,
  receiptId: string,
  slot: string,
  locked: number,
) {
  const trainer = toHex(receipt.trainer);
  const claim = view.index.unrecordedClaim(slot, trainer);
  if (claim === undefined || claim.equivocated || claim.receiptId === receiptId) return undefined;
  const until = view.index.refusedClaimUntil(slot, trainer);
  if (until === undefined) return undefined;
  const rec: ReceiptRecord = {
    receiptId: claim.receiptId,
    kind: "training",
    worker: trainer,
    status: "unpaid",
    credit: 0,
    locked: claim.locked,
    pendingUntil: until,
  };
  return {
    kind: "training_equivocation" as const,
    body: {
      slot,
      receiptId: claim.receiptId,
      worker: trainer,
      second: receipt as unknown as Record<string, unknown>,
      slashed: equivocationSlash(view, rec, locked),
      unrecorded: {
        jobId: slot,
        worker: trainer,
        receiptId: claim.receiptId,
        locked: claim.locked,
        pendingUntil: until,
      },
    },
  };
}

/**
 * The refusal an entry written for a receipt stands for, when it kept the receipt as its
 * worker's claim for want of stake (`worker`'s free stake, after it, in the message); else
 * undefined. `Ledger.recordReceipt` and `Ledger.recordTrainingReceipt` throw it,
 * `Ledger.receiptRefusal` answers its code.
 */
export function stakeRefusal(
  view: LedgerView,
  entry: Pick<LedgerEntry, "kind" | "body">,
  worker: Uint8Array,
): InsufficientStakeError | undefined {
  if (entry.kind !== "unrecorded_claim" || entry.body.refused !== REFUSED) return undefined;
  const { locked } = entry.body.unrecorded as { locked: number };
  return new InsufficientStakeError(locked, freeStake(view.account(worker)));
}

/**
 * Whether `worker` may have a claim for `slot` locking `locked` kept: it has staked, none of its
 * claims for the slot is kept yet (one entry per slot and worker: the same receipt sent again is
 * refused as before), and its stake covers the claims kept (`claimKeepable`).
 */
function mayKeep(view: LedgerView, worker: Uint8Array, slot: string, locked: number): boolean {
  const hex = toHex(worker);
  if (!view.state.hasStaked(hex)) return false;
  if (view.index.unrecordedClaim(slot, hex) !== undefined) return false;
  return claimKeepable(view, worker, locked);
}
