/** Shared small configuration of the training tests: a model that trains in seconds. */
import type { GptArchitecture } from "../../inference/model_builder.ts";
import type { RoundBody } from "../../protocols/training_messages.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { type CorpusSplit, loadBrownCorpus, splitCorpus } from "../../training/brown_corpus.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { heldOutSamples } from "../../training/held_out_samples.ts";
import { DEFAULT_ECONOMICS, trainingReward } from "../../proof/economics.ts";

/** One block, width 32: ~30 k parameters, about 0.1 s a step on one core (wasm). */
export const TEST_ARCH: GptArchitecture = {
  numLayers: 1,
  hiddenSize: 32,
  numHeads: 2,
  contextLength: 64,
};

/** 64 input bytes + 1 target per sample, 8 samples a step. */
export const TEST_HYPER = { sampleBytes: 65, batchSize: 8 } as const;

/**
 * What a receipt of `steps` steps of the test model at the test batch earns at the default
 * economics: credit follows the work (`trainingReward`), and a step of the test model is ~22 % of
 * the reference step's (`tiny` at the default batch), which pays `trainingCreditPerStep`.
 */
export function testModelCredit(steps: number): number {
  return trainingReward(DEFAULT_ECONOMICS, {
    steps,
    deltaBytes: gptDeltaBytes(TEST_ARCH),
    hyper: TEST_HYPER,
  });
}

let split: Promise<CorpusSplit> | undefined;

/** 40 documents spread across genres, in 2 shards + held-out (every 10th). */
export function testSplit(): Promise<CorpusSplit> {
  split ??= loadBrownCorpus({ limit: 40 }).then((docs) => splitCorpus(docs, 2));
  return split;
}

/** The held-out evaluation of the test model on the test split's held-out documents. */
export async function testEvaluation() {
  const { heldOut } = await testSplit();
  return {
    arch: TEST_ARCH,
    samples: heldOutSamples(heldOut, TEST_HYPER.sampleBytes),
    sampleBytes: TEST_HYPER.sampleBytes,
  };
}

/**
 * Round 0 of `steps` local steps from the published start model `cid` (data seed 11, the test
 * hyperparameters), due in ten minutes: the round a test asks a trainer for.
 */
export function testRoundBody(cid: string, steps: number): RoundBody {
  return {
    round: 0,
    startModel: cid,
    startFile: cid,
    arch: TEST_ARCH,
    steps,
    dataSeed: 11,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    deadline: Date.now() + 600_000,
  };
}
