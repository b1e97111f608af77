/**
 * `cli.ts train`: DiLoCo training on this machine. N trainers — each a node trainer's engine
 * (`WorkerTrainerEngine`: a `Worker`) with its own Brown corpus shard (`splitCorpus`), so they
 * train on separate cores — run H local AdamW steps per round and sign a receipt (`trainAndSign`); between rounds the aggregator checks
 * the receipts and takes the outer step (`aggregateRound`), writing the next model by CID.
 *
 * ```
 * deno run -A cli.ts train --trainers 2 --rounds 10 --steps 50 --size tiny --seed 0 --out DIR
 * ```
 *
 * The terminal shows round i/R, step progress, tokens/s and a loss curve (train loss and
 * held-out bits per byte after each round) redrawn in place on a TTY; plain lines otherwise,
 * one JSON object per event with `--log-format json`. The run ends with the model's CID, its
 * directory, its held-out bits per byte and a sample of the text it writes.
 *
 * {@link trainModel} is the same run as a function (tests, the bench).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Identity } from "../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
import {
  GPT_MODEL_SIZES,
  type GptArchitecture,
  type GptModelSize,
} from "../inference/model_builder.ts";
import { TextModel } from "../inference/text_model.ts";
import {
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
} from "../node/number_flags.ts";
import { loadBrownCorpus, splitCorpus, type TextShard } from "./brown_corpus.ts";
import { gptModelId, type GptWeights, seededGptWeights, writeTrainedModel } from "./gpt_weights.ts";
import { evaluateLoss } from "./local_trainer.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./hyper_params.ts";
import type { OuterHyperParams } from "./outer_step.ts";
import { type TrainingBackend, useTrainingBackend } from "./tf_backend.ts";
import { aggregateRound } from "./training_round.ts";
import { TrainingError } from "./training_error.ts";
import { renderLossChart } from "./loss_chart.ts";
import { WorkerTrainerEngine } from "./trainer_engine.ts";
import { DEFAULT_EVAL_SAMPLES, TRAIN_USAGE } from "./train_help.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";

/** Nats → bits. */
const BITS_PER_NAT = 1 / Math.LN2;
/** Bytes of text sampled from the final model. */
const SAMPLE_TOKENS = 96;
/** Prompt of the final sample. */
const SAMPLE_PROMPT = "The ";
/** Temperature of the final sample: greedy decoding of a small byte model loops on a phrase. */
const SAMPLE_TEMPERATURE = 0.8;
/** Most trainers one run starts (each is a worker with its own copy of model and corpus). */
const MAX_TRAINERS = 64;
/** Redraws of the live view per second at most (step events arrive far faster). */
const REDRAWS_PER_SECOND = 8;
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

/**
 * An integer flag from `min` to `max`, read as `start` reads its numbers (decimal digits:
 * `Number()` took "" for 0, and 0x10 and 1e3 besides), or a RangeError saying what it takes.
 */
function wholeFlag(name: string, raw: string | undefined, min: number, max: number): number {
  const value = parseWholeNumber(raw ?? "");
  if (value === undefined) throw new RangeError(notWholeNumber(`--${name}`, raw ?? ""));
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
  }
  return value;
}

/** A positive integer flag, or a RangeError. */
function positiveInt(name: string, raw: string | undefined, max = Number.MAX_SAFE_INTEGER) {
  return wholeFlag(name, raw, 1, max);
}

/** A decimal flag (`0.05`, not `5e-2`), or a RangeError saying what it takes. */
function decimalFlag(name: string, raw: string): number {
  const value = parseDecimalNumber(raw);
  if (value === undefined) throw new RangeError(notDecimalNumber(`--${name}`, raw));
  return value;
}

