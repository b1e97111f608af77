/**
 * A worker's claim for a job another worker's receipt holds here, so it was never recorded: the
 * second receipt of a job its requester assigned twice (its `double_assignment` entry keeps it),
 * or one a confirmed fraud proof convicted (`unrecordedSubject` in `_ledger_accusations.ts`).
 * The index keeps one such claim per job and worker (`LedgerIndex.unrecordedClaim`); this module
 * turns it into the record a proof settles ({@link unrecordedRecord}), the body entries keep of
 * it ({@link unrecordedBody}), and the equivocation another claim of the worker's for the job is
 * ({@link unrecordedEquivocation}). Review s62: where the worker's receipt held the job, the same
 * evidence convicted it and slashed the larger claim's lock; where another's did, the variant
 * was refused `job_already_recorded` and the worker kept 13,860 more. Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { UnrecordedClaim } from "./ledger_index.ts";
import type { ReceiptRecord } from "./ledger_state.ts";
import { equivocationSlash, type LedgerView } from "./_ledger_amounts.ts";

/**
 * The record a proof about `claim` (of `worker`, hex) settles while `holder` holds its job: its
 * own record if it has one (the job taken from it, or convicted since); else, never recorded,
 * unpaid, locking what it would have (its slash comes out of the worker's stake, as for an
 * unpaid receipt), inside the holder's window.
 */
export function unrecordedRecord(
  view: LedgerView,
  claim: UnrecordedClaim,
  worker: string,
  holder: ReceiptRecord,
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
 * receipt, `holder`, holds its job here and the index knows another claim of the same worker for
 * the job (a receipt never recorded here): that claim slashed up to the larger claim's lock
 * (`equivocationSlash`), once per job and worker, as where that claim held the job. Undefined
 * otherwise (then `receipt` is refused, as any other receipt for a job held).
 */
export function unrecordedEquivocation(
  view: LedgerView,
  receipt: Receipt,
  receiptId: string,
  locked: number,
  holder: ReceiptRecord | undefined,
) {
  const worker = toHex(receipt.worker);
  if (holder === undefined || holder.worker === worker) return undefined;
  const claim = view.index.unrecordedClaim(receipt.jobId, worker);
  if (claim === undefined || claim.equivocated || claim.receiptId === receiptId) return undefined;
  // Its claim unknown (convicted before index format 4), or the same claim signed twice: no
  // equivocation (as in `receiptDecision`).
  if (claim.outputHash === null || claim.tokens === null) return undefined;
  if (claim.outputHash === receipt.outputHash && claim.tokens === receipt.tokenCount) {
    return undefined;
  }
  const rec = unrecordedRecord(view, claim, worker, holder);
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
    },
  };
}
