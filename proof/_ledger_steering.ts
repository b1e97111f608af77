/**
 * Settling a steering conviction: when this ledger's owner convicts a worker of steering
 * (`steering.ts`), the evidence receipts still open go unpaid, those paid are clawed back,
 * and each is slashed. {@link steeringSettlement} names the conviction (settled once per owner
 * and worker); {@link steeringEntry} decides, in the writer's turn, the next `steering` entry,
 * bounded so each fits one frame: `part` entries marking pending evidence unpaid, then the
 * conviction's own with the cut. `Ledger.settleSteering` and `Ledger.steeringSettled`
 * (`ledger.ts`) use them; {@link steeringCover} tells a later slash of the conviction's pending
 * evidence (a fraud proof, a fault) what of it the cut already took, and
 * {@link steeringTakenLocks} what of the worker's locks it took. Not part of the public API.
 *
 * @module
 */
import { steeringEvidenceKey } from "./ledger_index.ts";
import { type ReceiptRecord, roundCredits } from "./ledger_state.ts";
import type { LedgerView } from "./_ledger_amounts.ts";

/**
 * Paid receipts a `steering` entry lists by id at most (about 66 bytes each: 4,096 take 270 KB),
 * the most recent; the rest are counted (`evidence`). The list is a record nothing replays (the
 * cut is `slashed`, the unpaid ones are `uncredited`), and unbounded it outgrew
 * `MAX_ENTRY_BYTES` past about 15,900 receipts: an entry the next open refuses (review s51).
 */
const MAX_STEERING_RECEIPTS_LISTED = 4096;

/**
 * Pending receipts one `steering` entry marks unpaid at most (`uncredited`, about 66 bytes each:
 * with the paid ones listed, an entry stays near 540 KB). The replay needs every id, so a
 * conviction with more is settled in several entries: `part` entries first, each marking the
 * next ones and cutting nothing, then the conviction's own with the rest and the cut. Listed in
 * one entry, past about 11,800 pending receipts it was over `MAX_ENTRY_BYTES` and refused: the
 * conviction never settled, the steerer was paid, and the validator failed every start (review
 * s52).
 */
const MAX_STEERING_UNCREDITED_PER_ENTRY = 4096;

/**
 * What of the slash of `rec`, open here, this ledger's owner's steering conviction of its worker
 * already took, when `rec` is that conviction's pending evidence: its lock, or what is left of the
 * cut when less (`LedgerIndex.steeringLeft`: each such slash takes its part out of the cut once).
 * Undefined when it is not such evidence, or the conviction is not settled yet (only a `part`).
 * A proof or a fault about it then slashes nothing more, its accuser paid out of this: one caught
 * receipt, one slash, whichever came first (review s79, F3: steering then a proof took `m ×` the
 * receipt twice; the other order once). The cut is `min(stake, owed)`, so each slash taking
 * `min(lock, left)` takes what it would have taken from the stake before the conviction.
 */
export function steeringCover(view: LedgerView, rec: ReceiptRecord): number | undefined {
  if (view.state.open(rec.receiptId) === undefined) return undefined;
  if (!view.index.proofSettled(steeringEvidenceKey(rec.receiptId))) return undefined;
  const left = view.index.steeringLeft(rec.worker);
  return left === undefined ? undefined : roundCredits(Math.min(rec.locked, left));
}

/**
 * What of hex `worker`'s locked stake this ledger's owner's steering conviction already cut: the
 * locks of its pending evidence still open here, at most what is left of the cut. That stake is
 * gone, so it backs none of those locks any more: stake a slash may take beyond the locks is
 * `stake − (locked − this)` (`equivocationSlash`). Review s79 vledger F2: counted as still
 * locked, a proof of the worker's other claim heard after the conviction took 40 of the 120 the
 * worker had free, where heard before it took all 120. 0 when no conviction of `worker` is
 * settled here. Less what the conviction's own entry released from `locked` already (`freed`,
 * stop 80; entries written before freed nothing). Walks the open receipts: called only for a
 * confirmed proof of another claim, or for the worker's other claim arriving while the first is
 * this conviction's pending evidence (`_ledger_receipts.ts`).
 */
