/**
 * Review s59: a `validation.receipt` announcement refused `busy` by the receiving connection.
 *
 * A receipt announcement is a request. The receiving connection refuses it `busy` at admission when
 * it already handles `maxInboundRequests` of the peer's messages (`_connection_responder.ts`): a
 * burst of the same peer's announcements, in flight while the validator works. The request failed
 * with `RemoteError busy`, which the NetworkActor only logged, and nothing announced the receipt to
 * that peer again (a peer's catch-up carries convictions and verdicts, not receipts). So the honest
 * worker's receipt was never recorded in that ledger, and it was paid there less than in the
 * others; and a "proof withheld" claim whose receipt went ahead of it (`sendClaimEvidence`) went
 * out without it, and was held there for good: the worker that withheld was not slashed there.
 *
 * The set-up: B — C in memory. C's connection handles {@link MAX_INBOUND} peer messages at once;
 * its validator is held (a gate in front of it) while a burst of {@link MAX_INBOUND} receipt
 * announcements from B's side of the connection is in flight there. B's connection, and the
 * NetworkActor's backoff with it, runs on the test's clock (`ConnectionOptions.timers`), which the
 * test moves past any backoff once C's burst is over. Every ledger runs on the test's ledger clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ChallengeSource, ValidatorMessage } from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection, ConnectionOptions } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { ReceiptAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import { type LedgerNode, ledgerNodeValidator } from "./_ledger_node.ts";

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

/** B and C joined, C's connection full of a burst from B while C's validator is held. */
interface BusySetting {
  nodeB: LedgerNode;
  nodeC: LedgerNode;
  /** B's connection clock (also its NetworkActor's backoff). */
  timersB: ManualTimers;
  /** What C's connection refused, as `code type`. */
  refusedByC: string[];
  /** Fill C's connection with a burst from B and hold C's validator; resolves once in flight. */
  fill(): Promise<void>;
  /** Let C's validator go on, wait for the burst to end, and move B's clock past any backoff. */
  release(): Promise<void>;
}

/** How {@link busySetting} builds B and C. */
interface BusyOptions {
  /** Where each validator gets the proof data it asks a worker for (default: none asked). */
  sources?: { b?: ChallengeSource; c?: ChallengeSource };
  /** Run on B and C before they are joined (what B holds that C never hears of). */
  beforeJoin?: (nodeB: LedgerNode, nodeC: LedgerNode) => Promise<void>;
}

/**
 * B and C (validators on `clock`), `staked` deposited in both ledgers, joined in memory, C's
 * connection idle.
 */
async function busySetting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  staked: readonly Identity[],
  { sources = {}, beforeJoin }: BusyOptions = {},
): Promise<BusySetting> {
  const timersB = new ManualTimers();
  const gate = { open: Promise.resolve() };
  const node = async (
    name: "b" | "c",
    connection: ConnectionOptions,
    gated = false,
  ): Promise<LedgerNode> => {
    const identity = Identity.generate();
    const validator = await system.spawn<ValidatorMessage>({
      name: `${name}/validator`,
      factory: () => {
        const real = ledgerNodeValidator(dir, name, {
          identity,
          models: HONEST_MODELS,
          clock,
          validator: { challengeProbability: 0, source: sources[name] },
        });
        return gated ? new Gated(real, gate) : real;
      },
    });
    const network = await system.spawn<NetworkMessage>({
      name: `${name}/network`,
      factory: () =>
        new NetworkActor({
          identity,
          now: () => clock.t,
          connection,
          services: { validator: `${name}/validator` },
        }),
    });
    for (const key of staked) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    return { validator, network };
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
  const [dB, dC] = memoryDuplexPair();
  const [toC, toB] = await Promise.all([
    nodeB.network.ask<Connection>({ type: "attach", duplex: dB, address: "mem", outbound: true }),
    nodeC.network.ask<Connection>({ type: "attach", duplex: dC, address: "mem", outbound: false }),
  ]);
  await eventually(() => toB.stats().inboundRequests === 0, "C's connection to be idle");
  // The burst: another worker's receipt, announced MAX_INBOUND times on B's side.
  const filler = Identity.generate();
  const fillerJob = textJob(Identity.generate(), "s59-receipt-busy-filler");
  const { receipt: fillerReceipt } = await proveOn(fillerJob, filler);
  let burst: Promise<unknown>[] = [];
  let open!: () => void;
  return {
    nodeB,
    nodeC,
    timersB,
    refusedByC,
    async fill() {
      await eventually(() => toB.stats().inboundRequests === 0, "C's connection to be idle");
      gate.open = new Promise((resolve) => open = resolve);
      burst = Array.from(
        { length: MAX_INBOUND },
        () => toC.request(ReceiptAnnouncementMessage, { receipt: fillerReceipt, job: fillerJob }),
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
      await timersB.advance(PAST_BACKOFF_MS);
    },
  };
}

Deno.test("review s59: a receipt announcement refused busy by a peer's connection is asked again after a backoff: the honest worker is paid in that ledger as in the announcer's", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s59-receipt-busy" });
  try {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const setting = await busySetting(system, dir, clock, [worker]);
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // An honest worker's receipt, assigned by its requester, reaches B (from another peer) while
    // C's connection is full: B's validator records it and its NetworkActor passes it on.
    const job = textJob(requester, "s59-receipt-busy-honest");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    await setting.fill();
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse B's announcement busy",
    );
    await setting.release();
    await eventually(
      async () => (await readsC.record(id)) !== undefined,
      "C to record the receipt",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final");
    assert.equal((await readsC.record(id))?.status, "final", "C never recorded the receipt");
    const paidB = (await readsB.account(worker.publicKey)).balance;
    assert.ok(paidB > 0);
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paidB,
      "the honest worker was paid less in C than in B",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s59: a claim's receipt refused busy is asked again before the claim goes: the worker that withholds is slashed in a ledger that never had the receipt, not left unslashed", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s59-claim-receipt-busy" });
  try {
    const [worker, requester, claimant] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, "s59-claim-receipt-busy");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    // The worker serves B (B's takeover clears it) and withholds from C.
    const serves: ChallengeSource = {
      proof: (r) =>
        Promise.resolve(
          receiptId(r) === id ? signServedProof(id, proved.proof, worker) : undefined,
        ),
    };
    const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };
    // The receipt is recorded in B before B and C meet: C never had it.
    const setting = await busySetting(system, dir, clock, [worker, claimant], {
      sources: { b: serves, c: withholds },
      beforeJoin: async (nodeB) =>
        assert.equal(
          (await announceAssigned(nodeB.validator, proved.receipt, job, requester)).recorded,
          true,
        ),
    });
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // The claimant's claim reaches B while C's connection is full; B passes it on with its
    // receipt ahead.
    await setting.fill();
    const recorded = await nodeB.validator.ask<string | undefined>({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, clock.t, claimant),
      origin: toHex(claimant.publicKey),
    });
    assert.ok(recorded, "B records the claim");
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse the claim's receipt busy",
    );
    await setting.release();
    await readsB.drained();
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to take the claim over and slash the worker",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // held without its receipt: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final", "the worker served B: paid there");
    assert.equal((await readsC.record(id))?.status, "fraud", "C never recorded the receipt");
    assert.ok(
      (await readsC.account(worker.publicKey)).stake < STAKE,
      "the worker that withheld from C was not slashed in C",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
