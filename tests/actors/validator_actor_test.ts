/**
 * The ValidatorActor's place in the network: what it does with its own receipts, with peers'
 * receipts, verdicts and fraud proofs, and what it tells the NetworkActor. A recording actor
 * stands in for the NetworkActor under its registry name.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type FraudProofHandled,
  MAX_OPEN_CHALLENGES_PER_WORKER,
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";

const NETWORK = "test/network";

/** Records what the validator tells the network. */
async function setup(identity: Identity) {
  const f = await loadFixture();
  /** The ledger's clock (ms), moved by tests. */
  const clock = { t: 1_000_000 };
  /** Proof fetches wait for this gate: a worker that has not answered yet. */
  let gate: Promise<void> = Promise.resolve();
  let openGate = () => {};
  const closeGate = () => {
    const g = Promise.withResolvers<void>();
    gate = g.promise;
    openGate = g.resolve;
  };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "validator-test" });
  const told: NetworkMessage[] = [];
  const proofs = new Map<string, ServedProof>();
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await system.spawn<ValidatorMessage>({
    name: "node/validator",
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: `${dir}/ledger`,
        ledger: { now: () => clock.t },
        // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
        maxReceiptLeadMs: Number.POSITIVE_INFINITY,
        challengeProbability: 1,
        finalizeIntervalMs: 0,
        network: NETWORK,
        models: {
          get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
        },
        source: { proof: (r: Receipt) => gate.then(() => proofs.get(receiptId(r))) },
      }),
  });
  /** `worker`'s proved job; `requester`, when given, is named in it (it can assign it). */
  const prove = async (worker: Identity, nonce: string, cheat = false, requester?: Identity) => {
    const job: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt: "The validator",
      params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
      nonce,
      ...(requester ? { requester: toHex(requester.publicKey) } : {}),
    };
    const ids = f.honest.tokenizer.encode(job.prompt);
    // A cheat runs another model (other weights) under the honest model's CID.
    const model = cheat ? f.otherSeed : f.honest;
    const proved = await proveJob(job, manualStream(() => model, ids, job.params), worker);
    const id = receiptId(proved.receipt);
    proofs.set(id, signServedProof(id, proved.proof, worker));
    return { job, receipt: proved.receipt };
  };
  const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  const accuse = async (accuser: Identity, job: TextJob, receipt: Receipt) => {
    const { fraudProof } = await validateReceipt(
      { job, receipt, proof: proofs.get(receiptId(receipt))?.proof },
      f.honest,
      accuser,
    );
    assert.ok(fraudProof, "the cheat is caught");
    return fraudProof;
  };
  return {
    validator,
    told,
    prove,
    accuse,
    stats,
    close,
    clock,
    closeGate,
    openGate: () => openGate(),
  };
}

Deno.test("a validator never challenges its own key's receipt; it announces it only when another node requested the job", async () => {
  const me = Identity.generate();
  const requester = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "deposit", key: me.publicKey, amount: 10_000 });
    // Work this node did for its own client: requested by nobody else, so never announced.
    const own = await t.prove(me, "own");
    const handled = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: own.receipt,
      job: own.job,
      origin: "local",
      announce: true,
    });
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, false, "even at challenge probability 1");
    assert.equal(t.told.length, 0);
    // A job another node assigned to this one: announced with its assignment.
    const assignedJob = await t.prove(me, "assigned", false, requester);
    const assignment = signAssignment(
      { job: assignedJob.job, worker: me.publicKey, issuedAt: 1 },
      requester,
    );
    await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: assignedJob.receipt,
      job: assignedJob.job,
      assignment,
      origin: "local",
      announce: true,
    });
    assert.equal((await t.stats()).own, 2);
    assert.equal((await t.stats()).challenged, 0);
    assert.deepEqual(t.told.map((m) => m.type), ["announce_receipt"]);
    const told = t.told[0] as { job: TextJob; assignment: unknown };
    assert.equal(told.job, assignedJob.job);
    assert.equal(told.assignment, assignment);
  } finally {
    await t.close();
  }
});

