/**
 * Review s50 (README: "Exit codes", "Calibrating a validator"; `cli.ts --help`:
 * `calibrate [--model DIR | --model-size S]`): `--model-size` and `--seed` pick a built-in model,
 * so beside `--model DIR` they have no effect. `calibrate` measured DIR and said nothing, so an
 * operator who asked for `--model-size small` got a profile of another model. It now refuses the
 * pair with exit 2 naming both flags, as `start` refuses `--model-size` beside `--model`, before
 * it loads or measures anything.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCalibrate } from "../../node/calibrate_command.ts";

Deno.test("calibrate refuses --model-size or --seed beside --model with exit 2 naming both, before loading", async () => {
  const data = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  try {
    // DIR does not exist: a command that went on to load it would exit 1 saying so.
    const model = join(data, "none");
    for (const extra of [["--model-size", "small"], ["--seed", "3"]]) {
      const lines: string[] = [];
      const { error } = console;
      console.error = (...a: unknown[]) => void lines.push(a.join(" "));
      let code: number;
      try {
        code = await runCalibrate(["--model", model, ...extra, "--data", data]);
      } finally {
        console.error = error;
      }
      const first = lines.join("\n").split("\n")[0];
      assert.equal(code, 2, `${extra.join(" ")}: ${first}`);
      assert.match(first, new RegExp(`^error: ${extra[0]} has no effect beside --model`));
    }
    // Either alone is still taken: a missing DIR is the work failing (1), not a bad flag.
    const { error } = console;
    console.error = () => {};
    try {
      assert.equal(await runCalibrate(["--model", model, "--data", data]), 1);
    } finally {
      console.error = error;
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
