/**
 * Evidence passed on goes after what the peer needs to check it, on the same connection: a fraud
 * proof after its accuser's pledge, a "proof withheld" claim after its author's pledge and after the
 * receipt and job it is about.
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type {
  ChallengeSource,
  FraudProofHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import {
  caughtCheat,
  joinLedgerNodes,
  type LedgerNode,
  spawnLedgerNode,
  spawnNetworkNode,
  stakeIn,
} from "./_ledger_node.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { PledgeBudget } from "../../network/pledge_budget.ts";
import { MAX_CARRIED_PLEDGES, type PledgePeer, PledgeSync } from "../../network/pledge_sync.ts";
import type { Connection } from "../../protocols/connection.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { floodAssignedReceipts } from "../actors/_peer_verdict_fixture.ts";

// ---- proof pledge order ---------------------------------------------------------------------------
// A fraud proof passed on goes after its accuser's stake pledge, on the same connection.
//
// A ledger checks a peer's fraud proof only from an accuser with stake there
// (`unstaked_accuser`). A node that passes a proof on has its accuser's pledge (it checked the
// proof against that stake), but its peer may not: the pledge was not among the few pushed on
// connect, or its gossip was dropped by the pledge budget. Before, such a peer skipped the proof
// for good, and paid the cheat that every other ledger slashed. (Since stop 40 an inference
// ledger also holds such a proof, bounded, until the pledge comes,
// `actors/_pledge_held_proofs.ts`; a training ledger does not, so sending the pledge first is
// still what keeps it from paying the cheat.)

const WORKER_STAKE = 1_000_000;

Deno.test("a fraud proof passed on to a peer that lacks its accuser's pledge is preceded by the pledge: the peer slashes the cheat too", async () => {
  const system = new ActorSystem({ name: "proof-pledge-order-test" });
  const dir = await Deno.makeTempDir();
  const [b, c, worker, accuser, requester] = Array.from({ length: 5 }, Identity.generate);
  try {
    const node = (name: string, identity: Identity) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, 10_000, 1),
        models: HONEST_MODELS,
      });
    const [nodeB, nodeC] = await Promise.all([node("b", b), node("c", c)]);
    const peer = "dd".repeat(32); // where the evidence reaches B from
    const pledge = (to: LedgerNode, key: Identity, amount: number) =>
      to.validator.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: peer });

    // B holds the accuser's pledge, then more newer ones than it pushes on connect: the
    // accuser's (idle, the oldest) is not among those C gets when they join.
    assert.equal(await pledge(nodeB, accuser, 50_000), true);
    for (let i = 0; i <= PLEDGES_PUSHED_ON_CONNECT; i++) {
      assert.equal(await pledge(nodeB, Identity.generate(), 1_000), true);
    }
    for (const to of [nodeB, nodeC]) await pledge(to, worker, WORKER_STAKE);

    // A cheat (its tokens come from another model than the one it names), its receipt in both
    // ledgers, and the accuser's confirmed proof of it.
    const { id, fraudProof } = await caughtCheat(
      [nodeB, nodeC],
      { worker, requester, accuser, tag: "pledge-order" },
    );

    await joinLedgerNodes(nodeB, nodeC);
    await eventually(async () => (await stakeIn(nodeC, b)) === 10_000, "C to record B's pledge");
    assert.equal(await stakeIn(nodeC, accuser), 0, "C has not heard of the accuser");

    // The proof reaches B, which checks it, settles it and passes it on to C.
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: peer,
    });
    assert.equal(handled.queued, true);
    await handled.result;
    const recordIn = (n: LedgerNode) =>
      n.validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    assert.equal((await recordIn(nodeB))?.status, "fraud");

    // C took the proof one way or the other (checked, or skipped), then: the same outcome as B.
    await eventually(async () => {
      const stats = await nodeC.validator.ask<ValidatorStats>({ type: "stats" });
      return stats.fraudProofsChecked + stats.fraudProofsSkipped > 0;
    }, "C to take the proof");
    await eventually(async () => {
      const stats = await nodeC.validator.ask<ValidatorStats>({ type: "stats" });
      return stats.fraudProofsSkipped > 0 || (await recordIn(nodeC))?.status !== "pending";
    }, "C to settle it or skip it");
    assert.equal((await recordIn(nodeC))?.status, "fraud", "C slashes the cheat as B did");
    assert.equal(await stakeIn(nodeC, worker), await stakeIn(nodeB, worker));
    assert.ok(await stakeIn(nodeC, worker) < WORKER_STAKE);
    assert.equal(await stakeIn(nodeC, accuser), 50_000, "the accuser's pledge came with it");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Stands in for a node's TrainingValidator: at each peer's training fraud proof, reads what its
 * ledger holds of the accuser's stake, as the real intake does (`unstaked_accuser`).
 */
