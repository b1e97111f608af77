/**
 * The NetworkActor's gossip: what it spreads to one connection of every peer that offers the
 * protocol, but the peer it came from (`except`). A receipt goes to every ledger-keeping peer,
 * asked again while a peer refuses it `busy` (`announceReceipt`, `_accusations.ts`), and a peer
 * that refused it for want of the worker's stake is sent the worker's pledge
 * (`PledgeSync.sendNeeded`), and the receipt again after it if the peer did not keep it for the
 * pledge (`INSUFFICIENT_STAKE_NOT_KEPT`); a verdict goes to every such peer after its author's
 * pledge (`PledgeSync.sendAhead`, once per connection and minute); a fraud proof or a
 * "proof withheld" claim goes after its author's pledge, looked up in this node's ledger first
 * (`PledgeSync.lookUpPledge`, then the actor's `publish_accusation` message; a stream proof
 * likewise) and sent once per
 * connection (`PledgeSync.sendAhead`), and a claim after the receipt it is about
 * (`CarriedClaimReceipts`); training gossip goes to every training peer. A send that fails is
 * logged. Owned and used by the NetworkActor (`network_actor.ts`), whose `receive` hands it the
 * `announce_receipt`, `publish_verdict`, `publish_fraud_proof`, `publish_stream_proof`,
 * `publish_accusation` and `publish_training` messages; not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { Connection, ConnectionTimers } from "../protocols/connection.ts";
import type { Protocol } from "../protocols/connection_protocols.ts";
import { toHex } from "../protocols/hash.ts";
import {
  type ReceiptAckBody,
  type ReceiptAnnouncementBody,
  VALIDATION_PROTOCOL,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import { INSUFFICIENT_STAKE_NOT_KEPT } from "../actors/validator_messages.ts";
import { TRAINING_PROTOCOL } from "../protocols/training_messages.ts";
import { errorWords, peerWords } from "./_peer_words.ts";
import type { LogLimiter } from "./log_limiter.ts";
import type { PledgeSync } from "./pledge_sync.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import {
  type Accusation,
  accuserOf,
  announceReceipt,
  CarriedClaimReceipts,
  isWithheldClaim,
  notifyAccusation,
  notifyTraining,
} from "./_accusations.ts";
import type { PeerEntry } from "./_peer_entry.ts";
import type { NetworkMessage } from "./network_actor.ts";

/**
 * Most receipt announcements one connection holds while the worker's pledge goes ahead of them
 * ({@link PeerGossip}: a peer that did not keep one for the pledge, `INSUFFICIENT_STAKE_NOT_KEPT`,
 * is sent it again after the pledge). Each waits a look-up in this node's ledger and a write;
 * 256, as `MAX_BUSY_RECEIPTS`, is many times the receipts a peer keeps waiting for one worker
 * (16) and bounds what a peer that refuses everything so can make this node hold.
 */
export const MAX_RECEIPTS_AWAITING_PLEDGE = 256;

/** Options of {@link PeerGossip}: what it needs of the NetworkActor. */
export interface PeerGossipOptions {
  /** The actor's open connections by hex peer key, the oldest first (only read). */
  peers: ReadonlyMap<string, readonly PeerEntry[]>;
  /** What goes out to peers of the pledges this node holds (`pledge_sync.ts`). */
  pledgeSync: PledgeSync;
  /**
   * The clock of a receipt announcement's backoff after a `busy` refusal (`announceReceipt`), and
   * of the receipts each connection carried ahead of a claim: the connections' own.
   */
  timers: ConnectionTimers;
  /** The log lines peers can cause, a few per kind at a time (`log_limiter.ts`). */
  peerLog: LogLimiter;
  /** Where a failed send is logged. */
  log: (line: string) => void;
}

/** What the NetworkActor spreads to its peers; see the module doc. */
export class PeerGossip {
  readonly #peers: ReadonlyMap<string, readonly PeerEntry[]>;
  readonly #pledgeSync: PledgeSync;
  readonly #timers: ConnectionTimers;
  readonly #peerLog: LogLimiter;
  readonly #log: (line: string) => void;

  /** The receipts each connection carried ahead of a claim (`_accusations.ts`). */
  readonly #carriedReceipts: CarriedClaimReceipts;
  /**
   * Per connection, its receipt announcements waiting for the worker's pledge to go ahead of
   * them ({@link MAX_RECEIPTS_AWAITING_PLEDGE}).
   */
  readonly #awaitingPledge = new WeakMap<Connection, number>();

