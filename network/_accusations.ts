/**
 * Accusations, and what goes ahead of them: the evidence against a worker that the
 * NetworkActor passes on to its peers — a fraud proof of an inference receipt, training gossip of
 * one, a stream proof (a lost worker's wrong tokens), or a "proof withheld" claim — which a ledger takes only from an author with stake there.
 * This module holds the {@link Accusation} and {@link ClaimEvidence} types, how an accusation
 * goes on the wire ({@link notifyAccusation}, {@link notifyTraining}), whose stake it counts on
 * ({@link accuserOf}), and {@link CarriedClaimReceipts}: the receipt a claim is about, sent on
 * each connection once, ahead of the claim ({@link sendClaimEvidence}, also ahead of a fault sent
 * in a connecting peer's catch-up, `catch_up.ts`). The author's pledge that goes ahead of each is
 * `pledge_sync.ts`'s (`PledgeSync.sendAhead`). Owned and used by the NetworkActor
 * (`network_actor.ts`, which re-exports the public names); not part of the public API.
 *
 * Every `validation.receipt` announcement goes through {@link announceReceipt}: the claim's
 * receipt, and each receipt the NetworkActor passes on (`announce_receipt`). It is a request, and
 * a peer's connection refuses it `busy` at admission while it handles `maxInboundRequests` of our
 * messages (a burst of our announcements while its validator works). Nothing announced it again:
 * the honest worker's receipt was never recorded in that ledger and it was paid less there than in
 * the others, and a claim went out without its receipt and was held there for good (review s59,
 * `tests/network/busy_announcements_test.ts`). So a `busy` refusal is asked again on
 * the same connection after the backoff one-way messages get (`BUSY_RETRY_BACKOFF_MS`, doubled,
 * at most `MAX_BUSY_RETRIES` times: `protocols/_connection_notices.ts`); any other ending (an
 * answer, a refusal with a reason, a timeout, another error, the connection closed) is final.
 *
 * @module
 */
import {
  BUSY_RETRY_BACKOFF_MS,
  type Connection,
  type ConnectionTimers,
  MAX_BUSY_RETRIES,
  SYSTEM_TIMERS,
} from "../protocols/connection.ts";
import { jobBytes, type TextJob } from "../protocols/job.ts";
import { RemoteError } from "../protocols/protocol_errors.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import {
  FraudProofAnnouncementMessage,
  type ReceiptAckBody,
  type ReceiptAnnouncementBody,
  ReceiptAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import type { StreamProof } from "../protocols/stream_proof.ts";
import {
  OutcomeMessage,
  TrainingFraudProofMessage,
  type TrainingGossip,
  TrainingReceiptMessage,
} from "../protocols/training_messages.ts";

/**
 * Evidence against a worker to pass on, which a ledger takes only from an author with stake
 * there: a fraud proof of an inference receipt, training gossip of one, a stream proof (a lost
 * worker's signed wrong tokens, `protocols/stream_proof.ts`), or a "proof withheld"
 * claim (a validator's `invalid / proof_unavailable` verdict: a ledger asks the worker itself on
 * a staked claimant's word, and slashes it if it withholds there too).
 */
export type Accusation =
  | { kind: "inference"; proof: FraudProof }
  | { kind: "stream"; proof: StreamProof }
  | Extract<TrainingGossip, { kind: "fraud_proof" }>
  | { kind: "withheld"; verdict: Verdict; evidence?: ClaimEvidence };

/**
 * Receipts a connection is remembered to have carried ahead of a "proof withheld" claim
 * ({@link ClaimEvidence}), so that each goes once per connection, not ahead of each claimant's
 * claim about it: a job may take `MAX_NETWORK_JOB_BYTES` (448 KiB), and any staked key may sign a
 * claim about any pending receipt (a claim is taken over within the takeover budget, but recorded
 * and passed on past it), so keys claiming about receipts of large jobs multiplied what each
 * claim, about 1.3 KiB, costs every connection. Past the bound the oldest is forgotten, and sent
 * again at most once more. About 30 KB per connection (256 hex ids), as
 * `MAX_CARRIED_PLEDGES`. A peer that forgot a receipt again after it was carried (a flood pushed
 * it out of its memory anew) and did not take the first claim over takes a later claim alone.
 */
export const MAX_CARRIED_CLAIM_RECEIPTS = 256;

/**
 * The receipt a "proof withheld" claim is about, with its job: sent on each connection ahead of
 * the claim (once per connection, {@link MAX_CARRIED_CLAIM_RECEIPTS}), as a `validation.receipt`
 * announcement (no assignment: a ledger that has the receipt
 * recorded needs none, and one that has not records it uncredited until its assignment comes).
 * A ledger takes a claim over only while it remembers the receipt and job (a bounded memory, one
 * queue for every worker, `actors/_validator_memory.ts`); one that forgot them, pushed out by a
 * flood of receipts (which only lock stake), remembers them again from this copy (the very
 * receipt recorded there, its worker's signature checked), and one that never had them records
 * them (review s57: the claim alone was not taken over there, and the worker that withheld was
 * paid there, slashed in the claimant's ledger).
 */