class StakeAtIntake implements Actor<TrainingValidatorMessage> {
  constructor(readonly ledger: string, readonly seen: number[]) {}

  async receive(message: TrainingValidatorMessage, ctx: ActorContext<TrainingValidatorMessage>) {
    if (message.type !== "fraud_proof") return undefined;
    const account = await ctx.system.lookup<{ type: "account"; key: Uint8Array }>(this.ledger)!
      .ask<Account>({ type: "account", key: message.body.proof.validator });
    this.seen.push(account.stake);
    return undefined;
  }
}

Deno.test("a training fraud proof passed on to a peer that lacks its accuser's pledge is preceded by the pledge: the peer's intake finds the stake", async () => {
  const system = new ActorSystem({ name: "training-proof-pledge-order-test" });
  const dir = await Deno.makeTempDir();
  const [b, c, accuser] = Array.from({ length: 3 }, Identity.generate);
  const seen: number[] = [];
  try {
    for (const name of ["b", "c"]) {
      await system.spawn<TrainingValidatorMessage>({
        name: `${name}/training`,
        factory: () => new StakeAtIntake(`${name}/validator`, seen),
      });
    }
    const node = (name: string, identity: Identity) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, 10_000, 1),
        models: HONEST_MODELS,
        trainingValidator: `${name}/training`,
      });
    const [nodeB, nodeC] = await Promise.all([node("b", b), node("c", c)]);
    const pledge = (key: Identity, amount: number) =>
      nodeB.validator.ask({
        type: "pledge",
        pledge: signStakePledge(key, amount, 1),
        origin: "dd".repeat(32),
      });
    assert.equal(await pledge(accuser, 50_000), true);
    for (let i = 0; i <= PLEDGES_PUSHED_ON_CONNECT; i++) {
      assert.equal(await pledge(Identity.generate(), 1_000), true);
    }
    await joinLedgerNodes(nodeB, nodeC);
    const stakeInC = (key: Identity) => stakeIn(nodeC, key);
    await eventually(async () => (await stakeInC(b)) === 10_000, "C to record B's pledge");
    assert.equal(await stakeInC(accuser), 0, "C has not heard of the accuser");

    // B's training validator passes a checked proof on.
    const proof = lossFraud(f.honest.info.cid, accuser);
    await nodeB.network.tell({
      type: "publish_training",
      gossip: { kind: "fraud_proof", body: { proof, arch: TEST_ARCH } },
    });
    await eventually(() => seen.length > 0, "the proof to reach C's training intake");
    assert.deepEqual(seen, [50_000], "C's ledger held the accuser's stake when the proof came");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- verdict pledge -------------------------------------------------------------------------------
// A "proof withheld" claim (`invalid / proof_unavailable`) passed on goes after its author's stake
// pledge, on the same connection, as a fraud proof goes after its accuser's
// (above).
//
// A ledger takes a peer's claim over (asks the worker for its proof data itself) only from a
// claimant with stake there. A node that passes a claim on has its author's pledge (it recorded
// the claim against that stake), but its peer may not: the pledge was not among the few pushed on
// connect, or its gossip was dropped by the pledge budget. Before, such a peer held the claim
// (since review s56; refused before that) until pledge sync happened to bring the pledge, which
// nothing asked for: the worker that withheld from that ledger too was paid there, and slashed by
// the ledgers that had the claimant's stake.
//
// The set-up: B — C. The claimant A is connected to neither; its claim reaches B from elsewhere.
// The worker served B its proof data (B's takeover clears it) and withholds from C. Every ledger
// runs on the test's clock.

const NODE_STAKE = 10_000;
const CLAIMANT_STAKE = 50_000;

/**
 * Stands between C's NetworkActor and its validator: notes the key of every pledge a peer hands
 * it, then forwards each message (in order: one at a time) and its answer.
 */
