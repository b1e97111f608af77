/**
 * `cli.ts` as an operator meets it: every command's `--help`, its errors on a bad command line (one
 * `error: …` line, exit 2, the usage or where to read it), a mistyped command or flag answered with
 * the name it is near, and the permissions a newcomer would give.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { COMMANDS, main } from "../../cli.ts";
import { runInfer } from "../../cli/infer_command.ts";
import { assert as assertTrue, assertEquals } from "../server/_assert.ts";
import { runStatus } from "../../cli/status_command.ts";
import { runLedger } from "../../cli/ledger_command.ts";

// `cli.ts` as a newcomer following the README runs it, with the permissions they would give: every
// command's `--help` prints its usage with examples of that command and exits 0 with no permission
// at all; `infer` and `status` run with `--allow-net` alone say, when the node asks for a key, that
// `VERIFLOW_API_KEY` cannot be read without `--allow-env=VERIFLOW_API_KEY`; and `get` of a CID the
// store does not hold says what to do next.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a `deno run` of `cli.ts` gave. */
interface Ran {
  code: number;
  out: string;
  err: string;
}

/**
 * Run `deno run <permissions> cli.ts <args>`. `env` is the child's whole environment when given
 * (else the test's, with `NO_COLOR`).
 */
async function cli(
  permissions: string[],
  args: string[],
  env?: Record<string, string>,
): Promise<Ran> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: env ?? { NO_COLOR: "1" },
    clearEnv: env !== undefined,
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: text(output.stdout), err: text(output.stderr) };
}

/** The test's environment with `VERIFLOW_API_KEY` set to `key`, or without it (`undefined`). */
function envWithKey(key: string | undefined): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.VERIFLOW_API_KEY;
  return key === undefined ? env : { ...env, VERIFLOW_API_KEY: key };
}

/** `fn` over `items`, `width` at a time: the machine is small and shared. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>) {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    results.push(...await Promise.all(items.slice(i, i + width).map(fn)));
  }
  return results;
}

Deno.test("every command's --help prints its usage and exits 0 with no permission at all", async () => {
  const names = Object.keys(COMMANDS);
  const runs = await inBatches(names, 3, (name) => cli([], [name, "--help"]));
  const failed = names.flatMap((name, i) => {
    const { code, out, err } = runs[i];
    return code === 0 && /usage/i.test(out) && err === "" ? [] : [`${name}: exit ${code} ${err}`];
  });
  assert.deepEqual(failed, [], "commands whose --help needed a permission or failed");
});

Deno.test("every command's --help has an Examples block of that very command, as cli.ts --help promises", async () => {
  const usage = await cli([], ["--help"]);
  assert.match(usage.out, /Each command takes --help, with examples\./);
  const names = Object.keys(COMMANDS);
  const runs = await inBatches(names, 3, (name) => cli([], [name, "--help"]));
  const missing = names.filter((name, i) => {
    const block = /^Examples?:\n((?: {2}.*\n?)+)/m.exec(runs[i].out)?.[1] ?? "";
    // Each example line runs the command itself: `cli.ts NAME` (start's: `deno task start`).
    const runsIt = new RegExp(`(cli\\.ts|deno task) ${name}\\b`);
    return !block.split("\n").some((line) => runsIt.test(line));
  });
  assert.deepEqual(missing, [], "commands whose --help gives no example of themselves");
});

/**
 * A node's edge that requires an API key and was given none it accepts: 401 to every request,
 * the WebSocket upgrade included, with a Veriflow error body (what `status` reads).
 */
function keyRequiringNode(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () =>
    Response.json(
      { error: { code: "api_key_required", message: "this node requires an API key" } },
      { status: 401 },
    ));
}

Deno.test("infer and status run with --allow-net alone say that VERIFLOW_API_KEY needs --allow-env=VERIFLOW_API_KEY when the node answers 401; unset, they ask for a key as before", async () => {
  const node = keyRequiringNode();
  const port = node.addr.port;
  try {
    const commands = [
      ["infer", "--url", `ws://127.0.0.1:${port}`, "--max-tokens", "5", "hi"],
      ["status", "--url", `http://127.0.0.1:${port}`],
    ];
    for (const args of commands) {
      const what = args[0];
      // The README's promise: --allow-net is all these commands need; the key is set but unread.
      const unread = await cli(["--allow-net"], args, envWithKey("0123456789abcdefXYZ"));
      assert.equal(unread.code, 1, `${what}: ${unread.err}`);
      assert.match(unread.err, /401/, what);
      assert.match(unread.err, /--allow-env=VERIFLOW_API_KEY/, `${what}: ${unread.err}`);
      // Readable and not set: the old hint, with no word of permissions.
      const unset = await cli(
        ["--allow-net", "--allow-env=VERIFLOW_API_KEY"],
        args,
        envWithKey(undefined),
      );
      assert.equal(unset.code, 1, `${what}: ${unset.err}`);
      assert.match(unset.err, /\(pass --api-key KEY or set VERIFLOW_API_KEY\)/, what);
      assert.doesNotMatch(unset.err, /allow-env/, what);
    }
  } finally {
    await node.shutdown();
  }
});

