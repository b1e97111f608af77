/**
 * A ledger-keeping peer that connects catches up (`network/catch_up.ts`, `actors/_catch_up.ts`):
 * what it is sent, when, and from a validator that was down when it connected or applied it at its
 * start.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorContext } from "../../actors/actor.ts";
import type {
  CatchUpItem,
  ChallengeSource,
  ValidatorMessage,
  ValidatorModelSource,
} from "../../actors/validator_messages.ts";
import { sendCatchUp } from "../../network/catch_up.ts";
import type { Connection } from "../../protocols/connection.ts";
import { FrameTooLargeError } from "../../protocols/protocol_errors.ts";
import type { ValidatorStats } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  type LedgerClock,
  type LedgerReads,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  joinWhileValidatorDown,
  keptFault,
  type LedgerNode,
  spawnLedgerNode,
  spawnSettingNode,
  STAKE,
} from "./_ledger_node.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";

// ---- catch-up -------------------------------------------------------------------------------------
// A ledger-keeping peer that connects catches up (`actors/_catch_up.ts`): gossip reaches only the
// peers connected at the moment. A node starts its NetworkActor after its ValidatorActor
// (`node/node.ts`), and its peers connect after that: the verdict of a challenge ending kept on
// disk (`_challenge_endings.ts`) and applied at the start, or an own fraud proof resumed at the
// start (`_receipt_files.ts`), was told to a network that did not exist yet, or that had no peer
// yet, and was lost. A conviction gossiped while a peer was offline (restarting, or not joined yet)
// never reached it either, though the cheat's receipt had, through other peers. A peer's ledger
// then never heard that the worker withheld its proof data (it took over nothing, and paid the
// work), or that it cheated (it paid the cheat). Now each ledger-keeping peer that connects is sent
// them, while their receipts' windows are open, and takes each once.
//
// The node's start order is reproduced with its two actors (validator, then network), joined to
// peer nodes in memory. No clock is raced: every ledger runs on the test's clock.

/** Wait until `reads` has receipt `id` settled as fraud (`what` names the wait on a timeout). */
function untilFraud(reads: LedgerReads, id: string, what: string) {
  return eventually(async () => (await reads.record(id))?.status === "fraud", what);
}

/** A node's ledger-keeping actors (validator, then network), its ledger under `dir/name`. */
function startNode(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: LedgerClock,
  validator?: Parameters<typeof spawnLedgerNode>[3]["validator"],
): Promise<LedgerNode> {
  return spawnLedgerNode(system, dir, name, { identity, models: HONEST_MODELS, clock, validator });
}

/** A ledger `name` that holds the worker's receipt (pending) and the stake of both keys. */
async function peerHolding(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  work: { receipt: Receipt; job: TextJob; requester: Identity; validator: Identity },
  name = "b",
): Promise<LedgerNode> {
  const peer = await startNode(system, dir, name, Identity.generate(), clock);
  await peer.validator.ask({ type: "deposit", key: work.receipt.worker, amount: STAKE });
  await peer.validator.ask({ type: "deposit", key: work.validator.publicKey, amount: STAKE });
  const handled = await announceAssigned(peer.validator, work.receipt, work.job, work.requester);
  assert.equal(handled.recorded, true);
  return peer;
}

/** A cheat's work: a receipt for a job the worker ran on another model, and its served proof. */
async function cheatsWork() {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, f.otherSeed);
  const id = receiptId(proved.receipt);
  const source: ChallengeSource = {
    proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)),
  };
  return { worker, requester, job, receipt: proved.receipt, id, source };
}

/** A cheat's work, as {@link cheatsWork} makes it. */
type Cheat = Awaited<ReturnType<typeof cheatsWork>>;

/** The cheat's stake deposited at `validator` and its receipt announced there (its result ignored). */
async function announceCheat(validator: ActorRef<ValidatorMessage>, cheat: Cheat): Promise<void> {
  await validator.ask({ type: "deposit", key: cheat.worker.publicKey, amount: STAKE });
  const handled = await announceAssigned(validator, cheat.receipt, cheat.job, cheat.requester);
  handled.result?.catch(() => {});
}

