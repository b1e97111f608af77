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
import { lossFraud } from "./_loss_fraud.ts";

Deno.test("a peer's training fraud proof about a receipt this ledger never recorded, or from an accuser with no stake here, is not re-run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-proof-intake-" });
  const system = new ActorSystem({ name: "training-proof-intake" });
  try {
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    const proof = lossFraud(model.cid, Identity.generate(), 8);
    const body = { proof, arch: TEST_ARCH };
    assert.ok(TrainingFraudProofMessage.schema.safeParse(body).success, "valid on the wire");
    // Its receipt was never recorded here.
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "receipt_unknown" },
    );
    // Recorded now (its trainer staked), but the accuser has no stake here.
    await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: 10_000_000 });
    const recorded = await training.ask<{ recorded: boolean }>({
      type: "receipt",
      body: {
        receipt: proof.receipt,
        terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
      },
      origin: "stranger",
    });
    assert.equal(recorded.recorded, true);
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "unstaked_accuser" },
    );
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run");
    const passedOn = told.map((m) => (m as { gossip?: { kind: string } }).gossip?.kind);
    assert.deepEqual(passedOn, ["receipt"], "the receipt passed on, not the proof");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
