/**
 * Test fixture: a peer connection kept busy. B and C, two ledger nodes joined in memory, where C's
 * connection handles {@link MAX_INBOUND} peer messages at once and its validator can be held (a
 * {@link Gated} actor in front of it) while a burst of {@link MAX_INBOUND} receipt announcements
 * from B's side is in flight there: whatever else B sends C then is refused `busy`. B's
 * connection, and the NetworkActor's backoff with it, runs on the test's clock, which
 * {@link BusySetting.pastBackoff} moves past any backoff once the burst is over.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../actors/actor.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ChallengeSource } from "../../actors/validator_messages.ts";
import type { Connection, ConnectionOptions } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ReceiptAnnouncementBody,
  ReceiptAnnouncementMessage,
} from "../../protocols/inference_messages.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { HONEST_MODELS, type LedgerClock, proveOn, textJob } from "../actors/_validator_fixture.ts";
import {
  joinLedgerNodeEnds,
  type LedgerNode,
  spawnLedgerNode,
  STAKE as PLEDGE,
  stakeIn,
} from "./_ledger_node.ts";

/** The peer messages C's connection handles at once (the default is 1024; the burst is as big). */
export const MAX_INBOUND = 4;
/** How far the test moves B's connection clock: well past any backoff of a few tries. */
export const PAST_BACKOFF_MS = 20_000;

/** A gate in front of an actor: while closed, each message waits before the actor takes it. */
export class Gated<M> implements Actor<M> {
  constructor(readonly inner: Actor<M>, readonly gate: { open: Promise<void> }) {}

  preStart(ctx: ActorContext<M>): void | Promise<void> {
    return this.inner.preStart?.(ctx);
  }

  postStop(ctx: ActorContext<M>): void | Promise<void> {
    return this.inner.postStop?.(ctx);
  }

  async receive(message: M, ctx: ActorContext<M>): Promise<unknown> {
    await this.gate.open;
    return await this.inner.receive(message, ctx);
  }
}

/** B and C joined, C's connection full of a burst from B while C's validator is held. */
export interface BusySetting {
  nodeB: LedgerNode;
  nodeC: LedgerNode;
  /** B's side of the connection (to C). */
  toC: Connection;
  /** B's connection clock (also its NetworkActor's backoff). */
  timersB: ManualTimers;
  /** What C's connection refused, as `code type`. */
  refusedByC: string[];
  /**
   * Fill C's connection with a burst from B (`announced`, {@link MAX_INBOUND} times; default
   * another worker's receipt) and hold C's validator; resolves once in flight.
   */
  fill(announced?: ReceiptAnnouncementBody): Promise<void>;
  /** Let C's validator go on and wait for the burst to end (B's clock stays where it is). */
  release(): Promise<void>;
  /** Move B's connection clock past any backoff ({@link PAST_BACKOFF_MS}). */
  pastBackoff(): Promise<void>;
}

/** How {@link busySetting} builds B and C. */
export interface BusyOptions {
  /** Their keys (default fresh ones). */
  keys?: { b: Identity; c: Identity };
  /**
   * Each NetworkActor sends its key's pledge of `_ledger_node.ts`'s `STAKE`, and C has recorded
   * B's before the setting is ready (default: no pledges).
   */
  pledged?: boolean;
  /** Where each validator gets the proof data it asks a worker for (default: none asked). */
  sources?: { b?: ChallengeSource; c?: ChallengeSource };
  /** Run on B and C before they are joined (what B holds that C never hears of). */
  beforeJoin?: (nodeB: LedgerNode, nodeC: LedgerNode) => Promise<void>;
}

/**
 * B and C (validators on `clock`, challenging nothing of their own), `stake` deposited in both
 * ledgers for each of `staked`, joined in memory, C's connection idle.
 */
export async function busySetting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  staked: readonly Identity[],
  stake: number,
  options: BusyOptions = {},
): Promise<BusySetting> {
  const { keys, pledged = false, sources = {}, beforeJoin } = options;
  const timersB = new ManualTimers();
  const gate = { open: Promise.resolve() };
  const node = async (
    name: "b" | "c",
    connection: ConnectionOptions,
    gated = false,
  ): Promise<LedgerNode> => {
    const identity = keys?.[name] ?? Identity.generate();
    const spawned = await spawnLedgerNode(system, dir, name, {
      identity,
      models: HONEST_MODELS,
      clock,
      validator: { challengeProbability: 0, source: sources[name] },
      pledge: pledged ? signStakePledge(identity, PLEDGE, 1) : undefined,
      now: () => clock.t,
      connection,
      wrap: gated ? (real) => new Gated(real, gate) : undefined,
    });
    for (const key of staked) {
      await spawned.validator.ask({ type: "deposit", key: key.publicKey, amount: stake });
    }
    return spawned;
  };
  // B's connection on the test's clock (no keepalive, no idle timeout: nothing else is due on
  // it); C's handles MAX_INBOUND peer messages at once, on the real clock.
  const nodeB = await node("b", { timers: timersB, keepaliveMs: 0, idleTimeoutMs: 0 });
  const refusedByC: string[] = [];
  const nodeC = await node("c", {
    maxInboundRequests: MAX_INBOUND,
    onProtocolError: (error) => refusedByC.push(`${error.code} ${error.envelopeType}`),
  }, true);
  await beforeJoin?.(nodeB, nodeC);
  const [toC, toB] = await joinLedgerNodeEnds(nodeB, nodeC);
  if (pledged && keys !== undefined) {
    const { b } = keys;
    await eventually(async () => (await stakeIn(nodeC, b)) === PLEDGE, "C to record B's pledge");
  }
  await eventually(() => toB.stats().inboundRequests === 0, "C's connection to be idle");
  let burst: Promise<unknown>[] = [];
  let open!: () => void;
  return {
    nodeB,
    nodeC,
    toC,
    timersB,
    refusedByC,
    async fill(announced?: ReceiptAnnouncementBody) {
      // The default burst: another worker's receipt.
      const body = announced ?? await fillerAnnouncement();
      await eventually(() => toB.stats().inboundRequests === 0, "C's connection to be idle");
      gate.open = new Promise((resolve) => open = resolve);
      burst = Array.from(
        { length: MAX_INBOUND },
        () => toC.request(ReceiptAnnouncementMessage, body),
      );
      await eventually(
        () => toB.stats().inboundRequests === MAX_INBOUND,
        "B's burst to be in flight at C",
      );
    },
    async release() {
      open();
      await Promise.allSettled(burst);
      await eventually(() => toB.stats().inboundRequests === 0, "C's burst to end");
    },
    async pastBackoff() {
      await timersB.advance(PAST_BACKOFF_MS);
    },
  };
}

/** Another worker's receipt and its job: what a burst announces when the test names nothing. */
async function fillerAnnouncement(): Promise<ReceiptAnnouncementBody> {
  const job = textJob(Identity.generate(), "s59-receipt-busy-filler");
  const { receipt } = await proveOn(job, Identity.generate());
  return { receipt, job };
}