/** What the cheat's slash is: its receipt's locked amount. */
const slashOf = (receipt: Receipt) =>
  receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice * DEFAULT_ECONOMICS.slashMultiplier;

const statsOf = (node: LedgerNode) => node.validator.ask<ValidatorStats>({ type: "stats" });

Deno.test("a fault applied from a kept ending at a node's first start is passed on to the peer that connects after it", () =>
  inLedgerSetting("catch-up-fault", async ({ dir, clock, system }) => {
    const me = Identity.generate();
    // Before the stop: the challenge ended in a fault (the worker withheld its proof data),
    // kept on disk, and the stop came before the ledger had the verdict.
    const { receipt, job, requester, id } = await keptFault(`${dir}/a`, me, clock);

    const peer = await peerHolding(system, dir, clock, { receipt, job, requester, validator: me });
    const node = await startNode(system, dir, "a", me, clock);
    const reads = ledgerReads(() => node.validator, clock);
    assert.equal((await reads.record(id))?.status, "fraud", "the kept fault was not applied");
    await joinLedgerNodes(node, peer);
    await eventually(
      async () => (await statsOf(peer)).peerVerdicts > 0,
      "the peer to receive the fault verdict applied at the start",
    );
    // Once: the start's verdict is sent on connect, not again by another path.
    assert.equal((await statsOf(peer)).peerVerdicts, 1);
  }));

Deno.test("an own fraud proof resumed at a node's first start is passed on to the peer that connects after it: the cheat is slashed there too", () =>
  inLedgerSetting("catch-up-resumed", async ({ dir, clock, system }) => {
    const me = Identity.generate();
    const cheat = await cheatsWork();
    // Before the stop: the challenge caught the cheat, and the stop came while its proof was
    // being checked (the check waits on a gate that never opens).
    const first = new ActorSystem({ name: "catch-up-caught" });
    const gate = Promise.withResolvers<void>();
    let gets = 0;
    const gated: ValidatorModelSource = {
      has: (cid) => cid === f.honest.info.cid,
      get: (cid) => gets++ === 0 ? HONEST_MODELS.get(cid) : gate.promise.then(() => undefined),
    };
    const caught = await spawnValidator(first, {
      identity: me,
      ledgerDir: `${dir}/a`,
      clock,
      models: gated,
      challengeProbability: 1,
      source: cheat.source,
    });
    await announceCheat(caught, cheat);
    await eventually(
      async () => (await caught.ask<ValidatorStats>({ type: "stats" })).verdicts.fraud === 1,
      "the fraud verdict",
    );
    first.events.subscribe((event) => {
      if (event.type === "stopped" && event.name.endsWith("validator")) {
        gate.reject(new Error("stopped"));
      }
    });
    await first.shutdown();

    const peer = await peerHolding(system, dir, clock, { ...cheat, validator: me });
    const node = await startNode(system, dir, "a", me, clock);
    const reads = ledgerReads(() => node.validator, clock);
    await reads.drained();
    await untilFraud(reads, cheat.id, "the resumed proof to settle here");
    await joinLedgerNodes(node, peer);
    await eventually(
      async () => (await statsOf(peer)).fraudProofsChecked > 0,
      "the peer to receive the resumed fraud proof",
    );
    const peerReads = ledgerReads(() => peer.validator, clock);
    await untilFraud(peerReads, cheat.id, "the cheat's receipt to settle as fraud at the peer");
    assert.equal(
      (await peerReads.account(cheat.worker.publicKey)).stake,
      STAKE - slashOf(cheat.receipt),
    );
  }));

