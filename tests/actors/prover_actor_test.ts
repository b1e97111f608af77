/**
 * ProverActor and ValidatorActor in a real ActorSystem: an honest job ends final and credited,
 * a cheat is challenged, proven and slashed, and the validator's reward is booked.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ProveHandle,
  ProverActor,
  proverHook,
  type ProverMessage,
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
