/**
 * `cli.ts` keeps the promise of its usage text: a command that fails exits 1 with one line
 * saying why, never a stack trace; and a command loads only its own modules, so it asks for no
 * permission it does not use (`status` and `infer` run with `--allow-net` alone, `--help` with none).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { COMMANDS, main } from "../../cli.ts";
import { VeriflowError } from "../../protocols/errors.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Run `deno run <permissions> cli.ts <args>`; its exit code, stdout and stderr. */
async function cli(
  permissions: string[],
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: text(output.stdout), err: text(output.stderr) };
}

/** `err` is one line (a trailing newline aside) with no stack frame in it. */
function assertOneLine(err: string, what: string): void {
  assert.equal(err.trimEnd().split("\n").length, 1, `${what}: ${err}`);
  assert.doesNotMatch(err, /^\s+at /m, what);
}

Deno.test("a command that throws ends with one line, its code and message, and exit 1: no stack trace", async () => {
  const lines: string[] = [];
  const { error } = console;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  COMMANDS["throws-typed"] = () => Promise.reject(new VeriflowError("test_code", "it broke"));
  COMMANDS["throws-plain"] = () => Promise.reject(new TypeError("not a function"));
  try {
    assert.equal(await main(["throws-typed"]), 1);
    assert.equal(await main(["throws-plain", "--flag"]), 1);
  } finally {
    console.error = error;
    delete COMMANDS["throws-typed"];
    delete COMMANDS["throws-plain"];
  }
  assert.deepEqual(lines, ["error [test_code]: it broke", "error: not a function"]);
});

Deno.test("build-model and calibrate that cannot write or load say so in one line, exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "");
    for (
      const [args, says] of [
        [["build-model", "--out", join(file, "model")], /cannot write the model.*--out/],
        // --init: past the check that --data is a node's directory, to the load and the install.
        [["calibrate", "--init", "--model", join(dir, "none")], /cannot read model\.onnx.*--model/],
        [["calibrate", "--init", "--data", file], /cannot install the built-in model.*--data/],
      ] as const
    ) {
      const { code, err } = await cli(["-A"], [...args]);
      assert.equal(code, 1, `${args.join(" ")}: ${err}`);
      assertOneLine(err, args.join(" "));
      assert.match(err, /^error: /, args.join(" "));
      assert.match(err, says, args.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status needs only --allow-net: no other command's import asks for the environment", async () => {
  // Port 1 is one fetch refuses at once: no node answers, without waiting on the network.
  const { code, err } = await cli(["--allow-net"], ["status", "--url", "http://127.0.0.1:1"]);
  assert.equal(code, 1, err);
  assertOneLine(err, "status");
  assert.match(err, /no node answered at http:\/\/127\.0\.0\.1:1/);
  assert.doesNotMatch(err, /env access/);
});

Deno.test("infer needs only --allow-net too: it fails on the connection, not a permission", async () => {
  const { err } = await cli(["--allow-net"], ["infer", "--url", "ws://127.0.0.1:1", "hello"]);
  assert.doesNotMatch(err, /env access|NotCapable/);
  assert.match(err, /127\.0\.0\.1:1/);
});

Deno.test("cli.ts --help and a command's --help need no permission at all", async () => {
  const usage = await cli([], ["--help"]);
  assert.equal(usage.code, 0, usage.err);
  assert.match(usage.out, /^Usage: /m);
  const status = await cli([], ["status", "--help"]);
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, /^Usage: cli\.ts status/m);
});