Deno.test("get of a CID the store does not hold exits 1 saying what to do next: check the CID and --data, or read it through a running node", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const file = join(dir, "a.txt");
    await Deno.writeTextFile(file, "held\n");
    const put = await cli(["-A"], ["put", "--init", "--data", data, file]);
    assert.equal(put.code, 0, put.err);
    // A well-formed CID of bytes nobody put.
    const absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    const get = await cli(["-A"], ["get", absent, "--data", data]);
    assert.equal(get.code, 1, get.err);
    assert.equal(get.err.trimEnd().split("\n").length, 1, get.err);
    assert.match(get.err, /^error \[chunk_not_found\]: no object .* in the local store; /);
    assert.match(get.err, new RegExp(`check the CID.*--data ${data}.*cli\\.ts ls --data ${data}`));
    assert.match(get.err, new RegExp(`running node.*/v1/files/${absent}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Every `cli.ts` command as a demanding operator meets it: run with no arguments where it needs
// some, with a flag it does not take, with a flag missing its value, with `--help`, with a file
// that is not there, and against a node that is not running. Each mistake is said in one `error: …`
// line first on stderr (a storage failure may carry its code, `error [code]: …`), and, for a bad
// command line, the command's usage or where to read it (on that line, for the commands that keep
// such an error to one line: `demo`, `bench`, a storage flag's value); the exit code is 2 for a bad
// command line and 1 for work that failed; stdout stays empty; and no stack trace is ever shown.
// `--help` prints the usage on stdout and exits 0.
//
// Also `infer -`: the prompt is read from stdin, as `put -` and `import -` read theirs, not sent
// as the one-character prompt "-".

/** Run `cli.ts args` in `cwd` (so a default `.veriflow` lands in a temporary directory). */
async function cliErrors(args: string[], cwd: string, stdin = ""): Promise<Ran> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: text(output.stdout), err: text(output.stderr) };
}

/** A port on 127.0.0.1 that nothing listens on: bound by the OS, then let go. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** How `--help` ends. */
const HELP = 0;

/** How a mistake on the command line ends. */
const USAGE = 2;

/** `model build` is `build-model`, and shows its usage. */
const BUILD_MODEL_USAGE = /Usage: cli\.ts build-model\b/;

/** How work that failed ends. */
const FAILED = 1;

/**
 * One row: the command line, the exit code it must end with, and, for a bad command line whose
 * error line says itself what to fix, that hint (else the usage, or where to read it).
 */
type Case = [args: string[], code: typeof HELP | typeof USAGE | typeof FAILED, hint?: RegExp];

/** The rows, for a scratch directory `dir` and a `port` nothing listens on. */
function cases(dir: string, port: number): Case[] {
  const missing = join(dir, "not-there");
  const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
  return [
    ...Object.keys(COMMANDS).map((name): Case => [[name, "--help"], HELP]),
    // start with no arguments runs a node: nothing to refuse.
    [["start", "--bogus"], USAGE],
    [["start", "--port"], USAGE],
    [
      ["start", "--config", join(missing, "veriflow.json")],
      USAGE,
      /check the path given to --config/,
    ],
    [["infer"], USAGE],
    [["infer", "--bogus", "hi"], USAGE],
    [["infer", "hi", "--max-tokens"], USAGE],
    [["infer", "--max-tokens", "0", "hi"], USAGE],
    [["infer", "--url", "ftp://127.0.0.1", "hi"], USAGE],
    [["infer", "--url", `ws://127.0.0.1:${port}`, "hi"], FAILED],
    [["put"], USAGE],
    [["put", "--bogus", "x"], USAGE],
    [["put", "x", "--name"], USAGE],
    [["put", "--init", "--data", dir, "a", "b"], USAGE],
    [["put", "--init", "--data", dir, missing], FAILED],
    [["get"], USAGE],
    [["get", "--bogus", cid], USAGE],
    [["get", cid, "-o"], USAGE],
    [["get", "--data", missing, cid], FAILED],
    // ls, gc and keygen with no arguments work on ./.veriflow: nothing to refuse.
    [["ls", "--bogus"], USAGE],
    [["ls", "--data"], USAGE],
    [["ls", "extra"], USAGE],
    [["ls", "--data", missing], FAILED],
    [["gc", "--bogus"], USAGE],
    [["gc", "--grace-ms"], USAGE],
    [["gc", "--data", missing], FAILED],
    [["export"], USAGE],
    [["export", "--bogus", cid], USAGE],
    [["export", cid, "-o"], USAGE],
    [["export", "--data", missing, cid], FAILED],
    [["import"], USAGE],
    [["import", "--bogus", "x"], USAGE],
    [["import", "x", "--data"], USAGE],
    [["import", "--init", "--data", dir, missing], FAILED],
    [["share"], USAGE],
    [["share", "--bogus", cid], USAGE],
    [["share", cid, "--url"], USAGE],
    [["share", "revoke"], USAGE],
    [["share", "open"], USAGE],
    [["share", cid, "--expires", "0s"], USAGE],
    [["share", "open", `http://127.0.0.1:${port}/s/abc#k`], FAILED],
    [["build-model"], USAGE],
    [["build-model", "--bogus", "--out", dir], USAGE],
    [["build-model", "--out"], USAGE],
    // calibrate with no arguments calibrates the built-in model: nothing to refuse.
    [["calibrate", "--bogus"], USAGE],
    [["calibrate", "--jobs"], USAGE],
    [["calibrate", "--model", missing], FAILED],
    [["train"], USAGE],
    [["train", "--bogus", "--out", dir], USAGE],
    [["train", "--out"], USAGE],
    [["ledger"], USAGE],
    [["ledger", "--bogus"], USAGE],
    [["ledger", "bogus"], USAGE],
    [["ledger", "verify", "--data"], USAGE],
    [["ledger", "verify", "--data", missing], FAILED],
    // status with no arguments asks the default node, which may be running here.
    [["status", "--bogus"], USAGE],
    [["status", "--url"], USAGE],
    [["status", "--url", `http://127.0.0.1:${port}`], FAILED],
    [["keygen", "--bogus"], USAGE],
    [["keygen", "--data"], USAGE],
    [["model"], USAGE],
    [["model", "--bogus"], USAGE],
    [["model", "build"], USAGE, BUILD_MODEL_USAGE],
    [["model", "build", "--out"], USAGE, BUILD_MODEL_USAGE],
    [["model", "build", "--bogus", "--out", dir], USAGE, BUILD_MODEL_USAGE],
    // demo and bench with no arguments run: nothing to refuse.
    [["demo", "--bogus"], USAGE],
    [["demo", "extra"], USAGE],
    [["bench", "--bogus"], USAGE],
    [["bench", "nosuch"], USAGE],
  ];
}

/** Why `ran` is not a clear refusal ending `code`; `undefined` when it is. */
function problem(command: string, ran: Ran, code: number, hint?: RegExp): string | undefined {
  const first = ran.err.split("\n")[0];
  if (ran.code !== code) return `exit ${ran.code}, not ${code}`;
  if (code === HELP) {
    return ran.out.startsWith("Usage: cli.ts ") && ran.err === ""
      ? undefined
      : "no usage on stdout";
  }
  if (!/^error( \[[a-z_]+\])?: \S/.test(first)) return `first stderr line is not an error line`;
  if (/^\s+at .*:\d+:\d+\)?$/m.test(ran.err) || /Uncaught|Stack trace/i.test(ran.err)) {
    return "a stack trace";
  }
  if (ran.out !== "") return "something on stdout";
  // The usage itself, or where to read it (on the error line, where the command keeps to one).
  const usage = new RegExp(`Usage: cli\\.ts ${command}\\b|cli\\.ts ${command} --help`);
  if (code === USAGE && !(hint ?? usage).test(ran.err)) return "no usage hint";
  return undefined;
}

