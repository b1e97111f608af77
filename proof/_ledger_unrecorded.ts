/**
 * A worker's claim for a job another worker's receipt holds here, so it was never recorded: the
 * second receipt of a job its requester assigned twice (its `double_assignment` entry keeps it),
 * one a confirmed fraud proof convicted (`unrecordedSubject` in `_ledger_accusations.ts`), or one
 * refused `job_already_recorded` inside the other's receipt's window ({@link unrecordedClaimEntry}:
 * an `unrecorded_claim` entry keeps it); or, no receipt holding the job, one refused for want of
 * stake (`_ledger_stake_refused.ts`, an `unrecorded_claim` entry too). The index keeps one such
 * claim per job and worker (`LedgerIndex.unrecordedClaim`), kept under one bound
 * ({@link claimKeepable}); this module turns it into the record a proof settles
 * ({@link unrecordedRecord}), the body entries keep of it ({@link unrecordedBody},
 * {@link claimBody}), and the equivocation another claim of the worker's for the job is
 * ({@link unrecordedEquivocation}). Review s62: where the worker's receipt held the job, the same
 * evidence convicted it and slashed the larger claim's lock; where another's did, the variant
 * was refused `job_already_recorded` and the worker kept 13,860 more. Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { UnrecordedClaim } from "./ledger_index.ts";
import { type ReceiptRecord, roundCredits } from "./ledger_state.ts";
import { equivocationSlash, type LedgerView } from "./_ledger_amounts.ts";

/**
 * Whether `worker`'s stake backs claims never recorded here locking `locked` together: it has
 * staked (a key that never did, or lost it all, backs none, not even a claim of 0 tokens that
 * locks 0) and its whole stake covers them. The whole stake, not what its receipts leave free:
 * the locks of its receipts for other jobs come and go with what a ledger heard first, so two
 * ledgers hearing the same receipts in another order would keep different claims (stop 63 red
 * team: the copier slashed 140 in one order and kept its 300 in the other). Bounds the claims
 * kept ({@link unrecordedClaimEntry}) and the subject of a proof about a claim never recorded
 * (`fraudSubjectOf`).
 */
export function stakeCovers(view: LedgerView, worker: Uint8Array, locked: number): boolean {
  const { stake } = view.account(worker);
  return stake > 0 && locked <= stake;
}

/**
 * Whether `worker`'s stake backs keeping one more claim never recorded here, locking `locked`
 * ({@link unrecordedClaimEntry}, `stakeRefusedClaim` of `_ledger_stake_refused.ts`): it has
 * staked, and its whole stake ({@link stakeCovers}) covers this claim's lock and those of its
 * claims kept so far whose windows are not over (`LedgerIndex.refusedClaimLocks`), each counted
 * at most at the stake (a claim's slash is what is left of the stake at most; stop 64: a claim
 * refused because its lock is over the stake was never kept, and the worker's smaller claim for
 * the job was paid). So one stake keeps claims for no more jobs at a time than it could lock
 * receipts for (one, while a claim's lock is over it).
 */
export function claimKeepable(view: LedgerView, worker: Uint8Array, locked: number): boolean {
  const { stake } = view.account(worker);
  if (stake <= 0) return false;
  const kept = view.index.refusedClaimLocks(toHex(worker), view.now(), stake);
  return roundCredits(Math.min(locked, stake) + kept) <= stake;
}

/**
 * The record a proof about `claim` (of `worker`, hex) settles while `holder` holds its job: its
 * own record if it has one (the job taken from it, or convicted since); else, never recorded,
 * unpaid, locking what it would have (its slash comes out of the worker's stake, as for an
 * unpaid receipt), inside the holder's window (a claim kept for want of stake, no receipt
 * holding its job: its own, `LedgerIndex.refusedClaimUntil`).
 */
export function unrecordedRecord(
  view: LedgerView,
  claim: UnrecordedClaim,
  worker: string,
  holder: { pendingUntil: number },
): ReceiptRecord | undefined {
  const kept = view.record(claim.receiptId);
  if (kept !== undefined) return kept;
  return {
    receiptId: claim.receiptId,
    kind: "inference",
    worker,
    status: "unpaid",
    credit: 0,
    locked: claim.locked,
    pendingUntil: holder.pendingUntil,
  };
}

/**
 * What an entry convicting `rec` (never recorded here, of job `jobId`, claiming `outputHash` and
 * `tokens`) says of it, for the index (`unrecorded` in its body).
 */
export function unrecordedBody(
  jobId: string,
  rec: ReceiptRecord,
  claim: { outputHash: string | null; tokens: number | null },
): Record<string, unknown> {
  return {
    jobId,
    locked: rec.locked,
    pendingUntil: rec.pendingUntil,
    ...(claim.outputHash === null ? {} : { outputHash: claim.outputHash }),
    ...(claim.tokens === null ? {} : { tokens: claim.tokens }),
  };
}

