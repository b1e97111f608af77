/**
 * The NetworkActor's half of a connecting peer's catch-up (`actors/_catch_up.ts`): a
 * ledger-keeping peer that connects is sent the fraud proofs this node's validator settled as
 * confirmed and the verdicts its start applied, whose receipt's window is still open. Gossip
 * reached only the peers connected when they were decided: at a node's first start, none; a peer
 * that was offline or joined later, never. Sent after this node's own pledge
 * (`PledgeSync.sendPledges` sends it first on connect), so the peer has the accuser's stake when
 * the proof comes (a peer's conviction's accuser has its pledge among the first pushed on connect,
 * the validator's `pledges` answer: a peer that lacks it holds the proof until it comes, not for
 * good, `tests/network/catch_up_evidence_test.ts`); convictions first, so a connection
 * that drops midway carries those. A training conviction goes as training gossip
 * (`training.fraud_proof`), to a peer that offers training only (its training validator checks
 * it; `tests/training/training_catch_up_test.ts`). A stream proof (a lost worker's wrong tokens)
 * goes after the convicted worker's pledge, sent as for a refused receipt (`sendPledge`, once per
 * worker and connect): a peer that lacked it would convict the worker with nothing to cut
 * (`tests/network/stream_proof_gossip_test.ts`). A "proof withheld" fault goes after the
 * receipt and job it is about, when the validator kept them (`ClaimEvidence`, sent as the
 * NetworkActor sends it ahead of a claim it passes on, `sendClaimEvidence`, and answered before
 * the fault goes): a peer that forgot the receipt, or never had it, takes the claim over (review
 * s58: sent alone, it was held there for good, and the worker that withheld was paid there, or
 * kept its stake; `tests/network/catch_up_evidence_test.ts`). Not counted in the
 * receipts the connection carried ahead of claims (`CarriedClaimReceipts`, the NetworkActor's): a
 * claim about the same receipt gossiped on it may carry the receipt once more. A peer that has one
 * already takes it once (a verdict by its id, a fraud proof by its hash or its accuser's settled
 * accusation, without running the model again; a copy of a receipt it remembers costs it a
 * look-up). Last, the receipts this node assigned that are pending in its ledger
 * (`actors/_catch_up_receipts.ts`), each as the `validation.receipt` request, with this node's
 * assignment, that the NetworkActor sends when the validator records one (`announceReceipt`,
 * asked again after `busy`): the announcement then reached only the ledgers connected at that
 * moment, and an honest worker went unpaid in every other (review s60,
 * `tests/network/catch_up_receipts_test.ts`). Their workers' pledges go first among
 * those pushed on connect (after the accusers', the validator's `pledges` answer); a peer that
 * still lacks one refuses the receipt `insufficient_stake`, holds it, and is sent the pledge, once
 * per worker and connect, as for the NetworkActor's own announcement (review s61: nothing sent it,
 * and the worker went unpaid there, `tests/network/catch_up_restart_test.ts`); a peer
 * that refuses it `insufficient_stake_not_kept` (it did not keep it) is sent the pledge and the
 * receipt again after it, once (review s62). After those, the peers' assigned receipts this node
 * passed on (a relay's, review s62), sent the same way. The bounds, and who pays for them, are
 * `_catch_up.ts`'s.
 *
 * How often: a catch-up is sent on a connection a peer opened only in its address group's turn
 * ({@link catchUpTurn}, {@link catchUpBudget}): {@link CATCH_UPS_PER_GROUP_BURST} at once per
 * address group, then one per {@link CATCH_UPS_PER_GROUP_REFILL_MS}, within its IPv6 /48's
 * {@link CATCH_UPS_PER_BLOCK_BURST} and the node's {@link CATCH_UPS_PER_NODE_BURST}; the
 * connections with no address (in-memory, a swarm peer relayed or of unknown address) share one
 * bucket,
 * {@link CATCH_UPS_UNADDRESSED_BURST} then one per {@link CATCH_UPS_UNADDRESSED_REFILL_MS}. Review s71: it went out in full on every connect, and a
 * connect costs a fresh key and a handshake — 269 bytes from the peer bought 91.5 KB (up to
 * 8 MiB) from this node, 6.8 MB/s from one sequential loop with a fresh key each time. A
 * connection past its turn is not refused: it waits, while it is open, until its group's bucket
 * has room, and is sent the catch-up then, so an honest peer that reconnects still gets it (at
 * once after a quiet spell, later during a flood from its own address). A connection this node
 * opened (a configured peer, a dial) is its own choice and always sent it at once.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import {
  type CatchUpItem,
  type CatchUpMessage,
  INSUFFICIENT_STAKE_NOT_KEPT,
} from "../actors/validator_messages.ts";
import { toHex } from "../protocols/hash.ts";
import { type Connection, type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection.ts";
import {
  FraudProofAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import { TRAINING_PROTOCOL, TrainingFraudProofMessage } from "../protocols/training_messages.ts";
import { FrameTooLargeError } from "../protocols/protocol_errors.ts";
import type { NetworkMessage } from "./network_actor.ts";
import { AddressBudget } from "./address_budget.ts";
import { announceReceipt, sendClaimEvidence } from "./_accusations.ts";
import { askValidatorFor } from "./_validator_ask.ts";

/**
 * Catch-ups sent at once to connections from one address group: sixteen honest nodes behind one
 * NAT (or sixteen demo nodes on 127.0.0.1, which all share the `loopback` group) connecting
 * together are each sent theirs at once (review s71 verify F6: with 8, ten of them waited up to
 * two minutes).
 */
