/**
 * Settling accusations: which receipt a fraud proof settles here ({@link fraudSubjectOf}: the
 * receipt it names, or the variant of it its worker had recorded here for the same job, or —
 * another worker's receipt holding the job — the receipt itself, never recorded here; for a
 * training receipt `trainingFraudSubjectOf`, `_ledger_training.ts`), the
 * other claim a proof about a variant reveals ({@link otherClaim}: equivocation too), and what a
 * checked fraud proof does to the ledger ({@link fraudDecision}: confirmed, the worker is slashed
 * and the validator rewarded; refuted, the validator pays for a false accusation). Used by
 * `Ledger.fraudSubject`, `Ledger.settleFraud` and `Ledger.settleTrainingFraud` (`ledger.ts`),
 * inside the writer's turn. Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import { type Receipt, receiptId, verifyReceipt } from "../protocols/receipt.ts";
import { LedgerRejectedError } from "./ledger_errors.ts";
import {
  type ReceiptKind,
  type ReceiptRecord,
  roundCredits,
  takesFraudProofs,
} from "./ledger_state.ts";
import {
  equivocationSlash,
  freeStake,
  type LedgerView,
  lockOf,
  rewardOf,
  slashable,
} from "./_ledger_amounts.ts";
import type { FraudSettlement } from "./ledger.ts";
import { stakeCovers, unrecordedBody, unrecordedRecord } from "./_ledger_unrecorded.ts";
import { steeringCover, steeringTakenLocks } from "./_ledger_steering.ts";
import {
  otherTrainingClaim,
  trainingFraudSubjectOf,
  trainingProvedLock,
} from "./_ledger_training.ts";

/** `Ledger.fraudSubject`, for a proof that names its receipt `id` (another: none). */
export function fraudSubjectOf(
  view: LedgerView,
  receipt: Receipt,
  id = receiptId(receipt),
): ReceiptRecord | undefined {
  if (id !== receiptId(receipt)) return undefined;
  const own = view.record(id);
  if (own !== undefined) return own;
  // Only the worker's own signature binds it to a variant it did not send here.
  if (!verifyReceipt(receipt).ok) return undefined;
  const recordedId = view.index.jobReceipt(receipt.jobId);
  const recorded = recordedId === undefined ? undefined : view.record(recordedId);
  if (recorded?.kind !== "inference") return undefined;
  const worker = toHex(receipt.worker);
  if (recorded.worker === worker) return recorded;
  // A claim of this worker's for the job known here unrecorded (convicted, or the second of a
  // double assignment): that one, as the variant recorded would be, so the worker is slashed
  // once for the job.
  const known = view.index.unrecordedClaim(receipt.jobId, worker);
  const kept = known === undefined ? undefined : view.record(known.receiptId);
  if (kept !== undefined) return kept;
  const rec = known === undefined
    ? unrecordedSubject(view, receipt, id, recorded)
    : unrecordedRecord(view, known, worker, recorded);
  // Only a claim its worker's stake backs (`stakeCovers`, as for keeping a refused claim).
  if (rec === undefined || !stakeCovers(view, receipt.worker, rec.locked)) return undefined;
  return rec;
}

/**
 * The record a proof about `receipt` settles when another worker's receipt, `holder`, holds its
 * job here, so it was never recorded (the second of a job its requester assigned twice, a
 * copier's after the worker's: refused `double_assignment` or `job_already_recorded`): the
 * receipt itself, as where it was recorded first — unpaid (the job's one payment is not its),
 * locking what it would have (the slash comes out of its worker's stake, as for an unpaid
 * receipt), inside the holder's window. Review s62: such a proof settled nowhere there, the
 * cheat keeping its stake (or a false accuser its penalty) only where the other came first.
 * Only a claim its worker's stake backs is a subject (`fraudSubjectOf` checks it, for a claim
 * kept by the index too, with `stakeCovers`): its worker has staked, and its whole stake covers
 * the lock (the bound a refused claim is kept under; stop 63 red team: free stake, which other
 * jobs' locks change, made the proof settle or not by the order a ledger heard them; review s62
 * red team: any free key signed made-up receipts for a job recorded here, each proof
 * about one checked — a forward pass — and settled, slashing nothing and costing its accuser
 * nothing).
 */