Deno.test("a connecting peer's catch-up holds what is inside its receipt's window only", () =>
  inLedgerSetting("catch-up-window", async ({ dir, clock, system }) => {
    const me = Identity.generate();
    await keptFault(`${dir}/a`, me, clock);
    const node = await startNode(system, dir, "a", me, clock);
    assert.equal(
      (await node.validator.ask<unknown[]>({ type: "catch_up" })).length,
      1,
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    assert.deepEqual(await node.validator.ask({ type: "catch_up" }), []);
  }));

/**
 * At `ledger`, which connected to the convicting node after the conviction: once the conviction
 * it is sent is settled (or, before the catch-up, nothing came), the window closes; the cheat's
 * receipt is fraud, not paid, and its stake slashed.
 */
async function assertSlashedAfterCatchUp(
  ledger: LedgerNode,
  clock: LedgerClock,
  cheat: Cheat,
): Promise<void> {
  const reads = ledgerReads(() => ledger.validator, clock);
  // A wait for the conviction to arrive (every caller expects it); without it the window closes
  // on what is there.
  await untilFraud(reads, cheat.id, "the conviction to reach the ledger that connected after it")
    .catch(() => {});
  await reads.closeWindow();
  assert.equal(
    (await reads.record(cheat.id))?.status,
    "fraud",
    "the ledger that connected after the conviction settled the cheat's receipt otherwise",
  );
  const account = await reads.account(cheat.worker.publicKey);
  assert.equal(account.balance, 0, "the cheat was paid");
  assert.equal(account.stake, STAKE - slashOf(cheat.receipt), "the cheat was not slashed");
}

/** Node "a" (validator `me`), connected to no one, challenges the cheat's receipt: convicted. */
async function convicting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  me: Identity,
  cheat: Cheat,
): Promise<LedgerNode> {
  const a = await startNode(system, dir, "a", me, clock, {
    challengeProbability: 1,
    source: cheat.source,
  });
  const reads = ledgerReads(() => a.validator, clock);
  await announceCheat(a.validator, cheat);
  await untilFraud(reads, cheat.id, "the conviction");
  await reads.drained();
  return a;
}

Deno.test("a cheat this validator convicts while a ledger is offline is slashed in that ledger once it connects", () =>
  inLedgerSetting("catch-up-own", async ({ dir, clock, system }) => {
    const me = Identity.generate();
    const cheat = await cheatsWork();
    // C recorded the cheat's receipt (it came through other peers) and is offline now.
    const c = await peerHolding(system, dir, clock, { ...cheat, validator: me }, "c");
    const a = await convicting(system, dir, clock, me, cheat);
    await joinLedgerNodes(a, c);
    await assertSlashedAfterCatchUp(c, clock, cheat);
  }));

Deno.test("a conviction a ledger is sent again when it reconnects is dropped before any check: the model is not run again", () =>
  inLedgerSetting("catch-up-again", async ({ dir, clock, system }) => {
    const me = Identity.generate();
    const cheat = await cheatsWork();
    const c = await peerHolding(system, dir, clock, { ...cheat, validator: me }, "c");
    const a = await convicting(system, dir, clock, me, cheat);
    const reads = ledgerReads(() => c.validator, clock);
    await joinLedgerNodes(a, c);
    await untilFraud(reads, cheat.id, "the conviction to reach C");
    const before = await statsOf(c);
    assert.equal(before.fraudProofsChecked, 1);
    await joinLedgerNodes(a, c); // a second connection: the catch-up is sent again
    await eventually(
      async () => (await statsOf(c)).fraudProofsSkipped > before.fraudProofsSkipped,
      "the copy to be dropped",
    );
    assert.equal((await statsOf(c)).fraudProofsChecked, 1);
    assert.equal(
      (await reads.account(cheat.worker.publicKey)).stake,
      STAKE - slashOf(cheat.receipt),
    );
  }));

Deno.test("a peer's conviction this validator confirmed and passed on reaches a ledger that connects after the gossip: the cheat is slashed there too", () =>
  inLedgerSetting("catch-up-relayed", async ({ dir, clock, system }) => {
    const v = Identity.generate();
    const cheat = await cheatsWork();
    // C recorded the cheat's receipt and is connected to neither V nor A.
    const c = await peerHolding(system, dir, clock, { ...cheat, validator: v }, "c");
    // A holds the receipt and V's stake; V, which challenges, is connected to A only.
    const a = await peerHolding(system, dir, clock, { ...cheat, validator: v }, "a");
    const vNode = await startNode(system, dir, "v", v, clock, {
      challengeProbability: 1,
      source: cheat.source,
    });
    await joinLedgerNodes(vNode, a);
    await announceCheat(vNode.validator, cheat);
    const aReads = ledgerReads(() => a.validator, clock);
    await untilFraud(aReads, cheat.id, "A to confirm V's conviction");

    await joinLedgerNodes(a, c);
    await assertSlashedAfterCatchUp(c, clock, cheat);
  }));

