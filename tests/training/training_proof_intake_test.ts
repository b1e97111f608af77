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
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/local_trainer.ts";
import {
  checkpointPath,
  checkpointsRootOf,
  commitShard,
  encodeTrainingState,
  shardPath,
  startTrainingState,
  trainingStateHash,
} from "../../training/training_state.ts";
import { batchIndices, sampleAt, type TextShard } from "../../training/brown_corpus.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
} from "../../training/training_fraud_proof.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { TrainingFraudProofMessage } from "../../protocols/training_messages.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

function craftProof(startModel: string, batchSize: number) {
  const start = seededGptWeights(TEST_ARCH, 0);
  const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, batchSize, sampleBytes: 65 };
  const size = batchSize;
  const bytes = new Uint8Array(size * 65).map((_, i) => 32 + (i * 7) % 90);
  const shard: TextShard = { documents: [{ id: "x", bytes }] };
  const commitment = commitShard(shard, 65);
  const s0 = startTrainingState(start);
  const hashes = [trainingStateHash(TEST_ARCH, s0), trainingStateHash(TEST_ARCH, s0)];
  const fakeTrainer = Identity.generate();
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: 0,
    startModel,
    steps: 1,
    dataSeed: 1,
    hyper,
    samplesRoot: "aa".repeat(32),
    sampleCount: batchSize,
    checkpointsRoot: checkpointsRootOf(hashes),
    shardRoot: commitment.root,
    shardSize: commitment.size,
    losses: [999], // wrong on purpose: the "fraud" is real, so every checker confirms it
    deltaHash: "dd".repeat(32),
    deltaBytes: 1,
  }, fakeTrainer);
  const accuser = Identity.generate();
  const challenge = drawTrainingChallenge(receipt, accuser);
  const indices = batchIndices(1, 0, batchSize, commitment.size);
  const opening = {
    step: 0,
    before: encodeTrainingState(TEST_ARCH, s0),
    beforePath: checkpointPath(hashes, 0),
    after: encodeTrainingState(TEST_ARCH, s0),
    afterPath: checkpointPath(hashes, 1),
    samples: indices.map((index) => ({
      index,
      bytes: sampleAt(shard, 65, index).bytes.slice(),
      path: shardPath(commitment, index),
    })),
  };
  return signTrainingFraudProof({
    v: TRAINING_FRAUD_PROOF_VERSION,
    reason: "loss_mismatch",
    receipt,
    challenge,
    opening,
    issuedAt: Date.now(),
  }, accuser);
}

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
    const proof = craftProof(model.cid, 8);
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
