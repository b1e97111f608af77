/**
 * A training fraud every checker confirms, for the tests of how proofs settle: a made-up
 * trainer's receipt whose step 0 claims a loss of 999, and its accuser's `loss_mismatch` proof.
 */
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
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
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";

/**
 * The lazy receipt (`trainer`'s, default a fresh key: round 0 from `startModel`, a seeded
 * `TEST_ARCH` model, one step of `batchSize` samples, its loss made up: 999) and the
 * `loss_mismatch` proof `accuser` (default a fresh key) signs against it.
 */
export function lossFraud(
  startModel: string,
  accuser: Identity = Identity.generate(),
  batchSize = 8,
  trainer: Identity = Identity.generate(),
): TrainingFraudProof {
  const start = seededGptWeights(TEST_ARCH, 0);
  const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, batchSize, sampleBytes: 65 };
  const bytes = new Uint8Array(batchSize * 65).map((_, i) => 32 + (i * 7) % 90);
  const shard: TextShard = { documents: [{ id: "x", bytes }] };
  const commitment = commitShard(shard, 65);
  const s0 = startTrainingState(start);
  const hashes = [trainingStateHash(TEST_ARCH, s0), trainingStateHash(TEST_ARCH, s0)];
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
    losses: [999],
    deltaHash: "dd".repeat(32),
    // The test model's delta size: what every ledger prices a step of it by (`trainingReward`).
    deltaBytes: gptDeltaBytes(TEST_ARCH),
  }, trainer);
  const challenge = drawTrainingChallenge(receipt, accuser);
  const opening = {
    step: 0,
    before: encodeTrainingState(TEST_ARCH, s0),
    beforePath: checkpointPath(hashes, 0),
    after: encodeTrainingState(TEST_ARCH, s0),
    afterPath: checkpointPath(hashes, 1),
    samples: batchIndices(1, 0, batchSize, commitment.size).map((index) => ({
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

/** What a test's ledger holds of the lazy trainer's stake (enough for any receipt's lock). */
export const LAZY_TRAINER_STAKE = 10_000_000;

/**
 * The lazy trainer of `proof` staked (a deposit of {@link LAZY_TRAINER_STAKE}) in `ledger`, and
 * its receipt taken by `training` as a peer's gossip of round 0 from `startModel`. Throws when it
 * is not recorded.
 */
export async function recordLazyReceipt(
  ledger: ActorRef<ValidatorMessage>,
  training: ActorRef<TrainingValidatorMessage>,
  proof: TrainingFraudProof,
  startModel: string,
): Promise<void> {
  await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: LAZY_TRAINER_STAKE });
  const recorded = await training.ask<{ recorded: boolean }>({
    type: "receipt",
    body: { receipt: proof.receipt, terms: { round: 0, startModel, steps: proof.receipt.steps } },
    origin: "stranger",
  });
  if (!recorded.recorded) throw new Error("the lazy receipt was not recorded");
}
