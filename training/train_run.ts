/**
 * A DiLoCo training run on this machine, as a function ({@link trainModel}: `cli.ts train`,
 * `cli/train_command.ts`, the tests and the bench run it). N trainers — each a node trainer's
 * engine (`WorkerTrainerEngine`: a `Worker`) with its own Brown corpus shard (`splitCorpus`), so
 * they train on separate cores — run H local AdamW steps per round and sign a receipt
 * (`trainAndSign`); between rounds the aggregator checks the receipts and takes the outer step
 * (`aggregateRound`), writing the next model by CID. Progress comes as {@link TrainEvent}s.
 *
 * @module
 */
import { Identity } from "../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { TextModel } from "../inference/text_model.ts";
import { loadBrownCorpus, splitCorpus, type TextShard } from "./brown_corpus.ts";
import { gptModelId, type GptWeights, seededGptWeights, writeTrainedModel } from "./gpt_weights.ts";
import { evaluateLoss } from "./local_trainer.ts";
import {
  DEFAULT_EVAL_SAMPLES,
  DEFAULT_LOCAL_HYPER_PARAMS,
  type LocalHyperParams,
} from "./hyper_params.ts";
import type { OuterHyperParams } from "./outer_step.ts";
import { type TrainingBackend, useTrainingBackend } from "./tf_backend.ts";
import { aggregateRound } from "./training_round.ts";
import { TrainingError } from "./training_error.ts";
import { WorkerTrainerEngine } from "./trainer_engine.ts";

/** Nats → bits. */
const BITS_PER_NAT = 1 / Math.LN2;
/** Bytes of text sampled from the final model. */
const SAMPLE_TOKENS = 96;
/** Prompt of the final sample. */
const SAMPLE_PROMPT = "The ";
/** Temperature of the final sample: greedy decoding of a small byte model loops on a phrase. */
const SAMPLE_TEMPERATURE = 0.8;
/** Spacing of per-round data seeds: room for this many trainers per round. */
const SEED_TRAINER_SPAN = 1_000;
/** Spacing of per-run data seeds: room for this many rounds per run. */
const SEED_ROUND_SPAN = 1_000_000;

/** The training bytes per sample of an architecture: its whole context (capped) plus a target. */
export function defaultSampleBytes(arch: GptArchitecture): number {
  return Math.min(arch.contextLength, 128) + 1;
}

/** Options of {@link trainModel}. */
export interface TrainRunOptions {
  /** Architecture. */
  arch: GptArchitecture;
  /** Trainers N (one worker each). */
  trainers: number;
  /** Rounds R (at most; `minutes` may stop earlier). */
  rounds: number;
  /** Local steps H per round. */
  steps: number;
  /** Seed of the initial weights and of every batch draw. */
  seed: number;
  /** Directory the models are written into (`<outDir>/<cid>`). */
  outDir: string;
  /** Wall budget: no round starts that would likely end past it. */
  minutes?: number;
  /** Inner hyper-parameters (batch, sample length, learning rate, ...). */
  hyper?: Partial<LocalHyperParams>;
  /** Outer hyper-parameters; default DiLoCo's. */
  outer?: OuterHyperParams;
  /** Held-out samples evaluated after each round (default {@link DEFAULT_EVAL_SAMPLES}). */
  evalSamples?: number;
  /** Documents of the corpus to use (default all 500; tests use fewer). */
  corpusLimit?: number;
  /** tfjs backend (default wasm). */
  backend?: TrainingBackend;
  /** Keep every round's model directory (default: only the last). */
  keepRounds?: boolean;
  /** Clock in ms (tests inject one). */
  now?: () => number;
}

/** Progress of {@link trainModel}. */
export type TrainEvent =
  | {
    type: "start";
    params: number;
    trainers: number;
    rounds: number;
    steps: number;
    tokensPerStep: number;
    startModel: string;
    heldOutBitsPerByte: number;
  }
  | { type: "step"; round: number; trainer: number; step: number; loss: number }
  | ({ type: "round"; rounds: number; elapsedMs: number } & RoundRecord)
  | { type: "stopped"; reason: "minutes"; rounds: number };

/** One finished round. */
export interface RoundRecord {
  /** Round number, from 0. */
  round: number;
  /** CID of the model it produced. */
  cid: string;
  /** Mean training loss of its steps over all trainers, bits per byte. */
  trainBitsPerByte: number;
  /** Held-out bits per byte of its model. */
  heldOutBitsPerByte: number;
  /** Tokens trained per second, all trainers together, over the training phase. */
  tokensPerSecond: number;
  /** Encoded int8 deltas of the round, all trainers together. */
  deltaBytes: number;
  /** The round's encoded int8 outer update (what each trainer of the next round downloads). */
  updateBytes: number;
  /** Wall time of the round, training and aggregation. */
  roundMs: number;
}

/** What {@link trainModel} returns. */
export interface TrainRunResult {
  /** The final model's CID (the start model's when no round ran). */
  cid: string;
  /** Its directory. */
  dir: string;
  /** The final weights. */
  weights: GptWeights;
  /** Held-out bits per byte of the start model. */
  startBitsPerByte: number;
  /** Held-out bits per byte of the final model. */
  heldOutBitsPerByte: number;
  /** Each round. */
  rounds: RoundRecord[];
  /** Parameters of the model. */
  params: number;
  /** Wall time of the whole run. */
  elapsedMs: number;
}

/**
 * A held-out evaluation set spread over every held-out document (the first `samples` samples
 * of the held-out part would all be press reportage, the corpus's first genre).
 */