  /**
   * Create it.
   * @param options See {@link PeerGossipOptions}.
   */
  constructor(options: PeerGossipOptions) {
    this.#peers = options.peers;
    this.#pledgeSync = options.pledgeSync;
    this.#timers = options.timers;
    this.#carriedReceipts = new CarriedClaimReceipts(this.#timers);
    this.#peerLog = options.peerLog;
    this.#log = options.log;
  }

  /**
   * A receipt to every ledger-keeping peer but `except` (`announce_receipt`); answers to how many
   * it went.
   */
  announceReceipt(
    message: Extract<NetworkMessage, { type: "announce_receipt" }>,
    ctx: ActorContext<NetworkMessage>,
  ): number {
    const body: ReceiptAnnouncementBody = {
      receipt: message.receipt,
      job: message.job,
      ...(message.assignment ? { assignment: message.assignment } : {}),
    };
    return this.#broadcast(
      VALIDATION_PROTOCOL,
      message.except,
      // Asked again while the peer's connection is too busy to take it (`announceReceipt`).
      (c) =>
        announceReceipt(c, body, this.#timers).then((ack) => {
          this.#refused(c, ack);
          // Its ledger lacks the worker's stake (the pledge was not among those pushed
          // on connect, or its gossip was dropped): it keeps the receipt until it arrives.
          if (ack.refusal === "insufficient_stake") {
            this.#pledgeSync.sendNeeded(c, message.receipt.worker, ctx);
          }
          // ... or, past what it keeps waiting, not: sent again after the pledge.
          if (ack.refusal === INSUFFICIENT_STAKE_NOT_KEPT) {
            return this.#announceAfterPledge(c, body, ctx);
          }
        }),
    );
  }

  /**
   * Announce `body` on `connection` again, once, after the worker's pledge: the peer refused it
   * for want of the worker's stake and did not keep it for the pledge
   * ({@link INSUFFICIENT_STAKE_NOT_KEPT}), so it is sent once the pledge is written ahead of it
   * (`PledgeSync.sendNeeded`), which its validator takes first; not when no pledge was sent (none
   * here, or no room in the peer's budget) — the copy would be refused again — and not again if
   * refused again. Who pays: this node, at most {@link MAX_RECEIPTS_AWAITING_PLEDGE} announcements
   * per connection held while the pledge goes (a validator's look-up and a write), past which one
   * is dropped and the worker goes unpaid in that ledger, as every one did before (review s62);
   * and one more request on the wire per receipt the peer did not keep.
   */
  async #announceAfterPledge(
    connection: Connection,
    body: ReceiptAnnouncementBody,
    ctx: ActorContext<NetworkMessage>,
  ): Promise<void> {
    const waiting = this.#awaitingPledge.get(connection) ?? 0;
    if (waiting >= MAX_RECEIPTS_AWAITING_PLEDGE) return;
    this.#awaitingPledge.set(connection, waiting + 1);
    try {
      if (!await this.#pledgeSync.sendNeeded(connection, body.receipt.worker, ctx)) return;
    } finally {
      this.#awaitingPledge.set(connection, this.#awaitingPledge.get(connection)! - 1);
    }
    this.#refused(connection, await announceReceipt(connection, body, this.#timers));
  }

  /** Log a peer's refusal of a receipt we announced (a few at a time, `LogLimiter`). */
  #refused(connection: Connection, ack: ReceiptAckBody): void {
    if (ack.recorded) return;
    this.#peerLog.line(
      "receipt refused",
      `peer ${short(connection)}: receipt refused (${peerWords(ack.refusal ?? "no reason given")})`,
    );
  }

  /**
   * A verdict to every ledger-keeping peer but `except`, after its author's pledge: looked up in
   * this node's ledger first (`authorPledge`, then the message told again with it) and sent unless
   * the peer key was sent it, or sent it us, in the last ten minutes (`PledgeSync.sendAhead`,
   * `VERDICT_PLEDGE_TTL_MS`), since a ledger takes a peer's verdict only
   * from a validator with stake there and a verdict is a one-way notify (refused, it is lost
   * there: review s82 sim F1, 154 of 200 ledgers); a "proof withheld" claim as an accusation
   * (`publish_verdict`).
   */
  publishVerdict(
    message: Extract<NetworkMessage, { type: "publish_verdict" }>,
    ctx: ActorContext<NetworkMessage>,
  ): number | void {
    // A claim a ledger takes over only from a claimant with stake there: after its pledge.
    if (isWithheldClaim(message.verdict)) {
      const { verdict, evidence } = message;
      return this.#publishAccusation({ kind: "withheld", verdict, evidence }, message, ctx);
    }
    const { verdict, authorPledge } = message;
    if (authorPledge === undefined && verdict?.validator instanceof Uint8Array) {
      return this.#pledgeSync.lookUpPledge(
        verdict.validator,
        ctx,
        (pledge) => ({ ...message, authorPledge: pledge ?? null }),
      );
    }
    return this.#broadcast(
      VALIDATION_PROTOCOL,
      message.except,
      (c) => {
        this.#pledgeSync.sendAhead(c, authorPledge ?? undefined, "verdict");
        return c.notify(VerdictAnnouncementMessage, { verdict });
      },
    );
  }

  /**
   * A fraud proof to every ledger-keeping peer but `except`, after its author's pledge
   * (`publish_fraud_proof`).
   */
  publishFraudProof(
    message: Extract<NetworkMessage, { type: "publish_fraud_proof" }>,
    ctx: ActorContext<NetworkMessage>,
  ): void {
    return this.#publishAccusation({ kind: "inference", proof: message.proof }, message, ctx);
  }

  /**
   * A stream proof to every ledger-keeping peer but `except`, after the worker's pledge and its
   * accuser's (`publish_stream_proof`): the worker's is looked up first, and the message told
   * again with it. A peer that lacks the worker's pledge would convict it with nothing to cut,
   * once for good (a fraud proof needs none: its receipt, recorded there, came with the stake).
   */
  publishStreamProof(
    message: Extract<NetworkMessage, { type: "publish_stream_proof" }>,
    ctx: ActorContext<NetworkMessage>,
  ): void {
    const { proof, except, workerPledge } = message;
    if (workerPledge === undefined) {
      return this.#pledgeSync.lookUpPledge(
        proof.claim.worker,
        ctx,
        (pledge) => ({ ...message, workerPledge: pledge ?? null }),
      );
    }
    return this.#publishAccusation(
      { kind: "stream", proof },
      { except, workerPledge: workerPledge ?? undefined },
      ctx,
    );
  }

  /** An accusation to every peer but `except`, each after `pledge` (`publish_accusation`). */
  sendAccusation(message: Extract<NetworkMessage, { type: "publish_accusation" }>): number {
    const { accusation, pledge } = message;
    return this.#broadcast(
      accusation.kind === "fraud_proof" ? TRAINING_PROTOCOL : VALIDATION_PROTOCOL,
      message.except,
      (c) => {
        this.#pledgeSync.sendAhead(c, message.workerPledge, accusation.kind);
        this.#pledgeSync.sendAhead(c, pledge, accusation.kind);
        const ahead = this.#carriedReceipts.receiptAhead(c, accusation);
        if (ahead === undefined) return notifyAccusation(c, accusation);
        return ahead.then(() => notifyAccusation(c, accusation));
      },
    );
  }

  /**
   * Training gossip to every training peer but `except`; a fraud proof after its author's pledge
   * (`publish_training`).
   */
  publishTraining(
    message: Extract<NetworkMessage, { type: "publish_training" }>,
    ctx: ActorContext<NetworkMessage>,
  ): number | void {
    if (message.gossip.kind === "fraud_proof") {
      return this.#publishAccusation(message.gossip, message, ctx);
    }
    return this.#broadcast(
      TRAINING_PROTOCOL,
      message.except,
      (c) => notifyTraining(c, message.gossip),
    );
  }

  /**
   * Pass a fraud proof or a "proof withheld" claim on to every peer but `except`, each after its
   * author's pledge: looked up in our ledger first, then sent (`publish_accusation`).
   */
  #publishAccusation(
    accusation: Accusation,
    { except, workerPledge }: { except?: string; workerPledge?: StakePledge },
    ctx: ActorContext<NetworkMessage>,
  ): void {
    this.#pledgeSync.lookUpPledge(
      accuserOf(accusation),
      ctx,
      (pledge) => ({ type: "publish_accusation", accusation, pledge, workerPledge, except }),
    );
  }

  /**
   * Send to one connection of every peer that offers `protocol`, but the peer `except` (hex
   * key); failures are logged.
   */
  #broadcast(
    protocol: Protocol,
    except: string | undefined,
    send: (connection: Connection) => Promise<unknown>,
  ): number {
    let sent = 0;
    for (const [key, list] of this.#peers) {
      if (key === except) continue;
      const entry = list.find((p) => !p.connection.isClosed);
      if (entry === undefined || !entry.connection.supports(protocol.name)) continue;
      sent++;
      send(entry.connection).catch((error) =>
        this.#log(`peer ${entry.info.key.slice(0, 16)}: ${errorWords(error)}`)
      );
    }
    return sent;
  }
}

function short(connection: Connection): string {
  return connection.peerKey === undefined ? "?" : toHex(connection.peerKey).slice(0, 16);
}
