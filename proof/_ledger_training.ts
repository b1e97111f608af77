/**
 * Recording training receipts: the slot a trainer's receipt takes in its round
 * ({@link trainingSlot}: one receipt, and one payment, per trainer and round), what a training
 * receipt brought to the ledger is ({@link trainingReceiptDecision}: a new pending receipt, or
 * equivocation — a second, different receipt of the trainer for the round, slashed on arrival —
 * or a refusal), and crediting one recorded without credit ({@link trainingCreditDecision}).
 * Each decision runs in the writer's turn. Used by `Ledger.recordTrainingReceipt` and
 * `Ledger.creditTrainingReceipt` (`ledger.ts`, which checks the receipt's signature and its
 * round's terms first, and re-exports `trainingSlot`). Not part of the public API (but
 * `trainingSlot`).
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { TrainingReceipt } from "../training/training_receipt.ts";
import type { LedgerEntryKind } from "./ledger_entry.ts";
import { InsufficientStakeError, LedgerRejectedError } from "./ledger_errors.ts";
import { roundCredits } from "./ledger_state.ts";
import { equivocationSlash, type LedgerView, lockOf } from "./_ledger_amounts.ts";
import type { TrainingRoundTerms } from "./ledger.ts";

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
  const slot = trainingSlot(trainer, receipt.round, receipt.startModel);
  const reward = roundCredits(receipt.steps * view.economics.trainingCreditPerStep);
  const locked = lockOf(view, reward);
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
      return {
        kind: "training_equivocation",
        body: {
          slot,
          receiptId: first.receiptId,
          worker: trainer,
          second: receipt as unknown as Record<string, unknown>,
          // As for inference: the larger claim's lock, what is left of the stake at most.
          slashed,
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
    const acc = view.state.account(trainer);
    const free = roundCredits(acc.stake - acc.locked);
    if (locked > free) throw new InsufficientStakeError(locked, free);
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
 * Crediting the training receipt `receiptId`, decided in the writer's turn: the body of its
 * `assigned` entry, or null when there is nothing to credit (see `Ledger.creditTrainingReceipt`).
 */
export function trainingCreditDecision(
  view: LedgerView,
  receiptId: string,
): () => Record<string, unknown> | null {
  return () => {
    const rec = view.record(receiptId);
    const open = rec?.status === "pending" || rec?.status === "challenged";
    if (rec === undefined || !open || rec.kind !== "training" || rec.credit > 0) return null;
    // Its slash was locked as `slashMultiplier ×` the credit it was recorded without.
    return {
      receiptId,
      requester: view.owner,
      credit: roundCredits(rec.locked / view.economics.slashMultiplier),
    };
  };
}