Deno.test("a peer's receipt is challenged once, however often it is announced; the verdict is spread", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const t = await setup(me);
  try {
    // The worker's stake comes from its pledge, as it would from a peer.
    assert.equal(
      await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) }),
      true,
    );
    const { job, receipt } = await t.prove(worker, "peer");
    const peer = "ab".repeat(32);
    const first = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: peer,
    });
    assert.equal(first.challenged, true);
    assert.equal((await first.result!).verdict.outcome, "valid");
    for (let i = 0; i < 5; i++) {
      const again = await t.validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job,
        origin: peer,
      });
      assert.equal(again.recorded, true);
      assert.equal(again.challenged, false, `copy ${i} bought another forward pass`);
    }
    const stats = await t.stats();
    assert.equal(stats.challenged, 1);
    assert.equal(stats.fromPeers, 6);
    assert.equal(stats.verdicts.valid, 1);
    // The pledge changed the worker's standing (the router weighs it again); the verdict went out.
    assert.deepEqual(t.told.map((m) => m.type), ["peer_staked", "publish_verdict"]);
    // Nothing was announced: a peer's receipt is its worker's to announce.
    const mismatched = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job: { ...job, nonce: "other" },
      origin: peer,
    });
    assert.equal(mismatched.refusal, "job_mismatch");
    assert.notEqual(jobId({ ...job, nonce: "other" }), receipt.jobId);
  } finally {
    await t.close();
  }
});

Deno.test("a peer's verdict is recorded only when it is signed, about a receipt held here, by a staked validator", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const other = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) });
    const { job, receipt } = await t.prove(worker, "judged");
    await t.validator.ask({ type: "receipt", receipt, job, origin: "ab".repeat(32) });
    const about = (subjectId: string, by: Identity) =>
      signVerdict({
        v: 1,
        subject: "inference",
        subjectId,
        target: worker.publicKey,
        outcome: "valid",
        reason: "ok",
        issuedAt: 1,
      }, by);
    const peer = "ef".repeat(32);
    const ask = (verdict: Verdict) => t.validator.ask({ type: "verdict", verdict, origin: peer });
    const verdict = about(receiptId(receipt), other);
    // The validator has no stake here yet: its word costs it nothing, so it is not kept.
    assert.equal(await ask(verdict), undefined);
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(other, 1_000, 1) });
    // Forged (the outcome changed after signing), or about a receipt this ledger never saw.
    assert.deepEqual(await ask({ ...verdict, outcome: "fraud" }), {
      queued: false,
      skipped: "bad_signature",
    });
    assert.equal(await ask(about("cd".repeat(32), other)), undefined);
    assert.ok(await ask(verdict));
    const stats = await t.stats();
    assert.equal(stats.refusedVerdicts, 3);
    assert.equal(stats.peerVerdicts, 1);
    // Still serving: the ledger answers.
    const account = await t.validator.ask<Account>({ type: "account", key: worker.publicKey });
    assert.equal(account.stake, 10_000);
  } finally {
    await t.close();
  }
});

