/**
 * Crafted training receipts and constant deltas for the round-audit tests: a receipt signed over
 * a delta without any training, so an outcome of many reports costs milliseconds. Each receipt's
 * trajectory (`checkpointsRoot`) is its signer's own unless it copies another key's
 * (`duplicate_work.ts`: one piece of work is paid once).
 *
 * @module
 */
import type { Identity } from "../../protocols/identity.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
} from "../../training/training_receipt.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import { type GptWeights, gptWeightShapes } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";

/** The shard every crafted receipt commits to. */
export const SHARD_ROOT = "ab".repeat(32);
/** Samples in that shard. */
export const SHARD_SIZE = 100;
/** The hyper-parameters every crafted receipt signs (the test model's). */
export const HYPER = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER };

/** A delta of `value` everywhere, in the test architecture's shapes, encoded. */
export function constantDelta(value: number): Uint8Array {
  const delta: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(TEST_ARCH)) {
    const n = shape.reduce((a, b) => a * b, 1);
    delta.set(name, { shape, data: new Float32Array(n).fill(value) });
  }
  return encodeInt8Delta(quantizeDelta(delta));
}

/**
 * A receipt signed by `identity` for `round` from `startModel`, claiming `steps` steps over
 * `delta`; its trajectory is `trajectoryOf`'s (default its own key's: a copy names another).
 */
export function craftedReceipt(
  identity: Identity,
  round: number,
  startModel: string,
  steps: number,
  delta: Uint8Array,
  trajectoryOf: Identity = identity,
): TrainingReceipt {
  return signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round,
    startModel,
    steps,
    dataSeed: dataSeedOf(round, toHex(identity.publicKey)),
    hyper: HYPER,
    samplesRoot: "01".repeat(32),
    sampleCount: steps * HYPER.batchSize,
    checkpointsRoot: sha256Hex(trajectoryOf.publicKey),
    shardRoot: SHARD_ROOT,
    shardSize: SHARD_SIZE,
    losses: Array.from({ length: steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, identity);
}
