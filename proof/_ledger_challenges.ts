/**
 * The challenges of this ledger's owner: the decisions, made in the writer's turn, that open
 * one on a pending receipt ({@link openChallengeDecision}) and end it — `valid`
 * ({@link clearDecision}), a fault that no fraud proof carries ({@link faultDecision}), or
 * undecided ({@link unresolvedDecision}); the fourth ending, a checked fraud proof, is
 * `_ledger_accusations.ts`'s. Each refuses a receipt that is unknown or in another status than
 * its step allows ({@link pendingRecord}). Used by `Ledger.openChallenge`,
 * `Ledger.clearChallenge`, `Ledger.settleFault` and `Ledger.leaveUnresolved` (`ledger.ts`). Not
 * part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import { LedgerRejectedError } from "./ledger_errors.ts";
import type { ReceiptRecord, ReceiptStatus } from "./ledger_state.ts";
import { type LedgerView, slashable } from "./_ledger_amounts.ts";
import { steeringCover } from "./_ledger_steering.ts";

/**
 * The body of the `challenge` entry opening the owner's challenge of `receiptId`: only a
 * pending receipt inside its window.
 */
export function openChallengeDecision(
  view: LedgerView,
  receiptId: string,
): () => Record<string, unknown> {
  return () => {
    const rec = pendingRecord(view, receiptId, ["pending"]);
    if (view.now() > rec.pendingUntil) {
      throw new LedgerRejectedError("challenge_window_closed", "the challenge window has closed");
    }
    return { receiptId };
  };
}

/** The body of the `cleared` entry: the challenge of `receiptId` ended `valid`. */
export function clearDecision(view: LedgerView, receiptId: string): () => Record<string, unknown> {
  return () => {
    pendingRecord(view, receiptId, ["challenged"]);
    return { receiptId };
  };
}

/**
 * The body of the `fault` entry: the challenge of `receiptId` ended in the worker's own
 * failure; the slash is what the receipt locks ({@link slashable}), or nothing more when the
 * owner's steering conviction already took it (`steering`: what of the cut it takes, see
 * `steeringCover`). The index keeps the whole as unrewarded, for a peer's proof to come.
 */
export function faultDecision(
  view: LedgerView,
  receiptId: string,
  validator: Uint8Array,
  reason: string,
): () => Record<string, unknown> {
  return () => {
    const rec = pendingRecord(view, receiptId, ["challenged"]);
    const cover = steeringCover(view, rec);
    return {
      receiptId,
      validator: toHex(validator),
      reason,
      slashed: cover === undefined ? slashable(view, rec) : 0,
      ...(cover === undefined ? {} : { steering: cover }),
    };
  };
}

/**
 * The body of the `unresolved` entry: the challenge of `receiptId` could not be decided. Inside
 * the receipt's window its lock is `held` until the window ends (`LedgerState.apply`): a peer's
 * proof can still convict it there, and every ledger that did not challenge keeps that stake
 * locked too (review s79, F1: released now, it backed one more receipt, whose conviction then
 * slashed nothing). Past the window, released now, as entries without `held` always were.
 */
export function unresolvedDecision(
  view: LedgerView,
  receiptId: string,
  reason: string,
): () => Record<string, unknown> {
  return () => {
    const rec = pendingRecord(view, receiptId, ["pending", "challenged"]);
    return view.now() <= rec.pendingUntil
      ? { receiptId, reason, held: true }
      : { receiptId, reason };
  };
}

/**
 * The record of `receiptId` (the live one), when its status is one of `allowed`.
 *
 * @throws {LedgerRejectedError} `unknown_receipt`, or `wrong_status`.
 */
function pendingRecord(
  view: LedgerView,
  receiptId: string,
  allowed: ReceiptStatus[],
): ReceiptRecord {
  const rec = view.record(receiptId);
  if (!rec) throw new LedgerRejectedError("unknown_receipt", "no such receipt in the ledger");
  if (!allowed.includes(rec.status)) {
    throw new LedgerRejectedError(
      "wrong_status",
      `receipt is ${rec.status}, not ${allowed.join(" or ")}`,
    );
  }
  return rec;
}