Deno.test("a fraud proof from a key with no stake here is not worth a forward pass; a staked one slashes, even when it outran the receipt (held until the receipt comes in)", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) });
    const { job, receipt } = await t.prove(worker, "cheat", true);
    const stranger = Identity.generate();
    const unstaked = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: await t.accuse(stranger, job, receipt),
      origin: "ab".repeat(32),
    });
    assert.equal(unstaked.queued, false);
    assert.equal(unstaked.skipped, "unstaked_accuser");

    // A staked validator's proof arrives before anyone announced the receipt here: it is held,
    // and checked once the receipt is recorded through the intake — which the receipt and job
    // the proof carries are handed to, as an announcement would be (review s73 F1).
    const validator = Identity.generate();
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(validator, 1_000, 1) });
    const proof = await t.accuse(validator, job, receipt);
    t.closeGate(); // this validator's own challenge (p = 1) waits: the peer's proof settles it
    const taken = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: "cd".repeat(32),
    });
    assert.equal(taken.awaitingReceipt, true);
    // The receipt's announcement, after it: a copy.
    await t.validator.ask({ type: "receipt", receipt, job, origin: "ab".repeat(32) });
    assert.equal((await taken.result!).confirmed, true);
    const record = await t.validator.ask<ReceiptRecord>({
      type: "receipt_status",
      receiptId: receiptId(receipt),
    });
    assert.equal(record.status, "fraud");
    const account = await t.validator.ask<Account>({ type: "account", key: worker.publicKey });
    assert.equal(account.stake, 10_000 - record.locked);
    const stats = await t.stats();
    assert.equal(stats.slashes, 1);
    assert.equal(stats.fraudProofsSkipped, 1);
    // The network is told, so no more jobs go to the convicted worker, and the ledger says so.
    assert.ok(
      t.told.some((m) => m.type === "peer_convicted" && m.key === toHex(worker.publicKey)),
      JSON.stringify(t.told.map((m) => m.type)),
    );
    assert.equal(await t.validator.ask({ type: "convicted", key: worker.publicKey }), true);
    assert.equal(await t.validator.ask({ type: "convicted", key: validator.publicKey }), false);
    // Settled once: the same proof again is a duplicate, and nothing moves.
    const again = await t.validator.ask<FraudProofHandled>({ type: "fraud_proof", proof });
    assert.equal(again.skipped, "duplicate");
  } finally {
    await t.close();
  }
});

Deno.test("a receipt the ledger refuses (no stake behind it) gets no coin: not challenged even at probability 1", async () => {
  const me = Identity.generate();
  const unstaked = Identity.generate();
  const t = await setup(me);
  try {
    const { job, receipt } = await t.prove(unstaked, "unbacked");
    const handled = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: "ab".repeat(32),
    });
    assert.equal(handled.recorded, false);
    assert.equal(handled.refusal, "insufficient_stake");
    assert.equal(handled.challenged, false);
    assert.equal(handled.draw, 1, "no coin was drawn");
    assert.equal((await t.stats()).challenged, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt is not paid while its challenge is open, and that challenge still settles after the window", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) });
    const { job, receipt } = await t.prove(worker, "slow", true);
    t.closeGate(); // the worker has not served its proof data yet
    const handled = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: "ab".repeat(32),
    });
    assert.equal(handled.challenged, true);
    t.clock.t += 11 * 60 * 1000; // past the 10-minute window
    assert.deepEqual(await t.validator.ask({ type: "finalize" }), [], "held while challenged");
    t.openGate();
    assert.equal((await handled.result!).verdict.outcome, "fraud");
    const record = await t.validator.ask<ReceiptRecord>({
      type: "receipt_status",
      receiptId: receiptId(receipt),
    });
    assert.equal(record.status, "fraud", "slashed, though the window had closed meanwhile");
    assert.deepEqual(await t.validator.ask({ type: "finalize" }), []);
  } finally {
    await t.close();
  }
});

