/**
 * The items a validator's catch-up (`_catch_up.ts`) keeps, and their files: the two kinds it
 * keeps ({@link Conviction}, {@link KeptVerdict}), how it holds one in memory ({@link Kept}: with
 * what its bounds weigh), what one's file holds ({@link KeptFile}, {@link KeptVerdictFile}), the
 * ids that name the files ({@link idOf}, {@link verdictIdOf}), and the checks a file read back
 * must pass to be kept again ({@link convictionOf}, {@link keptVerdictOf}: an item as the wire
 * carries it). Used by `CatchUp` (`_catch_up.ts`) and `CatchUpVerdicts`
 * (`_catch_up_verdicts.ts`). Not part of the public API.
 *
 * @module
 */
import { jobId } from "../protocols/job.ts";
import { receiptId } from "../protocols/receipt.ts";
import {
  FraudProofAnnouncementMessage,
  ReceiptAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { streamFraudKey } from "../proof/ledger_index.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import { TrainingFraudProofMessage } from "../protocols/training_messages.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type { CatchUpItem } from "./validator_messages.ts";

/** A conviction as it is kept: an inference or a training fraud proof, or a stream proof. */
export type Conviction = Extract<
  CatchUpItem,
  { kind: "fraud_proof" | "training_fraud_proof" | "stream_proof" }
>;

/** A verdict as it is kept, with the receipt and job it goes after, if any. */
export type KeptVerdict = Extract<CatchUpItem, { kind: "verdict" }>;

/** An item kept in memory, with what the bounds weigh. */
export interface Kept<T> {
  item: T;
  /**
   * Hex key of the convicted worker or trainer (fraud and stream proofs), or of the node whose work a verdict
   * is about (its `target`, which every verdict names; for a fault, the worker whose receipt its
   * evidence is): what the bounds weigh.
   */
  worker?: string;
  /** The accuser's key (fraud and stream proofs only). */
  accuser?: Uint8Array;
  /** End of the receipt's window (ledger clock, ms): sent until then. */
  until: number;
  /** Its size, or its evidence's (canonical CBOR; fraud proofs, verdicts with evidence). */
  bytes?: number;
  /** When it was kept, in this catch-up's order (kept on disk with it). */
  seq?: number;
  /** Its verdict's id, which names its file (verdicts only). */
  id?: string;
}

/** A conviction as its file holds it (untrusted when read). */
export interface KeptFile {
  /** The order it was kept in: read back oldest first, so the bounds drop what they dropped. */
  seq: number;
  /** End of the receipt's window (ledger clock, ms). */
  until: number;
  /** The conviction. */
  item: Conviction;
}

/** A verdict as its file holds it (untrusted when read). */
export interface KeptVerdictFile {
  /** The order it was kept in: read back oldest first, so the bounds drop what they dropped. */
  seq: number;
  /** End of the receipt's window (ledger clock, ms). */
  until: number;
  /** The verdict, and the evidence it goes after where it still carries it. */
  item: KeptVerdict;
}

/** A verdict's id, or undefined where it is not one (a damaged file's). */
export function verdictIdOf(verdict: Verdict): string | undefined {
  try {
    return verdictId(verdict);
  } catch {
    return undefined;
  }
}

/**
 * A verdict's file as read back, if it is one: a verdict as the wire carries it, with, if any,
 * evidence as `validation.receipt` carries it — the receipt the verdict names, bound to its job —
 * its window and order.
 */
export function keptVerdictOf(value: unknown): KeptVerdictFile | undefined {
  const file = value as Partial<KeptVerdictFile> | undefined;
  const { seq, until, item } = file ?? {};
  if (!Number.isSafeInteger(seq) || seq! < 0 || !Number.isFinite(until)) return undefined;
  if (typeof item !== "object" || item === null || item.kind !== "verdict") return undefined;
  const { verdict, evidence } = item;
  if (!VerdictAnnouncementMessage.schema.safeParse({ verdict }).success) return undefined;
  if (evidence !== undefined) {
    if (!ReceiptAnnouncementMessage.schema.safeParse(evidence).success) return undefined;
    try {
      const bound = receiptId(evidence.receipt) === verdict.subjectId &&
        jobId(evidence.job) === evidence.receipt.jobId;
      if (!bound) return undefined;
    } catch {
      return undefined;
    }
  }
  const kept: KeptVerdict = evidence === undefined
    ? { kind: "verdict", verdict }
    : { kind: "verdict", verdict, evidence: { receipt: evidence.receipt, job: evidence.job } };
  return { seq: seq!, until: until!, item: kept };
}

/**
 * What names a conviction's file, and what it is about: the receipt id (inference or training),
 * or, for a stream proof, the hash of the stream's key (`streamFraudKey`: one conviction per job
 * and worker, as one per receipt).
 */
export function idOf(item: Conviction): string {
  switch (item.kind) {
    case "fraud_proof":
      return receiptId(item.proof.receipt);
    case "training_fraud_proof":
      return trainingReceiptId(item.body.proof.receipt);
    case "stream_proof": {
      const { job, worker } = item.proof.claim;
      return sha256Hex(new TextEncoder().encode(streamFraudKey(jobId(job), toHex(worker))));
    }
  }
}

/** The key of the worker or trainer a conviction convicts. */
export function convictedOf(item: Conviction): Uint8Array {
  switch (item.kind) {
    case "fraud_proof":
      return item.proof.receipt.worker;
    case "training_fraud_proof":
      return item.body.proof.receipt.trainer;
    case "stream_proof":
      return item.proof.claim.worker;
  }
}

/** The key of a conviction's accuser (whose pledge goes ahead of it on connect). */
export function accuserOfConviction(item: Conviction): Uint8Array {
  switch (item.kind) {
    case "fraud_proof":
      return item.proof.validator;
    case "training_fraud_proof":
      return item.body.proof.validator;
    case "stream_proof":
      return item.proof.accuser;
  }
}

/**
 * A conviction's file as read back, if it is one: a conviction as the wire carries it (the
 * schema a peer's copy is parsed with, so none is sent that a peer refuses), its window and order.
 */
export function convictionOf(value: unknown): KeptFile | undefined {
  const file = value as Partial<KeptFile> | undefined;
  const { seq, until, item } = file ?? {};
  if (!Number.isSafeInteger(seq) || seq! < 0 || !Number.isFinite(until)) return undefined;
  if (typeof item !== "object" || item === null) return undefined;
  let valid: boolean;
  if (item.kind === "fraud_proof") {
    valid = FraudProofAnnouncementMessage.schema.safeParse({ proof: item.proof }).success;
  } else if (item.kind === "training_fraud_proof") {
    valid = TrainingFraudProofMessage.schema.safeParse(item.body).success;
  } else if (item.kind === "stream_proof") {
    valid = StreamProofAnnouncementMessage.schema.safeParse({ proof: item.proof }).success;
  } else {
    valid = false;
  }
  return valid ? { seq: seq!, until: until!, item } : undefined;
}