class PledgeTap implements Actor<ValidatorMessage> {
  constructor(readonly validator: string, readonly pledgers: string[]) {}

  receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): Promise<unknown> {
    if (message.type === "pledge") this.pledgers.push(toHex(message.pledge.key));
    return ctx.system.lookup<ValidatorMessage>(this.validator)!.ask(message, {
      timeoutMs: 60_000,
    });
  }
}

/** Node `name`: its validator (taking over with `source`), a {@link PledgeTap} and its network. */
async function spawnTapped(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: LedgerClock,
  source: ChallengeSource,
  pledgers: string[],
): Promise<LedgerNode> {
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: `${dir}/${name}`,
        models: HONEST_MODELS,
        challengeProbability: 0,
        finalizeIntervalMs: 0,
        network: `${name}/network`,
        ledger: { now: () => clock.t },
        // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
        maxReceiptLeadMs: Number.POSITIVE_INFINITY,
        source,
      }),
  });
  await system.spawn<ValidatorMessage>({
    name: `${name}/tap`,
    factory: () => new PledgeTap(`${name}/validator`, pledgers),
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({
        identity,
        pledge: signStakePledge(identity, NODE_STAKE, 1),
        now: () => clock.t,
        services: { validator: `${name}/tap` },
      }),
  });
  return { validator, network };
}

/** A worker's proved job, its receipt id, and the requester's assignment of it. */
async function work(worker: Identity, requester: Identity, nonce: string) {
  const job = textJob(requester, nonce);
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { job, id, proved, assignment };
}

/**
 * B and C joined, as the module doc sets them up, with `claims` receipts of the worker in both.
 * `pushed`: B holds few pledges, so the claimant's is among those C is pushed on connect.
 */
async function setting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  claims: number,
  pushed = false,
) {
  const [b, c, claimant, worker, requester, other] = Array.from({ length: 6 }, Identity.generate);
  const jobs = await Promise.all(
    Array.from({ length: claims }, (_, i) => work(worker, requester, `claimed-${i}`)),
  );
  // Another worker's receipt, which B announces to mark where its gossip to C is.
  const marker = await work(other, requester, "marker");
  // The worker serves B (its takeover clears the work) and withholds from C.
  const serves: ChallengeSource = {
    proof: (receipt) => {
      const id = receiptId(receipt);
      const found = jobs.find((j) => j.id === id);
      return Promise.resolve(found && signServedProof(id, found.proved.proof, worker));
    },
  };
  const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };
  const nodeB = await spawnLedgerNode(system, dir, "b", {
    identity: b,
    pledge: signStakePledge(b, NODE_STAKE, 1),
    models: HONEST_MODELS,
    now: () => clock.t,
    clock,
    validator: { challengeProbability: 0, source: serves },
  });
  const pledgersAtC: string[] = [];
  const nodeC = await spawnTapped(system, dir, "c", c, clock, withholds, pledgersAtC);

  // B holds the claimant's pledge, then more newer ones than it pushes on connect: the
  // claimant's (idle, the oldest) is not among those C gets when they join.
  const peer = "dd".repeat(32);
  const pledge = (key: Identity, amount: number) =>
    nodeB.validator.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: peer });
  assert.equal(await pledge(claimant, CLAIMANT_STAKE), true);
  for (let i = 0; i <= (pushed ? -1 : PLEDGES_PUSHED_ON_CONNECT); i++) {
    assert.equal(await pledge(Identity.generate(), 1_000), true);
  }
  await nodeC.validator.ask({ type: "deposit", key: other.publicKey, amount: WORKER_STAKE });
  for (const node of [nodeB, nodeC]) {
    await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    for (const { proved, job } of jobs) {
      const handled = await announceAssigned(node.validator, proved.receipt, job, requester);
      assert.equal(handled.recorded, true);
    }
  }

  await joinLedgerNodes(nodeB, nodeC);
  const readsB = ledgerReads(() => nodeB.validator, clock);
  const readsC = ledgerReads(() => nodeC.validator, clock);
  await eventually(
    async () => (await readsC.account(b.publicKey)).stake === NODE_STAKE,
    "C to record B's pledge",
  );
  if (pushed) {
    await eventually(
      async () => (await readsC.account(claimant.publicKey)).stake === CLAIMANT_STAKE,
      "C to record A's pledge pushed on connect",
    );
  } else {
    assert.equal((await readsC.account(claimant.publicKey)).stake, 0, "C has not heard of A");
  }

  return {
    nodeB,
    nodeC,
    readsB,
    readsC,
    claimant,
    worker,
    jobs,
    pledgersAtC,
    /** The claimant's "proof withheld" claim about job `i` reaches B (from A's connection). */
    async claim(i: number): Promise<void> {
      const verdict = withheldVerdict(jobs[i].id, worker.publicKey, clock.t, claimant);
      const recorded = await nodeB.validator.ask<string | undefined>({
        type: "verdict",
        verdict,
        origin: toHex(claimant.publicKey),
      });
      assert.ok(recorded, "B records the claim: A has stake there");
    },
    /**
     * Everything B sent C before now has reached C's validator: a receipt B announces now goes
     * after it on the same connection, and C hands what it is sent to its validator in order.
     */
    async synced(): Promise<void> {
      await nodeB.network.tell({
        type: "announce_receipt",
        receipt: marker.proved.receipt,
        job: marker.job,
        assignment: marker.assignment,
      });
      await eventually(async () => (await readsC.record(marker.id)) !== undefined, "the marker");
    },
  };
}

