/**
 * The `build-model` command (`cli.ts build-model`, `tools/build_model.ts`): build Veriflow's
 * built-in model (or the reference one-shot MLP) into a directory.
 *
 * ```
 * deno run -A cli.ts build-model --size tiny|small --seed N --out DIR
 * deno run -A tools/build_model.ts --kind mlp --seed N --out DIR
 * ```
 *
 * Prints one JSON line: `{ cid, dir, sizeBytes, ms }`, `cid` the model's id (`model_identity.ts`).
 * The same size and seed always give the same bytes, hence the same id, on every machine.
 *
 * @module
 */
import { TRAINED_BUILTIN_MODELS } from "../inference/builtin_model.ts";
import { parseArgs } from "node:util";
import { parseWholeNumber } from "../node/number_flags.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";
import {
  buildGptModel,
  buildMlpModel,
  type BuiltModel,
  DEFAULT_MODEL_SEED,
  GPT_MODEL_SIZES,
  type GptModelSize,
} from "../inference/model_builder.ts";

/** The sizes built from a seed; a trained one (brown) is installed from its weights instead. */
const BUILT_SIZES = Object.keys(GPT_MODEL_SIZES).filter((size) =>
  TRAINED_BUILTIN_MODELS[size as GptModelSize] === undefined
);

/** The size built when `--size` is not given. */
const DEFAULT_BUILD_SIZE = "tiny";

const USAGE = `Usage: cli.ts build-model [--kind gpt|mlp] [--size tiny|small] [--seed N] --out DIR
(a trained size such as brown is installed from its checked-in weights, not built)
  --kind   gpt (decoder text model, default) or mlp (one-shot tensor model)
  --size   ${BUILT_SIZES.join(" | ")} (default tiny; gpt only: refused with --kind mlp)
  --seed   weight seed, an integer (default ${DEFAULT_MODEL_SEED})
  --out    output directory (created)

Examples:
  deno run -A cli.ts build-model --out models/tiny
  deno run -A cli.ts build-model --size small --seed 1 --out models/small`;

/** `build-model`'s flags, as parseArgs takes them (and as a mistyped flag is matched against). */
const BUILD_MODEL_OPTIONS = {
  kind: { type: "string", default: "gpt" },
  // No default here: a --size given with --kind mlp, which has one shape, is refused.
  size: { type: "string" },
  seed: { type: "string", default: String(DEFAULT_MODEL_SEED) },
  out: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parse the command arguments and build; returns the process exit code (0 ok, 1 the directory
 * cannot be written, 2 usage).
 *
 * @param args Arguments after the command name.
 */
export async function runBuildModel(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: BUILD_MODEL_OPTIONS }));
  } catch (error) {
    // `--sed` is told `did you mean --seed?`, as every command tells a mistyped flag.
    console.error(
      usageErrorText(flagProblem(error, Object.keys(BUILD_MODEL_OPTIONS), args), USAGE),
    );
    return EXIT_USAGE;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // The first bad flag is named with what it takes, then the usage (as calibrate's). The seed in
  // decimal digits only, as `start` reads numbers: Number() takes "" as 0 and "0x10" as 16.
  const bad = (line: string) => {
    console.error(usageErrorText(line, USAGE));
    return EXIT_USAGE;
  };
  const seed = parseWholeNumber(values.seed);
  if (!["gpt", "mlp"].includes(values.kind)) {
    return bad(`--kind expects gpt or mlp, got "${values.kind}"`);
  }
  if (values.kind === "mlp" && values.size !== undefined) {
    return bad(`--size is for --kind gpt: the mlp model has one shape, got --size ${values.size}`);
  }
  const size = values.size ?? DEFAULT_BUILD_SIZE;
  if (!Object.hasOwn(GPT_MODEL_SIZES, size)) {
    return bad(`--size expects ${BUILT_SIZES.join(" or ")}, got "${size}"`);
  }
  if (seed === undefined || !Number.isSafeInteger(seed)) {
    return bad(`--seed expects a non-negative integer, got "${values.seed}"`);
  }
  if (!values.out) return bad("--out DIR is missing: the directory to write the model into");
  const trained = TRAINED_BUILTIN_MODELS[size as GptModelSize];
  if (values.kind === "gpt" && trained !== undefined) {
    // Its weights come from training, not from a seed: building would give a random model
    // under the trained one's name.
    return bad(
      `${size} is a trained model: the node installs the checked-in weights ` +
        `(model.onnx CID ${trained.cid}); to reproduce them: ${trained.command}`,
    );
  }
  const started = performance.now();
  let built: BuiltModel;
  try {
    built = values.kind === "mlp"
      ? await buildMlpModel({ outDir: values.out, seed })
      : await buildGptModel({ size: size as GptModelSize, seed, outDir: values.out });
  } catch (error) {
    // A directory that cannot be written is the operator's to fix; anything else is a bug.
    if (!Object.values(Deno.errors).some((type) => error instanceof type)) throw error;
    console.error(
      `error: cannot write the model to ${values.out}: ${(error as Error).message}; give --out a ` +
        `directory you can write (it is created if missing)`,
    );
    return 1;
  }
  console.log(JSON.stringify({
    cid: built.cid,
    dir: built.dir,
    sizeBytes: built.sizeBytes,
    ms: Math.round(performance.now() - started),
  }));
  return 0;
}