export const CATCH_UPS_PER_GROUP_BURST = 16;
/**
 * Then one more per this many ms per address group (20 a minute): the same sixteen connecting
 * again a minute later find 16 of room back (the sixteenth within 3 s). What one group can pull,
 * sustained: 20 catch-ups a minute, about 30 KB/s at the review's 91.5 KB catch-up (64
 * convictions), 2.8 MB/s at the 8 MiB cap; before review s71, one sequential loop pulled 6.8 MB/s
 * of the 91.5 KB one (75 times as much), and parallel loops more.
 */
export const CATCH_UPS_PER_GROUP_REFILL_MS = 3_000;
/**
 * Catch-ups sent at once to the groups of one `addressBlock` (an IPv6 /48) together: two groups'
 * worth. A /48's 65,536 /64s are free to one site, and per /64 alone 5,000 of them took 40,000
 * catch-ups at once (review s71 verify F2).
 */
export const CATCH_UPS_PER_BLOCK_BURST: number = 2 * CATCH_UPS_PER_GROUP_BURST;
/** Then one more per this many ms per block (40 a minute: two groups' rate). */
export const CATCH_UPS_PER_BLOCK_REFILL_MS: number = CATCH_UPS_PER_GROUP_REFILL_MS / 2;
/**
 * Catch-ups sent at once by the node to everyone together (each take draws on it): what many
 * addresses or blocks together pull, as many as the node's inbound handshakes at once
 * (`DEFAULT_MAX_HANDSHAKES`), so a node that starts and meets many peers together serves them.
 */
export const CATCH_UPS_PER_NODE_BURST = 64;
/**
 * Then one more per this many ms for the node (4 a second): about 370 KB/s sent in catch-ups at
 * the review's 91.5 KB one, 32 MiB/s at the 8 MiB cap, however many addresses ask. A connection
 * past it waits its turn ({@link catchUpTurn}).
 */
export const CATCH_UPS_PER_NODE_REFILL_MS = 250;
/**
 * Catch-ups sent at once to connections with no address (swarm, in-memory), which share one
 * bucket, as many as a node's inbound handshakes at once (`DEFAULT_MAX_HANDSHAKES` / 2), since a
 * node that starts meets many swarm peers together.
 */
export const CATCH_UPS_UNADDRESSED_BURST = 32;
/**
 * Then one more per this many ms for all of them together (a minute's 60, a group's rate
 * three times): swarm peers cannot be told apart by address, and keys are free, so an honest one
 * waits one turn per waiting key ahead of it ({@link catchUpTurn}): an attacker holding 200
 * waiting connections delays it about 3 minutes (`tests/network/catch_up_budget_test.ts`), not 15
 * (review s71 verify F4, at one per 5 s in arrival order with newcomers jumping the queue).
 */
export const CATCH_UPS_UNADDRESSED_REFILL_MS = 1_000;
/** The least wait between two looks at the bucket (a clock that did not move). */
const MIN_TURN_WAIT_MS = 1;

/** The NetworkActor's budget of catch-ups, on `now` (see the module doc). */
export function catchUpBudget(now?: () => number): AddressBudget {
  return new AddressBudget({
    perGroup: { burst: CATCH_UPS_PER_GROUP_BURST, refillMs: CATCH_UPS_PER_GROUP_REFILL_MS },
    perBlock: { burst: CATCH_UPS_PER_BLOCK_BURST, refillMs: CATCH_UPS_PER_BLOCK_REFILL_MS },
    unaddressed: {
      burst: CATCH_UPS_UNADDRESSED_BURST,
      refillMs: CATCH_UPS_UNADDRESSED_REFILL_MS,
    },
    node: { burst: CATCH_UPS_PER_NODE_BURST, refillMs: CATCH_UPS_PER_NODE_REFILL_MS },
    now,
  });
}

