/**
 * Every command of `cli.ts` answers `--help` with its usage and exit 0, and the command
 * list is all there; an unknown command exits 2.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../../cli.ts";

const REQUIRED = [
  "start",
  "demo",
  "infer",
  "put",
  "get",
  "ls",
  "gc",
  "keygen",
  "status",
  "calibrate",
  "model",
  "bench",
];

/** Run `fn` with console.log and console.error captured. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  const write = Deno.stdout.write;
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  // Some commands write to stdout directly (infer streams its tokens that way).
  Deno.stdout.write = (bytes: Uint8Array) => {
    lines.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  };
  try {
    return { code: await fn(), text: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    Deno.stdout.write = write;
  }
}

Deno.test("every CLI command answers --help with a usage line and exit 0", async () => {
  for (const name of REQUIRED) assert.ok(name in COMMANDS, `cli.ts has ${name}`);
  for (const [name, run] of Object.entries(COMMANDS)) {
    const args = name === "model" ? ["build", "--help"] : ["--help"];
    const { code, text } = await captured(() => run(args));
    assert.equal(code, 0, `${name} --help exits 0`);
    assert.match(text, /usage/i, `${name} --help prints its usage`);
  }
});

Deno.test("the commands this issue added give examples and their exit codes in --help", async () => {
  for (const name of ["start", "status", "keygen", "demo", "bench"]) {
    const { text } = await captured(() => COMMANDS[name](["--help"]));
    assert.match(text, /Examples:/, name);
    assert.match(text, /Exit codes:/, name);
  }
});

Deno.test("cli.ts: an unknown command exits 2 with the usage", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli.ts", import.meta.url).pathname, "nosuch"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /unknown command: nosuch[\s\S]*status/);
});