async function inSetting(
  name: string,
  test: (dir: string, clock: LedgerClock, system: ActorSystem) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name });
  try {
    await test(dir, clock, system);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a 'proof withheld' claim passed on to a ledger that lacks its author's pledge goes after the pledge: the worker that withholds from that ledger too is slashed there, not paid", () =>
  inSetting("verdict-pledge-order", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 1);
    const { id, proved } = s.jobs[0];

    await s.claim(0);
    await s.readsB.drained(); // B took the claim over: served, cleared
    await s.synced();
    await s.readsC.drained();

    // The window closes (one clock for both ledgers).
    await s.readsC.closeWindow();
    await s.nodeB.validator.ask({ type: "finalize" });
    assert.equal((await s.readsB.record(id))?.status, "final", "the worker served B: paid there");
    const atC = await s.readsC.record(id);
    assert.equal(atC?.status, "fraud", "C settled the worker that withheld from it too as paid");
    const account = await s.readsC.account(s.worker.publicKey);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(account.balance, 0, "the withholder was paid in C");
    assert.equal(account.stake, WORKER_STAKE - slash, "the withholder was not slashed in C");
    assert.equal(
      (await s.readsC.account(s.claimant.publicKey)).stake,
      CLAIMANT_STAKE,
      "the claimant's pledge came with its claim",
    );
    const stats = await s.readsC.stats() as ValidatorStats;
    assert.equal(stats.peerVerdicts >= 1, true, "C recorded the claim");
  }));

Deno.test("a claimant's pledge goes to a peer once per connection, not ahead of each of its claims", () =>
  inSetting("verdict-pledge-once", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 3);
    for (let i = 0; i < s.jobs.length; i++) await s.claim(i);
    await s.readsB.drained();
    await s.synced();
    // B's catch-up (review s62: the receipts it recorded from a peer and passed on) may still be
    // answered ahead of the claims' evidence: the marker no longer comes after every claim.
    const takenOver = async () => {
      for (const { id } of s.jobs) {
        if ((await s.readsC.record(id))?.status === "pending") return false;
      }
      return true;
    };
    await eventually(takenOver, "C to take every claim over");
    await s.readsC.drained();
    const claimant = toHex(s.claimant.publicKey);
    assert.deepEqual(
      s.pledgersAtC.filter((key) => key === claimant),
      [claimant],
      "C was sent the claimant's pledge once, ahead of its first claim",
    );
    // C took every claim over (the worker withholds from it): each receipt a fault there.
    for (const { id } of s.jobs) assert.equal((await s.readsC.record(id))?.status, "fraud");
  }));

Deno.test("a claimant's pledge a peer was pushed on connect is not sent it again ahead of the claim", () =>
  inSetting("verdict-pledge-pushed", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 1, true);
    await s.claim(0);
    await s.readsB.drained();
    await s.synced();
    await s.readsC.drained();
    const claimant = toHex(s.claimant.publicKey);
    assert.deepEqual(s.pledgersAtC.filter((key) => key === claimant), [claimant]);
    assert.equal((await s.readsC.record(s.jobs[0].id))?.status, "fraud");
  }));

