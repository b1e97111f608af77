/**
 * How a validator passes receipts on: a receipt whose assignment reaches it second (or late, after
 * an undecided challenge) is still passed on, so the ledgers behind it pay the worker; and receipts
 * are counted apart from their copies.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  type FraudProofHandled,
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
  type ValidatorModelSource,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { proveJob } from "../../proof/prover.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";

// -------------------------------------------------------------------------------------------------
// A receipt's assignment reaching a validator second still sends the receipt on. A validator
// passes a peer's assigned receipt on to its other peers once, when it is new here; a receipt
// recorded first without its assignment — a relay that stripped it, or a fraud proof about it
// that outran the worker's announcement — used to have the requester's assigned copy attached
// (credit booked here) but never passed on, so validators reached only through this one never
// recorded the job and never paid its worker. Two validators: A's NetworkActor stand-in hands
// what A announces to B, as B's NetworkActor would; the ledgers' balances after the window say
// who was paid.

const WORKER_STAKE = 1_000_000;

type Flush = { type: "flush" };

/** A's network: what A announces goes to B (answered before the next message is taken). */
class ToB implements Actor<NetworkMessage | Flush> {
  announced = 0;
  constructor(readonly b: () => ActorRef<ValidatorMessage>, readonly from: string) {}
  async receive(message: NetworkMessage | Flush): Promise<unknown> {
    if (message.type !== "announce_receipt") return true;
    this.announced++;
    const { receipt, job, assignment } = message;
    return await this.b().ask({ type: "receipt", receipt, job, assignment, origin: this.from });
  }
}