export interface ClaimEvidence {
  /** The worker's signed receipt. */
  receipt: Receipt;
  /** Its job (a text job: what `validation.receipt` carries). */
  job: TextJob;
}

/**
 * Whether `verdict` is a "proof withheld" claim about an inference receipt: what a ledger takes
 * over (`#takeOverWithheld`, `actors/_peer_verdicts.ts`) only from a claimant with stake there.
 */
export function isWithheldClaim(verdict: Verdict): boolean {
  return verdict.subject === "inference" && verdict.outcome === "invalid" &&
    verdict.reason === "proof_unavailable";
}

/** The key whose stake `accusation` counts on: its accuser's, or its claimant's. */
export function accuserOf(accusation: Accusation): Uint8Array {
  switch (accusation.kind) {
    case "inference":
      return accusation.proof.validator;
    case "stream":
      return accusation.proof.accuser;
    case "fraud_proof":
      return accusation.body.proof.validator;
    case "withheld":
      return accusation.verdict.validator;
  }
}

/**
 * Send `accusation` on `connection`, as the message of its protocol: a one-way notify, resolved
 * once written, sent again by the connection if the peer refuses it `busy`
 * (`protocols/_connection_notices.ts`).
 */
export function notifyAccusation(connection: Connection, accusation: Accusation): Promise<void> {
  switch (accusation.kind) {
    case "inference":
      return connection.notify(FraudProofAnnouncementMessage, { proof: accusation.proof });
    case "stream":
      return connection.notify(StreamProofAnnouncementMessage, { proof: accusation.proof });
    case "fraud_proof":
      return notifyTraining(connection, accusation);
    case "withheld":
      // After its receipt, where it brings one ({@link CarriedClaimReceipts.receiptAhead}).
      return connection.notify(VerdictAnnouncementMessage, { verdict: accusation.verdict });
  }
}

/** Send one training gossip item on `connection`. */
export function notifyTraining(connection: Connection, gossip: TrainingGossip): Promise<void> {
  switch (gossip.kind) {
    case "receipt":
      return connection.notify(TrainingReceiptMessage, gossip.body);
    case "fraud_proof":
      return connection.notify(TrainingFraudProofMessage, gossip.body);
    case "outcome":
      return connection.notify(OutcomeMessage, gossip.body);
  }
}

/**
 * Most receipt announcements one connection keeps waiting out a `busy` backoff
 * ({@link announceReceipt}). A refused burst is as big as the peer's `maxInboundRequests` let
 * through less what it held; 256, as {@link MAX_CARRIED_CLAIM_RECEIPTS}, covers a burst of ours
 * many times over, and keeps the timers and promises one connection holds bounded.
 */
export const MAX_BUSY_RECEIPTS = 256;

/**
 * Most bytes of jobs (canonical CBOR, `jobBytes`) the receipt announcements one connection keeps
 * waiting out a `busy` backoff may hold ({@link announceReceipt}; a receipt and its assignment, a
 * few hundred bytes each, count in {@link MAX_BUSY_RECEIPTS}). One default frame: hundreds of
 * ordinary jobs, and two of the largest (`MAX_NETWORK_JOB_BYTES`, 448 KiB) at once.
 */
export const MAX_BUSY_RECEIPT_BYTES = 1024 * 1024;

/**
 * Per connection, its receipt announcements waiting out a `busy` backoff: the bytes of their jobs,
 * and how to end each wait early (the connection closed).
 */
interface BusyWaits {
  bytes: number;
  cancels: Set<() => void>;
}

/** {@link BusyWaits} by connection (one `closed` reaction each, not one per wait). */
const busyWaits = new WeakMap<Connection, BusyWaits>();

/**
 * Announce a receipt on `connection` (`validation.receipt`), and ask again while the peer's
 * connection refuses it `busy`: after {@link BUSY_RETRY_BACKOFF_MS}, doubled each time, at most
 * {@link MAX_BUSY_RETRIES} times, on `timers` (the connection's clock: the NetworkActor's
 * `connection.timers`). A copy refused at admission never reached the peer's validator, and one
 * that did (a reply the peer could not queue, answered `busy` instead) is taken once there, so
 * asking again never records anything twice. Any other ending is final: the peer's answer, a
 * refusal with a reason in it (`recorded: false`), a timeout or another error, the connection
 * closed (a new connection does not carry the receipt: lost there, as before). A peer whose
 * validator is down (stopped, restarting) does not refuse at once: its handler waits for the
 * validator, bounded, and answers `service_unavailable` only past that wait
 * (`ValidatorInbox.ask`, `_validator_inbox.ts`).
 *
 * Who pays: the sender, in memory, at most {@link MAX_BUSY_RECEIPTS} announcements and
 * {@link MAX_BUSY_RECEIPT_BYTES} of their jobs per connection waiting, kept by reference (one
 * broadcast's copies share one body) and let go when the connection closes; past either bound a
 * refused announcement is not kept, and the worker goes unpaid in that ledger, as before. On the
 * wire, at most {@link MAX_BUSY_RETRIES} more copies of each; the peer pays a decode, a schema
 * check and a small `error` frame for each it refuses (`busy` does not count towards its
 * `maxRefusals`).
 *
 * @returns The peer's answer; rejects with the last error.
 */