export function steeringTakenLocks(view: LedgerView, worker: string): number {
  const left = view.index.steeringLeft(worker);
  if (left === undefined) return 0;
  let locks = 0;
  let freed = 0;
  for (const rec of view.state.openReceipts()) {
    if (rec.worker !== worker) continue;
    if (!view.index.proofSettled(steeringEvidenceKey(rec.receiptId))) continue;
    locks += rec.locked;
    freed += view.state.freed(rec.receiptId);
  }
  // What the conviction's entry released from `locked` already (`LedgerState.freed`, stop 80) is
  // not among the locks any more: only the rest is taken out of them here.
  return Math.max(0, roundCredits(Math.min(locks, left) - freed));
}

/** The key under which `owner` settles its steering conviction of hex `worker`, once. */
export function steeringSettlement(owner: string, worker: string): string {
  return `steering/${owner}/${worker}`;
}

/**
 * The next `steering` entry of the conviction of `key` (hex) over `ids`, decided in the
 * writer's turn: the conviction's own, or, while more of its pending evidence is not marked
 * unpaid than one entry lists, a `part` that marks the next {@link
 * MAX_STEERING_UNCREDITED_PER_ENTRY} of them and cuts nothing.
 */
export function steeringEntry(
  view: LedgerView,
  key: string,
  settlement: string,
  ids: string[],
): Record<string, unknown> {
  // Open here (pending, challenged, or left unpaid inside its window with its lock held: a
  // proof or a fault can still slash each) or paid. Review s79 vledger F3: a held `unpaid` one
  // (a challenged one too) was skipped, so a conviction heard after the undecided challenge cut
  // nothing for it, and the worker kept the lock it lost where the conviction came first.
  const evidence = ids.filter((id) => {
    const rec = view.record(id);
    return rec?.worker === key && (view.state.open(id) !== undefined || rec.status === "final");
  });
  // Receipts still open are not paid at all (their credit goes to 0, as a doubly
  // assigned job's); those already paid are clawed back from the stake. Either way each is
  // slashed `m` times its credit as well.
  const pending = evidence.filter((id) => view.state.open(id) !== undefined);
  // Those an earlier part of this conviction marked unpaid are not listed again.
  const unmarked = pending.filter((id) => !view.index.proofSettled(steeringEvidenceKey(id)));
  if (unmarked.length > MAX_STEERING_UNCREDITED_PER_ENTRY) {
    return {
      worker: key,
      validator: view.owner,
      part: true,
      uncredited: unmarked.slice(0, MAX_STEERING_UNCREDITED_PER_ENTRY),
      slashed: 0,
      // Marks them as evidence whose locks the conviction's own entry frees (nothing yet).
      freed: 0,
    };
  }
  const sum = (ids: string[], of: (rec: ReceiptRecord) => number) =>
    ids.reduce((total, id) => total + of(view.record(id)!), 0);
  const m = view.economics.slashMultiplier;
  const open = new Set(pending); // a Set: the evidence may be tens of thousands of receipts
  const paid = evidence.filter((id) => !open.has(id));
  // A pending receipt's slash is its lock (m × its reward), credited yet or not: one whose
  // assignment comes later is not paid either (`steeringEvidenceKey`).
  const owed = roundCredits(
    sum(paid, (rec) => rec.credit) * (1 + m) + sum(pending, (rec) => rec.locked),
  );
  // From the whole stake, the part open receipts lock included: a steerer that keeps its
  // stake at its locks must not be convicted for free. Never below zero.
  const slashed = Math.min(Math.max(0, view.state.account(key).stake), owed);
  // The cut took the pending evidence's locks first (as `steeringTakenLocks` counts them): that
  // stake is gone, so those locks are released now rather than when the windows close. Counted
  // locked as well until then, the worker's free stake was short by them, its next honest
  // receipt refused `insufficient_stake` where the proofs came before the conviction (stop 80).
  // All of them, even when the stake was already short of them (a stream conviction cut it
  // first) and the cut took less: a later slash of this evidence takes nothing more from the
  // stake (`steeringCover`), so the rest would back nothing until the windows close, and the
  // worker's next receipt was refused in that order only (review vled F1: 20 of 120 kept).
  const freed = roundCredits(sum(pending, (rec) => rec.locked));
  return {
    worker: key,
    validator: view.owner,
    settlement,
    // Bounded, so the entry fits one frame however long the worker served (see the const).
    receipts: evidence.slice(-MAX_STEERING_RECEIPTS_LISTED),
    evidence: evidence.length,
    uncredited: unmarked,
    slashed,
    freed,
  };
}