async function setup() {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "receipt-gossip" });
  const a = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const peer: { b?: ActorRef<ValidatorMessage> } = {};
  const toB = new ToB(() => peer.b!, toHex(a.publicKey));
  const netA = await system.spawn<NetworkMessage | Flush>({ name: "a/net", factory: () => toB });
  await system.spawn<NetworkMessage>({ name: "b/net", factory: () => ({ receive: () => true }) });
  const validator = (name: string, identity: Identity, network: string) =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: `${dir}/${name}`,
      clock,
      challengeProbability: 0,
      network,
      // Both hold the model: a ledger credits only what it can check.
      models: HONEST_MODELS,
    });
  const va = await validator("a", a, "a/net");
  const b = peer.b = await validator("b", Identity.generate(), "b/net");
  for (const v of [va, b]) {
    await v.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  }
  const job = textJob(requester, crypto.randomUUID(), { prompt: "The validator" });
  const proved = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return {
    a: va,
    b,
    toB,
    worker,
    job,
    receipt: proved.receipt,
    proof: proved.proof,
    id: receiptId(proved.receipt),
    assignment,
    requesterHex: toHex(requester.publicKey),
    /** Everything A told its network has reached B. */
    flush: () => netA.ask({ type: "flush" }),
    async closeWindow() {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      for (const v of [va, b]) await v.ask({ type: "finalize" });
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

for (const first of ["a relay's copy without the assignment", "a refuted fraud proof"] as const) {
  Deno.test(`the assigned receipt still spreads when ${first} came first: the worker is paid at the next validator too`, async () => {
    const t = await setup();
    try {
      let accusation: { key: Uint8Array; result: Promise<unknown> } | undefined;
      if (first === "a relay's copy without the assignment") {
        const stripped = await t.a.ask<ReceiptHandled>({
          type: "receipt",
          receipt: t.receipt,
          job: t.job,
          origin: "ab".repeat(32),
        });
        assert.equal(stripped.recorded, true);
        const unassigned = await t.a.ask<ReceiptRecord>({
          type: "receipt_status",
          receiptId: t.id,
        });
        assert.deepEqual([unassigned.status, unassigned.credit], ["pending", 0]);
      } else {
        // A staked accuser's false claim: the worker's own signed data, which opens its root.
        const accuser = Identity.generate();
        await t.a.ask({ type: "deposit", key: accuser.publicKey, amount: 1_000 });
        const proof = signFraudProof({
          v: 1,
          job: t.job,
          receipt: t.receipt,
          kind: "commitment",
          chunks: [],
          cited: [],
          served: signServedProof(t.id, t.proof, t.worker),
          issuedAt: START,
        }, accuser);
        const taken = await t.a.ask<FraudProofHandled>({
          type: "fraud_proof",
          proof,
          origin: toHex(accuser.publicKey),
        });
        // Held, and the receipt it carries handed to the intake (review s73 F1): recorded as a
        // relay's copy without its assignment is, earning nothing yet; checked once recorded.
        assert.equal(taken.awaitingReceipt, true);
        const unassigned = await t.a.ask<ReceiptRecord>({
          type: "receipt_status",
          receiptId: t.id,
        });
        assert.deepEqual([unassigned.status, unassigned.credit], ["pending", 0]);
        accusation = { key: accuser.publicKey, result: taken.result! };
      }
      // The requester's own announcement, with its signed assignment.
      await t.a.ask<ReceiptHandled>({
        type: "receipt",
        receipt: t.receipt,
        job: t.job,
        assignment: t.assignment,
        origin: t.requesterHex,
      });
      await t.flush();
      if (accusation !== undefined) {
        assert.equal(((await accusation.result) as { confirmed: boolean }).confirmed, false);
        const accused = await t.a.ask<Account>({ type: "account", key: accusation.key });
        assert.equal(accused.stake, 1_000 - DEFAULT_ECONOMICS.falseAccusationPenalty);
      }
      const credited = await t.a.ask<ReceiptRecord>({ type: "receipt_status", receiptId: t.id });
      assert.ok(credited.credit > 0);
      await t.closeWindow();
      for (const [name, v] of [["A", t.a], ["B", t.b]] as const) {
        const account = await v.ask<Account>({ type: "account", key: t.worker.publicKey });
        assert.deepEqual(account, {
          balance: credited.credit,
          stake: WORKER_STAKE,
          locked: 0,
        }, `${name} pays the worker`);
      }
      // Once: the same copies again send nothing more.
      for (const assignment of [undefined, t.assignment]) {
        await t.a.ask({
          type: "receipt",
          receipt: t.receipt,
          job: t.job,
          assignment,
          origin: "cd".repeat(32),
        });
      }
      await t.flush();
      assert.equal(t.toB.announced, 1);
    } finally {
      await t.close();
    }
  });
}

// -------------------------------------------------------------------------------------------------
// The intake's late assignment (`ValidatorActor`, receipt intake; `Ledger`'s `recordReceipt`): a
// receipt that reached a ledger without its assignment first (a relay that stripped it) is passed
// on to the ledger's peers only once its assignment comes, and a ledger behind it that hears the
// receipt only through it records it then or never. When the copy without the assignment was drawn
// and its challenge ended undecided here (this validator's own gap: its model store failed), the
// assignment that came after was neither attached nor passed on, and the ledgers behind never paid
// the honest worker, which they do when the copies come the other way round.

const STAKE = 1_000_000;
const RELAY = "ab".repeat(32);
const REQUESTER_NODE = "cd".repeat(32);

/** A model store that fails to read: every challenge of S ends undecided (`unresolved`). */
const BROKEN_MODELS: ValidatorModelSource = {
  get: () => Promise.reject(new Error("model store unreadable")),
};

/**
 * S draws every receipt and cannot read its model store; P, behind S, draws none and hears
 * receipts only through S. S hears the worker's receipt without its assignment, then with it
 * (`bareFirst`), or the other way round. Returns what P paid the worker, and how many times S
 * passed the receipt on.
 */
async function paidBehind(
  bareFirst: boolean,
): Promise<{ balance: number; credit: number; announced: number }> {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `s48-late-${bareFirst}` });
  try {
    const worker = Identity.generate();
    const requester = Identity.generate();
    const s = Identity.generate();
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "s/network",
      factory: () => new RecordingNetwork(told),
    });
    const atS = await spawnValidator(system, {
      name: "s/validator",
      identity: s,
      ledgerDir: `${dir}/s`,
      clock,
      challengeProbability: 1,
      network: "s/network",
      models: BROKEN_MODELS,
    });
    const atP = await spawnValidator(system, {
      name: "p/validator",
      identity: Identity.generate(),
      ledgerDir: `${dir}/p`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    for (const v of [atS, atP]) {
      await v.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    }
    const job = textJob(requester, `late-${bareFirst}`);
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const bare = () => atS.ask<ReceiptHandled>({ type: "receipt", receipt, job, origin: RELAY });
    const assigned = () =>
      announceAssigned(atS, receipt, job, requester, { origin: REQUESTER_NODE });
    const first = await (bareFirst ? bare() : assigned());
    assert.deepEqual([first.recorded, first.challenged], [true, true]);
    // Resolves once the challenge's ending is in the ledger.
    await first.result;
    const reads = ledgerReads(() => atS, clock);
    assert.equal((await reads.record(id))?.status, "unpaid", "S's own challenge is undecided");
    await (bareFirst ? assigned() : bare());
    await assigned(); // a repeat: nothing new
    // What S passed on reaches P.
    for (const message of told) {
      if (message.type !== "announce_receipt") continue;
      const { receipt, job, assignment } = message;
      await atP.ask({ type: "receipt", receipt, job, assignment, origin: toHex(s.publicKey) });
    }
    const announced = told.filter((m) => m.type === "announce_receipt").length;
    const behind = ledgerReads(() => atP, clock);
    await behind.closeWindow();
    await reads.closeWindow();
    // S itself never pays what it could not decide, and slashes nothing.
    assert.equal((await reads.record(id))?.status, "unpaid");
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: 0,
      stake: STAKE,
      locked: 0,
    });
    const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    return { balance: (await behind.account(worker.publicKey)).balance, credit, announced };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a ledger behind one whose challenge ended undecided pays the honest worker whichever copy of its receipt (without or with the assignment) reached that one first", async () => {
  const assignedFirst = await paidBehind(false);
  assert.equal(assignedFirst.balance, assignedFirst.credit, "control: assigned copy first");
  assert.equal(assignedFirst.announced, 1, "control: passed on once");
  const bareFirst = await paidBehind(true);
  assert.equal(
    bareFirst.balance,
    bareFirst.credit,
    "the copy without the assignment came first: the assignment after it must still be passed on",
  );
  assert.equal(bareFirst.announced, 1, "passed on once, not at every repeat");
});