export async function announceReceipt(
  connection: Connection,
  body: ReceiptAnnouncementBody,
  timers: ConnectionTimers = SYSTEM_TIMERS,
): Promise<ReceiptAckBody> {
  let bytes: number | undefined;
  for (let tries = 0;; tries++) {
    try {
      return await connection.request(ReceiptAnnouncementMessage, body);
    } catch (error) {
      const busy = error instanceof RemoteError && error.code === "busy";
      if (!busy || tries >= MAX_BUSY_RETRIES || connection.isClosed) throw error;
      bytes ??= jobBytes(body.job);
      const waits = busyWaitsOf(connection);
      if (
        waits.cancels.size >= MAX_BUSY_RECEIPTS || waits.bytes + bytes > MAX_BUSY_RECEIPT_BYTES
      ) throw error;
      waits.bytes += bytes;
      try {
        await backoff(waits, timers, BUSY_RETRY_BACKOFF_MS * 2 ** tries);
      } finally {
        waits.bytes -= bytes;
      }
      if (connection.isClosed) throw error;
    }
  }
}

/** The {@link BusyWaits} of `connection`, made at its first wait. */
function busyWaitsOf(connection: Connection): BusyWaits {
  let waits = busyWaits.get(connection);
  if (waits === undefined) {
    const made: BusyWaits = { bytes: 0, cancels: new Set() };
    busyWaits.set(connection, waits = made);
    const cancel = () => {
      for (const end of [...made.cancels]) end();
    };
    connection.closed.then(cancel, cancel);
  }
  return waits;
}

/** Resolves after `ms` on `timers`, or as soon as the connection of `waits` closes. */
function backoff(waits: BusyWaits, timers: ConnectionTimers, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const end = () => {
      waits.cancels.delete(end);
      timers.clearTimeout(timer);
      resolve();
    };
    const timer = timers.setTimeout(end, ms);
    waits.cancels.add(end);
  });
}

/**
 * Send a claim's evidence (its receipt and job, {@link ClaimEvidence}) on `connection` as a
 * `validation.receipt` announcement, ahead of the claim: resolves once the peer answered, whatever
 * the answer (its validator handled the receipt: remembers it again, or records it), or the
 * request failed; never rejects. A `busy` refusal is asked again after a backoff
 * ({@link announceReceipt}, on `timers`), and the claim waits for it: sent at once, it reached the
 * peer without its receipt, and was held there for good (review s59). Sent ahead of a claim passed
 * on ({@link CarriedClaimReceipts}) and of a fault sent in a connecting peer's catch-up
 * (`catch_up.ts`).
 */
export function sendClaimEvidence(
  connection: Connection,
  evidence: ClaimEvidence,
  timers: ConnectionTimers = SYSTEM_TIMERS,
): Promise<unknown> {
  return announceReceipt(connection, evidence, timers).catch(() => {});
}

/**
 * The receipts each connection carried ahead of a "proof withheld" claim (see
 * {@link ClaimEvidence}); owned by the NetworkActor, used from its `receive` only.
 */
export class CarriedClaimReceipts {
  /** The clock of a `busy` receipt's backoff ({@link sendClaimEvidence}). */
  readonly #timers: ConnectionTimers;

  /** @param timers The clock of a `busy` receipt's backoff (default the system's). */
  constructor(timers: ConnectionTimers = SYSTEM_TIMERS) {
    this.#timers = timers;
  }

  /**
   * Per connection, the receipts it carried ahead of a claim, by id, oldest first (bounded:
   * {@link MAX_CARRIED_CLAIM_RECEIPTS}), each with the promise of the peer's answer; gone with
   * the connection.
   */
  readonly #carriedReceipts = new WeakMap<Connection, Map<string, Promise<unknown>>>();

  /**
   * What a claim waits for on `connection` before it goes: the peer's answer for its receipt
   * (`ClaimEvidence`), sent now if the claim brings it and the connection has not carried it
   * ({@link MAX_CARRIED_CLAIM_RECEIPTS}), whatever the answer (the peer's validator handled the
   * receipt: remembers it again, or records it). A request may wait for a slot on the connection,
   * so a claim sent at once would overtake it, and so would a later claimant's claim about the
   * same receipt sent while it is on its way. Undefined: nothing to wait for.
   */
  receiptAhead(connection: Connection, accusation: Accusation): Promise<unknown> | undefined {
    if (accusation.kind !== "withheld") return undefined;
    const id = accusation.verdict.subjectId;
    let carried = this.#carriedReceipts.get(connection);
    const sent = carried?.get(id);
    if (sent !== undefined || accusation.evidence === undefined) return sent;
    if (carried === undefined) this.#carriedReceipts.set(connection, carried = new Map());
    const answered = sendClaimEvidence(connection, accusation.evidence, this.#timers);
    carried.set(id, answered);
    if (carried.size > MAX_CARRIED_CLAIM_RECEIPTS) carried.delete(carried.keys().next().value!);
    return answered;
  }
}