/**
 * Wait for the turn of `connection`'s catch-up in `budget` (its address group's bucket, `host`;
 * undefined: the unaddressed one): resolves true once it took one, false when the connection
 * closed first, or when another connection of its peer key took the key's turn (a peer needs one
 * catch-up, not one per connection). Turns go in order of arrival, one per peer key: a connection
 * that comes while others wait goes after them, even when room came back meanwhile (review s71
 * verify F4: every waiter looked again on its own timer, and a newcomer at the right instant went
 * first), and one whose group has no room does not hold up those behind it whose group has.
 * Looks again when room comes back, on `timers` (the connections' clock; the first caller's for
 * `budget`).
 */
export function catchUpTurn(
  connection: Connection,
  budget: AddressBudget,
  host: string | undefined,
  timers: ConnectionTimers = SYSTEM_TIMERS,
): Promise<boolean> {
  let queue = turnQueues.get(budget);
  if (queue === undefined) turnQueues.set(budget, queue = new TurnQueue(budget, timers));
  return queue.wait(connection, host);
}

/** Each budget's waiting connections ({@link catchUpTurn}). */
const turnQueues = new WeakMap<AddressBudget, TurnQueue>();

/** One peer key's turn: its address group, and its connections waiting, the first first. */
interface Waiter {
  host: string | undefined;
  connections: { connection: Connection; answer: (turn: boolean) => void }[];
}

/** The connections waiting for a turn in one budget, by peer key, in order of arrival. */
class TurnQueue {
  readonly #budget: AddressBudget;
  readonly #timers: ConnectionTimers;
  readonly #waiting = new Map<string, Waiter>();
  #timer: unknown;

  constructor(budget: AddressBudget, timers: ConnectionTimers) {
    this.#budget = budget;
    this.#timers = timers;
  }

