/**
 * Test fixture: honest rounds trained for real — each of the test split's shards by its own
 * trainer, the deltas aggregated, the new model and the deltas published in `models` (a
 * `RoundModels` over a storage actor) — and their outcomes, unsigned.
 *
 * @module
 */
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import type { RoundModels } from "../../training/round_models.ts";
import { aggregateRound, trainAndSign, type TrainerReport } from "../../training/training_round.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** The model a round starts from: its cid, its file (when published) and its weights. */
export interface RoundStart {
  cid: string;
  file?: string;
  weights: GptWeights;
}

/** What {@link trainedRound} trains. */
export interface TrainedRoundOptions {
  /** The round's number. */
  round: number;
  /** The model it starts from. */
  start: RoundStart;
  /** The previous round's outer momentum, if any. */
  momentum?: GptWeights;
  /** Shard `i`'s trainer (one key per shard of the test split). */
  trainers: Identity[];
  /** Local steps per trainer. */
  steps: number;
}

/**
 * An honest round: each shard of the test split trained by its trainer from `start` (with the
 * `momentum` carried), aggregated, the model and deltas published in `models`; its outcome
 * unsigned, its model (weights included) and the momentum to carry on.
 */
export async function trainedRound(models: RoundModels, options: TrainedRoundOptions) {
  const { round, start, momentum, trainers, steps } = options;
  const split = await testSplit();
  const reports: TrainerReport[] = [];
  for (const [i, shard] of split.shards.entries()) {
    const { report } = await trainAndSign({
      arch: TEST_ARCH,
      round,
      startModel: start.cid,
      start: start.weights,
      shard,
      steps,
      dataSeed: dataSeedOf(round, toHex(trainers[i].publicKey)),
      hyper: TEST_HYPER,
      identity: trainers[i],
    });
    reports.push(report);
  }
  const result = await aggregateRound(reports, {
    arch: TEST_ARCH,
    startModel: start.cid,
    start: start.weights,
    momentum,
    modelsDir: models.modelsDir,
  });
  const model = await models.publish(TEST_ARCH, result.weights);
  const files = await Promise.all(
    reports.map((r) => models.putFile(r.delta, `delta-${r.receipt.deltaHash}`)),
  );
  const outcome: OutcomeBody = {
    round,
    startModel: start.cid,
    ...(start.file ? { startFile: start.file } : {}),
    model: model.cid,
    file: model.file!,
    arch: TEST_ARCH,
    accepted: reports.map((r) => toHex(r.receipt.trainer)),
    reports: reports.map((r, i) => ({ receipt: r.receipt, deltaFile: files[i]! })),
    excluded: [],
  };
  return { outcome, model: { ...model, weights: result.weights }, momentum: result.momentum };
}

/** An honest round 0 of `steps` local steps per trainer, published in `models` (unsigned). */
export async function honestRound(models: RoundModels, steps: number) {
  const split = await testSplit();
  const trainers = split.shards.map(() => Identity.generate());
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const { outcome } = await trainedRound(models, {
    round: 0,
    start: { ...seed, file: seed.file! },
    trainers,
    steps,
  });
  return { outcome, trainers, seed };
}
