/** A validly signed training receipt with no delta behind it, for tests of gossip and outcomes. */
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";

/**
 * A receipt of one step of `round` from `startModel` on the trainer's own seed, signed by
 * `trainer` (a fresh key by default); its roots and delta hash are placeholders, its delta size the
 * test model's (an audit refuses any other before it fetches anything: `delta_size_mismatch`).
 */
export function placeholderReceipt(
  round: number,
  startModel: string,
  trainer: Identity = Identity.generate(),
): TrainingReceipt {
  const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER };
  return signTrainingReceipt({
    v: 2,
    round,
    startModel,
    steps: 1,
    dataSeed: dataSeedOf(round, toHex(trainer.publicKey)),
    hyper,
    samplesRoot: "00".repeat(32),
    sampleCount: hyper.batchSize,
    checkpointsRoot: "00".repeat(32),
    shardRoot: "00".repeat(32),
    shardSize: 100,
    losses: [1],
    deltaHash: "00".repeat(32),
    deltaBytes: gptDeltaBytes(TEST_ARCH),
  }, trainer);
}
