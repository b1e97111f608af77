/**
 * What a stand-in for `trainAndSign` returns (no tfjs): a delta whose every value is
 * `value(i, options)` and a receipt signed for it, both a pure function of what the round asked,
 * as honest training's are.
 *
 * @module
 */
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import type { TrainFunction } from "../../training/trainer_service.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import type { TrainingTrace } from "../../training/step_opening.ts";

type TrainOptions = Parameters<TrainFunction>[0];

/** The report (receipt and delta) and an empty trace for the round `options` asks. */
export function standInTraining(
  options: TrainOptions,
  value: (i: number, options: TrainOptions) => number,
): Awaited<ReturnType<TrainFunction>> {
  const delta = encodeInt8Delta(
    quantizeDelta(
      new Map([...options.start].map(([name, t]) => [name, {
        shape: [...t.shape],
        data: t.data.map((_x, i) => value(i, options)),
      }])),
    ),
  );
  const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...options.hyper };
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: options.round,
    startModel: options.startModel,
    steps: options.steps,
    dataSeed: options.dataSeed,
    hyper,
    samplesRoot: "aa".repeat(32),
    sampleCount: options.steps * hyper.batchSize,
    checkpointsRoot: "bb".repeat(32),
    shardRoot: "cc".repeat(32),
    shardSize: 100,
    losses: Array.from({ length: options.steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, options.identity);
  return { report: { receipt, delta }, trace: {} as TrainingTrace };
}
