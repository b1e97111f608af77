/**
 * Every `cli.ts` command as a demanding operator meets it (stop 65): run with no arguments where
 * it needs some, with a flag it does not take, with a flag missing its value, with `--help`, with
 * a file that is not there, and against a node that is not running. Each mistake is said in one
 * `error: …` line first on stderr (a storage failure may carry its code, `error [code]: …`),
 * and, for a bad command line, the command's usage or where to read it (on that line, for the
 * commands that keep such an error to one line: `demo`, `bench`, a storage flag's value); the
 * exit code is 2 for a bad command line and 1 for work that failed; stdout stays empty; and no
 * stack trace is ever shown. `--help` prints the usage on stdout and exits 0.
 *
 * Also `infer -`: the prompt is read from stdin, as `put -` and `import -` read theirs, not sent
 * as the one-character prompt "-".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { COMMANDS } from "../../cli.ts";
import { runInfer } from "../../client/infer_command.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a `deno run -A cli.ts` gave. */
interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Run `cli.ts args` in `cwd` (so a default `.veriflow` lands in a temporary directory). */
async function cli(args: string[], cwd: string, stdin = ""): Promise<Ran> {
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
    [["put", "--data", dir, "a", "b"], USAGE],
    [["put", "--data", dir, missing], FAILED],
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
    [["import", "--data", dir, missing], FAILED],
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

/** `fn` over `items`, `width` at a time: the machine is small and shared. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>) {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    results.push(...await Promise.all(items.slice(i, i + width).map(fn)));
  }
  return results;
}

Deno.test("every command: --help prints its usage (exit 0); a bad command line is one error line and a usage hint (exit 2), failed work one error line (exit 1); never a stack trace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = cases(dir, closedPort());
    // Every command is in the table: a new one must be added to it.
    const covered = new Set(rows.map(([args]) => args[0]));
    assert.deepEqual(Object.keys(COMMANDS).filter((name) => !covered.has(name)), []);
    const ran = await inBatches(rows, 4, ([args]) => cli(args, dir));
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
