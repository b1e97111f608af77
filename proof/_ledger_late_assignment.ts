/**
 * A job's assignment arriving after its worker's receipt was recorded without one
 * ({@link lateAssignment}). An assignment names a job and a worker, not a receipt, so it is
 * recorded on the record of that worker's that holds the job, whichever of the worker's receipts
 * it came with: the same receipt (the requester's announcement came second), the same claim
 * signed again (other timings or fingerprints), or another claim (its equivocation: the
 * `equivocation` entry carries the requester then, `_ledger_receipts.ts`). Stop 63: a variant of
 * w2's held the job bare, w2's assigned receipt came and the ledger kept nothing of the
 * assignment, so w1's assigned receipt later took the job over and was paid, where in every other
 * order the job was a double assignment and neither was. Not part of the public API.
 *
 * @module
 */
import { steeringEvidenceKey, uncreditedReceiptKey } from "./ledger_index.ts";
import type { ReceiptRecord } from "./ledger_state.ts";
import type { LedgerView } from "./_ledger_amounts.ts";

/**
 * Whether `holder`, a record that holds its job without an assignment, still takes one now:
 * open (pending or challenged), left unpaid by its owner's undecided challenge, or convicted
 * (`fraud`) inside its window — the window a requester's announcement arrives in, and where a
 * later assignment of the job to another worker is still a double assignment, not a takeover.
 */
export function takesAssignment(view: LedgerView, holder: ReceiptRecord): boolean {
  if (holder.kind !== "inference" || holder.requester !== undefined) return false;
  const { status } = holder;
  if (status === "pending" || status === "challenged" || status === "unpaid") return true;
  return status === "fraud" && view.now() <= holder.pendingUntil;
}

/**
 * The `assigned` entry recording `requester`'s assignment of `holder`'s job to `holder`'s worker,
 * or undefined when `holder` takes none now ({@link takesAssignment}). `reward` is what the
 * assigned work earns when it is the work `holder` records (its own receipt, or the same claim
 * signed again: same output, token count and lock), else undefined: the job is assigned, and
 * `holder` earns nothing. Open, `holder` is credited `reward` — once: it is the job's one record,
 * the receipt the assignment came with is not recorded (`receivedWith`, its id, when another).
 * Convicted or left unpaid by an undecided challenge, or evidence of a steering conviction, or
 * recorded uncredited (its model was not here), it earns nothing whatever its assignment
 * (review s47, s48): the entry only records that the job is assigned.
 */
export function lateAssignment(
  view: LedgerView,
  holder: ReceiptRecord,
  requester: string,
  reward: number | undefined,
  receivedWith?: string,
) {
  if (!takesAssignment(view, holder)) return undefined;
  const id = holder.receiptId;
  const open = holder.status === "pending" || holder.status === "challenged";
  const unpaid = !open || reward === undefined ||
    view.index.proofSettled(steeringEvidenceKey(id)) ||
    view.index.proofSettled(uncreditedReceiptKey(id));
  return {
    kind: "assigned" as const,
    body: {
      receiptId: id,
      requester,
      credit: unpaid ? 0 : reward,
      ...(receivedWith === undefined ? {} : { receivedWith }),
    },
  };
}
