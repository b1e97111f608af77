/**
 * Lazy trainers for the proof-of-training tests (`proof_of_training_test.ts`): each signs a v2
 * receipt over states it did not honestly compute, and keeps a trace of exactly those states,
 * so it answers challenges consistently with what it committed (the strongest a liar can do).
 */
import type { GptArchitecture } from "../../inference/model_builder.ts";
import type { Identity } from "../../protocols/identity.ts";
import {
  samplesRootOf,
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
} from "../../training/training_receipt.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import type { GptWeights } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import { trainLocal } from "../../training/local_trainer.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "../../training/hyper_params.ts";
import type { TrainingTrace } from "../../training/step_opening.ts";
import type { TrainerReport } from "../../training/training_round.ts";
import {
  checkpointsRootOf,
  commitShard,
  startTrainingState,
  type TrainingState,
  trainingStateHash,
} from "../../training/training_state.ts";

/** What every lazy trainer gets. */
export interface LazyOptions {
  /** Architecture. */
  arch: GptArchitecture;
  /** Start model CID. */
  startModel: string;
  /** Start weights. */
  start: GptWeights;
  /** The shard it registered (committed). */
  shard: TextShard;
  /** Claimed H. */
  steps: number;
  /** Batch seed. */
  dataSeed: number;
  /** Hyper-parameters. */
  hyper: Partial<LocalHyperParams>;
  /** Its key. */
  identity: Identity;
}

/** Sign a receipt over given states (0 … H) and losses; the delta is start − state H. */
export function signStates(
  o: LazyOptions,
  states: TrainingState[],
  losses: number[],
): { report: TrainerReport; trace: TrainingTrace } {
  const hyper: LocalHyperParams = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...o.hyper };
  const end = states[states.length - 1].weights;
  const pseudo: GptWeights = new Map(
    [...o.start].map(([k, w]) => [k, {
      shape: w.shape,
      data: w.data.map((x, i) => x - end.get(k)!.data[i]),
    }]),
  );
  const delta = encodeInt8Delta(quantizeDelta(pseudo));
  const stateHashes = states.map((s) => trainingStateHash(o.arch, s));
  const shardCommitment = commitShard(o.shard, hyper.sampleBytes);
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: 0,
    startModel: o.startModel,
    steps: o.steps,
    dataSeed: o.dataSeed,
    hyper,
    samplesRoot: samplesRootOf(
      Array.from({ length: o.steps * hyper.batchSize }, (_, i) => `fake:${i}`),
    ),
    sampleCount: o.steps * hyper.batchSize,
    checkpointsRoot: checkpointsRootOf(stateHashes),
    shardRoot: shardCommitment.root,
    shardSize: shardCommitment.size,
    losses,
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, o.identity);
  return {
    report: { receipt, delta },
    trace: {
      receipt,
      identity: o.identity,
      arch: o.arch,
      hyper,
      shard: o.shard,
      shardCommitment,
      stateHashes,
      kept: new Map(states.map((s, k) => [k, s])),
      backend: "wasm",
    },
  };
}

/** The honest states 0 … `steps` of a run from `start` on `shard` (all kept). */
export async function honestStates(
  o: LazyOptions,
  steps: number,
  shard: TextShard = o.shard,
  start: GptWeights = o.start,
): Promise<{ states: TrainingState[]; losses: number[] }> {
  const run = await trainLocal({
    arch: o.arch,
    start,
    shard,
    steps,
    seed: o.dataSeed,
    hyper: o.hyper,
    record: { keepEvery: 1 },
  });
  return {
    states: Array.from({ length: steps + 1 }, (_, k) => run.keptStates!.get(k)!),
    losses: run.losses,
  };
}

/** (a) Trains H/2 steps, pads the states (copies of the last) and the loss trace to H. */
export async function halfStepsTrainer(o: LazyOptions) {
  const half = Math.floor(o.steps / 2);
  const run = await honestStates(o, half);
  const states = Array.from({ length: o.steps + 1 }, (_, k) => run.states[Math.min(k, half)]);
  const losses = Array.from(
    { length: o.steps },
    (_, k) => k < half ? run.losses[k] : run.losses[half - 1] - 0.01 * (k - half + 1),
  );
  return signStates(o, states, losses);
}

/** (b) Trains nothing: a random delta scaled like training, states interpolated to it. */
export function randomDeltaTrainer(o: LazyOptions, scale = 3e-3) {
  let x = 12345;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const noise = new Map([...o.start].map(([k, w]) => [k, w.data.map(() => rand() * scale)]));
  const s0 = startTrainingState(o.start);
  const states: TrainingState[] = Array.from({ length: o.steps + 1 }, (_, k) => ({
    weights: new Map([...o.start].map(([n, w]) => [n, {
      shape: w.shape,
      data: w.data.map((v, i) => v - (k / o.steps) * noise.get(n)![i]),
    }])),
    m: s0.m,
    v: s0.v,
  }));
  const losses = Array.from({ length: o.steps }, (_, k) => 5.6 - 0.1 * k);
  return signStates(o, states, losses);
}

/** (c) Trains honestly, but on `other` data, while committing to its registered shard. */
export async function otherDataTrainer(o: LazyOptions, other: TextShard) {
  const run = await honestStates(o, o.steps, other);
  return signStates(o, run.states, run.losses);
}