// -------------------------------------------------------------------------------------------------
// The heartbeat's `receipts N` counted copies, not receipts: after one job a router said `receipts
// 2 (2 from peers)` and its worker `receipts 2 (1 from peers)` (the worker announces its receipt
// and the router hands it in too), which reads as two jobs. The validator now counts the copies
// apart (`ValidatorStats.copies`, `copiesFromPeers`; metric
// `veriflow_validator_receipt_copies_total`), and the heartbeat shows receipts new here and the
// copies beside them. And the validator's verdict line (`validator: challenged job … → valid`) did
// not name the worker it judged: it now says `, worker <key16>` after the outcome.

Deno.test("copies of a receipt are counted apart, the heartbeat shows one receipt per job, and the verdict line names the worker", async () => {
  const f = await loadFixture();
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s61-ops2-copies" });
  const lines: string[] = [];
  const proofs = new Map<string, ServedProof>();
  await system.spawn<NetworkMessage>({
    name: "test/network",
    factory: () => new RecordingNetwork([]),
  });
  const me = Identity.generate();
  const validator = await system.spawn<ValidatorMessage>({
    name: "node/validator",
    factory: () =>
      new ValidatorActor({
        identity: me,
        ledgerDir: `${dir}/ledger`,
        ledger: { now: () => 1_000_000 },
        // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
        maxReceiptLeadMs: Number.POSITIVE_INFINITY,
        challengeProbability: 1,
        finalizeIntervalMs: 0,
        network: "test/network",
        models: {
          get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
        },
        source: { proof: (r) => Promise.resolve(proofs.get(receiptId(r))) },
        log: (line) => lines.push(line),
      }),
  });
  let heartbeat: { stop(): void } | undefined;
  try {
    const worker = Identity.generate();
    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) }),
      true,
    );
    const job: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt: "The validator",
      params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
      nonce: "copies",
    };
    const ids = f.honest.tokenizer.encode(job.prompt);
    const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker);
    const receipt = proved.receipt;
    proofs.set(receiptId(receipt), signServedProof(receiptId(receipt), proved.proof, worker));
    // The router hands the receipt in, and the worker's announcement brings it again, twice.
    const peer = toHex(worker.publicKey);
    const first = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: peer,
    });
    await first.result;
    for (let i = 0; i < 2; i++) {
      await validator.ask({ type: "receipt", receipt, job, origin: "cd".repeat(32) });
    }
    const stats = await validator.ask<ValidatorStats>({ type: "stats" });
    // Unchanged meaning: every receipt handed in (`veriflow_validator_receipts_total`).
    assert.equal(stats.received, 3);
    assert.equal(stats.fromPeers, 3);
    assert.equal(stats.copies, 2, "two copies of a receipt already in the ledger");
    assert.equal(stats.copiesFromPeers, 2);
    // On /metrics: the old series keep their meaning; the copies are a series of their own.
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: me.publicKey,
      prover: () => undefined,
      validator: () => validator,
      network: () => undefined,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    const text = await metrics.render();
    assert.match(text, /^veriflow_validator_receipts_total 3$/m);
    assert.match(text, /^veriflow_validator_receipts_from_peers_total 3$/m);
    assert.match(text, /^veriflow_validator_receipt_copies_total 2$/m);

    const verdict = await eventually(
      () => lines.find((l) => l.startsWith("validator: challenged job")),
      "the verdict line",
    );
    assert.match(
      verdict,
      new RegExp(
        `^validator: challenged job ${receipt.jobId.slice(0, 12)} → valid, worker ${
          peer.slice(0, 16)
        } \\(`,
      ),
    );

    const beats: string[] = [];
    heartbeat = startHeartbeat({
      everyMs: 1,
      publicKey: me.publicKey,
      validator: () => validator,
      network: () => undefined,
      log: (line) => beats.push(line),
    });
    const beat = await eventually(
      () => beats.find((l) => l.includes("receipts ")),
      "a heartbeat with the validator's part",
    );
    assert.match(beat, /receipts 1 \(1 from peers, 2 copies\) challenged 1 /);
  } finally {
    heartbeat?.stop();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
