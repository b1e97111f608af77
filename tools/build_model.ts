/**
 * Build Veriflow's built-in model (or the reference one-shot MLP) into a directory.
 *
 * ```
 * deno run -A tools/build_model.ts --size tiny|small --seed N --out DIR
 * deno run -A tools/build_model.ts --kind mlp --seed N --out DIR
 * ```
 *
 * Prints one JSON line: `{ cid, dir, sizeBytes, ms }`. Same command as `cli.ts build-model`.
 *
 * @module
 */
import { runBuildModel } from "../cli/build_model_command.ts";

if (import.meta.main) Deno.exit(await runBuildModel(Deno.args));