/**
 * The equivocation entry `receipt` (`receiptId`, locking `locked`) is when another worker's
 * receipt, `holder`, holds its job here (or none does) and the index knows another claim of the
 * same worker for the job (a receipt never recorded here; with no holder, one refused for want
 * of stake, `_ledger_stake_refused.ts`): that claim slashed up to the larger claim's lock
 * (`equivocationSlash`), once per job and worker, as where that claim held the job (with no
 * holder, the entry says `holdsJob`: the convicted claim holds the job from then on). Undefined
 * otherwise (then `receipt` is refused, as any other receipt for a job held, or recorded).
 */
export function unrecordedEquivocation(
  view: LedgerView,
  receipt: Receipt,
  receiptId: string,
  locked: number,
  holder: ReceiptRecord | undefined,
) {
  const worker = toHex(receipt.worker);
  if (holder?.worker === worker) return undefined;
  const claim = view.index.unrecordedClaim(receipt.jobId, worker);
  if (claim === undefined || claim.equivocated || claim.receiptId === receiptId) return undefined;
  // Its claim unknown (convicted before index format 4), or the same claim signed twice: no
  // equivocation (as in `receiptDecision`).
  if (claim.outputHash === null || claim.tokens === null) return undefined;
  if (claim.outputHash === receipt.outputHash && claim.tokens === receipt.tokenCount) {
    return undefined;
  }
  // No receipt holds the job: the claim was kept refused for want of stake, for its own window.
  const until = holder?.pendingUntil ?? view.index.refusedClaimUntil(receipt.jobId, worker);
  if (until === undefined) return undefined;
  const rec = unrecordedRecord(view, claim, worker, { pendingUntil: until });
  if (rec === undefined) return undefined;
  const slashed = equivocationSlash(view, rec, locked);
  if (rec.status === "fraud" && slashed <= 0) return undefined;
  return {
    kind: "equivocation" as const,
    body: {
      jobId: receipt.jobId,
      receiptId: claim.receiptId,
      second: receipt as unknown as Record<string, unknown>,
      slashed,
      worker,
      unrecorded: unrecordedBody(receipt.jobId, rec, claim),
      // The job passes to the convicted claim, as where this receipt was recorded first and the
      // claim came second: the worker's later receipts for it are refused, not recorded and paid.
      ...(holder === undefined ? { holdsJob: true } : {}),
    },
  };
}

/**
 * What an entry keeping `receipt` (`receiptId`, locking `locked`; never recorded here) as its
 * worker's claim for its job says of it (`unrecorded` in a `double_assignment` or
 * `unrecorded_claim` body), inside `holder`'s window (the job's holder's, or the claim's own
 * for one refused for want of stake): the index keeps it (`LedgerIndex.unrecordedClaim`).
 */
export function claimBody(
  receipt: Receipt,
  receiptId: string,
  locked: number,
  holder: { pendingUntil: number },
): Record<string, unknown> {
  return {
    jobId: receipt.jobId,
    worker: toHex(receipt.worker),
    receiptId,
    outputHash: receipt.outputHash,
    tokens: receipt.tokenCount,
    locked,
    pendingUntil: holder.pendingUntil,
  };
}

/**
 * The `unrecorded_claim` entry keeping `receipt` (`receiptId`, locking `locked`), about to be
 * refused `job_already_recorded` because `holder`, another worker's receipt, holds its job: its
 * worker's claim for the job, so a later, different receipt of that worker for it is its
 * equivocation ({@link unrecordedEquivocation}) whichever came first (stop 63: a variant refused
 * before the worker's assigned receipt came left no trace, and the worker kept 13,860 more than
 * where its receipts came the other way round). It locks and credits nothing, and touches no
 * other record. Undefined (refused, nothing written) unless `holder`'s window is not over
 * (whatever its status: convicted or not yet, where a proof about the claim still settles; stop
 * 63 red team: kept only while the holder was open, the copier was slashed or not by whether
 * the holder's conviction came first), no claim of the worker's for the job is kept yet (one
 * entry per job and worker: the same claim signed again is refused as before, another is
 * equivocation), and the worker's stake backs its lock on top of those of its claims kept so far
 * whose windows are not over ({@link claimKeepable}: a key that never staked writes nothing, not
 * even for a claim of 0 tokens, as it is no proof's subject).
 * So a copier gets claims kept for no more jobs at a time than its stake would lock receipts
 * for, and its second claim for a job costs it the larger claim's lock. A claim first reaching
 * a ledger after the holder's window is not kept (by design: the window bounds the evidence a
 * job takes, and the claims one stake keeps), so its worker's later other claim is refused
 * there, where a ledger that kept the first inside the window slashes it.
 */
export function unrecordedClaimEntry(
  view: LedgerView,
  receipt: Receipt,
  receiptId: string,
  locked: number,
  holder: ReceiptRecord | undefined,
) {
  const worker = toHex(receipt.worker);
  if (holder === undefined || holder.kind !== "inference" || holder.worker === worker) {
    return undefined;
  }
  if (view.now() > holder.pendingUntil) return undefined;
  if (view.index.unrecordedClaim(receipt.jobId, worker) !== undefined) return undefined;
  if (!claimKeepable(view, receipt.worker, locked)) return undefined;
  return {
    kind: "unrecorded_claim" as const,
    body: {
      jobId: receipt.jobId,
      receipt: receipt as unknown as Record<string, unknown>,
      unrecorded: claimBody(receipt, receiptId, locked, holder),
    },
  };
}