Deno.test("a catch-up item too large for a frame is skipped and the rest are still sent; a training conviction goes only to a peer that offers training", async () => {
  const cheat = await cheatsWork();
  const body = { proof: lossFraud("bafy-start"), arch: TEST_ARCH };
  const items: CatchUpItem[] = [
    { kind: "training_fraud_proof", body },
    { kind: "fraud_proof", proof: falseProof(cheat.receipt, Identity.generate()) },
  ];
  const ctx = {
    system: { lookup: () => ({ ask: () => Promise.resolve(items) }) },
  } as unknown as ActorContext<NetworkMessage>;
  /** Sends to a fake connection (offering training or not); what it was sent, by wire type. */
  const sentTo = async (training: boolean, tooLarge: boolean) => {
    const sent: string[] = [];
    const connection = {
      isClosed: false,
      supports: (name: string) => name === "training" ? training : true,
      notify: (definition: { type: string }) => {
        if (tooLarge && definition.type === "training.fraud_proof") {
          return Promise.reject(new FrameTooLargeError(2 << 20, 1 << 20));
        }
        sent.push(definition.type);
        return Promise.resolve();
      },
    } as unknown as Connection;
    sendCatchUp(connection, "v", ctx);
    await eventually(() => sent.includes("validation.fraud_proof"), "the inference conviction");
    return sent;
  };
  assert.deepEqual(await sentTo(true, false), ["training.fraud_proof", "validation.fraud_proof"]);
  assert.deepEqual(await sentTo(true, true), ["validation.fraud_proof"], "the rest were not sent");
  assert.deepEqual(await sentTo(false, false), ["validation.fraud_proof"]);
});

// ---- a validator back after the connect -----------------------------------------------------------
// An honest node whose validator is down at the moment a ledger connects sent that ledger no
// catch-up at all, for as long as the connection lasted (`network/catch_up.ts`: "a validator that
// does not answer sends nothing to this peer"). The validator comes back seconds later (the
// supervisor restarts it; a peer's message that crashes it is enough), but nothing asked it again:
// a peer that stays connected — the usual case, a connection lives for hours — never heard of the
// receipts this node assigned, its convictions or its faults, and the honest ledgers ended
// different (here: the honest worker paid in A and unpaid in C).
//
// A assigns and records W's receipt while no ledger is connected (it is in A's catch-up), then
// its validator stops; C connects to A; A's validator comes back. Asserted on both ledgers after
// the window: W is paid tokens × price in C as in A, under A's assignment.

Deno.test("a ledger that connects while A's validator is down is sent A's catch-up once the validator is back: the honest worker is paid in C as in A", () =>
  inLedgerSetting("s65-catch-up-validator-back", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [1, 2, 3].map(() => Identity.generate());
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    for (const node of [nodeA, nodeC]) {
      await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    }
    // Recorded while no ledger was connected: A's catch-up holds it.
    const recorded = await recordAssigned(nodeA, a, worker, textJob(a, "s65-validator-back"));

    const aAgain = await joinWhileValidatorDown(system, dir, nodeC, nodeA, {
      identity: a,
      models: HONEST_MODELS,
      clock,
    });
    await paidInCAsInA(
      clock,
      { nodeA: aAgain, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt from A's catch-up, once A's validator is back",
    );
  }));

// ---- start publications ---------------------------------------------------------------------------
// The start's publications sent on connect, now part of a connecting peer's catch-up
// (`actors/_catch_up.ts`): a verdict a validator applied at its start reaches the peers that
// connect after it.

/** A node's ledger-keeping actors in its start order (validator, then network), with a pledge. */
async function startLedgerNode(
  system: ActorSystem,
  name: string,
  identity: Identity,
  ledgerDir: string,
  clock: LedgerClock,
  pledge?: StakePledge,
): Promise<LedgerNodeStartPublications> {
  const validator = await spawnValidator(system, {
    name: `${name}/validator`,
    identity,
    ledgerDir,
    clock,
    models: HONEST_MODELS,
    challengeProbability: 0,
    network: `${name}/network`,
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({ identity, pledge, services: { validator: `${name}/validator` } }),
  });
  return { validator, network };
}

