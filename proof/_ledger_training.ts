/**
 * Recording training receipts: the slot a trainer's receipt takes in its round
 * ({@link trainingSlot}: one receipt, and one payment, per trainer and round), what a training
 * receipt brought to the ledger is ({@link trainingReceiptDecision}: a new pending receipt, or
 * equivocation — a second, different receipt of the trainer for the round, slashed on arrival,
 * or one coming after its other claim was kept, refused for want of stake
 * (`_ledger_stake_refused.ts`) — or a refusal), crediting one recorded without credit, open or
 * closed unpaid and never convicted ({@link trainingCreditDecision}), and which record a fraud proof about a training receipt
 * settles ({@link trainingFraudSubjectOf}: the receipt's own, or the one recorded in its trainer's
 * slot) with the other claim it reveals ({@link otherTrainingClaim}). Each decision runs in the
 * writer's turn. Used by `Ledger.recordTrainingReceipt`, `Ledger.creditTrainingReceipt`,
 * `Ledger.trainingFraudSubject` and `Ledger.settleTrainingFraud` (`ledger.ts`, which checks the
 * receipt's signature and its round's terms first, and re-exports `trainingSlot`). Not part of the
 * public API (but `trainingSlot`).
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "../training/training_receipt.ts";
import type { LedgerEntryKind } from "./ledger_entry.ts";
import { InsufficientStakeError, LedgerRejectedError } from "./ledger_errors.ts";
import { type ReceiptRecord, roundCredits } from "./ledger_state.ts";
import { equivocationSlash, type LedgerView } from "./_ledger_amounts.ts";
import { stakeCovers } from "./_ledger_unrecorded.ts";
import { keptTrainingEquivocation, stakeRefusedTrainingClaim } from "./_ledger_stake_refused.ts";
import type { TrainingRoundTerms } from "./ledger.ts";
import { trainingLock, trainingReward } from "./economics.ts";

/**
 * The trainer's slot in a round: a round is its number and start model (a coordinator that
 * restarts a round gives it a new number), and a trainer has one receipt per round. Kept in
 * the history index where jobs are (one payment per slot, equivocation by slot); the prefix
 * keeps it apart from inference job ids.
 */
export function trainingSlot(trainer: string, round: number, startModel: string): string {
  return `training/${round}/${startModel}/${trainer}`;
}

/**
 * What recording the training `receipt` (`receiptId`: its id, its signature and its round's
 * terms checked) is, decided when called, in the writer's turn, on what is recorded then: the
 * entry to write, or a refusal thrown (see `Ledger.recordTrainingReceipt`).
 */
export function trainingReceiptDecision(
  view: LedgerView,
  receipt: TrainingReceipt,
  receiptId: string,
  terms: TrainingRoundTerms,
  options: { credited?: boolean },
): () => { kind: LedgerEntryKind; body: Record<string, unknown> } {
  const trainer = toHex(receipt.trainer);
  const slot = slotOf(receipt);
  const reward = trainingRewardOf(view, receipt);
  const locked = trainingLock(view.economics, receipt);
  const credit = options.credited === false ? 0 : reward;
  return () => {
    // Two signed receipts of one trainer for one round: its own signatures convict it
    // (signing is deterministic, so a different id is a different claim).
    const firstId = view.index.jobReceipt(slot);
    const first = firstId === undefined ? undefined : view.record(firstId);
    const slashed = first === undefined ? 0 : equivocationSlash(view, first, locked);
    if (
      first !== undefined && first.receiptId !== receiptId &&
      (first.status !== "fraud" || slashed > 0) && !view.index.equivocated(slot)
    ) {
      const reclaimed = reclaimedCredit(view, first);
      return {
        kind: "training_equivocation",
        body: {
          slot,
          receiptId: first.receiptId,
          worker: trainer,
          second: receipt as unknown as Record<string, unknown>,
          // As for inference: the larger claim's lock, what is left of the stake at most.
          slashed,
          // Left out when nothing was paid, so such an entry reads as it always did.
          ...(reclaimed > 0 ? { reclaimed } : {}),
        },
      };
    }
    if (view.record(receiptId) !== undefined) {
      throw new LedgerRejectedError("duplicate_receipt", "receipt already recorded");
    }
    if (firstId !== undefined) {
      throw new LedgerRejectedError(
        "round_already_recorded",
        "another receipt of this trainer for this round is already recorded",
      );
    }
    // No receipt holds the slot, but the trainer's other claim for it was kept, refused for
    // want of stake: this one is its equivocation, as where that one was recorded (stop 64).
    const againstKept = keptTrainingEquivocation(view, receipt, receiptId, slot, locked);
    if (againstKept !== undefined) return againstKept;
    const acc = view.state.account(trainer);
    const free = roundCredits(acc.stake - acc.locked);
    if (locked > free) {
      // Kept as the trainer's claim for the slot first (once, within its stake), then refused.
      const kept = stakeRefusedTrainingClaim(view, receipt, receiptId, slot, locked);
      if (kept !== undefined) return kept;
      throw new InsufficientStakeError(locked, free);
    }
    return {
      kind: "training_receipt",
      body: {
        receiptId,
        slot,
        round: receipt.round,
        startModel: receipt.startModel,
        steps: receipt.steps,
        roundSteps: terms.steps,
        deltaHash: receipt.deltaHash,
        worker: trainer,
        credit,
        locked,
        pendingUntil: view.now() + view.economics.challengeWindowMs,
      },
    };
  };
}