Deno.test("every command: --help prints its usage (exit 0); a bad command line is one error line and a usage hint (exit 2), failed work one error line (exit 1); never a stack trace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = cases(dir, closedPort());
    // Every command is in the table: a new one must be added to it.
    const covered = new Set(rows.map(([args]) => args[0]));
    assert.deepEqual(Object.keys(COMMANDS).filter((name) => !covered.has(name)), []);
    const ran = await inBatches(rows, 4, ([args]) => cliErrors(args, dir));
    const failures = rows.flatMap(([args, code, hint], i) => {
      const why = problem(args[0], ran[i], code, hint);
      return why === undefined ? [] : [`cli.ts ${args.join(" ")}: ${why}\n${ran[i].err}`];
    });
    assert.equal(failures.length, 0, `\n${failures.join("\n")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A WebSocket server on 127.0.0.1 that records the first message each client sends. */
function recordingNode(): { url: string; first: Promise<string>; close: () => Promise<void> } {
  let received!: (text: string) => void;
  const first = new Promise<string>((resolve) => received = resolve);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (event) => {
      received(String(event.data));
      socket.close();
    };
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    first,
    close: () => server.shutdown(),
  };
}

/** An `infer` io whose stdin holds `text`. */
function ioWithStdin(text: string) {
  const err: string[] = [];
  const out: string[] = [];
  return {
    err,
    out,
    io: {
      stdout: (t: string) => void out.push(t),
      stderr: (t: string) => void err.push(t),
      stdin: () => Promise.resolve(text),
    },
  };
}

Deno.test('infer - reads the prompt from stdin, not the prompt "-"', async () => {
  const node = recordingNode();
  try {
    const { io } = ioWithStdin("Once upon a time\n");
    const ended = runInfer(["--url", node.url, "-"], io);
    const message = JSON.parse(await node.first);
    assert.equal(message.type, "infer");
    // The line's end is the terminal's, not the prompt's.
    assert.equal(message.prompt, "Once upon a time");
    await ended;
  } finally {
    await node.close();
  }
});

Deno.test("infer - with nothing on stdin is a usage error, exit 2, before connecting", async () => {
  const { io, err } = ioWithStdin("");
  // Nothing listens there: a check made after connecting would say so instead.
  assert.equal(await runInfer(["--url", `ws://127.0.0.1:${closedPort()}`, "-"], io), 2);
  assert.match(err.join(""), /^error: no prompt on stdin\b.*\nUsage: cli\.ts infer/s);
});