interface LedgerNodeStartPublications {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** Join two nodes in memory (`x` dials); resolves with x's connection. */
async function joinNodes(
  x: LedgerNodeStartPublications,
  y: LedgerNodeStartPublications,
): Promise<Connection> {
  const [dx, dy] = memoryDuplexPair();
  const [cx] = await Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
  return cx;
}

Deno.test("a start's verdict reaches a peer that knows the validator's stake only from the pledge sent on connect, and reconnects resend it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s41-pledge-order" });
  try {
    const me = Identity.generate();
    const work = await keptFault(`${dir}/a`, me, clock);
    // The peer holds the worker's receipt and stake, but not ours: that comes with our pledge.
    const peer = await startLedgerNode(system, "b", Identity.generate(), `${dir}/b`, clock);
    await peer.validator.ask({ type: "deposit", key: work.worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(peer.validator, work.receipt, work.job, work.requester);
    assert.equal(handled.recorded, true);
    const pledge = signStakePledge(me, STAKE, START);
    const node = await startLedgerNode(system, "a", me, `${dir}/a`, clock, pledge);
    const stats = () => peer.validator.ask<ValidatorStats>({ type: "stats" });
    let connection = await joinNodes(node, peer);
    await eventually(
      async () => (await stats()).peerVerdicts > 0,
      "the peer to record the start's verdict (after our pledge)",
    );
    assert.equal((await stats()).refusedVerdicts, 0);
    // The same peer key reconnecting: every connection is sent the whole set again.
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      await connection.close();
      connection = await joinNodes(node, peer);
      await eventually(async () => (await stats()).peerVerdicts === r + 2, `copy ${r + 2}`);
    }
    const s = await stats();
    console.log(
      `peer verdict copies after ${rounds} reconnects: ${s.peerVerdicts}, refused ${s.refusedVerdicts}`,
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// Finding, not fixed here (the fix is in `actors/validator_actor.ts`, outside this review's
// files): the start's publications live in the ValidatorActor instance, and a restart by its
// supervisor makes a new one, while the kept ending was applied and dropped at the first start.
// Fails on the current code ("0 kept, the peer recorded 0"); un-ignore with the fix.
Deno.test({
  name:
    "a start's verdict still reaches a peer that connects after the validator was restarted (a crash after its start)",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const clock = { t: START };
    const system = new ActorSystem({ name: "review-s41-restart" });
    try {
      const me = Identity.generate();
      const work = await keptFault(`${dir}/a`, me, clock);
      const node = await startLedgerNode(system, "a", me, `${dir}/a`, clock);
      let restarts = 0;
      system.events.subscribe((event) => {
        if (event.type === "restarted" && event.name.endsWith("a/validator")) restarts++;
      });
      assert.equal((await node.validator.ask<unknown[]>({ type: "catch_up" })).length, 1);
      // The validator crashes after its start (here: a local verdict whose signature fails, which
      // it does not limp past) and its supervisor restarts it. The kept ending was applied and
      // dropped at the first start: the restart has nothing of its own to tell again.
      const forged = signVerdict({
        v: 1,
        subject: "inference",
        subjectId: work.id,
        target: work.worker.publicKey,
        outcome: "valid",
        reason: "ok",
        issuedAt: clock.t,
      }, me);
      forged.sig = new Uint8Array(forged.sig.length);
      await node.validator.tell({ type: "verdict", verdict: forged }).catch(() => {});
      await eventually(() => restarts > 0, "the validator's restart");
      await node.validator.ask({ type: "stats" }); // back up
      const peer = await startLedgerNode(system, "b", Identity.generate(), `${dir}/b`, clock);
      await peer.validator.ask({ type: "deposit", key: work.worker.publicKey, amount: STAKE });
      await peer.validator.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
      const handled = await announceAssigned(
        peer.validator,
        work.receipt,
        work.job,
        work.requester,
      );
      assert.equal(handled.recorded, true);
      await joinNodes(node, peer);
      const stats = () => peer.validator.ask<ValidatorStats>({ type: "stats" });
      await eventually(
        async () => (await stats()).peerVerdicts >= 1,
        "the peer to hear of the fault after the validator's restart",
      );
      assert.equal((await stats()).peerVerdicts, 1);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
