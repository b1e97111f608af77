/**
 * Training receipts and training fraud in the ValidatorActor's ledger (`validator_actor.ts`):
 * recording a trainer's receipt against its round, and settling a training fraud proof already
 * checked by the training validator (`training/training_validator.ts`). Both touch only the
 * ledger; what a conviction tells the network and the log stays with the actor. Not part of the
 * public API.
 *
 * @module
 */
import { type Ledger, LedgerRejectedError, takesFraudProofs } from "../proof/ledger.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type {
  TrainingChallengeLedgerMessage,
  TrainingFraudLedgerMessage,
  TrainingReceiptLedgerMessage,
  TrainingReceiptRecorded,
} from "./validator_messages.ts";

/**
 * Record a training receipt; a refusal is an answer, not a crash (it came from a peer).
 *
 * @param ledger The validator's ledger.
 * @param message The receipt, its round's terms and whether it is credited.
 * @returns Whether it is recorded, and whether it is new here (or why it was refused).
 */
export async function recordTrainingReceipt(
  ledger: Ledger,
  message: TrainingReceiptLedgerMessage,
): Promise<TrainingReceiptRecorded> {
  try {
    await ledger.recordTrainingReceipt(message.receipt, message.terms, {
      credited: message.credited ?? false,
    });
    return { recorded: true, fresh: true };
  } catch (error) {
    const code = (error as { code?: string }).code ?? "refused";
    if (code === "duplicate_receipt") {
      if (message.credited) {
        await ledger.creditTrainingReceipt(trainingReceiptId(message.receipt));
      }
      return { recorded: true, fresh: false };
    }
    if (error instanceof LedgerRejectedError || code === "insufficient_stake") {
      return { recorded: false, fresh: false, refusal: code };
    }
    throw error;
  }
}

/**
 * Settle a checked training fraud proof (see `training/training_validator.ts`). A confirmed
 * one that settled is a conviction (`settled` with the trainer's `slashed` locked stake): the
 * caller tells the network and the log.
 *
 * @param ledger The validator's ledger.
 * @param message The checked proof's receipt, outcome and accuser.
 * @returns Whether it settled, and how much was slashed (0 unless confirmed).
 */
export async function settleTrainingFraud(
  ledger: Ledger,
  message: TrainingFraudLedgerMessage,
): Promise<{ settled: boolean; slashed: number }> {
  const { receipt } = message;
  const id = trainingReceiptId(receipt);
  if (ledger.receipt(id) === undefined) {
    // The proof outran the receipt's gossip: the trainer signed it, so it is recorded from
    // here against the round it names.
    await recordTrainingReceipt(ledger, {
      type: "training_receipt",
      receipt,
      terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
    });
  }
  // The record the proof settles: the receipt's, or — answered `equivocation` (or
  // `round_already_recorded`), another receipt of its trainer for the round recorded first — that
  // one (review s63: dropped here, `settled: false`, the accuser unpaid).
  const record = ledger.trainingFraudSubject(receipt);
  if (record === undefined || !takesFraudProofs(record.status)) {
    return { settled: false, slashed: 0 };
  }
  const settled = await ledger.settleTrainingFraud({
    receiptId: id,
    trainingReceipt: receipt,
    fraudProofHash: message.fraudProofHash,
    validator: message.validator,
    confirmed: message.confirmed,
    reason: message.reason,
    // Taken inside the window, its re-run ending after it: settled as in faster ledgers.
    takenAt: message.takenAt,
    // No answer by the deadline cannot be shown to a third party: the slash is burned.
    wordOnly: message.confirmed && message.reason === "opening_missing",
  }).catch((error) => {
    if (error instanceof LedgerRejectedError) return undefined;
    throw error;
  });
  if (settled === undefined || !message.confirmed) {
    return { settled: settled !== undefined, slashed: 0 };
  }
  // What the entry slashed (the larger claim's lock, for a proof revealing the equivocation; 0
  // where an equivocation entry slashed before it).
  const { slashed } = settled.body as { slashed?: unknown };
  return { settled: true, slashed: typeof slashed === "number" ? slashed : record.locked };
}

/**
 * Open or end the ledger owner's challenge of a training receipt (see
 * {@link TrainingChallengeLedgerMessage}); a refusal is an answer (false), not a crash.
 *
 * @param ledger The validator's ledger.
 * @param message The receipt and what happens to its challenge.
 * @returns Whether the ledger changed.
 */
export async function holdTrainingChallenge(
  ledger: Ledger,
  message: TrainingChallengeLedgerMessage,
): Promise<boolean> {
  const { receiptId, step } = message;
  if (ledger.receipt(receiptId)?.kind !== "training") return false;
  try {
    if (step === "open") await ledger.openChallenge(receiptId);
    else if (step === "passed") await ledger.clearChallenge(receiptId);
    else await ledger.leaveUnresolved(receiptId, message.reason ?? "undecided");
    return true;
  } catch (error) {
    if (error instanceof LedgerRejectedError) return false;
    throw error;
  }
}
