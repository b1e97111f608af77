/**
 * Test fixture: an honest round 0 trained for real — each of the test split's shards by a fresh
 * trainer, the deltas aggregated, the start model, the new model and the deltas published in
 * `models` (a `RoundModels` over a storage actor) — and its outcome, unsigned.
 *
 * @module
 */
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import type { RoundModels } from "../../training/round_models.ts";
import { aggregateRound, trainAndSign } from "../../training/training_round.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** An honest round 0 of `steps` local steps per trainer, published in `models` (unsigned). */
export async function honestRound(models: RoundModels, steps: number) {
  const split = await testSplit();
  const trainers = split.shards.map(() => Identity.generate());
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const reports = [];
  for (const [i, shard] of split.shards.entries()) {
    const { report } = await trainAndSign({
      arch: TEST_ARCH,
      round: 0,
      startModel: seed.cid,
      start: seed.weights,
      shard,
      steps,
      dataSeed: dataSeedOf(0, toHex(trainers[i].publicKey)),
      hyper: TEST_HYPER,
      identity: trainers[i],
    });
    reports.push(report);
  }
  const result = await aggregateRound(reports, {
    arch: TEST_ARCH,
    startModel: seed.cid,
    start: seed.weights,
    modelsDir: models.modelsDir,
  });
  const model = await models.publish(TEST_ARCH, result.weights);
  const files = await Promise.all(
    reports.map((r) => models.putFile(r.delta, `delta-${r.receipt.deltaHash}`)),
  );
  const outcome: OutcomeBody = {
    round: 0,
    startModel: seed.cid,
    startFile: seed.file!,
    model: model.cid,
    file: model.file!,
    arch: TEST_ARCH,
    accepted: reports.map((r) => toHex(r.receipt.trainer)),
    reports: reports.map((r, i) => ({ receipt: r.receipt, deltaFile: files[i]! })),
    excluded: [],
  };
  return { outcome, trainers, seed };
}