/**
 * What the trainer was paid for `first`, the receipt its equivocation convicts, that the
 * `training_equivocation` entry takes back from its balance (`reclaimed`, `ledger_state.ts`).
 * Nothing for a receipt still open (it is slashed unpaid) or closed unpaid; for one closed
 * `final` with a credit — paid when its window ended, or paid since by its round's late credit
 * (`training_late_credit`) — that credit. Review s79 vlate, F2: a conviction after the pay kept
 * it, so a ledger that heard the round's late credit before the trainer's second receipt ended
 * paid and one that heard them the other way round (the credit then refused: `fraud`) unpaid; as
 * did a ledger that heard the second receipt after the window's end and one that heard it inside.
 * A balance never shrinks but when its key's account is forfeited (held at zero: nothing to take
 * back, as nothing was paid where the conviction came first), so it holds the credit. Decided
 * here, in the writer's turn, and carried in the entry: a replay moves what was decided.
 */
function reclaimedCredit(view: LedgerView, first: ReceiptRecord): number {
  // `final` is a closed record (an open one is pending, challenged or unpaid), and the index
  // keeps one released from `unpaid` as `unpaid`: `final` with a credit is a paid one.
  if (first.kind !== "training" || first.status !== "final" || first.credit <= 0) return 0;
  const balance = view.state.account(first.worker).balance;
  return roundCredits(Math.min(first.credit, Math.max(0, balance)));
}

/**
 * How long after a training receipt's window closed unpaid its round's credit still pays it, in
 * challenge windows ({@link trainingCreditDecision}). A round's challenges end inside the window
 * (`roundAnswerRefusal`, `training/opening_window.ts`, checked at a coordinator's start), but the
 * outer step, the solo judging (at most half the round's deadline, 60 s at the default), the
 * held-out evaluations, the publish and, elsewhere, the outcome's gossip and audit come after
 * them: one more window (10 min) covers those at the defaults with room to spare. Bounded, and no
 * longer: an auditing ledger cannot challenge a receipt past its window (`challenge_window_closed`),
 * so a coordinator that held its outcome back longer would buy its trainers pay there that no
 * auditor's challenge could put at risk. Measured in each ledger from its own recording of the
 * receipt (`pendingUntil`) against its own clock: neither the receipt nor the outcome signs a
 * time every ledger shares, so a credit that comes near the bound may pay in one ledger and not
 * in another (review s79 vlate, F3: not fixed, written down in `docs/PROOF.md`).
 */
export const LATE_TRAINING_CREDIT_WINDOWS = 1;

/**
 * Crediting the training receipt `receiptId`, decided in the writer's turn: the entry to write,
 * or null when there is nothing to credit (see `Ledger.creditTrainingReceipt`). Open (pending or
 * challenged) and uncredited: an `assigned` entry, paid when its window closes. Closed unpaid
 * from `pending` (its window ended while its round still waited for another trainer's challenge,
 * or before an outcome audited here named it) and never convicted, within
 * {@link LATE_TRAINING_CREDIT_WINDOWS} of its window's end: a `training_late_credit` entry that
 * pays it now (review s79 trainnet, F1). Every ledger records such a receipt
 * uncredited from recording (the coordinator's before the challenge, the others' from gossip), so
 * whichever came first, the window's end or the credit, the trainer ends paid the same in a
 * ledger (not one near the bound, each ledger's own: {@link LATE_TRAINING_CREDIT_WINDOWS}).
 * A conviction for its round coming after the pay takes it back ({@link reclaimedCredit}).
 * Its lock was released when the window ended; a fraud proof can no longer settle it anywhere
 * (`challenge_window_closed`), so paying it later risks nothing a proof could still take. A
 * receipt closed `unpaid` (an undecided challenge), convicted (`fraud`: a proof, a fault, its
 * trainer's other receipt for the round), credited already, or credited past that bound earns
 * nothing here.
 */