function unrecordedSubject(
  view: LedgerView,
  receipt: Receipt,
  id: string,
  holder: ReceiptRecord,
): ReceiptRecord {
  const locked = lockOf(view, rewardOf(view, receipt));
  return {
    receiptId: id,
    kind: "inference",
    worker: toHex(receipt.worker),
    status: "unpaid",
    credit: 0,
    locked,
    pendingUntil: holder.pendingUntil,
  };
}

/**
 * The other claim `receipt` makes for the job of `rec` (the receipt its worker had recorded
 * here, which a proof about `receipt` settles: `Ledger.fraudSubject`): its job and the
 * stake it would lock, when it claims other work (another output or token count) and the job
 * was not slashed for equivocation yet; else undefined (the same receipt, or the same claim).
 */
export function otherClaim(
  view: LedgerView,
  rec: ReceiptRecord,
  receipt: Receipt | undefined,
): { jobId: string; locked: number } | undefined {
  if (receipt === undefined) return undefined;
  if (receiptId(receipt) === rec.receiptId) {
    // One of a cancelled pair whose other half came (`cancelled_pair`): the proof convicts the
    // pair, slashed by its larger claim whichever half holds the job (review s81 vpair F5).
    const paired = view.index.cancelledPair(rec.receiptId);
    if (paired === undefined || view.index.equivocated(receipt.jobId)) return undefined;
    return { jobId: receipt.jobId, locked: paired.locked };
  }
  // `rec` never recorded here, another worker's receipt holding the job: its own claim, and
  // its worker's equivocation, not the job holder's.
  const side = view.index.unrecordedClaim(receipt.jobId, rec.worker);
  const known = side?.receiptId === rec.receiptId ? side : undefined;
  if (known === undefined ? view.index.equivocated(receipt.jobId) : known.equivocated) {
    return undefined;
  }
  const claim = known ?? view.index.claim(receipt.jobId);
  if (claim === undefined || claim.outputHash === null) return undefined;
  if (claim.outputHash === receipt.outputHash && claim.tokens === receipt.tokenCount) {
    return undefined;
  }
  return {
    jobId: receipt.jobId,
    locked: lockOf(view, rewardOf(view, receipt)),
  };
}

/**
 * The lock of the claim a confirmed proof is about: `rec`'s own, or, for `receipt`, another
 * claim its worker signed for the job (`Ledger.fraudSubject`), the lock that claim would take.
 */
function provedLock(view: LedgerView, rec: ReceiptRecord, receipt: Receipt | undefined): number {
  if (receipt === undefined || receiptId(receipt) === rec.receiptId) return rec.locked;
  return lockOf(view, rewardOf(view, receipt));
}

/**
 * What settling `settlement` (a checked fraud proof about a receipt of `receiptKind`) is,
 * decided when called, in the writer's turn, on what is recorded then: the body of its `fraud`
 * (confirmed) or `false_accusation` (refuted) entry, or a refusal thrown (see
 * `Ledger.settleFraud` and `Ledger.settleTrainingFraud`).
 */