// A mistyped command or flag is answered with the name it is near, on every command a new user
// meets first — as `start` already does (`unknown flag --prot (did you mean --port?)`), not with
// parseArgs' advice about positionals (`To specify a positional argument starting with a '-' …`) or
// a bare "unknown command" above 50 lines of usage (`cli.ts
// strat`, `cli.ts infer --modl X`, `cli.ts status --jsn`).

/** What `fn` wrote with console.error, and its result. */
async function stderrOf(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    return { code: await fn(), text: lines.join("\n") };
  } finally {
    console.error = original;
  }
}

Deno.test("cli.ts: a command one typo from a real one is named, in one line and a pointer", async () => {
  const { code, text } = await stderrOf(() => main(["strat"]));
  assertEquals(code, 2);
  assertEquals(
    text,
    "error: unknown command: strat (did you mean start?)\nsee cli.ts help for every command",
  );
});

Deno.test("cli.ts: a command near none still gets the whole usage", async () => {
  const { code, text } = await stderrOf(() => main(["nosuch"]));
  assertEquals(code, 2);
  assertTrue(text.startsWith("error: unknown command: nosuch\n"), text);
  assertTrue(text.includes("Commands:"), text);
});

Deno.test("infer: an unknown flag is named with the flag it is near", async () => {
  const err: string[] = [];
  const io = { stdout: () => {}, stderr: (t: string) => void err.push(t) };
  assertEquals(await runInfer(["--modl", "x", "hi"], io), 2);
  const said = err.join("");
  // Stop 65: after `error: `, as every command's usage errors are.
  assertTrue(said.startsWith("error: unknown flag --modl (did you mean --model?)\n"), said);
  assertTrue(!said.includes("positional argument"), said);
});

Deno.test("status: an unknown flag is named with the flag it is near", async () => {
  const err: string[] = [];
  const io = { out: () => {}, err: (t: string) => void err.push(t), env: () => undefined };
  assertEquals(await runStatus(["--jsn"], io), 2);
  const said = err.join("");
  assertTrue(said.startsWith("error: unknown flag --jsn (did you mean --json?)\n"), said);
});

// The operator's first hour with the command line: `cli.ts bench --help` sends its reader to `deno
// task bench --help` for the benchmarks' names, so that must answer with them (exit 0), not refuse
// `--help` as an unknown benchmark (exit 2). And `cli.ts ledger bogus` answered "unknown: bogus"
// above the usage: an error line must say what was wrong (README, "Exit codes": "the key and the
// reason are named").
//
// @module

const BENCH_MAIN = new URL("../../bench/main.ts", import.meta.url).pathname;

Deno.test("bench/main.ts --help (what `deno task bench --help` runs) lists the benchmarks and exits 0, running none", async () => {
  for (const flag of ["--help", "-h"]) {
    // No permissions: a help that tried to spawn a benchmark would fail on --allow-run.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", BENCH_MAIN, flag],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    for (const name of ["actors", "inference", "ledger", "training"]) {
      assertTrue(out.includes(name), out);
    }
    assertTrue(!out.includes("=== bench:"), out);
  }
});

Deno.test("ledger with an unknown action, or words after its action, says which and exits 2", async () => {
  for (
    const [args, said] of [
      [["bogus"], 'unknown ledger action "bogus" (it takes verify or repair)'],
      [["verify", "extra"], 'unexpected "extra" after ledger verify (flags only)'],
    ] as const
  ) {
    const err: string[] = [];
    const code = await runLedger([...args], { out: () => {}, err: (l) => err.push(l) });
    assertEquals(code, 2);
    const text = err.join("\n");
    assertTrue(text.startsWith(`error: ${said}`), text);
  }
});
