/**
 * A signed training receipt for the ledger tests: the ledger reads none of its fields but the
 * round, the start model and the steps, so the rest is fixed (and valid).
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

/** `by`'s signed receipt for `round` claiming `steps` steps; `delta` varies the claim. */
export function trainingReceipt(
  by: Identity,
  round: number,
  steps: number,
  delta = "d1",
): TrainingReceipt {
  const batchSize = 2;
  // Cast, not typed: the receipt format grows (version 2 added the checkpoints' and the shard's
  // roots), and the ledger reads none of these fields but round, start model and steps.
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
      sampleBytes: 65,
    },
    samplesRoot: "aa".repeat(32),
    sampleCount: steps * batchSize,
    checkpointsRoot: "bb".repeat(32),
    shardRoot: "cc".repeat(32),
    shardSize: 100,
    losses: Array.from({ length: steps }, (_, i) => 5 - i / 10),
    deltaHash: delta.repeat(32),
    deltaBytes: 1_000,
  } as Omit<UnsignedTrainingReceipt, "trainer">;
  const signed = signTrainingReceipt(unsigned, by);
  assert.ok(verifyTrainingReceipt(signed).ok, "the fixture must be a valid receipt");
  return signed;
}
