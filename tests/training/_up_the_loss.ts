/**
 * Test fixture: a poisoner's delta for the loss gate's tests, pointed up the coordinator's held-out
 * loss (`_gate_run.ts` evaluates on the test split's held-out text).
 *
 * @module
 */
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { loadTrainingEngine } from "../../training/training_engine.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/**
 * One AdamW step of learning rate `size` on the held-out text from the seeded start (each value
 * about ± `size`, the sign of the gradient), negated: up the held-out loss, not down. `k` > 0
 * adds a perturbation of 1e-6 × k, so k seats send k different pieces of work (`duplicate_work`
 * refuses copies) that act the same.
 */
export async function upTheLoss(size: number, k = 0): Promise<GptWeights> {
  const { trainLocal } = await loadTrainingEngine();
  const { pseudoGradient } = await trainLocal({
    arch: TEST_ARCH,
    start: seededGptWeights(TEST_ARCH, 0),
    shard: (await testSplit()).heldOut,
    steps: 1,
    seed: 3,
    hyper: { ...TEST_HYPER, learningRate: size },
  });
  return new Map([...pseudoGradient].map(([name, t]) => [name, {
    shape: [...t.shape],
    data: t.data.map((x, i) => -x + 1e-6 * k * Math.sin(i + k)),
  }]));
}
