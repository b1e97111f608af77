/**
 * One DiLoCo round in one process, without the network: each trainer trains locally,
 * compresses its pseudo-gradient and signs a training receipt; the aggregator checks every
 * receipt against its delta and the round's start model, applies the outer step and writes
 * the next model, content-addressed by its CID.
 *
 * The network round (deadlines, late joiners, sealed step openings for validators) builds on
 * these two halves: {@link trainAndSign} is the trainer's side, {@link aggregateRound} the
 * aggregator's.
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { Identity } from "../protocols/identity.ts";
import type { TextShard } from "./brown_corpus.ts";
import { type GptWeights, writeTrainedModel } from "./gpt_weights.ts";
import {
  decodeInt8Delta,
  deltaHash,
  dequantizeDelta,
  encodeInt8Delta,
  quantizeDelta,
} from "./int8_delta.ts";
import { type LocalHyperParams, trainLocal } from "./local_trainer.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import { DEFAULT_OUTER_HYPER_PARAMS, type OuterHyperParams, outerStep } from "./outer_step.ts";
import {
  samplesRootOf,
  signTrainingReceipt,
  type TrainingReceipt,
  verifyTrainingReceipt,
} from "./training_receipt.ts";
import { TrainingError } from "./training_error.ts";

/** What a trainer sends back at the end of a round. */
export interface TrainerReport {
  /** The signed receipt. */
  receipt: TrainingReceipt;
  /** The encoded int8 pseudo-gradient. */
  delta: Uint8Array;
}

/** Options of {@link trainAndSign}. */
export interface TrainAndSignOptions {
  /** Architecture. */
  arch: GptArchitecture;
  /** Round number. */
  round: number;
  /** Start model CID (must be the CID of `start`'s ONNX model). */
  startModel: string;
  /** Start weights. */
  start: GptWeights;
  /** The trainer's private shard. */
  shard: TextShard;
  /** Local steps H. */
  steps: number;
  /** Batch seed. */
  dataSeed: number;
  /** Inner hyper-parameters. */
  hyper?: Partial<LocalHyperParams>;
  /** The trainer's key. */
  identity: Identity;
  /** tfjs backend. */
  backend?: TrainingBackend;
  /** Progress callback after each local step (see `LocalTrainingOptions.onStep`). */
  onStep?: (step: number, loss: number) => void;
}

/** The trainer's half of a round: H local steps, int8 compression, a signed receipt. */
export async function trainAndSign(options: TrainAndSignOptions): Promise<TrainerReport> {
  const result = await trainLocal({
    arch: options.arch,
    start: options.start,
    shard: options.shard,
    steps: options.steps,
    seed: options.dataSeed,
    hyper: options.hyper,
    backend: options.backend,
    onStep: options.onStep,
  });
  const delta = encodeInt8Delta(quantizeDelta(result.pseudoGradient));
  const receipt = signTrainingReceipt({
    v: 1,
    round: options.round,
    startModel: options.startModel,
    steps: options.steps,
    dataSeed: options.dataSeed,
    hyper: result.hyper,
    samplesRoot: samplesRootOf(result.sampleIds),
    sampleCount: result.sampleIds.length,
    losses: result.losses,
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, options.identity);
  return { receipt, delta };
}

/** Options of {@link aggregateRound}. */
export interface AggregateRoundOptions {
  /** Architecture. */
  arch: GptArchitecture;
  /** The round's start model CID. */
  startModel: string;
  /** The round's start weights. */
  start: GptWeights;
  /** The previous round's outer momentum, if any. */
  momentum?: GptWeights;
  /** Outer hyper-parameters; default DiLoCo's. */
  outer?: OuterHyperParams;
  /** Where to write the next model (`<modelsDir>/<cid>`). */
  modelsDir: string;
}

/** The aggregator's result. */
export interface RoundResult {
  /** The next model's weights. */
  weights: GptWeights;
  /** The outer momentum to carry on. */
  momentum: GptWeights;
  /** CID of the next model. */
  cid: string;
  /** Its directory. */
  dir: string;
  /** Reports accepted. */
  accepted: TrainingReceipt[];
  /** Reports refused, with the reason. */
  refused: { report: TrainerReport; reason: string }[];
}

/**
 * The aggregator's half: verify each report (signature, start model, delta hash), average the
 * accepted deltas with the outer step and write the next model. Throws `no_reports` when none
 * is acceptable.
 */
export async function aggregateRound(
  reports: readonly TrainerReport[],
  options: AggregateRoundOptions,
): Promise<RoundResult> {
  const accepted: TrainingReceipt[] = [];
  const refused: RoundResult["refused"] = [];
  const deltas: GptWeights[] = [];
  for (const report of reports) {
    const check = verifyTrainingReceipt(report.receipt, {
      startModel: options.startModel,
      delta: report.delta,
    });
    if (!check.ok) {
      refused.push({ report, reason: check.reason });
      continue;
    }
    try {
      deltas.push(dequantizeDelta(decodeInt8Delta(report.delta)));
      accepted.push(check.receipt);
    } catch (error) {
      refused.push({ report, reason: (error as TrainingError).code ?? "bad_delta" });
    }
  }
  if (deltas.length === 0) throw new TrainingError("no_reports", "no acceptable training report");
  const { weights, momentum } = outerStep(
    options.start,
    deltas,
    options.momentum,
    options.outer ?? DEFAULT_OUTER_HYPER_PARAMS,
  );
  const { cid, dir } = await writeTrainedModel(options.modelsDir, options.arch, weights);
  return { weights, momentum, cid, dir, accepted, refused };
}
