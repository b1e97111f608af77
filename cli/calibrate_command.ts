/**
 * `cli.ts calibrate`: measure the honest noise of a model on this machine and store the
 * profile where the node's validator finds it, `<dataDir>/calibration/<cid>.json`
 * (`proof/calibration.ts`). Run it once per model and machine, on the machine that validates,
 * with the thread count the node runs the model with.
 *
 * ```sh
 * deno run -A cli.ts calibrate                       # the built-in default model, into .veriflow
 * deno run -A cli.ts calibrate --model-size small --jobs 48
 * deno run -A cli.ts calibrate --model ./my-export --data /srv/veriflow
 * ```
 *
 * Prints one line per variant measured and then a JSON summary: `{ model, path, ms, classes }`
 * with the noise scales and the tolerances derived from them per precision class. A profile
 * that fails its own self-check (the derived tolerances flag the calibration's honest
 * generations) is not saved, and the command exits 1 saying which class failed and how.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { IDENTITY_FILE } from "../node/node_identity.ts";
import { DataDirNotDirectoryError } from "../node/data_dir_lock.ts";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { DEFAULT_MODEL_SEED } from "../inference/model_builder.ts";
import { ModelLoadError } from "../inference/errors.ts";
import { calibrateModel, type CalibrationOptions } from "../proof/calibrate_model.ts";
import {
  type CalibrationProfile,
  CalibrationStore,
  classCoverageNote,
  noiseProfileProblem,
  tolerancesFor,
} from "../proof/calibration.ts";
import { JOB_PRECISIONS, type JobPrecision } from "../protocols/job.ts";
import { parseWholeNumber } from "../node/number_flags.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import type { ExecutionProvider } from "../inference/_session.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import { CALIBRATE_USAGE } from "./calibrate_help.ts";
import {
  EXIT_INTERRUPTED,
  InterruptedError,
  type OnStopSignal,
  processStopSignals,
} from "./_command_support.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";

/**
 * Exit status when the measured profile fails its own self-check (nothing is saved), or the
 * model cannot be loaded or installed, or the profile written.
 */
const EXIT_FAILURE = 1;

/** Whether `error` is the system's (a file, a permission), not a bug: said in one line. */
function isSystemError(error: unknown): error is Error {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}

/** The system's reason without its errno and path: "No such file or directory". */
function osReason(error: unknown): string {
  return error instanceof Error
    ? error.message.replace(/\s*\(os error \d+\)[\s\S]*$/, "")
    : String(error);
}

/** What marks a node's data directory: its key, store or ledger (any one of them). */
const NODE_DATA_MARKS = [IDENTITY_FILE, "store", "ledger"] as const;

/**
 * Why `dataDir` is not a node's data directory (none of {@link NODE_DATA_MARKS} in it, or it
 * names a file), or undefined when it is one. The profile is read only from a node's directory;
 * `--init` calibrates into a new one (a node not started yet).
 */
async function notNodeDataDir(dataDir: string): Promise<string | undefined> {
  const stat = await Deno.stat(dataDir).catch((error) => {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw error;
  });
  if (stat !== undefined && !stat.isDirectory) {
    return new DataDirNotDirectoryError(dataDir, { created: false }).message;
  }
  for (const mark of NODE_DATA_MARKS) {
    if (stat !== undefined && await Deno.lstat(join(dataDir, mark)).then(() => true, () => false)) {
      return undefined;
    }
  }
  return `no node's data directory at ${resolve(dataDir)} (no ${NODE_DATA_MARKS.join(", ")}): ` +
    `the validator reads profiles from its node's directory only; check --data, then ` +
    `VERIFLOW_DATA_DIR, then VERIFLOW_CONFIG's dataDir (the first one set is used), or pass ` +
    `--init to calibrate into a new directory for a node to start there`;
}

/**
 * `install()` (the built-in model), with a stop signal held off until it ends: a Ctrl-C that
 * killed the install left its `.staging-*` directory (41 MB for small) for the next build to
 * sweep an hour later (review s75). The install ends in moments (the model's bytes are computed
 * without yielding, then written and renamed into place), and whole: a model that verifies, or
 * its staging directory removed by `ensureBuiltinModel` on failure. After it, a signal that came
 * meanwhile stops the command with {@link InterruptedError} (exit 130) before anything is
 * measured; the installed model is kept, a cache for the next run.
 */
async function installHoldingSignals(
  install: () => Promise<string>,
  onStopSignal: OnStopSignal,
): Promise<string> {
  let stopped = false;
  const stopListening = onStopSignal(() => {
    stopped = true;
  });
  try {
    const dir = await install();
    if (stopped) {
      throw new InterruptedError(
        `stopped once the built-in model was installed (${dir}, kept for the next run); ` +
          `nothing was measured or saved`,
      );
    }
    return dir;
  } catch (error) {
    if (stopped && !(error instanceof InterruptedError)) {
      throw new InterruptedError(
        `stopped while the built-in model installed, which failed and left nothing: ` +
          `${error instanceof Error ? error.message : String(error)}`,
      );
    }
    throw error;
  } finally {
    stopListening();
  }
}

