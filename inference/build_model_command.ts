/**
 * The `build-model` command (`cli.ts build-model`, `tools/build_model.ts`): build Veriflow's
 * built-in model (or the reference one-shot MLP) into a directory.
 *
 * ```
 * deno run -A cli.ts build-model --size tiny|small --seed N --out DIR
 * deno run -A tools/build_model.ts --kind mlp --seed N --out DIR
 * ```
 *
 * Prints one JSON line: `{ cid, dir, sizeBytes, ms }`. The same size and seed always give the
 * same bytes, hence the same CID, on every machine.
 *
 * @module
 */
import { TRAINED_BUILTIN_MODELS } from "./builtin_model.ts";
import { parseArgs } from "node:util";
import {
  buildGptModel,
  buildMlpModel,
  type BuiltModel,
  DEFAULT_MODEL_SEED,
  GPT_MODEL_SIZES,
  type GptModelSize,
} from "./model_builder.ts";

const USAGE = `usage: build-model [--kind gpt|mlp] [--size tiny|small] [--seed N] --out DIR
(a trained size such as brown is installed from its checked-in weights, not built)
  --kind   gpt (decoder text model, default) or mlp (one-shot tensor model)
  --size   ${Object.keys(GPT_MODEL_SIZES).join(" | ")} (default tiny; gpt only)
  --seed   weight seed, an integer (default ${DEFAULT_MODEL_SEED})
  --out    output directory (created)`;

/**
 * Parse the command arguments and build; returns the process exit code (0 ok, 1 the directory
 * cannot be written, 2 usage).
 *
 * @param args Arguments after the command name.
 */
export async function runBuildModel(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        kind: { type: "string", default: "gpt" },
        size: { type: "string", default: "tiny" },
        seed: { type: "string", default: String(DEFAULT_MODEL_SEED) },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const seed = Number(values.seed);
  if (
    !values.out || !Number.isSafeInteger(seed) || !(values.size in GPT_MODEL_SIZES) ||
    !["gpt", "mlp"].includes(values.kind)
  ) {
    console.error(USAGE);
    return 2;
  }
  const trained = TRAINED_BUILTIN_MODELS[values.size as GptModelSize];
  if (values.kind === "gpt" && trained !== undefined) {
    // Its weights come from training, not from a seed: building would give a random model
    // under the trained one's name.
    console.error(
      `${values.size} is a trained model: the node installs the checked-in weights ` +
        `(CID ${trained.cid}); to reproduce them: ${trained.command}`,
    );
    return 2;
  }
  const started = performance.now();
  let built: BuiltModel;
  try {
    built = values.kind === "mlp"
      ? await buildMlpModel({ outDir: values.out, seed })
      : await buildGptModel({ size: values.size as GptModelSize, seed, outDir: values.out });
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
