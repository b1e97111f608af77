/**
 * A signed training receipt for the ledger tests: the ledger reads none of its fields but the
 * round, the start model, the steps and the work of a step (the delta's size, the batch), so the
 * rest is fixed (and valid). The work is the reference step's (`tiny` at the default batch) unless
 * a test names another: a step then earns exactly `trainingCreditPerStep`
 * (`proof/economics.ts`, `trainingReward`).
 */
import assert from "node:assert/strict";
import type { Identity } from "../../protocols/identity.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  type UnsignedTrainingReceipt,
  verifyTrainingReceipt,
} from "../../training/training_receipt.ts";

/** The start model every receipt here names. */
export const START = "bafkreistartmodel";

/** The work of a step a receipt signs: the reference step's by default. */
export interface StepWork {
  /** Bytes of the delta (the model's size). */
  deltaBytes: number;
  /** Samples a step. */
  batchSize: number;
  /** Bytes a sample. */
  sampleBytes: number;
}

/**
 * The reference step (`tiny`: a delta of 157,096 bytes; 8 samples of 65 bytes), which earns
 * `trainingCreditPerStep`.
 */
export const REFERENCE_STEP: Readonly<StepWork> = Object.freeze({
  deltaBytes: 157_096,
  batchSize: 8,
  sampleBytes: 65,
});

/**
 * `by`'s signed receipt for `round` claiming `steps` steps of `work` (default the reference
 * step); `delta` varies the claim.
 */
export function trainingReceipt(
  by: Identity,
  round: number,
  steps: number,
  delta = "d1",
  work: StepWork = REFERENCE_STEP,
): TrainingReceipt {
  const { batchSize, sampleBytes, deltaBytes } = work;
  // Cast, not typed: the receipt format grows (version 2 added the checkpoints' and the shard's
  // roots), and the ledger reads none of these fields but round, start model, steps and work.
  const unsigned = {
    v: TRAINING_RECEIPT_VERSION,
    round,
    startModel: START,
    steps,
    dataSeed: 7,
    hyper: {
      learningRate: 1e-3,
      beta1: 0.9,
      beta2: 0.99,
      epsilon: 1e-8,
      weightDecay: 0.01,
      batchSize,
      sampleBytes,
    },
    samplesRoot: "aa".repeat(32),
    sampleCount: steps * batchSize,
    checkpointsRoot: "bb".repeat(32),
    shardRoot: "cc".repeat(32),
    shardSize: 100,
    losses: Array.from({ length: steps }, (_, i) => 5 - i / 10),
    deltaHash: delta.repeat(32),
    deltaBytes,
  } as Omit<UnsignedTrainingReceipt, "trainer">;
  const signed = signTrainingReceipt(unsigned, by);
  assert.ok(verifyTrainingReceipt(signed).ok, "the fixture must be a valid receipt");
  return signed;
}
