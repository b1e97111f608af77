/**
 * The `veriflow` command line: run a node, talk to one, move files in and out of its store.
 *
 * ```sh
 * deno task start                       # run a node (cli.ts start)
 * deno run -A cli.ts infer "Hello"      # stream a completion from a running node
 * deno run -A cli.ts put FILE           # store a file, print its CID
 * ```
 *
 * @module
 */
import { VeriflowError } from "./protocols/errors.ts";
import { nearestName } from "./node/nearest_name.ts";
import { EXIT_USAGE, isConfigRefusal } from "./node/usage_error_text.ts";
import { HeldStopSignals } from "./node/stop_signals.ts";

/** Exit code of an interrupted command: 128 + SIGINT, as shells report. */
const INTERRUPTED_EXIT_CODE = 130;

/** Deno version this project is built and tested with. */
const DENO_VERSION = "2.9.6";

const USAGE =
  `veriflow — a node for a decentralized AI network (storage, streaming inference, proof of inference)

Usage: deno run [permissions] cli.ts <command> [options]

Commands:
  start [--config FILE] [--port N] [--host H] [--data DIR] [--model DIR] [--no-ROLE]
                          run a node (roles: storage, inference, prover, validator)
  infer [--url URL] [options] PROMPT|-
                          stream a completion from a running node, token by token
                          (-: the prompt is read from stdin)
  put [--private] [--key-file F] [--name N] [--mime T] [--progress] [--data DIR] FILE|DIR|-
                          store a file or directory; prints its CID (public: its IPFS UnixFS id)
  get CID|DIRCID/PATH [-o FILE] [--range START-END] [--key-file F] [--progress] [--data DIR]
                          read a file back (verified against its CID)
  ls [--json] [--verify] [--data DIR]
                          what the store holds and its capacity; damaged files flagged
  gc [--grace-ms MS] [--json] [--data DIR]
                          remove objects nothing references (e.g. an interrupted put's)
  export CID [-o FILE] [--data DIR]
                          write a file's DAG as a CAR (stdout by default)
  import FILE|- [--data DIR]
                          store a CAR's blocks, each verified, and pin its roots
  share CID [--expires 24h] [--password] [--url URL] | share list [CID] | share revoke ID |
  share open LINK         a link to one private file for someone without your key; list
                          shows each share made (ID, file, expiry)
  ledger verify|repair [--data DIR] [--force]
                          check the ledger from genesis; repair keeps what verifies and says
                          what the cut entries carried (signed ones only with --force)
  build-model [--kind gpt|mlp] [--size tiny|small] [--seed N] --out DIR
                          write the built-in GPT-style ONNX model, tokenizer and config
                          (--kind mlp: the one-shot tensor model; no --size)
  calibrate [--model DIR | --model-size S] [--data DIR] [--jobs N]
                          measure a model's honest noise on this machine; validators derive
                          their tolerances from the profile (DIR/calibration/<cid>.json)
  train --out DIR [--trainers N] [--rounds R] [--steps H] [--size S] [--seed S] [--minutes M]
                          DiLoCo training on this machine: N trainers (workers) on their own
                          corpus shards; live loss curve; prints the model's CID and a sample
  status [--url URL] [--json]
                          ask a running node: peers, jobs, ledger, storage
  keygen [--data DIR]     create (or show) the node's ed25519 identity
  model build [--size tiny|small] --out DIR
                          the built-in model (same as build-model)
  demo                    a four-node network on this machine, narrated (needs Node.js 20+)
  bench [NAME...]         the benchmarks, each as a ratio against a baseline
  help                    this text

Each command takes --help, with examples. Settings for start come from flags, VERIFLOW_*
variables and a config file, in that order (start --print-config shows them).

Exit codes: 0 done · 1 the work failed (the line says why and what to do) · 2 bad command,
flags or configuration · 130 interrupted. Built and tested with Deno ${DENO_VERSION}.`;

/** A command: runs with the arguments after its name; resolves with the exit code. */
type Command = (args: string[]) => Promise<number>;

/**
 * `run`, with `--help` (or `-h`, before any `--`) answered from the text `help` loads, before
 * `run`'s module loads. The commands that open the store, the ledger or a model load cbor-x, which
 * reads an environment variable as it loads; their help lives in a module beside them that
 * imports nothing of the kind, so that every command's `--help` needs no permission.
 */
function helpFirst(help: () => Promise<string>, run: Command): Command {
  return async (args) => {
    if (!asksForHelp(args)) return await run(args);
    console.log(await help());
    return 0;
  };
}

/** Whether `args` ask for help: `--help` or `-h` before the `--` that ends the flags. */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === "--help" || arg === "-h");
}

/**
 * `start`, listening for stop signals before its modules load (see {@link HeldStopSignals}): a
 * Ctrl-C while the node's modules load and its configuration is read stops start-up, as one a
 * moment later does, instead of killing the process without a word or, where SIGINT was
 * inherited as ignored, being lost.
 */
