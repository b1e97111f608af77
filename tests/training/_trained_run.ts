/**
 * One honest training run of the test model, as the tests of a validator's step re-run start
 * from: seed-0 start weights, the first test shard, data seed 5, the test hyperparameters.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** `trainer`'s signed run of `steps` steps, with the weights it started from. */
export async function trainedRun(
  steps: number,
  trainer: Identity = Identity.generate(),
): Promise<{ start: GptWeights } & Awaited<ReturnType<typeof trainAndSign>>> {
  const start = seededGptWeights(TEST_ARCH, 0);
  const run = await trainAndSign({
    arch: TEST_ARCH,
    round: 0,
    startModel: "start",
    start,
    shard: (await testSplit()).shards[0],
    steps,
    dataSeed: 5,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    identity: trainer,
  });
  return { start, ...run };
}