export function spreadHeldOut(heldOut: TextShard, samples: number, sampleBytes: number): TextShard {
  const docs = heldOut.documents;
  const perDoc = Math.max(1, Math.ceil(samples / Math.max(1, docs.length)));
  return {
    documents: docs.map((d) => ({
      id: d.id,
      bytes: d.bytes.subarray(0, Math.min(d.bytes.length, perDoc * sampleBytes)),
    })),
  };
}

/** Held-out bits per byte of `weights` on `samples` samples spread over `heldOut`. */
export async function heldOutBitsPerByte(
  arch: GptArchitecture,
  weights: GptWeights,
  heldOut: TextShard,
  samples: number,
  sampleBytes: number,
): Promise<number> {
  const set = spreadHeldOut(heldOut, samples, sampleBytes);
  const nats = await evaluateLoss(arch, weights, set, { sampleBytes, maxSamples: samples });
  return nats * BITS_PER_NAT;
}

/** Run DiLoCo training; see the module doc. */
export async function trainModel(
  options: TrainRunOptions,
  onEvent: (event: TrainEvent) => void = () => {},
): Promise<TrainRunResult> {
  const now = options.now ?? (() => performance.now());
  const began = now();
  const { arch, trainers: n } = options;
  const hyper: LocalHyperParams = {
    ...DEFAULT_LOCAL_HYPER_PARAMS,
    sampleBytes: defaultSampleBytes(arch),
    ...options.hyper,
  };
  const evalSamples = options.evalSamples ?? DEFAULT_EVAL_SAMPLES;
  const backend = await useTrainingBackend(options.backend ?? "wasm");
  const docs = await loadBrownCorpus({ limit: options.corpusLimit });
  const { heldOut, shards } = splitCorpus(docs, n);
  const evaluate = (w: GptWeights) =>
    heldOutBitsPerByte(arch, w, heldOut, evalSamples, hyper.sampleBytes);

  let weights = seededGptWeights(arch, options.seed);
  let cid = gptModelId(arch, weights);
  let dir = "";
  let momentum: GptWeights | undefined;
  const params = [...weights.values()].reduce((s, t) => s + t.data.length, 0);
  const tokensPerStep = hyper.batchSize * (hyper.sampleBytes - 1);
  const startBitsPerByte = await evaluate(weights);
  onEvent({
    type: "start",
    params,
    trainers: n,
    rounds: options.rounds,
    steps: options.steps,
    tokensPerStep,
    startModel: cid,
    heldOutBitsPerByte: startBitsPerByte,
  });

  // One engine per trainer: each trains in a worker of its own, so trainers use the cores at once.
  const engines = shards.map((shard) => new WorkerTrainerEngine(Identity.generate(), shard));
  const rounds: RoundRecord[] = [];
  let heldOutNow = startBitsPerByte;
  try {
    for (let round = 0; round < options.rounds; round++) {
      const last = rounds.at(-1);
      if (options.minutes !== undefined && last) {
        const budgetMs = options.minutes * 60_000;
        if (now() - began + last.roundMs > budgetMs) {
          onEvent({ type: "stopped", reason: "minutes", rounds: rounds.length });
          break;
        }
      }
      const roundStart = now();
      const reports = await Promise.all(engines.map((engine, trainer) =>
        engine.train({
          arch,
          round,
          startModel: cid,
          start: weights,
          steps: options.steps,
          dataSeed: options.seed * SEED_ROUND_SPAN + round * SEED_TRAINER_SPAN + trainer,
          hyper,
          backend,
        }, (step, loss) => onEvent({ type: "step", round, trainer, step, loss }))
      ));
      const trainMs = now() - roundStart;
      const next = await aggregateRound(reports, {
        arch,
        startModel: cid,
        start: weights,
        momentum,
        outer: options.outer,
        modelsDir: options.outDir,
      });
      if (next.refused.length > 0) {
        throw new TrainingError(
          "bad_report",
          `a local trainer's report was refused: ${next.refused.map((r) => r.reason).join(", ")}`,
        );
      }
      if (dir && !options.keepRounds && dir !== next.dir) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
      ({ weights, momentum, cid, dir } = next);
      heldOutNow = await evaluate(weights);
      const losses = reports.flatMap((r) => r.receipt.losses);
      const record: RoundRecord = {
        round,
        cid,
        trainBitsPerByte: (losses.reduce((a, b) => a + b, 0) / losses.length) * BITS_PER_NAT,
        heldOutBitsPerByte: heldOutNow,
        tokensPerSecond: (n * options.steps * tokensPerStep) / (trainMs / 1000),
        deltaBytes: reports.reduce((s, r) => s + r.delta.length, 0),
        updateBytes: next.update.length,
        roundMs: now() - roundStart,
      };
      rounds.push(record);
      onEvent({ type: "round", rounds: options.rounds, elapsedMs: now() - began, ...record });
    }
  } finally {
    await Promise.all(engines.map((engine) => engine.close()));
  }
  if (!dir) {
    // No round ran: write the start model so the result still names a loadable directory.
    dir = (await writeTrainedModel(options.outDir, arch, weights)).dir;
  }
  return {
    cid,
    dir,
    weights,
    startBitsPerByte,
    heldOutBitsPerByte: heldOutNow,
    rounds,
    params,
    elapsedMs: now() - began,
  };
}

/** A short text from the model in `dir` (sampled, seeded: the same model writes the same). */
export async function sampleText(
  dir: string,
  seed: number,
  prompt = SAMPLE_PROMPT,
): Promise<string> {
  const model = await TextModel.load(dir);
  try {
    let text = prompt;
    for await (
      const chunk of model.generate(model.tokenizer.encode(prompt), {
        ...DEFAULT_GENERATION_PARAMS,
        temperature: SAMPLE_TEMPERATURE,
        seed,
        maxTokens: SAMPLE_TOKENS,
      })
    ) text += chunk.text;
    return text;
  } finally {
    await model.dispose();
  }
}
