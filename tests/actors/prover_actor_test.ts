/**
 * The ProverActor (`actors/prover_actor.ts`): with a ValidatorActor in a real ActorSystem, an
 * honest job ends final and credited and a cheat is challenged, proven and slashed; and a proof
 * store the disk refuses ends each job without a receipt while the prover keeps running.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  proofStoreConditions,
  type ProveHandle,
  ProverActor,
  proverHook,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import {
  type FraudProofHandled,
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type Job, jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { openChunks } from "../../proof/commitment.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { type ServedProof, verifyServedProof } from "../../proof/served_proof.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import type { ActorEvent } from "../../actors/events.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ProofStoreError } from "../../proof/proof_store.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";

// -------------------------------------------------------------------------------------------------
// ProverActor and ValidatorActor in a real ActorSystem: an honest job ends final and credited,
// a cheat is challenged, proven and slashed, and the validator's reward is booked.

Deno.test("actors: honest job is final and credited; a cheat is proven, slashed and the validator rewarded", async () => {
  const f = await loadFixture();
  const workerId = Identity.generate();
  const validatorId = Identity.generate();
  const dir = await Deno.makeTempDir();
  let clock = 1_000_000;
  const jobs = new Map<string, Job>();
  const system = new ActorSystem({ name: "proof-test" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "node/prover",
      factory: () => new ProverActor({ identity: workerId, dir: `${dir}/proofs` }),
    });
    const validator = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: validatorId,
          ledgerDir: `${dir}/ledger`,
          ledger: { now: () => clock },
          // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
          maxReceiptLeadMs: Number.POSITIVE_INFINITY,
          challengeProbability: 1,
          finalizeIntervalMs: 0,
          models: {
            get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honestThreads : undefined),
          },
          source: {
            job: (r: Receipt) => Promise.resolve(jobs.get(r.jobId)),
            proof: (r: Receipt) =>
              prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: receiptId(r) }),
          },
        }),
    });
    await validator.ask({ type: "deposit", key: workerId.publicKey, amount: 10_000 });
    await validator.ask({ type: "deposit", key: validatorId.publicKey, amount: 1_000 });

    const hook = proverHook(prover);
    const honestJob: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt: "Hello actors",
      params: { maxTokens: 16, temperature: 0.8, topK: 0, topP: 1, seed: 3, stop: [] },
      nonce: "a",
      requester: toHex(validatorId.publicKey),
    };
    jobs.set(jobId(honestJob), honestJob);
    const ids = f.honest.tokenizer.encode(honestJob.prompt);
    const honestReceipt = await hook(
      honestJob,
      jobId(honestJob),
      f.honest.generate(ids, honestJob.params),
    );
    // This node requested the job (it signs the assignment): that is what gets it credited.
    const assignment = signAssignment(
      { job: honestJob, worker: workerId.publicKey, issuedAt: clock },
      validatorId,
    );
    const handled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: honestReceipt,
      assignment,
    });
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, true);
    assert.equal((await handled.result!).verdict.outcome, "valid");

    // Garbage is refused, not a crash.
    const garbage = await validator.ask<ReceiptHandled>({ type: "receipt", receipt: { v: 9 } });
    assert.equal(garbage.refusal, "malformed_receipt");

    // A false accusation against the honest receipt is refuted and costs its signer.
    const mallory = Identity.generate();
    await validator.ask({ type: "deposit", key: mallory.publicKey, amount: 500 });
    const { proof: proofData } = await prover.ask<ServedProof>({
      type: "get_proof",
      receiptId: receiptId(honestReceipt),
    });
    const accusation = signFraudProof({
      v: 1,
      kind: "sampling",
      job: honestJob,
      receipt: honestReceipt,
      chunks: openChunks(proofData, 0, new Set()),
      cited: [{ position: 3 }],
      issuedAt: clock,
    }, mallory);
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: accusation,
    });
    assert.equal(taken.queued, true);
    const refuted: FraudCheckResult = await taken.result!;
    assert.equal(refuted.confirmed, false);
    // The same accusation again costs nothing: it is recognized, not re-checked.
    const copy = await validator.ask<FraudProofHandled>({ type: "fraud_proof", proof: accusation });
    assert.equal(copy.skipped, "duplicate");
    assert.equal(
      (await validator.ask<Account>({ type: "account", key: mallory.publicKey })).stake,
      400,
    );

    // A cheat: another model, same claims.
    const cheatJob: TextJob = { ...honestJob, nonce: "b" };
    jobs.set(jobId(cheatJob), cheatJob);
    const handle = await prover.ask<ProveHandle>({
      type: "prove",
      job: cheatJob,
      jobId: jobId(cheatJob),
      chunks: ReadableStream.from(manualStream(() => f.otherSeed, ids, cheatJob.params)),
    });
    const cheatReceipt = await handle.receipt;
    const cheatHandled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: cheatReceipt,
    });
    const cheatResult = await cheatHandled.result!;
    assert.equal(cheatResult.verdict.outcome, "fraud");

    const cheatRecord = await validator.ask<ReceiptRecord>({
      type: "receipt_status",
      receiptId: receiptId(cheatReceipt),
    });
    assert.equal(cheatRecord.status, "fraud");

    clock += 11 * 60 * 1000; // past the 10-minute window
    const finalized = await validator.ask<string[]>({ type: "finalize" });
    assert.deepEqual(finalized, [receiptId(honestReceipt)]);

    const worker = await validator.ask<Account>({ type: "account", key: workerId.publicKey });
    const credit = honestReceipt.tokenCount; // default price 1 per token
    const slash = cheatReceipt.tokenCount * 20;
    assert.equal(worker.balance, credit);
    assert.equal(worker.stake, 10_000 - slash);
    assert.equal(worker.locked, 0);
    const v = await validator.ask<Account>({ type: "account", key: validatorId.publicKey });
    assert.equal(v.balance, slash / 2);
    assert.equal(v.stake, 1_000);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover actor persists proof data and serves it after a restart", async () => {
  const f = await loadFixture();
  const identity = Identity.generate();
  const dir = await Deno.makeTempDir();
  const job: TextJob = {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "persist me",
    params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "p",
  };
  let id = "";
  {
    const system = new ActorSystem({ name: "p1" });
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir }),
    });
    const receipt = await proverHook(prover)(
      job,
      jobId(job),
      f.honest.generate(f.honest.tokenizer.encode(job.prompt), job.params),
    );
    id = receiptId(receipt);
    await system.shutdown();
  }
  const system = new ActorSystem({ name: "p2" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir }),
    });
    const served = await prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: id });
    assert.ok(served);
    assert.equal(served.proof.tokens.length, 8 * 2);
    // Signed by the worker for this receipt, so what it served is evidence against it.
    assert.ok(verifyServedProof(served, id, identity.publicKey));
    assert.ok(!verifyServedProof(served, "00".repeat(32), identity.publicKey));
    assert.equal(await prover.ask({ type: "get_proof", receiptId: "00".repeat(32) }), undefined);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover actor releases a receipt only once its validator has answered for it; a refusing validator holds nothing back", async () => {
  const f = await loadFixture();
  const identity = Identity.generate();
  const job: TextJob = {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "record me",
    params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "r",
  };
  const system = new ActorSystem({ name: "record" });
  try {
    // A stand-in validator whose answer the test holds: it records what it is asked.
    const asked: { receipt: Receipt; origin: unknown; announce: unknown }[] = [];
    let answer = () => {};
    let refuse = false;
    await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () => ({
        receive: (message: ValidatorMessage) => {
          if (message.type !== "receipt") return undefined;
          const m = message as { receipt: Receipt; origin?: unknown; announce?: unknown };
          asked.push({ receipt: m.receipt, origin: m.origin, announce: m.announce });
          if (refuse) throw new Error("validator down");
          return new Promise<void>((resolve) => answer = resolve);
        },
      }),
    });
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, validator: "node/validator" }),
    });
    const prove = () =>
      proverHook(prover)(
        job,
        jobId(job),
        f.honest.generate(f.honest.tokenizer.encode(job.prompt), job.params),
      );
    let released: Receipt | undefined;
    const first = prove().then((r) => released = r);
    while (asked.length === 0) await new Promise((r) => setTimeout(r, 0));
    // Asked, not yet answered: the receipt has not left.
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
    assert.equal(released, undefined);
    assert.equal(asked[0].origin, "local");
    assert.equal(asked[0].announce, true);
    answer();
    await first;
    assert.equal(receiptId(released!), receiptId(asked[0].receipt));
    // A validator that fails its answer does not keep the client's receipt.
    refuse = true;
    const second = await prove();
    assert.equal(asked.length, 2);
    assert.equal(receiptId(second), receiptId(asked[1].receipt));
  } finally {
    await system.shutdown();
  }
});

// -------------------------------------------------------------------------------------------------
// A proof store the disk refuses (full, read-only, no permission) is the machine's condition:
// each job ends without a receipt and says why, the prover keeps running (its supervisor never
// escalates, so client traffic cannot stop the node), the fault shows in its stats and the
// node's conditions, and it is logged once when it starts and once when writes work again.
//
// The refusal is real, not chattr: the store's directory is replaced by a plain file, so every
// `mkdir` under it fails with the OS's NotADirectory, whoever runs the test.

const identity = Identity.generate();

const job = (nonce: string): TextJob => scriptedJob(nonce, 4);

const chunks = scriptedChunks;

async function prove(prover: ActorRef<ProverMessage>, nonce: string) {
  const j = job(nonce);
  const handle = await prover.ask<ProveHandle>({
    type: "prove",
    job: j,
    jobId: jobId(j),
    chunks: chunks(4),
  });
  return handle.receipt;
}

Deno.test("prover: when proof data cannot be written, each job ends with proof_store_failed (path and OS reason), the actor never crashes, the fault is logged once, and a later write clears it", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-fix64-" });
  const dir = `${root}/proofs`;
  // No restarts at all: a single crash of the prover would be fatal to this system.
  const system = new ActorSystem({ name: "prover-store-failure", maxRestarts: 0 });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  const lines: string[] = [];
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir, sweepEveryMs: 0, log: (l) => lines.push(l) }),
    });
    await Deno.writeTextFile(dir, "not a directory"); // every write under it is refused

    // More jobs than a supervisor's restart budget (5 in 30 s on a node).
    for (let i = 0; i < 7; i++) {
      const error = await prove(prover, `refused-${i}`).then(
        () => assert.fail("a receipt whose proof data was not kept must not be released"),
        (e) => e,
      );
      assert.ok(error instanceof ProofStoreError, String(error));
      assert.equal(error.code, "proof_store_failed");
      assert.match(error.message, /^proof data cannot be written to /);
      assert.ok(error.message.includes(dir), error.message);
      assert.match(error.message, /NotADirectory|Not a directory/);
      assert.match(error.message, /check free space and permissions$/);
    }
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
    const stats = await prover.ask<ProverStats>({ type: "stats" });
    assert.equal(stats.proven, 0);
    assert.equal(stats.unstored, 7);
    assert.equal(stats.active, 0);
    assert.deepEqual(stats.storeFaults.map((f) => [f.operation, f.code]), [
      ["write", "proof_store_failed"],
    ]);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /^error: prover: proof data cannot be written to /);
    const conditions = await proofStoreConditions(prover);
    assert.deepEqual(conditions.map((c) => [c.component, c.status, c.code]), [
      ["proof_store", "degraded", "proof_store_failed"],
    ]);
    assert.ok(conditions[0].message.includes(dir));

    // The operator frees the disk: the next job gets its receipt and the fault clears.
    await Deno.remove(dir);
    await prove(prover, "written");
    const after = await prover.ask<ProverStats>({ type: "stats" });
    assert.equal(after.proven, 1);
    assert.equal(after.stored, 1);
    assert.deepEqual(after.storeFaults, []);
    assert.deepEqual(await proofStoreConditions(prover), []);
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[1], /^prover: proof data is written to .* again/);
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prover: a sweep the disk refuses is a fault of the store, not a crash of the prover", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-fix64-" });
  const dir = `${root}/proofs`;
  const system = new ActorSystem({ name: "prover-sweep-failure", maxRestarts: 0 });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  const lines: string[] = [];
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, dir, sweepEveryMs: 0, log: (l) => lines.push(l) }),
    });
    await Deno.writeTextFile(dir, "not a directory"); // listing it fails
    await prover.ask({ type: "sweep" });
    await prover.ask({ type: "sweep" });
    const stats = await prover.ask<ProverStats>({ type: "stats" });
    assert.deepEqual(stats.storeFaults.map((f) => f.operation), ["delete"]);
    assert.match(stats.storeFaults[0].message, /^proof data cannot be deleted from /);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.deepEqual(events.filter((e) => e.type !== "started").map((e) => e.type), []);
    await Deno.remove(dir);
    await prover.ask({ type: "sweep" });
    assert.deepEqual((await prover.ask<ProverStats>({ type: "stats" })).storeFaults, []);
    assert.equal(lines.length, 2, lines.join("\n"));
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
