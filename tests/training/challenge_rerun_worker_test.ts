/**
 * A training validator re-runs a challenge's opened steps in its worker (`training/step_rerun.ts`),
 * not on the node's main thread: its own messages and its ledger's are answered while a step is
 * re-run, and a challenge whose step brings down every worker ends as documented
 * (docs/TRAINING.md, "Where the re-run runs"): undecided, the trainer unpaid in this ledger and
 * not slashed; a peer's fraud proof whose step does is unchecked, settling nothing, and a copy of
 * it that comes later is checked on a fresh worker.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { RERUN_ATTEMPTS, WorkerStepRerun } from "../../training/step_rerun.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { challengedHonestRun } from "./_challenged_honest_run.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";

const STAKE = 10_000_000;
const STAND_IN = new URL("./_step_rerun_stand_in.ts", import.meta.url).href;
/** Words of the slow stand-in's gate (`_step_rerun_stand_in.ts`). */
const HOLDING = 0;
const RELEASED = 1;

Deno.test("while a challenge's step is re-run in the validator's worker, the validator and its ledger answer their messages; the challenge then passes and the trainer is paid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-rerun-worker-" });
  const gate = new Int32Array(new SharedArrayBuffer(8));
  const release = () => {
    Atomics.store(gate, RELEASED, 1);
    Atomics.notify(gate, RELEASED);
  };
  const rerun = new WorkerStepRerun({
    startWorker: () => {
      const worker = new Worker(STAND_IN, { type: "module", name: "slow" });
      worker.postMessage({ gate: gate.buffer });
      return worker;
    },
  });
  const n = await challengedHonestRun(dir, rerun);
  try {
    const ended = tracker(n.result);
    await eventually(() => Atomics.load(gate, HOLDING) === 1, "the worker holding a re-run");
    const stats = await n.training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.challenged, 1, "the validator answers mid-re-run");
    assert.equal(await n.status(), "challenged", "the ledger answers mid-re-run");
    assert.equal(ended(), false, "the challenge is still in its re-run");
    release();
    assert.deepEqual(await n.result, { challenged: true, ok: true });
    await n.closeWindow();
    assert.equal(await n.status(), "final");
    assert.ok((await n.account()).balance > 0, "the honest trainer is paid");
  } finally {
    release();
    await n.system.shutdown();
    rerun.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a challenge whose step brings down every re-run worker ends undecided: the trainer is not paid in this ledger, nor slashed, and one line per failed worker is logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-rerun-worker-dies-" });
  const lines: string[] = [];
  let started = 0;
  const rerun = new WorkerStepRerun({
    log: (line) => void lines.push(line),
    startWorker: () => {
      started++;
      return new Worker(STAND_IN, { type: "module", name: "throw@0" });
    },
  });
  const n = await challengedHonestRun(dir, rerun);
  try {
    await assert.rejects(n.result, { code: "step_rerun_failed" });
    assert.equal(started, RERUN_ATTEMPTS, "a fresh worker for the step, then no more");
    assert.equal(lines.length, RERUN_ATTEMPTS, lines.join("\n"));
    await eventually(async () => (await n.status()) !== "challenged", "the hold to end");
    assert.equal(await n.status(), "unpaid");
    await n.closeWindow();
    const account = await n.account();
    assert.equal(account.balance, 0, "paid for a challenge nobody could check");
    assert.equal(account.stake, STAKE, "slashed without a verdict");
  } finally {
    await n.system.shutdown();
    rerun.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's fraud proof whose step brings down every re-run worker settles nothing (the trainer not slashed, the accuser not charged), and its copy that comes later is checked on a fresh worker and slashes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-rerun-worker-proof-" });
  const system = new ActorSystem({ name: "proof-rerun-worker" });
  const lines: string[] = [];
  let started = 0;
  const rerun = new WorkerStepRerun({
    log: (line) => void lines.push(line),
    startWorker: () =>
      started++ < RERUN_ATTEMPTS
        ? new Worker(STAND_IN, { type: "module", name: "throw@0" })
        : new Worker(new URL("../../training/_step_rerun_worker.ts", import.meta.url).href, {
          type: "module",
        }),
  });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0, rerun, log: (line) => void lines.push(line) },
    });
    const proof = lossFraud(model.cid);
    await recordLazyReceipt(ledger, training, proof, model.cid);
    await ledger.ask({ type: "deposit", key: proof.validator, amount: STAKE });
    const id = trainingReceiptId(proof.receipt);
    const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const proofLine = (pattern: RegExp) =>
      eventually(() => lines.find((line) => pattern.test(line)), `a line ${pattern}`);

    await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: "peer" });
    assert.match(await proofLine(/fraud proof .* unchecked: .*brought down 2 re-run workers/), /./);
    assert.equal(started, RERUN_ATTEMPTS);
    assert.equal(await status(), "pending", "nothing settled on a check nobody could make");
    assert.equal((await account(proof.receipt.trainer)).stake, LAZY_TRAINER_STAKE, "not slashed");
    assert.equal((await account(proof.validator)).stake, STAKE, "the accuser not charged");

    await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: "other" });
    await proofLine(/fraud proof against trainer .* confirmed \(loss_mismatch\)/);
    assert.equal(started, RERUN_ATTEMPTS + 1, "checked on a fresh worker");
    assert.equal(await status(), "fraud");
    assert.ok((await account(proof.receipt.trainer)).stake < LAZY_TRAINER_STAKE, "slashed");
  } finally {
    await system.shutdown();
    rerun.close();
    await Deno.remove(dir, { recursive: true });
  }
});