Deno.test("a worker with too many open challenges here gets its next receipts refused, not waved through", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 1_000_000, 1) });
    t.closeGate();
    const results: Promise<unknown>[] = [];
    for (let i = 0; i < MAX_OPEN_CHALLENGES_PER_WORKER; i++) {
      const { job, receipt } = await t.prove(worker, `flood-${i}`);
      const handled = await t.validator.ask<ReceiptHandled>({ type: "receipt", receipt, job });
      assert.equal(handled.challenged, true);
      results.push(handled.result!);
    }
    const { job, receipt } = await t.prove(worker, "one-too-many");
    const refused = await t.validator.ask<ReceiptHandled>({ type: "receipt", receipt, job });
    assert.equal(refused.recorded, false);
    assert.equal(refused.refusal, "validator_busy");
    t.openGate();
    await Promise.all(results);
    // Drained: the worker's next receipt is recorded again.
    const again = await t.validator.ask<ReceiptHandled>({ type: "receipt", receipt, job });
    assert.equal(again.recorded, true);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt that arrives before its worker's pledge is taken again once the pledge comes", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const t = await setup(me);
  try {
    const { job, receipt } = await t.prove(worker, "early");
    // The requester's announcement outruns the worker's pledge (they come on two connections).
    const early = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: "ab".repeat(32),
    });
    assert.deepEqual([early.recorded, early.refusal], [false, "insufficient_stake"]);
    assert.equal(
      await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) }),
      true,
    );
    const record = await eventually(
      () =>
        t.validator.ask<ReceiptRecord | undefined>({
          type: "receipt_status",
          receiptId: receiptId(receipt),
        }),
      "the receipt to be recorded once the pledge came",
    );
    assert.ok(record.status === "pending" || record.status === "challenged");
    assert.equal((await t.stats()).challenged, 1, "and drawn for like any other");
  } finally {
    await t.close();
  }
});

Deno.test("gossip: a peer's assigned receipt, verdict, fraud proof and pledge new here go on to the other peers once, never back to the sender", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const judge = Identity.generate();
  const t = await setup(me);
  try {
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, 10_000, 1) });
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(judge, 1_000, 1) });
    const sender = "ab".repeat(32);
    const { job, receipt } = await t.prove(worker, "gossiped", false, requester);
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 1 }, requester);
    for (let copy = 0; copy < 3; copy++) {
      const handled = await t.validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job,
        assignment,
        origin: sender,
      });
      await handled.result;
    }
    const announced = t.told.filter((m) => m.type === "announce_receipt");
    assert.equal(announced.length, 1, "passed on once, however often it came");
    assert.equal((announced[0] as { except?: string }).except, sender);
    // Our own challenge's verdict is published (to everyone); a peer's new one is passed on.
    const verdict = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: receiptId(receipt),
      target: worker.publicKey,
      outcome: "valid",
      reason: "ok",
      issuedAt: 7,
    }, judge);
    const peerVerdicts = () =>
      t.told.filter((m) =>
        m.type === "publish_verdict" &&
        m.verdict.validator.every((b, i) => b === judge.publicKey[i])
      );
    for (let copy = 0; copy < 3; copy++) {
      await t.validator.ask({ type: "verdict", verdict, origin: sender });
    }
    assert.equal(peerVerdicts().length, 1);
    assert.equal((peerVerdicts()[0] as { except?: string }).except, sender);
    // A checked fraud proof about another receipt is passed on, not back to its sender.
    const cheat = await t.prove(worker, "gossiped-cheat", true);
    t.closeGate(); // this validator's own challenge of it waits: only the peer's proof settles
    await t.validator.ask({ type: "receipt", ...cheat, origin: sender });
    const proof = await t.accuse(judge, cheat.job, cheat.receipt);
    const taken = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: sender,
    });
    assert.equal((await taken.result!).confirmed, true);
    await eventually(
      () => t.told.find((m) => m.type === "publish_fraud_proof"),
      "the proof to be passed on",
    );
    const passed = t.told.filter((m) => m.type === "publish_fraud_proof");
    assert.equal(passed.length, 1);
    assert.equal((passed[0] as { except?: string }).except, sender);
    // A pledge new here from a peer is passed on once; one this node recorded itself is not.
    const far = Identity.generate();
    const pledge = signStakePledge(far, 500, 3);
    for (let copy = 0; copy < 3; copy++) {
      await t.validator.ask({ type: "pledge", pledge, origin: sender });
    }
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(Identity.generate(), 5, 3) });
    const pledges = t.told.filter((m) => m.type === "publish_pledge");
    assert.equal(pledges.length, 1);
    assert.equal((pledges[0] as { except?: string }).except, sender);
  } finally {
    await t.close();
  }
});
