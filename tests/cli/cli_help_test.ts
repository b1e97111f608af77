/**
 * `cli.ts --help` of every command: its usage, exit 0, one header form for all.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../../cli.ts";
import { CALIBRATE_USAGE } from "../../cli/calibrate_help.ts";
import { LEDGER_USAGE } from "../../cli/ledger_help.ts";
import { START_HELP } from "../../cli/start_help.ts";
import { EXPORT_USAGE, IMPORT_USAGE, SHARE_USAGE } from "../../cli/exchange_help.ts";
import { GC_USAGE, GET_USAGE, LS_USAGE, PUT_USAGE } from "../../cli/storage_help.ts";

// ---- every command answers `--help` -------------------------------------------------------------
//
// Every command of `cli.ts` answers `--help` with its usage and exit 0, and the command
// list is all there; an unknown command exits 2.

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

// ---- every help starts `Usage: cli.ts <command>` ------------------------------------------------
//
// Every command's help starts the same way, `Usage: cli.ts <command> …`, as README runs them (`deno
// run -A cli.ts put README.md`) — not `usage: veriflow …` (there is no `veriflow` binary) nor a
// bare `usage: put …`.

Deno.test("each command's help starts with `Usage: cli.ts <command>`", () => {
  const helps: [string, string][] = [
    ["start", START_HELP],
    ["ledger", LEDGER_USAGE],
    ["calibrate", CALIBRATE_USAGE],
    ["put", PUT_USAGE],
    ["get", GET_USAGE],
    ["ls", LS_USAGE],
    ["gc", GC_USAGE],
    ["export", EXPORT_USAGE],
    ["import", IMPORT_USAGE],
    ["share", SHARE_USAGE],
  ];
  for (const [command, text] of helps) {
    assert.ok(text.startsWith(`Usage: cli.ts ${command} `), `${command}: ${text.split("\n")[0]}`);
  }
});

Deno.test("share's other forms are written as cli.ts runs them too", () => {
  const lines = SHARE_USAGE.split("\n");
  assert.ok(lines[1].trimStart().startsWith("cli.ts share revoke ID"), lines[1]);
  assert.ok(lines[2].trimStart().startsWith("cli.ts share open LINK"), lines[2]);
});

// ---- `build-model --help` -----------------------------------------------------------------------
//
// `build-model --help` is the one command help left that does not start as every other does
// (`Usage: cli.ts <command> …`, the section above): it says `usage: build-model …` (fixed:
// `cli/build_model_command.ts`'s `USAGE`).

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test({
  name: "build-model --help starts with `Usage: cli.ts build-model`, as every other command's help",
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