export function fraudDecision(
  view: LedgerView,
  settlement: FraudSettlement,
  receiptKind: ReceiptKind,
): () => Record<string, unknown> {
  const validator = toHex(settlement.validator);
  return () => {
    // The receipt named, or the variant of it its worker had recorded here for the job (for a
    // training receipt: the receipt its trainer had recorded here for the round).
    const training = receiptKind === "training" ? settlement.trainingReceipt : undefined;
    const rec = training !== undefined
      ? trainingFraudSubjectOf(view, training, settlement.receiptId)
      : settlement.receipt === undefined
      ? view.record(settlement.receiptId)
      : fraudSubjectOf(view, settlement.receipt, settlement.receiptId);
    if (!rec) throw new LedgerRejectedError("unknown_receipt", "no such receipt in the ledger");
    if (rec.kind !== receiptKind) {
      // A fraud proof is checked against one kind of work: an inference proof says nothing
      // about a training receipt, nor the reverse.
      throw new LedgerRejectedError("wrong_kind", `receipt is a ${rec.kind} receipt`);
    }
    // `unpaid`: this ledger's own challenge ended undecided (`leaveUnresolved`). Inside the
    // window it still takes a proof, as every ledger that did not challenge does: else the
    // cheat keeps here the stake it loses everywhere else.
    const unpaid = rec.status === "unpaid";
    // Never recorded here (another worker's receipt holds the job: `unrecordedSubject`): a
    // confirmed proof records it, convicted, so it settles once, as where it was recorded.
    const unrecorded = settlement.receipt !== undefined && view.record(rec.receiptId) === undefined
      ? unrecordedBody(
        settlement.receipt.jobId,
        rec,
        rec.receiptId === settlement.receiptId
          ? { outputHash: settlement.receipt.outputHash, tokens: settlement.receipt.tokenCount }
          : view.index.unrecordedClaim(settlement.receipt.jobId, rec.worker) ??
            { outputHash: null, tokens: null },
      )
      : undefined;
    // Slashed for equivocation, or by this ledger's own fault (review s79, F4), while it still
    // took proofs, with no accuser rewarded yet: a confirmed proof is rewarded out of that
    // slash, and slashes nothing more (below).
    const unrewarded = settlement.confirmed && rec.status === "fraud"
      ? view.index.unrewardedSlash(rec.receiptId)
      : undefined;
    // A confirmed proof about another claim its worker signed for the job (not the one that was
    // convicted: another output or token count) proves an equivocation not settled yet.
    const otherOf = () =>
      training !== undefined
        ? otherTrainingClaim(view, rec, training)
        : otherClaim(view, rec, settlement.receipt);
    const convicted = rec.status === "fraud" && settlement.confirmed && unrewarded === undefined;
    // A receipt already slashed takes only a refuted proof (see `takesFraudProofs`), but for
    // the one confirmed proof a slash left unrewarded, and a proof of that other claim: the
    // equivocation is settled whichever proof came first (review s79, F2: refused here
    // `not_pending`, the worker kept 720 that a ledger hearing the proofs the other way took).
    if (!takesFraudProofs(rec.status) || (convicted && otherOf() === undefined)) {
      throw new LedgerRejectedError("not_pending", `receipt is ${rec.status}, not pending`);
    }
    // After its window, only this ledger's own open challenge still settles a receipt: a
    // proof from elsewhere is refused on every ledger alike (whether or not it challenged),
    // unless it was taken inside the window and its check ended after it.
    if (
      Math.min(view.now(), settlement.takenAt ?? Infinity) > rec.pendingUntil &&
      (rec.status !== "challenged" || validator !== view.owner)
    ) {
      throw new LedgerRejectedError(
        "challenge_window_closed",
        "the challenge window has closed",
      );
    }
    if (view.index.proofSettled(settlement.fraudProofHash)) {
      throw new LedgerRejectedError("already_settled", "this fraud proof was settled before");
    }
    // An inference receipt takes each of an accuser's proofs (each a proof of its own: the same
    // proof is settled once, above), refuted or confirmed, in any order: a refuted one costs the
    // penalty again, as on a receipt another accuser already convicted (`takesFraudProofs`), and
    // a confirmed one convicts once (a second finds the receipt `fraud`, rewarded: `not_pending`).
    // Review s76 (F2): one accusation per accuser and receipt, refuted ones included, had a false
    // proof that came first use up its accuser's one slot, so its confirmed proof was refused
    // (`repeated_accusation`) and the cheat paid in that ledger, slashed in one that heard the
    // two the other way round. Re-signing refuted claims is bounded by their price: each costs
    // the penalty out of free stake, and a peer's proof its free stake no longer backs is checked
    // only within a budget per receipt (`actors/_unbacked_checks.ts`). A training receipt keeps
    // one accusation per accuser (its proofs are re-run by the training validator, which
    // refuses a repeated one before the re-run: `training/_training_proof_intake.ts`).
    if (receiptKind === "training" && view.index.hasAccused(validator, rec.receiptId)) {
      // One accusation per accuser and training receipt: a refuted accuser cannot re-roll with a
      // fresh timestamp, making every ledger re-check (and re-book) the same claim.
      throw new LedgerRejectedError(
        "repeated_accusation",
        "this validator has already accused this receipt",
      );
    }
    if (rec.worker === validator) {
      // The worker accusing its own receipt only shapes its own settlement: refuted, a flat
      // penalty in place of checks; confirmed, a reward out of its own slash.
      throw new LedgerRejectedError("self_accusation", "the worker accused its own receipt");
    }
    // The slash is the lock, or what is left of the worker's stake after a steering
    // conviction cut into it: a reward is a share of what was really taken, never minted.
    // An unpaid receipt's lock was released: the slash is its amount, out of the stake
    // (`worker` names whose, as the receipt is no longer open in the working state).
    // A confirmed proof about another claim the worker signed for the job (another output
    // or token count) also proves its equivocation: the slash is the larger claim's, as where
    // that claim was recorded, and the job is marked so that the claim coming here later is
    // not slashed again (review s54: 10 tokens recorded here, a proof about its 1,000-token
    // variant cut 200 here and 20,000 there, its accuser rewarded 100 here and 10,000 there).
    // Asked after a slash left unrewarded too (this ledger's own fault): the fault slashed the
    // claim recorded here, never the equivocation (review s79 vledger F1: the worker kept 720 of
    // the larger claim's 800 where the fault came before the proof, its accuser paid R's share).
    const other = settlement.confirmed ? otherOf() : undefined;
    const proved = training !== undefined
      ? trainingProvedLock(view, rec, training)
      : provedLock(view, rec, settlement.receipt);
    // Pending evidence of this ledger's owner's steering conviction: the cut took its lock
    // already, so only what another claim adds is slashed now, and the accuser's share is of
    // what the cut took for it (`steeringCover`; review s79, F3).
    const cover = settlement.confirmed && unrewarded === undefined
      ? steeringCover(view, rec)
      : undefined;
    // What of the worker's locks a steering conviction already cut: free stake for the larger
    // claim's part (`steeringTakenLocks`; review s79 vledger F2).
    const taken = other === undefined ? 0 : steeringTakenLocks(view, rec.worker);
    // After a slash left unrewarded (`rec` is `fraud`: its own part is 0), only what the larger
    // claim adds; the accuser's share is of both (`earned`).
    const slashed = other === undefined
      ? (unrewarded !== undefined || cover !== undefined ? 0 : slashable(view, rec))
      : cover === undefined
      ? equivocationSlash(view, rec, other.locked, taken)
      : roundCredits(equivocationSlash(view, rec, other.locked, taken) - slashable(view, rec));
    // What the accuser's share is of: the slash of the claim it proved, never more than was
    // taken. Against one of a worker's two contradicting claims that is the proved claim's
    // lock, whichever claim came first and whether the equivocation was settled before, with
    // or after the proof (review s62: 0, 100 or 300 by the order, the worker losing 600 in all).
    const earned = unrewarded !== undefined
      ? Math.min(roundCredits(unrewarded + slashed), proved)
      : cover !== undefined
      ? Math.min(roundCredits(cover + slashed), proved)
      : other === undefined
      ? slashed
      : Math.min(slashed, proved);
    // The variant the proof was about, when it is not the receipt recorded here.
    const variant = rec.receiptId === settlement.receiptId ? {} : { variant: settlement.receiptId };
    return settlement.confirmed
      ? {
        receiptId: rec.receiptId,
        ...variant,
        fraudProof: settlement.fraudProofHash,
        validator,
        slashed,
        reward: settlement.wordOnly
          ? 0
          : roundCredits(earned * view.economics.validatorRewardShare),
        reason: settlement.reason,
        // Closed here (left unpaid, convicted): the state cuts `worker`'s stake, not a lock.
        ...(unpaid || rec.status === "fraud" ? { worker: rec.worker } : {}),
        // What of the steering conviction's cut this slash is (the index takes it from there).
        ...(cover === undefined ? {} : { steering: cover }),
        // Its claim: another claim of its worker's for the job coming later is equivocation
        // (`unrecordedEquivocation`), as where this receipt held the job.
        ...(unrecorded !== undefined ? { unrecorded } : {}),
        ...(other === undefined ? {} : { equivocated: other.jobId }),
      }
      : {
        receiptId: rec.receiptId,
        ...variant,
        fraudProof: settlement.fraudProofHash,
        validator,
        // What the accuser has free, at most: a stake never goes below zero (an accuser with
        // none here loses nothing, and its proofs are not checked: `ValidatorActor`), and never
        // below what its own receipts lock (review s45: a cheat whose stake was all locked
        // accused for free, out of the slash it was about to lose, its finder's reward cut).
        penalty: roundCredits(Math.min(
          view.economics.falseAccusationPenalty,
          freeStake(view.state.account(validator)),
        )),
        reason: settlement.reason,
      };
  };
}
