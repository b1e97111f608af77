/**
 * A peer's training fraud proof is re-run (a training step, seconds at a large batch) only when
 * its receipt is recorded and open in this ledger and its accuser has stake here to lose, as the
 * inference intake does. Any two fresh keys used to make every validator re-run, and pass on, a
 * "confirmed" proof against a made-up receipt of their own with a batch 64× the round's, with
 * nothing at stake (found by a review at stop 33).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { TrainingFraudProofMessage } from "../../protocols/training_messages.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { signTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";

/** What each test runs on: a ledger and a training validator over a published start model. */
interface Intake {
  model: { cid: string };
  ledger: Awaited<ReturnType<typeof spawnTrainingLedger>>["ledger"];
  training: Awaited<ReturnType<typeof spawnTrainingLedger>>["training"];
  /** What the training validator told the network (gossip it passed on). */
  told: NetworkMessage[];
}

/** Run `test` on a fresh {@link Intake} (challenging nothing itself), removed after. */
async function withIntake(name: string, test: (intake: Intake) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    await test({ model, ledger, training, told });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a peer's training fraud proof about a receipt this ledger never recorded, or from an accuser with no stake here, is not re-run", () =>
  withIntake("proof-intake", async ({ model, ledger, training, told }) => {
    const proof = lossFraud(model.cid, Identity.generate(), 8);
    const body = { proof, arch: TEST_ARCH };
    assert.ok(TrainingFraudProofMessage.schema.safeParse(body).success, "valid on the wire");
    // Its receipt was never recorded here, and its accuser never pledged here: held (memory
    // only) for the pledge, `training_proof_pledge_order_test.ts`.
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "receipt_unknown", awaitingPledge: true },
    );
    // Recorded now (its trainer staked), but the accuser has no stake here (this copy is held).
    await recordLazyReceipt(ledger, training, proof, model.cid);
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "unstaked_accuser" },
    );
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run");
    const passedOn = told.map((m) => (m as { gossip?: { kind: string } }).gossip?.kind);
    assert.deepEqual(passedOn, ["receipt"], "the receipt passed on, not the proof");
  }));

Deno.test("a peer's training fraud proof about a receipt whose challenge here ended undecided is re-run and settled inside the window: the lazy trainer is slashed here too", () =>
  withIntake("proof-unresolved", async ({ model, ledger, training }) => {
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const id = trainingReceiptId(proof.receipt);
    // This node's own challenge of it ended undecided: unpaid here, its lock released.
    for (const step of ["open", "undecided"] as const) {
      assert.equal(await ledger.ask({ type: "training_challenge", receiptId: id, step }), true);
    }
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    assert.equal(await status(), "unpaid");

    const handled = await training.ask<{ queued: boolean; skipped?: string }>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "stranger",
    });
    assert.deepEqual(handled, { queued: true }, "re-run, not skipped as not_pending");
    await eventually(async () => (await status()) === "fraud", "the proof to settle");
    const trainer = await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer's stake is cut");
  }));

Deno.test("an accuser's training fraud proof re-signed after it settled is not re-run or passed on again: one accusation per accuser and receipt, as the ledger settles", () =>
  withIntake("proof-resigned", async ({ model, ledger, training, told }) => {
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    await recordLazyReceipt(ledger, training, proof, model.cid);
    await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const send = (p: typeof proof) =>
      training.ask<{ queued: boolean; skipped?: string }>({
        type: "fraud_proof",
        body: { proof: p, arch: TEST_ARCH },
        origin: "stranger",
      });
    assert.deepEqual(await send(proof), { queued: true });
    await eventually(async () => (await status()) === "fraud", "the proof to settle");

    // The same claim, signed again a moment later: another proof hash, the same accusation.
    const { sig: _sig, validator: _validator, ...unsigned } = proof;
    const again = signTrainingFraudProof({ ...unsigned, issuedAt: proof.issuedAt + 1 }, accuser);
    assert.deepEqual(await send(again), { queued: false, skipped: "repeated_accusation" });
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 1, "re-run once");
    const proofsPassedOn = told.filter((m) =>
      (m as { gossip?: { kind: string } }).gossip?.kind === "fraud_proof"
    );
    assert.equal(proofsPassedOn.length, 1, "passed on once");
  }));