  wait(connection: Connection, host: string | undefined): Promise<boolean> {
    const { promise, resolve } = Promise.withResolvers<boolean>();
    const key = toHex(connection.peerKey!);
    let waiter = this.#waiting.get(key);
    if (waiter === undefined) this.#waiting.set(key, waiter = { host, connections: [] });
    waiter.connections.push({ connection, answer: resolve });
    connection.closed.then(() => this.#serve(), () => this.#serve());
    this.#serve();
    return promise;
  }

  /** Give each waiting key its turn where its buckets have room, in order; look again later. */
  #serve(): void {
    for (const [key, waiter] of this.#waiting) {
      const open = waiter.connections.filter(({ connection, answer }) => {
        if (connection.isClosed) answer(false);
        return !connection.isClosed;
      });
      waiter.connections = open;
      if (open.length > 0 && !this.#budget.take(waiter.host)) continue;
      this.#waiting.delete(key);
      open.forEach(({ answer }, i) => answer(i === 0));
    }
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#waiting.size === 0) return;
    let next = Infinity;
    for (const { host } of this.#waiting.values()) {
      next = Math.min(next, this.#budget.nextInMs(host));
    }
    this.#timer = this.#timers.setTimeout(() => this.#serve(), Math.max(next, MIN_TURN_WAIT_MS));
  }
}

/**
 * Ask the validator at `validator` (an actor path) for its catch-up and send it to the peer of
 * `connection`, one item after another (each waits for room in the connection's write budget).
 * A validator that is down when the peer connects (stopped, restarting, too busy to answer in
 * time) is waited for while the connection is open, and asked once it is back
 * (`_validator_ask.ts`): until review s65 it sent nothing to this peer for as long as the
 * connection lasted (`tests/network/catch_up_test.ts`). The catch-up
 * outlives the validator's restarts (one `CatchUp` per ledger directory), so a peer that
 * connects after a crash of the validator is still sent it
 * (`tests/network/catch_up_test.ts`); its convictions are kept on disk, so also after
 * the node's process restarted (`tests/network/catch_up_restart_test.ts`). `timers` is the clock of
 * a claim's receipt asked again after a `busy` refusal (the NetworkActor's connection clock).
 * `sendPledge` sends the peer `worker`'s pledge when it refused a catch-up receipt of that worker
 * for want of its stake (`PledgeSync.sendNeeded`, once per worker and connect): it holds the
 * receipt until the pledge comes, and the connect push carries only `PLEDGES_PUSHED_ON_CONNECT`
 * pledges (the catch-up's workers among the first, but there may be more of them), so a peer that
 * joined after the worker's pledge went round held it for a pledge nothing sent, and the honest
 * worker went unpaid there (review s61, `tests/network/catch_up_restart_test.ts`). A peer
 * that refused it {@link INSUFFICIENT_STAKE_NOT_KEPT} (it keeps as many of that worker's receipts
 * as it keeps waiting, and not this one) is sent the receipt again, once, after the pledge:
 * `sendPledge` resolves true once the pledge is written on the connection (`PledgeSync.sendNeeded`;
 * a `void` answer, or false, sends nothing again — it would be refused again). Until review s62
 * only `insufficient_stake` was heard, and such a receipt was lost on that connection
 * (`tests/network/catch_up_receipts_test.ts`).
 */
export function sendCatchUp(
  connection: Connection,
  validator: string,
  ctx: ActorContext<NetworkMessage>,
  timers: ConnectionTimers = SYSTEM_TIMERS,
  sendPledge: (worker: Uint8Array) => Promise<boolean> | void = () => {},
): void {
  const ask: CatchUpMessage = { type: "catch_up" };
  askValidatorFor<CatchUpItem[]>(ctx.system, validator, ask, connection)
    .then(async (items) => {
      const training = connection.supports(TRAINING_PROTOCOL.name);
      // Workers whose pledge this peer was sent for a refusal, once each per connect: whether it
      // was written (what a receipt it did not keep waits for).
      const pledged = new Map<string, Promise<boolean>>();
      const lacksStake = (worker: Uint8Array) => {
        const key = toHex(worker);
        let sent = pledged.get(key);
        if (sent === undefined) {
          sent = Promise.resolve(sendPledge(worker)).then(
            (written) => written === true,
            () => false,
          );
          pledged.set(key, sent);
        }
        return sent;
      };
      for (const item of items) {
        if (connection.isClosed) return;
        await send(connection, item, training, timers, lacksStake).catch((error) => {
          // Larger than a frame (a training proof of a large model: gossip could not carry it
          // either): that one is not sent, the rest are. Anything else: the connection closed.
          if (!(error instanceof FrameTooLargeError)) throw error;
        });
      }
    })
    .catch(() => {}); // it closed, or the validator failed every ask: nothing left to send
}

/**
 * Send one catch-up item; a training conviction only to a peer that offers training; a verdict
 * after its evidence, once the peer answered for it; a receipt this node assigned as the
 * `validation.receipt` request the NetworkActor sends when its validator records one (asked
 * again after a `busy` refusal), once the peer answered for it, `lacksStake` told of its worker
 * if the peer refused it for want of the worker's stake, and sent again once after the pledge if
 * the peer did not keep it for the pledge ({@link INSUFFICIENT_STAKE_NOT_KEPT}).
 */
async function send(
  connection: Connection,
  item: CatchUpItem,
  training: boolean,
  timers: ConnectionTimers,
  lacksStake: (worker: Uint8Array) => Promise<boolean>,
): Promise<void> {
  switch (item.kind) {
    case "verdict":
      if (item.evidence !== undefined) await sendClaimEvidence(connection, item.evidence, timers);
      return await connection.notify(VerdictAnnouncementMessage, { verdict: item.verdict });
    case "fraud_proof":
      return await connection.notify(FraudProofAnnouncementMessage, { proof: item.proof });
    case "stream_proof":
      // After the convicted worker's pledge: a ledger that lacked it would convict the worker
      // with nothing to cut, once for good (its accuser's goes first among those pushed).
      await lacksStake(item.proof.claim.worker);
      return await connection.notify(StreamProofAnnouncementMessage, { proof: item.proof });
    case "training_fraud_proof":
      if (training) await connection.notify(TrainingFraudProofMessage, item.body);
      return;
    case "assigned_receipt": {
      const { receipt, job, assignment } = item;
      const body = { receipt, job, assignment };
      // An answer without recording (a refusal with a reason) is the peer's ledger's to decide;
      // an error other than the connection closing moves on to the next item.
      const announce = () =>
        announceReceipt(connection, body, timers).catch((error) => {
          if (connection.isClosed) throw error;
        });
      const ack = await announce();
      // Kept there for the pledge: taken again once it comes.
      if (ack?.refusal === "insufficient_stake") void lacksStake(receipt.worker);
      // Not kept: sent again once the pledge is written ahead of it (not if none was).
      if (ack?.refusal === INSUFFICIENT_STAKE_NOT_KEPT && await lacksStake(receipt.worker)) {
        await announce();
      }
    }
  }
}