async function runStartListening(args: string[]): Promise<number> {
  const held = new HeldStopSignals({
    now: () => performance.now(),
    onForce: () => {
      console.error("forced exit during start-up");
      Deno.exit(INTERRUPTED_EXIT_CODE);
    },
  });
  try {
    const { runStart, PROCESS_IO } = await import("./cli/start_command.ts");
    return await runStart(args, { ...PROCESS_IO, onStopSignal: held.onStopSignal });
  } finally {
    held.close();
  }
}

/**
 * Every command by name: what `main` dispatches to (tests call each with `--help`). Each loads
 * its module only when it runs: a command's imports ask only for the permissions it needs
 * (cbor-x reads an environment variable as it loads, which `status` and `infer` need not allow,
 * nor any command's `--help`: see {@link helpFirst}), and training's tfjs is loaded by `train`
 * alone.
 */
export const COMMANDS: Record<string, Command> = {
  start: helpFirst(
    async () => (await import("./cli/start_help.ts")).START_HELP,
    runStartListening,
  ),
  infer: async (args) => (await import("./cli/infer_command.ts")).runInfer(args),
  put: helpFirst(
    async () => (await import("./cli/storage_help.ts")).PUT_USAGE,
    async (args) => (await import("./cli/put_command.ts")).runPut(args),
  ),
  get: helpFirst(
    async () => (await import("./cli/storage_help.ts")).GET_USAGE,
    async (args) => (await import("./cli/get_command.ts")).runGet(args),
  ),
  ls: helpFirst(
    async () => (await import("./cli/storage_help.ts")).LS_USAGE,
    async (args) => (await import("./cli/ls_command.ts")).runLs(args),
  ),
  gc: helpFirst(
    async () => (await import("./cli/storage_help.ts")).GC_USAGE,
    async (args) => (await import("./cli/gc_command.ts")).runGc(args),
  ),
  export: helpFirst(
    async () => (await import("./cli/exchange_help.ts")).EXPORT_USAGE,
    async (args) => (await import("./cli/exchange_commands.ts")).runExport(args),
  ),
  import: helpFirst(
    async () => (await import("./cli/exchange_help.ts")).IMPORT_USAGE,
    async (args) => (await import("./cli/exchange_commands.ts")).runImport(args),
  ),
  share: helpFirst(
    async () => (await import("./cli/exchange_help.ts")).SHARE_USAGE,
    async (args) => (await import("./cli/exchange_commands.ts")).runShare(args),
  ),
  "build-model": async (args) => (await import("./cli/build_model_command.ts")).runBuildModel(args),
  calibrate: helpFirst(
    async () => (await import("./cli/calibrate_help.ts")).CALIBRATE_USAGE,
    async (args) => (await import("./cli/calibrate_command.ts")).runCalibrate(args),
  ),
  train: helpFirst(
    async () => (await import("./cli/train_help.ts")).TRAIN_USAGE,
    async (args) => (await import("./cli/train_command.ts")).runTrain(args),
  ),
  ledger: helpFirst(
    async () => (await import("./cli/ledger_help.ts")).LEDGER_USAGE,
    async (args) => (await import("./cli/ledger_command.ts")).runLedger(args),
  ),
  status: async (args) => (await import("./cli/status_command.ts")).runStatus(args),
  keygen: async (args) => (await import("./cli/tool_commands.ts")).runKeygen(args),
  model: async (args) => (await import("./cli/tool_commands.ts")).runModel(args),
  demo: async (args) => (await import("./cli/tool_commands.ts")).runDemo(args),
  bench: async (args) => (await import("./cli/tool_commands.ts")).runBench(args),
};

/**
 * The commands that only look (no node started, nothing stored, written or removed): offered
 * for a typo on the usual terms, and first on a tie. Following a `did you mean` hint must not
 * start a node or change a store on a guess (`stauts` was offered `start`).
 */
const LOOKS_ONLY: readonly string[] = ["status", "ls", "help"];

/** Edits within which a command that starts or changes something is offered: one typo. */
const ACTING_COMMAND_EDITS = 1;

async function dispatch(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    // A typo (`strat`) gets the command it is near and stays one line above the prompt, as
    // `start` answers `--prot`; a name near none gets the whole list to choose from.
    const near = nearestName(command, [...LOOKS_ONLY, ...Object.keys(COMMANDS)], {
      maxDistance: (name) => LOOKS_ONLY.includes(name) ? Infinity : ACTING_COMMAND_EDITS,
    });
    console.error(
      near === undefined
        ? `error: unknown command: ${command}\n\n${USAGE}`
        : `error: unknown command: ${command} (did you mean ${near}?)\nsee cli.ts help for every command`,
    );
    return 2;
  }
  return await run(rest);
}

/**
 * Run the command line `args`; resolves with the exit code. A command that throws ends as the
 * usage promises, exit 1 with one line: its message and, for a typed error, its code — not a
 * stack trace, which tells an operator nothing.
 *
 * @param args The process's arguments: a command and its flags.
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await dispatch(args);
  } catch (error) {
    const code = error instanceof VeriflowError ? ` [${error.code}]` : "";
    console.error(`error${code}: ${error instanceof Error ? error.message : String(error)}`);
    // A refused configuration (`--data ~/vf`) is a bad invocation, as the usage says: 2, in
    // every command as in `start`.
    return isConfigRefusal(error) ? EXIT_USAGE : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
