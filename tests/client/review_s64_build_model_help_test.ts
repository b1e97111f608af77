/**
 * Review at stop 64: `build-model --help` is the one command help left that does not start as
 * every other does (`Usage: cli.ts <command> …`, review_s60_ux2_help_headers_test.ts): it says
 * `usage: build-model …` (fixed: `inference/build_model_command.ts`'s `USAGE`).
 */
import assert from "node:assert/strict";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test({
  name:
    "review s64: build-model --help starts with `Usage: cli.ts build-model`, as every other command's help",
  fn: async () => {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "build-model", "--help"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const first = new TextDecoder().decode(stdout).split("\n")[0];
    assert.ok(first.startsWith("Usage: cli.ts build-model "), first);
  },
});
