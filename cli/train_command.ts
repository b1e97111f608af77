/**
 * `cli.ts train`: DiLoCo training on this machine ({@link trainModel}, `training/train_run.ts`),
 * driven from the command line.
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
 * @module
 */
import { parseArgs } from "node:util";
import {
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
} from "../node/number_flags.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";
import { renderLossChart } from "../training/loss_chart.ts";
import { TRAIN_USAGE } from "./train_help.ts";
import { isDenoError } from "./_command_support.ts";
import {
  GPT_MODEL_SIZES,
  type GptArchitecture,
  type GptModelSize,
} from "../inference/model_builder.ts";
import type { LocalHyperParams } from "../training/hyper_params.ts";
import type { TrainingBackend } from "../training/tf_backend.ts";
import {
  sampleText,
  type TrainEvent,
  trainModel,
  type TrainRunOptions,
  type TrainRunResult,
} from "../training/train_run.ts";

/** Redraws of the live view per second at most (step events arrive far faster). */
const REDRAWS_PER_SECOND = 8;
/** Most trainers one run starts (each is a worker with its own copy of model and corpus). */
const MAX_TRAINERS = 64;
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

/** The shortest sample: one byte of context and the next byte, its target. */
const MIN_SAMPLE_BYTES = 2;

/**
 * Why `dir` cannot hold the trained models (the OS's words), or undefined once it exists and a
 * file was written into it and removed: creates it if missing.
 */
async function outDirProblem(dir: string): Promise<string | undefined> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = await Deno.makeTempFile({ dir, prefix: ".write-check-" });
    await Deno.remove(probe);
    return undefined;
  } catch (error) {
    // Only what the file system answered is the operator's to fix; anything else is a bug.
    if (!isDenoError(error)) throw error;
    return error.message;
  }
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
      // A sample is the context and the byte after it (the next-byte target): at least 2.
      hyper.sampleBytes = wholeFlag(
        "sample-bytes",
        values["sample-bytes"],
        MIN_SAMPLE_BYTES,
        arch.contextLength + 1,
      );
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
    console.error(
      usageErrorText(flagProblem(error, Object.keys(TRAIN_OPTIONS), args), TRAIN_USAGE),
    );
    return EXIT_USAGE;
  }

  // Before a round is spent: the directory is first written after round 1 (review s82 cli, F3).
  const unwritable = await outDirProblem(options.outDir);
  if (unwritable !== undefined) {
    console.error(
      `error: cannot write the model to ${options.outDir}: ${unwritable}; give --out a ` +
        `directory you can write (it is created if missing)`,
    );
    return 1;
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