Deno.test("PledgeSync.sendAhead: once per connection, not on a connection that brought the pledge, again past MAX_CARRIED_PLEDGES", () => {
  const peer = Identity.generate();
  const sent: [number, string][] = [];
  /** A connection to `peer` that notes each pledge sent on it (with its number). */
  const connection = (n: number) =>
    ({
      isClosed: false,
      peerKey: peer.publicKey,
      supports: () => true,
      notify: (_: unknown, body: { pledge: StakePledge }) => {
        sent.push([n, toHex(body.pledge.key)]);
        return Promise.resolve();
      },
    }) as unknown as Connection;
  const [first, second] = [connection(1), connection(2)];
  // Room for all of it: the budget is not what is tested here.
  const pledges = new PledgeBudget({ burst: 10_000, refillMs: 1, now: () => 0 });
  const entries: PledgePeer[] = [{ connection: first, pledges }, { connection: second, pledges }];
  const sync = new PledgeSync({
    peers: new Map([[toHex(peer.publicKey), entries]]),
    entryOf: (c) => entries.find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
  });
  const pledgeOf = () => signStakePledge(Identity.generate(), 1_000, 1);
  const sentOf = (p: StakePledge) => sent.filter(([, key]) => key === toHex(p.key));

  const claimant = pledgeOf();
  sync.sendAhead(first, claimant);
  sync.sendAhead(first, claimant);
  assert.deepEqual(sentOf(claimant), [[1, toHex(claimant.key)]], "once on a connection");
  sync.sendAhead(second, claimant);
  assert.equal(sentOf(claimant).length, 2, "once on each connection");

  // A pledge the peer passed on to us (new to our ledger): it has it.
  const heard = pledgeOf();
  assert.equal(sync.relayPledge(heard, toHex(peer.publicKey)), 0);
  sync.sendAhead(first, heard);
  assert.deepEqual(sentOf(heard), [], "not sent back where it came from");

  // Past the bound, the oldest is forgotten: sent once more.
  for (let i = 0; i < MAX_CARRIED_PLEDGES; i++) sync.sendAhead(first, pledgeOf());
  sync.sendAhead(first, claimant);
  assert.equal(sentOf(claimant).length, 3);
});

// ---- claim receipt --------------------------------------------------------------------------------
// A "proof withheld" claim passed on goes after the receipt and job it is about, on the same
// connection (`validation.receipt`), as it goes after its author's pledge
// (above).
//
// A ledger takes a peer's claim over (asks the worker for its proof data itself, and slashes it if
// it withholds there too) only while it remembers the receipt and its job (bounded: 4096 receipts,
// 64 MiB, one queue for every worker, `_validator_memory.ts`). A worker with a colluding requester
// floods receipts until its withheld receipt is forgotten; the claim that reached that ledger alone
// was not taken over there, and the worker that withheld from it was paid there.
//
// The set-up: B — C. The claimant A is connected to neither; its claim reaches B from elsewhere.
// The worker's receipt is recorded in both; C then forgets it under a flood of another staked
// key's receipts for near-maximal jobs. The worker served B its proof data (B's takeover clears
// it) and withholds from C. Every ledger runs on the test's clock.

const STAKE = 1_000_000;