/** What {@link runCalibrate} runs besides its arguments. */
export interface RunCalibrateOptions {
  /** Stop signals while the built-in model installs (default: the process's). */
  onStopSignal?: OnStopSignal;
  /** The measurement (default {@link calibrateModel}); tests substitute their own. */
  calibrate?: (dir: string, options: CalibrationOptions) => Promise<CalibrationProfile>;
}

/**
 * Parse the command arguments, calibrate, and store the profile; returns the exit code (0 ok,
 * 1 the profile failed its self-check or is not a plausible measurement, and was not saved, or
 * the model could not be installed or loaded, or the profile written: one line says why,
 * 2 usage).
 *
 * @param args Arguments after the command name.
 * @param options What to run (tests).
 */
export async function runCalibrate(
  args: string[],
  options: RunCalibrateOptions = {},
): Promise<number> {
  let values;
  const flags = {
    model: { type: "string" },
    // No defaults here: given beside --model they are refused, so their absence must show.
    "model-size": { type: "string" },
    seed: { type: "string" },
    data: { type: "string" },
    jobs: { type: "string", default: "24" },
    tokens: { type: "string", default: "64" },
    threads: { type: "string" },
    "reference-threads": { type: "string" },
    precisions: { type: "string", default: JOB_PRECISIONS.join(",") },
    cuda: { type: "boolean" },
    webgpu: { type: "boolean" },
    json: { type: "boolean" },
    init: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  } as const;
  try {
    ({ values } = parseArgs({ args, strict: true, options: flags }));
  } catch (error) {
    // A mistyped flag with the one it is near (`--job` → `--jobs`), as the other commands say it.
    console.error(
      usageErrorText(flagProblem(error, Object.keys(flags), args), CALIBRATE_USAGE),
    );
    return EXIT_USAGE;
  }
  if (values.help) {
    console.log(CALIBRATE_USAGE);
    return 0;
  }
  const dataDir = await commandDataDir(values.data);
  // Decimal digits only, as `start` reads numbers: Number() takes "" as 0 and "1e3" as 1000.
  const whole = (text: string | undefined) => {
    const n = text === undefined ? undefined : parseWholeNumber(text);
    return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
  };
  const positive = (text: string | undefined) => {
    const n = whole(text);
    return n !== undefined && n > 0 ? n : undefined;
  };
  const jobs = positive(values.jobs);
  const tokens = positive(values.tokens);
  const seed = whole(values.seed ?? String(DEFAULT_MODEL_SEED));
  const threads = values.threads?.split(",").map(positive);
  const referenceThreads = values["reference-threads"] === undefined
    ? undefined
    : positive(values["reference-threads"]);
  const precisions = values.precisions.split(",") as JobPrecision[];
  // The first bad flag is named with what it takes, then the usage (as parseArgs' own errors).
  const bad = (line: string) => {
    console.error(usageErrorText(line, CALIBRATE_USAGE));
    return EXIT_USAGE;
  };
  if (jobs === undefined) return bad(`--jobs expects a positive integer, got "${values.jobs}"`);
  if (tokens === undefined) {
    return bad(`--tokens expects a positive integer, got "${values.tokens}"`);
  }
  if (seed === undefined) {
    return bad(`--seed expects a non-negative integer, got "${values.seed}"`);
  }
  if (threads?.some((n) => n === undefined)) {
    return bad(`--threads expects positive integers separated by commas, got "${values.threads}"`);
  }
  if (values["reference-threads"] !== undefined && referenceThreads === undefined) {
    return bad(
      `--reference-threads expects a positive integer, got "${values["reference-threads"]}"`,
    );
  }
  const unknown = precisions.find((p) => !JOB_PRECISIONS.includes(p));
  if (unknown !== undefined) {
    return bad(`--precisions expects some of ${JOB_PRECISIONS.join(",")}, got "${unknown}"`);
  }
  const modelSize = values["model-size"] ?? "brown";
  if (!["tiny", "small", "brown"].includes(modelSize)) {
    return bad(`--model-size expects brown, tiny or small, got "${modelSize}"`);
  }
  // Both pick a built-in model: beside --model they would be ignored, and the profile would be
  // another model's than the operator asked for (start refuses --model-size beside --model too).
  for (const flag of ["model-size", "seed"] as const) {
    if (values.model !== undefined && values[flag] !== undefined) {
      return bad(
        `--${flag} has no effect beside --model: it picks a built-in model, --model DIR ` +
          "another; give one of the two",
      );
    }
  }
  // Before anything is installed or saved: a mistyped --data got a new directory with a model and
  // a profile no node reads, and was told the validator would use it (review s75 F3).
  if (values.init !== true) {
    const problem = await notNodeDataDir(dataDir);
    if (problem !== undefined) {
      console.error(`error: ${problem}`);
      return EXIT_FAILURE;
    }
  }
  let dir = values.model;
  if (dir === undefined) {
    const modelsDir = join(dataDir, "models");
    try {
      dir = await installHoldingSignals(
        () => ensureBuiltinModel(modelsDir, modelSize as "tiny" | "small" | "brown", seed),
        options.onStopSignal ?? processStopSignals,
      );
    } catch (error) {
      if (error instanceof InterruptedError) {
        console.error(`interrupted: ${error.message}`);
        return EXIT_INTERRUPTED;
      }
      // A seed for a trained size is a flag the model does not take.
      if (error instanceof RangeError) return bad(error.message);
      if (!isSystemError(error)) throw error;
      const reason = osReason(error);
      console.error(
        `error: cannot install the built-in model into ${modelsDir}: ${reason}; give --data a ` +
          `directory you can write (or --model an exported model directory)`,
      );
      return EXIT_FAILURE;
    }
  }
  const providers: ExecutionProvider[] = [
    "cpu",
    ...(values.cuda ? ["cuda" as const] : []),
    ...(values.webgpu ? ["webgpu" as const] : []),
  ];
  const started = performance.now();
  let profile: CalibrationProfile;
  try {
    profile = await (options.calibrate ?? calibrateModel)(dir, {
      jobs,
      maxTokens: tokens,
      threads: threads as number[] | undefined,
      precisions,
      executionProviders: providers,
      reference: { threads: referenceThreads },
      onVariant: (name) =>
        console.error(
          `[${Math.round((performance.now() - started) / 1000)} s] measuring ${name}`,
        ),
    });
  } catch (error) {
    if (!(error instanceof ModelLoadError)) throw error;
    const cause = error.cause === undefined ? "" : ` (${osReason(error.cause)})`;
    console.error(
      `error: ${error.message}${cause}; give --model an exported model directory (model.onnx, ` +
        `tokenizer.json, config.json), or leave --model out for the built-in model`,
    );
    return EXIT_FAILURE;
  }
  // A profile whose tolerances flag the calibration's own honest work would have the validator
  // slash honest workers; one with implausible figures would have it pay cheats. Neither is kept.
  const problems = Object.entries(profile.precisions).flatMap(([precision, noise]) => {
    const problem = noise && noiseProfileProblem(noise);
    return problem ? [`${precision}: ${problem}`] : [];
  });
  if (problems.length > 0) {
    console.error(
      `calibration of ${profile.model} failed; profile not saved (any earlier one is kept):\n` +
        problems.map((p) => `  ${p}`).join("\n") +
        `\nthe tolerances derived from it would misjudge workers on this machine. If only ` +
        `fp16 or bf16 failed, --precisions can leave it out (fp32,bf16 or fp32): a validator ` +
        `checks a job of a class left out under the nearest coarser class saved (fp16 under ` +
        `bf16), and with none (fp32 alone) pays no fp16 or bf16 receipt it challenges ` +
        `(inconclusive / class_uncalibrated); otherwise report it (a safety factor in ` +
        `proof/calibration.ts is too thin for this model)`,
    );
    return EXIT_FAILURE;
  }
  const calibrationDir = join(dataDir, "calibration");
  let path: string;
  try {
    path = await (await CalibrationStore.open(calibrationDir)).save(profile);
  } catch (error) {
    if (!isSystemError(error)) throw error;
    console.error(
      `error: cannot save the profile in ${calibrationDir}: ${osReason(error)}; give --data a ` +
        `directory you can write and calibrate again`,
    );
    return EXIT_FAILURE;
  }
  const classes: Record<string, unknown> = {};
  for (const precision of precisions) {
    const noise = profile.precisions[precision];
    if (!noise) continue;
    const tol = tolerancesFor(profile, precision);
    classes[precision] = {
      variants: noise.variants.length,
      positions: noise.positions,
      logProbRms: noise.logProbRms,
      projectionRms: noise.projectionRms,
      logitEps: tol.sampling.logitEps,
      selfCheck: { flagged: noise.flagged, samplingFailures: noise.samplingFailures },
    };
  }
  const ms = Math.round(performance.now() - started);
  if (values.json) {
    console.log(JSON.stringify({ model: profile.model, path, ms, classes }));
    return 0;
  }
  console.log(`calibrated ${profile.model} in ${(ms / 1000).toFixed(1)} s → ${path}`);
  for (const [precision, c] of Object.entries(classes)) {
    const k = c as {
      variants: number;
      positions: number;
      logProbRms: number;
      logitEps: number;
      selfCheck: { flagged: number; samplingFailures: number };
    };
    console.log(
      `  ${precision.padEnd(4)} ${k.variants} variants, ${k.positions} positions: honest noise ` +
        `${k.logProbRms.toExponential(1)} nats (RMS), sampling tolerance ε ${
          k.logitEps.toFixed(4)
        }; self-check ${k.selfCheck.flagged} flagged, ${k.selfCheck.samplingFailures} ` +
        `sampling failures`,
    );
  }
  // A class left out (`--precisions`): what the validator does with its jobs (review s80, F1).
  const missing = classCoverageNote(profile);
  if (missing !== undefined) console.log(`note: ${missing}`);
  console.log("the validator uses it from its next start (start or restart the node)");
  return 0;
}
