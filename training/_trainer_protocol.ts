/**
 * The messages between `cli.ts train` (`train_command.ts`) and its trainer workers
 * (`_trainer_worker.ts`), and the conversions of weights to and from what `postMessage` carries.
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { GptWeights } from "./gpt_weights.ts";
import type { LocalHyperParams } from "./local_trainer.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import type { TrainerReport } from "./training_round.ts";

/** Weights as structured-clone data: `[name, shape, values]` in the model's tensor order. */
export type WireWeights = [string, number[], Float32Array][];

/** Main thread → trainer worker. */
export type TrainerRequest =
  | {
    /** Load the corpus and keep shard `trainer` of `trainers`. */
    op: "init";
    trainer: number;
    trainers: number;
    corpusLimit?: number;
    /** The trainer's ed25519 secret key (its receipts' signer). */
    secretKey: Uint8Array;
  }
  | {
    /** Train one round from `start` and answer with a signed report. */
    op: "round";
    arch: GptArchitecture;
    round: number;
    startModel: string;
    start: WireWeights;
    steps: number;
    dataSeed: number;
    hyper: Partial<LocalHyperParams>;
    backend: TrainingBackend;
  };

/** Trainer worker → main thread. */
export type TrainerReply =
  | { op: "ready" }
  | { op: "step"; step: number; loss: number }
  | { op: "report"; report: TrainerReport; ms: number }
  | { op: "error"; message: string };

/** Weights → structured-clone data (copies; the originals stay usable). */
export function toWireWeights(weights: GptWeights): WireWeights {
  return [...weights].map(([name, w]) => [name, [...w.shape], w.data.slice()]);
}

/** Structured-clone data → weights. */
export function fromWireWeights(wire: WireWeights): GptWeights {
  return new Map(wire.map(([name, shape, data]) => [name, { shape, data }]));
}

/**
 * The report out of what `trainAndSign` returns: the report itself, or `{ report, trace }`
 * once it also returns the step trace a validator opens.
 */
export function trainerReportOf(out: unknown): TrainerReport {
  const o = out as { report?: TrainerReport } & Partial<TrainerReport>;
  if (o.report && o.report.receipt) return o.report;
  if (o.receipt && o.delta) return o as TrainerReport;
  throw new TypeError("trainAndSign returned no report");
}