Deno.test("a 'proof withheld' claim passed on to a ledger that forgot its receipt goes after the receipt (once per connection): the worker that withholds from that ledger too is slashed there, not paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s57-claim-receipt" });
  try {
    const [b, c, claimant, worker, requester, flooder] = Array.from(
      { length: 6 },
      Identity.generate,
    );
    const job = textJob(requester, "s57-claimed");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    const serves: ChallengeSource = {
      proof: (r) =>
        Promise.resolve(
          receiptId(r) === id ? signServedProof(id, proved.proof, worker) : undefined,
        ),
    };
    const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };
    const nodeB = await spawnLedgerNode(system, dir, "b", {
      identity: b,
      models: HONEST_MODELS,
      now: () => clock.t,
      clock,
      validator: { challengeProbability: 0, source: serves },
    });
    const nodeC = await spawnLedgerNode(system, dir, "c", {
      identity: c,
      models: HONEST_MODELS,
      now: () => clock.t,
      clock,
      validator: { challengeProbability: 0, source: withholds },
    });
    for (const node of [nodeB, nodeC]) {
      for (const key of [worker, claimant, flooder]) {
        await node.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal(
        (await announceAssigned(node.validator, proved.receipt, job, requester))
          .recorded,
        true,
      );
    }
    // C forgets the worker's receipt: the flood comes to C alone (from this node: not gossiped).
    await floodAssignedReceipts(nodeC.validator, flooder, requester, "s57");
    await joinLedgerNodes(nodeB, nodeC);
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // A's claim reaches B, which passes it on to C.
    const claim = withheldVerdict(id, worker.publicKey, clock.t, claimant);
    const recorded = await nodeB.validator.ask<string | undefined>({
      type: "verdict",
      verdict: claim,
      origin: toHex(claimant.publicKey),
    });
    assert.ok(recorded, "B records the claim");
    await readsB.drained(); // B took the claim over: served, cleared
    await eventually(
      async () => ((await readsC.stats()) as ValidatorStats).peerVerdicts >= 1,
      "C to record the claim",
    );
    await readsC.drained();
    const { challenged, received } = await readsC.stats();
    // Another staked claimant's claim about the same receipt: passed on by B, without the receipt
    // again (it went ahead of the first on this connection: a receipt's job may take 448 KiB, and
    // every claimant's claim carrying it multiplied what a claim costs the network).
    const second = Identity.generate();
    for (const node of [nodeB, nodeC]) {
      await node.validator.ask({ type: "deposit", key: second.publicKey, amount: STAKE });
    }
    await nodeB.validator.ask({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, clock.t, second),
      origin: toHex(second.publicKey),
    });
    await eventually(
      async () => ((await readsC.stats()) as ValidatorStats).peerVerdicts >= 2,
      "C to record the second claim",
    );
    assert.equal((await readsC.stats()).received, received, "the receipt went ahead once");

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final", "the worker served B: paid there");
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the worker that withheld");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the withholder was paid in C");
    assert.ok(account.stake < STAKE, "the withholder was not slashed in C");
    assert.equal(challenged, 1, "C took the claim over");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A ledger as far as a NetworkActor asks one: it records the receipts and verdicts peers hand it
 * (in the order handed) and answers the rest with nothing held.
 */
class RecordingLedger implements Actor<ValidatorMessage> {
  constructor(readonly handed: string[]) {}

  receive(message: ValidatorMessage): unknown {
    switch (message.type) {
      case "receipt":
        this.handed.push("receipt");
        return { receiptId: "", recorded: true, challenged: false, draw: 1 };
      case "verdict":
        this.handed.push(`verdict ${toHex(message.verdict.validator).slice(0, 8)}`);
        return undefined;
      case "pledges":
      case "catch_up":
        return [];
      case "convicted":
        return false;
      case "account":
        return { stake: 0, locked: 0, balance: 0 };
      default:
        return undefined;
    }
  }
}

Deno.test("a claim's receipt goes ahead of it once per connection: the claims of other claimants about it go alone", async () => {
  const system = new ActorSystem({ name: "s57-receipt-once" });
  try {
    const [b, c, worker, requester] = Array.from({ length: 4 }, Identity.generate);
    const claimants = Array.from({ length: 3 }, Identity.generate);
    const handedAtC: string[] = [];
    const node = (name: string, identity: Identity, handed: string[]) =>
      spawnNetworkNode(system, name, identity, () => new RecordingLedger(handed));
    const nodeB = await node("b", b, []);
    const nodeC = await node("c", c, handedAtC);
    await joinLedgerNodes(nodeB, nodeC);
    const job = textJob(requester, "s57-once");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    for (const claimant of claimants) {
      await nodeB.network.tell({
        type: "publish_verdict",
        verdict: withheldVerdict(id, worker.publicKey, START, claimant),
        evidence: { receipt, job },
      });
    }
    await eventually(
      () => Promise.resolve(handedAtC.filter((m) => m.startsWith("verdict")).length === 3),
      "C to be handed the three claims",
    );
    assert.deepEqual(handedAtC, [
      "receipt",
      ...claimants.map((k) => `verdict ${toHex(k.publicKey).slice(0, 8)}`),
    ]);
  } finally {
    await system.shutdown();
  }
});
