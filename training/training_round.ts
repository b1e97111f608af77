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
import { decodeFittingDelta, deltaHash, encodeInt8Delta, quantizeDelta } from "./int8_delta.ts";
import { loadTrainingEngine } from "./training_engine.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import {
  DEFAULT_OUTER_HYPER_PARAMS,
  type OuterHyperParams,
  outerStep,
  quantizeOuterUpdate,
} from "./outer_step.ts";
import {
  samplesRootOf,
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "./training_receipt.ts";
import { checkpointsRootOf, commitShard } from "./training_state.ts";
import { DEFAULT_KEEP_EVERY, type TrainingTrace } from "./step_opening.ts";
import { toHex } from "../protocols/hash.ts";
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
  /** Start model id (must be `start`'s, `gpt_weights.ts` `gptModelId`). */
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
  /** Keep the full training state every this many steps; default {@link DEFAULT_KEEP_EVERY}. */
  keepEvery?: number;
  /** Awaited before each local step (see `LocalTrainingOptions.between`). */
  between?: () => Promise<void>;
}

/** What {@link trainAndSign} returns: the report to send, and the trace to keep. */
export interface TrainAndSignResult {
  /** The signed receipt and the delta (sent to the aggregator). */
  report: TrainerReport;
  /** What the trainer keeps to answer challenges (private: it holds the shard). */
  trace: TrainingTrace;
}

/**
 * The trainer's half of a round: H local AdamW steps recording every training state's hash,
 * int8 compression, a signed receipt committing to the states (`checkpointsRoot`) and to the
 * shard (`shardRoot`), and the trace to open challenged steps from later.
 */
export async function trainAndSign(options: TrainAndSignOptions): Promise<TrainAndSignResult> {
  const keepEvery = options.keepEvery ?? DEFAULT_KEEP_EVERY;
  const { trainLocal } = await loadTrainingEngine();
  const result = await trainLocal({
    arch: options.arch,
    start: options.start,
    shard: options.shard,
    steps: options.steps,
    seed: options.dataSeed,
    hyper: options.hyper,
    backend: options.backend,
    onStep: options.onStep,
    between: options.between,
    record: { keepEvery },
  });
  const shardCommitment = commitShard(options.shard, result.hyper.sampleBytes);
  const stateHashes = result.stateHashes!;
  const delta = encodeInt8Delta(quantizeDelta(result.pseudoGradient));
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: options.round,
    startModel: options.startModel,
    steps: options.steps,
    dataSeed: options.dataSeed,
    hyper: result.hyper,
    samplesRoot: samplesRootOf(result.sampleIds),
    sampleCount: result.sampleIds.length,
    checkpointsRoot: checkpointsRootOf(stateHashes),
    shardRoot: shardCommitment.root,
    shardSize: shardCommitment.size,
    losses: result.losses,
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, options.identity);
  const trace: TrainingTrace = {
    receipt,
    identity: options.identity,
    arch: options.arch,
    hyper: result.hyper,
    shard: options.shard,
    shardCommitment,
    stateHashes,
    kept: result.keptStates!,
    backend: result.backend,
  };
  return { report: { receipt, delta }, trace };
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
  /**
   * Convicted trainers, whose deltas are dropped: keys are receipt ids or hex trainer keys,
   * values the reason (e.g. a training fraud proof's reason), reported in `refused`.
   */
  excluded?: ReadonlyMap<string, string>;
}

/** The aggregator's result. */
export interface RoundResult {
  /** The next model's weights (the start minus the dequantized `update`). */
  weights: GptWeights;
  /**
   * The outer update from the start model to this one, int8-encoded (`quantizeOuterUpdate`):
   * what a trainer holding the start model downloads instead of the whole next model.
   */
  update: Uint8Array;
  /** The outer momentum to carry on. */
  momentum: GptWeights;
  /**
   * Whether the momentum given was dropped because the step it gave was not finite (the model
   * is then the step without it, on every node that redoes the round).
   */
  momentumReset: boolean;
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
 * The aggregator's half: verify each report (signature, start model, delta hash, a delta that
 * fits the start weights), average the accepted deltas with the outer step, quantize the step as
 * the round's outer update and write the next model. A report that fails is refused alone,
 * never the round; a momentum that makes the step non-finite is dropped (`momentumReset`).
 * Throws `no_reports` when none is acceptable, `aggregate_fault` when the step is not finite
 * even without momentum.
 */
export async function aggregateRound(
  reports: readonly TrainerReport[],
  options: AggregateRoundOptions,
): Promise<RoundResult> {
  const accepted: TrainingReceipt[] = [];
  const refused: RoundResult["refused"] = [];
  const deltas: GptWeights[] = [];
  for (const report of reports) {
    const excluded = options.excluded?.get(trainingReceiptId(report.receipt)) ??
      options.excluded?.get(toHex(report.receipt.trainer ?? new Uint8Array(0)));
    if (excluded !== undefined) {
      refused.push({ report, reason: excluded });
      continue;
    }
    const check = verifyTrainingReceipt(report.receipt, {
      startModel: options.startModel,
      delta: report.delta,
    });
    if (!check.ok) {
      refused.push({ report, reason: check.reason });
      continue;
    }
    try {
      deltas.push(decodeFittingDelta(report.delta, options.start));
      accepted.push(check.receipt);
    } catch (error) {
      refused.push({ report, reason: (error as TrainingError).code ?? "bad_delta" });
    }
  }
  if (deltas.length === 0) throw new TrainingError("no_reports", "no acceptable training report");
  const outer = options.outer ?? DEFAULT_OUTER_HYPER_PARAMS;
  let step = finiteOuterStep(options.start, deltas, options.momentum, outer);
  const momentumReset = step === undefined && options.momentum !== undefined;
  // A momentum that no longer gives a finite step (carried from before deltas were bounded, or
  // grown past float32) is dropped, as every node that redoes this step drops it: the same
  // deltas then give the same model everywhere, and the rounds go on instead of failing for good.
  if (momentumReset) step = finiteOuterStep(options.start, deltas, undefined, outer);
  if (step === undefined) {
    throw new TrainingError(
      "aggregate_fault",
      "the outer step is not finite even without momentum (the start weights are out of range)",
    );
  }
  const { weights, update, momentum } = step;
  const { cid, dir } = await writeTrainedModel(options.modelsDir, options.arch, weights);
  return { weights, update, momentum, momentumReset, cid, dir, accepted, refused };
}

/** The outer step and its int8 update, or undefined when either is not finite. */
function finiteOuterStep(
  start: GptWeights,
  deltas: readonly GptWeights[],
  momentum: GptWeights | undefined,
  outer: OuterHyperParams,
): { weights: GptWeights; update: Uint8Array; momentum: GptWeights } | undefined {
  const stepped = outerStep(start, deltas, momentum, outer);
  const finite = (w: GptWeights) => [...w.values()].every((t) => t.data.every(Number.isFinite));
  if (!finite(stepped.weights) || !finite(stepped.momentum)) return undefined;
  try {
    const { weights, update } = quantizeOuterUpdate(start, stepped.weights);
    return { weights, update, momentum: stepped.momentum };
  } catch {
    return undefined; // the update decodes to a value out of range: not finite either
  }
}
