/**
 * Review s59: one-way evidence refused `busy` by the receiving connection.
 *
 * A peer's `validation.fraud_proof` is a one-way notify, passed on once per connection. The
 * receiving connection refuses it `busy` when it already handles `maxInboundRequests` of the
 * peer's messages (`protocols/_connection_responder.ts`): a burst of `validation.receipt`
 * requests from the same peer, in flight while the validator works. The refusal goes back as an
 * `error` frame `about` the envelope, which nobody on the sender acted on: the proof was lost on
 * that connection, the receipt's window closed there without it, and the cheat every other ledger
 * slashed was paid in this one.
 *
 * The set-up: B — C in memory, the cheat's receipt in both ledgers, the accuser's stake in both.
 * C's connection handles {@link MAX_INBOUND} peer messages at once; its validator is held (a
 * gate in front of it) while B's burst of {@link MAX_INBOUND} receipt announcements is in flight,
 * and B passes its confirmed proof on then. B's connection runs on the test's clock, which the
 * test moves past the sender's backoff once C's burst is over.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection, ConnectionOptions } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { ReceiptAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { HONEST_MODELS, ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  caughtCheat,
  type LedgerNode,
  ledgerNodeValidator,
  STAKE as PLEDGE,
  stakeIn,
} from "./_ledger_node.ts";

const STAKE = 1_000_000;
/** The peer messages C's connection handles at once (the default is 1024; the burst is as big). */
const MAX_INBOUND = 4;
/** How far the test moves B's connection clock: well past any backoff of a few tries. */
const PAST_BACKOFF_MS = 20_000;

/** A gate in front of an actor: while closed, each message waits before the actor takes it. */
class Gated<M> implements Actor<M> {
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

Deno.test("review s59: a fraud proof refused busy by a peer's connection (a burst of its receipt announcements in flight) is sent again after a backoff: the cheat is slashed there too, not paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s59-busy-evidence" });
  try {
    const [b, c, accuser, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const timersB = new ManualTimers();
    const gate = { open: Promise.resolve() };
    const node = async (
      name: string,
      identity: Identity,
      connection: ConnectionOptions,
      gated = false,
    ): Promise<LedgerNode> => {
      const validator = await system.spawn<ValidatorMessage>({
        name: `${name}/validator`,
        factory: () => {
          const real = ledgerNodeValidator(dir, name, { identity, models: HONEST_MODELS, clock });
          return gated ? new Gated(real, gate) : real;
        },
      });
      const network = await system.spawn<NetworkMessage>({
        name: `${name}/network`,
        factory: () =>
          new NetworkActor({
            identity,
            pledge: signStakePledge(identity, PLEDGE, 1),
            now: () => clock.t,
            connection,
            services: { validator: `${name}/validator` },
          }),
      });
      return { validator, network };
    };
    // B's connection on the test's clock (no keepalive, no idle timeout: nothing else is due on
    // it); C's handles MAX_INBOUND peer messages at once, on the real clock.
    const nodeB = await node("b", b, { timers: timersB, keepaliveMs: 0, idleTimeoutMs: 0 });
    const refusedByC: string[] = [];
    const nodeC = await node("c", c, {
      maxInboundRequests: MAX_INBOUND,
      onProtocolError: (error) => refusedByC.push(`${error.code} ${error.envelopeType}`),
    }, true);
    const { id, fraudProof, job, proved } = await caughtCheat(
      [nodeB, nodeC],
      { worker, requester, accuser, tag: "s59-busy-evidence" },
      [worker, accuser],
      STAKE,
    );
    const [dB, dC] = memoryDuplexPair();
    const [toC, toB] = await Promise.all([
      nodeB.network.ask<Connection>({ type: "attach", duplex: dB, address: "mem", outbound: true }),
      nodeC.network.ask<Connection>({
        type: "attach",
        duplex: dC,
        address: "mem",
        outbound: false,
      }),
    ]);
    await eventually(async () => (await stakeIn(nodeC, b)) === PLEDGE, "C to record B's pledge");
    await eventually(() => toB.stats().inboundRequests === 0, "C's connection to be idle");

    const readsB = ledgerReads(() => nodeB.validator, clock);
    // C's validator is held while B's burst of receipt announcements is in flight there.
    let release!: () => void;
    gate.open = new Promise((resolve) => release = resolve);
    const burst = Array.from(
      { length: MAX_INBOUND },
      () => toC.request(ReceiptAnnouncementMessage, { receipt: proved.receipt, job }),
    );
    await eventually(
      () => toB.stats().inboundRequests === MAX_INBOUND,
      "B's burst to be in flight at C",
    );
    // Inside the receipt's window, A's proof reaches B, which confirms it and passes it on
    // while C's connection is full.
    clock.t += 60_000;
    assert.ok(clock.t < START + DEFAULT_ECONOMICS.challengeWindowMs / 2);
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "dd".repeat(32),
    });
    assert.equal(handled.queued, true);
    await handled.result;
    assert.equal((await readsB.record(id))?.status, "fraud");
    await eventually(
      () => refusedByC.includes("busy validation.fraud_proof"),
      "C to refuse B's proof busy",
    );
    release();
    await Promise.allSettled(burst);
    await eventually(() => toB.stats().inboundRequests === 0, "C's burst to end");
    assert.equal(toC.stats().resentOneWay, 0, "nothing is sent again before its backoff");
    // B's connection clock moves on: past any backoff the sender keeps.
    await timersB.advance(PAST_BACKOFF_MS);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the cheat B slashed");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the cheat was paid in C");
    assert.equal(account.stake, (await readsB.account(worker.publicKey)).stake);
    assert.ok(account.stake < STAKE, "the cheat was not slashed in C");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