export function trainingCreditDecision(
  view: LedgerView,
  receiptId: string,
): () => { kind: LedgerEntryKind; body: Record<string, unknown> } | null {
  return () => {
    const rec = view.record(receiptId);
    if (rec === undefined || rec.kind !== "training" || rec.credit > 0) return null;
    // Its slash was locked as `slashMultiplier ×` the credit it was recorded without.
    const credit = roundCredits(rec.locked / view.economics.slashMultiplier);
    const body = { receiptId, requester: view.owner, credit };
    if (rec.status === "pending" || rec.status === "challenged") return { kind: "assigned", body };
    // `final` here is a window that closed from `pending`: the index keeps a receipt released
    // from `unpaid` as `unpaid`, and marks a convicted one `fraud`.
    if (rec.status !== "final") return null;
    const lateUntil = rec.pendingUntil +
      LATE_TRAINING_CREDIT_WINDOWS * view.economics.challengeWindowMs;
    if (view.now() > lateUntil) return null;
    return { kind: "training_late_credit", body: { ...body, worker: rec.worker } };
  };
}

/** The slot `receipt` claims: its trainer's in its round ({@link trainingSlot}). */
function slotOf(receipt: TrainingReceipt): string {
  return trainingSlot(toHex(receipt.trainer), receipt.round, receipt.startModel);
}

/**
 * What `receipt` earns: its steps priced by the work of a step (`trainingReward`: the delta's
 * size × batch × predicted bytes, relative to the reference step that pays
 * `trainingCreditPerStep`), from its signed fields only, to the quantum.
 */
function trainingRewardOf(view: LedgerView, receipt: TrainingReceipt): number {
  return roundCredits(trainingReward(view.economics, receipt));
}

/**
 * `Ledger.trainingFraudSubject`: the record a fraud proof about `receipt` (named `id`; another
 * id: none) settles here. Its own, when it is recorded; else — the ledger recorded another receipt
 * of its trainer for the round first, and answered this one `equivocation` or
 * `round_already_recorded` — the receipt recorded in that slot, as the inference side settles a
 * proof about a variant against the receipt its worker had recorded for the job
 * (`fraudSubjectOf`): the trainer's signature binds it to both. Only a receipt this ledger could
 * have recorded is a subject: its signature checks, and its trainer's stake backs its lock
 * (`stakeCovers`, the bound for claims never recorded: a key without stake must not buy re-runs
 * with receipts it made up), or the slot was slashed for equivocation already (that slash took
 * the stake that backed it). Review s63: where the other receipt came first, the proof was held for
 * its receipt forever, its accuser unpaid (or a false one uncharged).
 */
export function trainingFraudSubjectOf(
  view: LedgerView,
  receipt: TrainingReceipt,
  id = trainingReceiptId(receipt),
): ReceiptRecord | undefined {
  if (id !== trainingReceiptId(receipt)) return undefined;
  const own = view.record(id);
  if (own !== undefined) return own;
  if (!verifyTrainingReceipt(receipt).ok) return undefined;
  const recordedId = view.index.jobReceipt(slotOf(receipt));
  const recorded = recordedId === undefined ? undefined : view.record(recordedId);
  if (recorded?.kind !== "training") return undefined;
  // Or the slot was slashed for equivocation already: the stake that backed the lock is what
  // that slash took, so the proof settles whether it came before the receipt or after it.
  const locked = trainingLock(view.economics, receipt);
  const backed = stakeCovers(view, receipt.trainer, locked) ||
    view.index.equivocated(slotOf(receipt));
  return backed ? recorded : undefined;
}

/**
 * The other claim `receipt` makes for the slot of `rec` (the receipt its trainer had recorded
 * there, which a proof about `receipt` settles: {@link trainingFraudSubjectOf}): the slot and the
 * stake `receipt` would lock, while the slot is not slashed for equivocation yet; else undefined
 * (`rec` itself, or no receipt given). A confirmed proof about it proves the equivocation too:
 * slashed once, the larger claim's lock, as where the second receipt came (`otherClaim` for
 * inference).
 */
export function otherTrainingClaim(
  view: LedgerView,
  rec: ReceiptRecord,
  receipt: TrainingReceipt | undefined,
): { jobId: string; locked: number } | undefined {
  if (receipt === undefined || trainingReceiptId(receipt) === rec.receiptId) return undefined;
  const slot = slotOf(receipt);
  if (view.index.equivocated(slot)) return undefined;
  return { jobId: slot, locked: trainingProvedLock(view, rec, receipt) };
}

/**
 * The lock of the training claim a confirmed proof is about: `rec`'s own, or, for `receipt`
 * (another receipt of its trainer for the slot), the lock that receipt would take.
 */
export function trainingProvedLock(
  view: LedgerView,
  rec: ReceiptRecord,
  receipt: TrainingReceipt | undefined,
): number {
  if (receipt === undefined || trainingReceiptId(receipt) === rec.receiptId) return rec.locked;
  return trainingLock(view.economics, receipt);
}