/** `train`'s flags, as parseArgs takes them (and as a mistyped flag is matched against). */
const TRAIN_OPTIONS = {
  trainers: { type: "string", default: "2" },
  rounds: { type: "string", default: "10" },
  steps: { type: "string", default: "50" },
  size: { type: "string", default: "tiny" },
  layers: { type: "string" },
  width: { type: "string" },
  heads: { type: "string" },
  context: { type: "string" },
  seed: { type: "string", default: "0" },
  out: { type: "string" },
  minutes: { type: "string" },
  batch: { type: "string" },
  "sample-bytes": { type: "string" },
  lr: { type: "string" },
  "eval-samples": { type: "string" },
  "corpus-limit": { type: "string" },
  backend: { type: "string", default: "wasm" },
  "keep-rounds": { type: "boolean" },
  "log-format": { type: "string", default: "text" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parse the command arguments and train; returns the process exit code (0 done, 1 the
 * training failed, 2 bad flags).
 *
 * @param args Arguments after the command name.
 */
export async function runTrain(args: string[]): Promise<number> {
  let options: TrainRunOptions;
  let json: boolean;
  try {
    const { values } = parseArgs({ args, options: TRAIN_OPTIONS });
    if (values.help) {
      console.log(TRAIN_USAGE);
      return 0;
    }
    if (!values.out) throw new RangeError("--out DIR is required");
    if (!(values.size in GPT_MODEL_SIZES)) {
      throw new RangeError(
        `--size must be one of ${Object.keys(GPT_MODEL_SIZES).join(", ")}, got ${values.size}`,
      );
    }
    const base = GPT_MODEL_SIZES[values.size as GptModelSize];
    const arch: GptArchitecture = {
      numLayers: values.layers ? positiveInt("layers", values.layers, 64) : base.numLayers,
      hiddenSize: values.width ? positiveInt("width", values.width, 4096) : base.hiddenSize,
      numHeads: values.heads ? positiveInt("heads", values.heads, 64) : base.numHeads,
      contextLength: values.context
        ? positiveInt("context", values.context, 4096)
        : base.contextLength,
    };
    if (arch.hiddenSize % arch.numHeads !== 0) {
      throw new RangeError(
        `--width ${arch.hiddenSize} is not a multiple of --heads ${arch.numHeads}`,
      );
    }
    const seed = wholeFlag("seed", values.seed, 0, 1_000_000);
    if (!["text", "json"].includes(values["log-format"])) {
      throw new RangeError(`--log-format must be text or json, got ${values["log-format"]}`);
    }
    if (!["wasm", "cpu"].includes(values.backend)) {
      throw new RangeError(`--backend must be wasm or cpu, got ${values.backend}`);
    }
    const hyper: Partial<LocalHyperParams> = {};
    if (values.batch) hyper.batchSize = positiveInt("batch", values.batch, 4096);
    if (values["sample-bytes"]) {
      hyper.sampleBytes = positiveInt(
        "sample-bytes",
        values["sample-bytes"],
        arch.contextLength + 1,
      );
      if (hyper.sampleBytes < 2) throw new RangeError("--sample-bytes must be at least 2");
    }
    if (values.lr) {
      const lr = decimalFlag("lr", values.lr);
      if (!(lr > 0 && lr < 1)) throw new RangeError(`--lr must be in (0, 1), got ${values.lr}`);
      hyper.learningRate = lr;
    }
    let minutes: number | undefined;
    if (values.minutes !== undefined) {
      minutes = decimalFlag("minutes", values.minutes);
      if (!(minutes > 0)) throw new RangeError(`--minutes must be positive, got ${values.minutes}`);
    }
    json = values["log-format"] === "json";
    options = {
      arch,
      trainers: positiveInt("trainers", values.trainers, MAX_TRAINERS),
      rounds: positiveInt("rounds", values.rounds),
      steps: positiveInt("steps", values.steps),
      seed,
      outDir: values.out,
      minutes,
      hyper,
      evalSamples: values["eval-samples"]
        ? positiveInt("eval-samples", values["eval-samples"])
        : undefined,
      corpusLimit: values["corpus-limit"]
        ? positiveInt("corpus-limit", values["corpus-limit"], 500)
        : undefined,
      backend: values.backend as TrainingBackend,
      keepRounds: values["keep-rounds"] ?? false,
    };
  } catch (error) {
    // What parseArgs refused (`--rouds`: did you mean --rounds?) or a flag's value did not pass.
    console.error(usageErrorText(flagProblem(error, Object.keys(TRAIN_OPTIONS)), TRAIN_USAGE));
    return EXIT_USAGE;
  }

  const view = json ? new JsonView() : new TextView(options, Deno.stdout.isTerminal());
  try {
    const result = await trainModel(options, (e) => view.event(e));
    const sample = await sampleText(result.dir, options.seed);
    view.done(result, sample);
    return 0;
  } catch (error) {
    view.fail(error as Error);
    return 1;
  }
}

/** One JSON object per event on stdout. */
class JsonView {
  event(e: TrainEvent): void {
    console.log(JSON.stringify(e));
  }
  done(r: TrainRunResult, sample: string): void {
    console.log(JSON.stringify({
      type: "done",
      cid: r.cid,
      dir: r.dir,
      params: r.params,
      startBitsPerByte: r.startBitsPerByte,
      heldOutBitsPerByte: r.heldOutBitsPerByte,
      rounds: r.rounds.length,
      elapsedMs: Math.round(r.elapsedMs),
      sample,
    }));
  }
  fail(error: Error): void {
    console.log(JSON.stringify({ type: "error", message: error.message }));
    console.error(`train: ${error.message}`);
  }
}

/** Readable progress: redrawn in place on a terminal, one line per round otherwise. */
class TextView {
  readonly #options: TrainRunOptions;
  readonly #tty: boolean;
  readonly #encoder = new TextEncoder();
  #drawn = 0;
  #lastDraw = 0;
  #head = "";
  #train: number[] = [];
  #heldOut: number[] = [];
  /** Held-out bits/byte of the start model: in the label, not the chart (it would flatten it). */
  #startBitsPerByte = NaN;
  #stepsDone: number[] = [];
  #round = 0;
  #tokensPerSecond = 0;
  #tokensPerStep = 0;
  #roundStart = performance.now();

  constructor(options: TrainRunOptions, tty: boolean) {
    this.#options = options;
    this.#tty = tty;
  }

  event(e: TrainEvent): void {
    switch (e.type) {
      case "start": {
        const a = this.#options.arch;
        this.#head = `training L=${a.numLayers} d=${a.hiddenSize} h=${a.numHeads} ` +
          `ctx=${a.contextLength} (${e.params.toLocaleString("en-US")} params): ` +
          `${e.trainers} trainers × ${e.steps} steps × ${e.rounds} rounds, ` +
          `${e.tokensPerStep} tokens/step; start ${e.startModel}`;
        this.#tokensPerStep = e.tokensPerStep;
        this.#startBitsPerByte = e.heldOutBitsPerByte;
        this.#stepsDone = Array(e.trainers).fill(0);
        this.#roundStart = performance.now();
        if (this.#tty) this.#redraw(true);
        else {
          console.log(this.#head);
          console.log(`start: held-out ${e.heldOutBitsPerByte.toFixed(3)} bits/byte`);
        }
        return;
      }
      case "step":
        this.#stepsDone[e.trainer] = e.step + 1;
        if (this.#tty) this.#redraw(false);
        return;
      case "round":
        this.#round = e.round + 1;
        this.#train.push(e.trainBitsPerByte);
        this.#heldOut.push(e.heldOutBitsPerByte);
        this.#tokensPerSecond = e.tokensPerSecond;
        this.#stepsDone.fill(0);
        this.#roundStart = performance.now();
        if (this.#tty) this.#redraw(true);
        else {
          console.log(
            `round ${e.round + 1}/${e.rounds}: train ${e.trainBitsPerByte.toFixed(3)} · ` +
              `held-out ${e.heldOutBitsPerByte.toFixed(3)} bits/byte · ` +
              `${Math.round(e.tokensPerSecond).toLocaleString("en-US")} tokens/s · ` +
              `${e.deltaBytes.toLocaleString("en-US")} delta bytes · ` +
              `${(e.elapsedMs / 1000).toFixed(0)} s · ${e.cid}`,
          );
        }
        return;
      case "stopped":
        if (!this.#tty) console.log(`stopped after ${e.rounds} rounds: --minutes reached`);
        else this.#head += ` · stopped after ${e.rounds} rounds (--minutes)`;
        return;
    }
  }

  #lines(): string[] {
    const o = this.#options;
    const total = o.trainers * o.steps;
    const done = this.#stepsDone.reduce((a, b) => a + b, 0);
    const barWidth = 30;
    const filled = Math.round((done / Math.max(1, total)) * barWidth);
    const seconds = (performance.now() - this.#roundStart) / 1000;
    const live = seconds > 0 ? (done * this.#tokensPerStep) / seconds : 0;
    const round = Math.min(this.#round + 1, o.rounds);
    const progress = this.#round >= o.rounds
      ? `rounds ${o.rounds}/${o.rounds} done`
      : `round ${round}/${o.rounds}  steps ${done}/${total} ` +
        `[${"█".repeat(filled)}${"░".repeat(barWidth - filled)}]`;
    return [
      this.#head,
      ...renderLossChart([
        {
          label: `held-out bits/byte after each round (start ${this.#startBitsPerByte.toFixed(2)})`,
          values: this.#heldOut,
        },
        { label: "train bits/byte (mean of each round's steps)", values: this.#train },
      ], { height: 5, width: 60 }),
      `${progress}  ` +
      `${Math.round(live || this.#tokensPerSecond).toLocaleString("en-US")} tokens/s`,
    ];
  }

  #redraw(force: boolean): void {
    const t = performance.now();
    if (!force && t - this.#lastDraw < 1000 / REDRAWS_PER_SECOND) return;
    this.#lastDraw = t;
    const lines = this.#lines();
    // Move to the first line drawn last time and clear to the end of the screen.
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}F\x1b[J` : "";
    Deno.stdout.writeSync(this.#encoder.encode(up + lines.join("\n") + "\n"));
    this.#drawn = lines.length;
  }

  done(r: TrainRunResult, sample: string): void {
    if (this.#tty) this.#redraw(true);
    console.log(
      [
        `model ${r.cid}`,
        `  dir        ${r.dir}`,
        `  held-out   ${r.heldOutBitsPerByte.toFixed(3)} bits/byte ` +
        `(start ${r.startBitsPerByte.toFixed(3)}; ${r.rounds.length} rounds, ` +
        `${(r.elapsedMs / 1000).toFixed(0)} s)`,
        `  sample     ${JSON.stringify(sample)}`,
        `serve it:    deno task start --model ${r.dir}`,
      ].join("\n"),
    );
  }

  fail(error: Error): void {
    console.error(`train: ${error.message}`);
  }
}
