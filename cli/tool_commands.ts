/**
 * Small operator commands of `cli.ts`: `keygen` (the node's ed25519 identity), `model build`
 * (the built-in model, same as `build-model`), and `bench` and `demo`, which run the
 * project's benchmark and demo programs in a child Deno with the same flags.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagProblem } from "../node/_unknown_flag.ts";
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toHex } from "../protocols/hash.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../node/node_identity.ts";
import { runBuildModel } from "./build_model_command.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import { DataDirNotDirectoryError } from "../node/data_dir_lock.ts";

const KEYGEN_HELP = `Usage: cli.ts keygen [--data DIR]

Create the node's ed25519 identity (DIR/identity.key, mode 0600) and print its public key;
with one already there, print its public key and change nothing. The same key signs receipts
and verdicts and is the node's Hyperswarm identity.

  --data DIR   data directory (default $VERIFLOW_DATA_DIR, else .veriflow)
  -h, --help   this text

Examples:
  deno run -A cli.ts keygen
  deno run -A cli.ts keygen --data .vf/b

Exit codes: 0 printed · 1 --data names a file, or the key file is unreadable or damaged, or cannot be
written (the line says which) · 2 bad flags, or a refused --data (led by ~).`;

/** The flags `keygen` takes. */
const KEYGEN_OPTIONS = {
  data: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** `cli.ts keygen`: see {@link KEYGEN_HELP}. */
export async function runKeygen(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, strict: true, options: KEYGEN_OPTIONS }));
  } catch (error) {
    console.error(
      `error: ${flagProblem(error, Object.keys(KEYGEN_OPTIONS), args)}\n\n${KEYGEN_HELP}`,
    );
    return 2;
  }
  if (values.help) {
    console.log(KEYGEN_HELP);
    return 0;
  }
  const dataDir = await commandDataDir(values.data);
  // Said as `start` says it, not as the OS error of a read under a file.
  if (await Deno.stat(dataDir).then((s) => !s.isDirectory, () => false)) {
    console.error(`error: ${new DataDirNotDirectoryError(dataDir).message}`);
    return 1;
  }
  const path = join(dataDir, IDENTITY_FILE);
  const existed = await Deno.stat(path).then(() => true, () => false);
  // A link to nothing: `stat` follows it and finds none, but the refusal to write through it
  // already says what to do; advice about a failed write would contradict it (review s75 F8).
  const dangling = !existed && await Deno.lstat(path).then(() => true, () => false);
  try {
    const identity = await loadOrCreateIdentity(dataDir);
    console.log(toHex(identity.publicKey));
    console.error(existed ? `(the key already in ${path})` : `(new key written to ${path})`);
    return 0;
  } catch (error) {
    // A key renamed into place whose directory then could not be synced is there: not said to
    // be missing (review s82 cli, F2).
    const written = !existed && await Deno.stat(path).then(() => true, () => false);
    // Only a key that is there can be damaged; with none, it was the write that failed.
    console.error(
      dangling
        ? `error: ${(error as Error).message}`
        : written
        ? `error: ${(error as Error).message}; a new key was written to ${path}, but its ` +
          `directory could not be synced: it may not survive a crash`
        : existed
        ? `error: ${(error as Error).message}; move ${path} aside to make a new identity (the ` +
          `node's ledger account and stake belong to the old key)`
        : `error: ${(error as Error).message}; no key was written: check that ${dataDir} ` +
          `can be created and written (a writable file system, this user's permissions)`,
    );
    return 1;
  }
}

const MODEL_HELP = `Usage: cli.ts model build [--size tiny|small] [--seed N] --out DIR

Build the built-in GPT-style model (ONNX, tokenizer.json, config.json) into DIR (a few seconds
for small) and print its CID, directory, size and time as one JSON line. Serve it with
\`cli.ts start --model DIR\`.

Examples:
  deno run -A cli.ts model build --out models/tiny
  deno run -A cli.ts model build --size small --out models/small

Exit codes: 0 built · 1 it could not be written · 2 bad flags.`;

/** `cli.ts model build`: the built-in model (same as `build-model`). */
export async function runModel(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "build") return await runBuildModel(rest);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    console.log(MODEL_HELP);
    return 0;
  }
  console.error(usageErrorText(
    sub === undefined
      ? "missing the model command (build)"
      : `unknown model command "${sub}" (try: model build --out DIR)`,
    MODEL_HELP,
  ));
  return EXIT_USAGE;
}

/** A child Deno running `script` with `args`; its exit code. */
async function runScript(script: string, args: string[]): Promise<number> {
  // The file's path, not the URL's: `pathname` keeps the percent-encoding (`My%20Projects`),
  // and a checkout under a path with a space in it sent the child to a folder that is not there.
  const path = fileURLToPath(new URL(`../${script}`, import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path, ...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await child.status).code;
}

const BENCH_HELP = `Usage: cli.ts bench [NAME...] [-- FLAGS]

Run the benchmarks (bench/main.ts): each prints ratios against a baseline measured in the same
run. Without a name, all of them; \`deno task bench --help\` lists the names.

Examples:
  deno run -A cli.ts bench ledger
  deno run -A cli.ts bench validation

Exit codes: the benchmark program's (0 when every benchmark ran).`;

/** `cli.ts bench`: runs bench/main.ts. */
export async function runBench(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(BENCH_HELP);
    return 0;
  }
  return await runScript("bench/main.ts", args);
}

const DEMO_HELP = `Usage: cli.ts demo [--quiet]

A Veriflow network on this machine, narrated (tools/demo.ts): a DHT testnet and four node
processes on 127.0.0.1 — a router, a worker, a validator and later a cheating worker — a job
streamed through the router, its receipt and verdict, the cheater convicted and routed around; a
file put, its first holder killed, the file read back and repaired; then a training round over
TCP with a lazy trainer caught. Needs Node.js 20+ (the swarm host). About 30 s on a quiet machine.

Examples:
  deno run -A cli.ts demo

Exit codes: 0 the story ran to its end · 1 a step failed (the line says which).`;

/** `cli.ts demo`: runs tools/demo.ts. */
export async function runDemo(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(DEMO_HELP);
    return 0;
  }
  return await runScript("tools/demo.ts", args);
}
