/**
 * `cli.ts start`: read the configuration (file, then flags on top), start the node, print its
 * supervision tree and URLs, and run until SIGINT, SIGTERM or SIGHUP, then shut down gracefully.
 *
 * Ctrl-C (or SIGTERM, or SIGHUP) during start-up stops start-up after the step under way and
 * exits 130; once the node is up it drains (open requests finish, then the actors stop in reverse
 * start order) and exits 0. A second Ctrl-C exits at once (130), saying how many jobs it abandoned
 * (`stop_signals.ts` tells a second Ctrl-C from a forwarded copy of the first).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagProblem, unknownFlagMessage } from "../node/_unknown_flag.ts";
import {
  ConfigError,
  type ConfigLayer,
  envLayer,
  fileLayer,
  formatResolvedConfig,
  MovedConfigPathError,
  type NodeConfig,
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
  readConfigFile,
  type ResolvedConfig,
  resolveNodeConfig,
  setPath,
} from "../node/config.ts";
import { lineLogger } from "../node/log_format.ts";
import { startNode, type VeriflowNode } from "../node/node.ts";
import { listenForStopSignals, StopSignals } from "../node/stop_signals.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { ActorError } from "../actors/errors.ts";
import { START_HELP } from "./start_help.ts";
import { accessWarnings } from "../server/client_access.ts";
import { ApiKeys, ApiKeysFileError } from "../server/api_keys.ts";

/**
 * A `start` flag that cannot be read (`--port abc`): a configuration error that names a flag,
 * not a key, so its hint is `--help`.
 */
class StartUsageError extends ConfigError {}

/** The `start` flags parseArgs knows. */
const START_OPTIONS = {
  config: { type: "string" },
  "print-config": { type: "boolean" },
  "log-format": { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "api-key": { type: "string", multiple: true },
  "api-keys-file": { type: "string" },
  "allow-origin": { type: "string", multiple: true },
  "allow-host": { type: "string", multiple: true },
  "trust-proxy": { type: "string", multiple: true },
  "metrics-access": { type: "string" },
  data: { type: "string" },
  model: { type: "string" },
  "model-size": { type: "string" },
  cuda: { type: "boolean" },
  device: { type: "string" },
  workers: { type: "string" },
  "validation-workers": { type: "string" },
  "prefill-tokens-per-tick": { type: "string" },
  "model-load-timeout": { type: "string" },
  "no-storage": { type: "boolean" },
  "no-inference": { type: "boolean" },
  "no-prover": { type: "boolean" },
  "no-validator": { type: "boolean" },
  "no-dashboard": { type: "boolean" },
  heartbeat: { type: "string" },
  "p2p-port": { type: "string" },
  "p2p-host": { type: "string" },
  "no-listen": { type: "boolean" },
  peer: { type: "string", multiple: true },
  swarm: { type: "boolean" },
  "swarm-bootstrap": { type: "string", multiple: true },
  "swarm-bind": { type: "string" },
  "challenge-probability": { type: "string" },
  train: { type: "boolean" },
  "train-shard": { type: "string" },
  "coordinate-training": { type: "boolean" },
  "held-out": { type: "string" },
  "training-rounds": { type: "string" },
  "training-steps": { type: "string" },
  "training-deadline": { type: "string" },
  "training-min-trainers": { type: "string" },
  "training-challenge-probability": { type: "string" },
} as const;

/**
 * Parse `start` flags, the `VERIFLOW_*` environment and the configuration file (`--config`, or
 * `VERIFLOW_CONFIG`) into a validated configuration, flag > env > file > default, with where
 * each value came from.
 *
 * @param args The flags after `start`.
 * @param env The environment; default none (tests), `Deno.env.toObject()` from the command.
 */
export async function resolveStartConfig(
  args: string[],
  env: Readonly<Record<string, string>> = {},
): Promise<ResolvedConfig> {
  const { values } = parseStartFlags(args);
  const layers: ConfigLayer[] = [];
  const file = values.config ?? env.VERIFLOW_CONFIG;
  if (file !== undefined && file.trim() === "") {
    // Read as a path, "" failed as "cannot read configuration file  (No such file …)".
    throw new ConfigError(
      values.config !== undefined
        ? "--config is empty: give it the path of a JSON configuration file"
        : "VERIFLOW_CONFIG is set but empty: unset it, or set it to the path of a JSON " +
          "configuration file",
    );
  }
  if (file !== undefined) layers.push(fileLayer(await readConfigFile(file), file));
  layers.push(envLayer(env));
  const flags: ConfigLayer = { source: "flag", values: {}, setBy: new Map() };
  layers.push(flags);
  const set = (path: string, value: unknown, flag: string) => {
    setPath(flags.values, path, value);
    flags.setBy.set(path, `--${flag}`);
  };
  // Plain decimal only: Number() also reads "0x50" as 80 and "1e3" as 1000, so a mistyped or
  // pasted value would start a node on a port (or with a count) nobody wrote.
  const num = (flag: string, text: string, whole: boolean) => {
    if (whole) {
      const value = parseWholeNumber(text);
      if (value === undefined) throw new StartUsageError(notWholeNumber(`--${flag}`, text));
      return value;
    }
    const value = parseDecimalNumber(text);
    if (value === undefined) throw new StartUsageError(notDecimalNumber(`--${flag}`, text));
    return value;
  };
  const wholes: [keyof typeof values, string][] = [
    ["port", "http.port"],
    ["workers", "model.workers"],
    ["validation-workers", "model.validationWorkers"],
    ["prefill-tokens-per-tick", "model.prefillTokensPerTick"],
    ["model-load-timeout", "model.loadTimeoutMs"],
    ["heartbeat", "heartbeatMs"],
    ["p2p-port", "network.listen.port"],
    ["training-rounds", "training.coordinator.rounds"],
    ["training-steps", "training.coordinator.steps"],
    ["training-deadline", "training.coordinator.deadlineMs"],
    ["training-min-trainers", "training.coordinator.minTrainers"],
  ];
  const fractions: [keyof typeof values, string][] = [
    ["challenge-probability", "validator.challengeProbability"],
    ["training-challenge-probability", "training.challengeProbability"],
  ];
  for (const [flags, whole] of [[wholes, true], [fractions, false]] as const) {
    for (const [flag, path] of flags) {
      const text = values[flag];
      if (typeof text === "string") set(path, num(flag, text, whole), flag);
    }
  }
  const textual: [keyof typeof values, string][] = [
    ["host", "http.hostname"],
    ["api-key", "http.apiKeys"],
    ["api-keys-file", "http.apiKeysFile"],
    ["allow-origin", "http.allowedOrigins"],
    ["allow-host", "http.allowedHosts"],
    ["trust-proxy", "http.trustedProxies"],
    ["metrics-access", "http.metricsAccess"],
    ["data", "dataDir"],
    ["model", "model.dir"],
    ["model-size", "model.size"],
    ["p2p-host", "network.listen.hostname"],
    ["peer", "network.peers"],
    ["swarm-bootstrap", "network.swarm.bootstrap"],
    ["swarm-bind", "network.swarm.bind"],
    ["log-format", "log.format"],
    ["device", "model.executionProvider"],
    ["held-out", "training.coordinator.heldOutFile"],
  ];
  for (const [flag, path] of textual) {
    if (values[flag] !== undefined) set(path, values[flag], flag);
  }
  if (values.cuda) set("model.executionProvider", "cuda", "cuda");
  for (const role of ["storage", "inference", "prover", "validator"]) {
    if (values[`no-${role}` as "no-storage"]) set(`roles.${role}`, false, `no-${role}`);
  }
  if (values["no-dashboard"]) set("dashboard.enabled", false, "no-dashboard");
  if (values.train) set("training.trainer.enabled", true, "train");
  const shard = values["train-shard"];
  if (shard !== undefined) {
    const match = /^(\d+)\/(\d+)$/.exec(shard.trim());
    if (match === null) throw new StartUsageError(`--train-shard expects I/N, got "${shard}"`);
    // Said of the flag that gave both: the schema's check of the pair names the section, which
    // the first flag that set a key in it (`--train`) would be blamed for.
    if (Number(match[1]) >= Number(match[2])) {
      throw new StartUsageError(
        `--train-shard ${shard.trim()}: I must be below N (shard I of N shards, counted from 0)`,
      );
    }
    set("training.trainer.shard", Number(match[1]), "train-shard");
    set("training.trainer.shards", Number(match[2]), "train-shard");
  }
  if (values["coordinate-training"]) {
    set("training.coordinator.enabled", true, "coordinate-training");
  }
  if (values["no-listen"]) set("network.listening", false, "no-listen");
  if (values.swarm) set("network.swarm.enabled", true, "swarm");
  else if (values["swarm-bootstrap"] !== undefined) {
    set("network.swarm.enabled", true, "swarm-bootstrap");
  }
  const resolved = resolveNodeConfig(layers);
  refuseIdleFlags(values, resolved.config);
  return resolved;
}

/**
 * Refuse a flag the rest of the configuration leaves without effect (`--model` on a node that
 * loads no model, `--p2p-port` with `--no-listen`, `--cuda` with `--device cpu`): ignored, it
 * would start a node other than the one the operator asked for, without a word.
 */
function refuseIdleFlags(values: StartFlags, config: NodeConfig): void {
  const loadsModel = config.roles.inference || config.roles.validator;
  const device = values.device;
  const rules: [flags: (keyof StartFlags)[], idle: boolean, because: string][] = [
    [
      [
        "model",
        "model-size",
        "device",
        "cuda",
        "workers",
        "validation-workers",
        "prefill-tokens-per-tick",
        "model-load-timeout",
      ],
      !loadsModel,
      "this node loads no model: --no-inference and --no-validator (roles.inference and " +
      "roles.validator off)",
    ],
    [
      ["prefill-tokens-per-tick"],
      loadsModel && !config.roles.inference,
      "--no-inference: this node generates no tokens (the validator's passes read a receipt " +
      "whole)",
    ],
    [["model-size"], config.model.dir !== undefined, "--model (model.dir) is served instead"],
    [
      ["model-load-timeout"],
      loadsModel && config.model.workers === 0,
      "--workers 0 (model.workers): the model loads on the main thread, which the load blocks, " +
      "so nothing can time it",
    ],
    [["cuda"], device !== undefined && device !== "cuda", `--device ${device} asks otherwise`],
    [
      ["p2p-port", "p2p-host"],
      !config.network.listening,
      "--no-listen: this node accepts no peer connections (network.listening false)",
    ],
    [
      ["swarm-bind"],
      !config.network.swarm.enabled,
      "the swarm is off: add --swarm or --swarm-bootstrap (network.swarm.enabled)",
    ],
    [["challenge-probability"], !config.roles.validator, "--no-validator: nothing challenges"],
    [
      ["training-challenge-probability"],
      !validatesTraining(config),
      config.roles.validator
        ? "this node validates no training: add --train, --coordinate-training or " +
          "training.validate"
        : "--no-validator: no training receipt is audited",
    ],
    [["train-shard"], !config.training.trainer.enabled, "this node does not train: add --train"],
    [
      [
        "training-rounds",
        "training-steps",
        "training-deadline",
        "training-min-trainers",
        "held-out",
      ],
      !config.training.coordinator.enabled,
      "this node runs no training rounds: add --coordinate-training",
    ],
  ];
  for (const [flags, idle, because] of rules) {
    const given = flags.filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
    if (idle && given.length > 0) {
      const verb = given.length === 1 ? "has" : "have";
      throw new StartUsageError(`${given.join(", ")} ${verb} no effect here: ${because}`);
    }
  }
}

/**
 * Whether the configuration asks for a TrainingValidator: the configuration's half of
 * `trainingValidates` (node/_training_children.ts), which also needs this trainer's shard.
 */
function validatesTraining({ roles, training }: NodeConfig): boolean {
  return roles.validator &&
    (training.trainer.enabled || training.coordinator.enabled || training.validate);
}

/** The `start` flags as parsed. */
type StartFlags = ReturnType<typeof parseStartFlags>["values"];

/**
 * `args` against {@link START_OPTIONS}. A flag that is not one of them is refused with the
 * nearest that is (`--prot` → `did you mean --port?`), as a mistyped key or variable is.
 */
function parseStartFlags(args: string[]) {
  const { tokens } = parseArgs({ args, strict: false, tokens: true, options: START_OPTIONS });
  const known = Object.keys(START_OPTIONS).map((name) => `--${name}`);
  for (const token of tokens) {
    if (token.kind !== "option" || Object.hasOwn(START_OPTIONS, token.name)) continue;
    throw new StartUsageError(unknownFlagMessage(token.rawName, known));
  }
  try {
    return parseArgs({ args, strict: true, options: START_OPTIONS });
  } catch (error) {
    // `--port` with no value: said as every command says it (`--port needs a value`).
    throw new StartUsageError(flagProblem(error, Object.keys(START_OPTIONS), args), {
      cause: error,
    });
  }
}

/** Parse `start` flags (and `env`) into a validated configuration; see {@link resolveStartConfig}. */
export async function configFromArgs(
  args: string[],
  env: Readonly<Record<string, string>> = {},
): Promise<NodeConfig> {
  return (await resolveStartConfig(args, env)).config;
}

/**
 * The first reason below the supervision wrappers (`actor … crashed: …`) of a failed start, as
 * `error [code]: the node did not start: …` says it: a typed reason's code (` [data_dir_locked]`,
 * as `cli.ts` names every other command's) and its message.
 */
function rootReason(error: unknown): { code: string; message: string } {
  let reason = error;
  while (
    reason instanceof Error && reason.cause instanceof Error &&
    !(reason instanceof VeriflowError && !(reason instanceof ActorError))
  ) {
    reason = reason.cause;
  }
  const typed = reason instanceof VeriflowError && !(reason instanceof ActorError)
    ? reason
    : undefined;
  return {
    code: typed === undefined ? "" : ` [${typed.code}]`,
    message: reason instanceof Error ? reason.message : String(reason),
  };
}

/**
 * For a write Deno's permissions refused (`deno task start` may write under `.veriflow` only):
 * the command the README gives for another data directory, instead of Deno's bare
 * "run again with the --allow-write flag".
 */
function writeAccessHint(error: unknown): string {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable && /write access/.test(e.message)) {
      return " (`deno task start` writes only under .veriflow; for --data DIR elsewhere run " +
        "`deno run --unstable-no-legacy-abort --allow-read --allow-write=DIR --allow-net --allow-env --allow-ffi " +
        "--allow-run=node --allow-sys=statfs,systemMemoryInfo cli.ts start --data DIR`: README, Permissions)";
    }
  }
  return "";
}

/** What {@link runStart} needs from the process; tests substitute their own. */
export interface StartCommandIo {
  /**
   * Calls `listener` on each stop signal (SIGINT, SIGTERM and SIGHUP; SIGINT and SIGBREAK on
   * Windows: `node/stop_signals.ts`); returns a function that stops listening.
   */
  onStopSignal(listener: () => void): () => void;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Writes a line to stderr. */
  err(line: string): void;
  /** A monotonic clock in milliseconds. */
  now(): number;
  /** The environment (`VERIFLOW_*` settings); none when absent. */
  env?(): Record<string, string>;
}

/**
 * Write a line, or drop it when the output is gone: once the terminal or SSH session a node runs
 * in is closed (its SIGHUP starts the drain), every write to it fails with `EIO`, and the first
 * log line of the drain threw out of the signal listener and killed the node, exit 1, no
 * shutdown checkpoint.
 */
function writeLine(write: (line: string) => void, line: string): void {
  try {
    write(line);
  } catch {
    // Nowhere to write: the drain goes on without its log.
  }
}

/** The real process: its signals, stdout and stderr, `performance.now`. */
export const PROCESS_IO: StartCommandIo = {
  onStopSignal: listenForStopSignals,
  out: (line) => writeLine(console.log, line),
  err: (line) => writeLine(console.error, line),
  now: () => performance.now(),
  env: () => Deno.env.toObject(),
};

/** Exit code after an interrupted start-up or a forced exit: 128 + SIGINT, as shells report. */
const INTERRUPTED_EXIT_CODE = 130;

/** How long a forced exit waits to count the jobs it abandons: they are counted from memory. */
const COUNT_JOBS_TIMEOUT_MS = 1_000;

/**
 * Run the `start` command; resolves with the process exit code once the node has stopped, or
 * at once on a second Ctrl-C (see the module doc).
 */
export async function runStart(args: string[], io: StartCommandIo = PROCESS_IO): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.out(START_HELP);
    return 0;
  }
  let resolved: ResolvedConfig;
  try {
    resolved = await resolveStartConfig(args, io.env?.() ?? {});
  } catch (error) {
    // The key hint only where a key is named: a file that is not JSON, or not there, says
    // itself what to fix. Each problem already names where its value came from, and
    // --print-config resolves the same configuration, so it fails the same way until the key
    // is fixed: it is offered as the check afterwards, and not at all to whoever just ran it.
    const fix = error instanceof ConfigError && error.keysNamed > 1
      ? `\nfix the ${error.keysNamed} keys named above`
      : "\nfix the key named above";
    const hint = !(error instanceof ConfigError) || error instanceof StartUsageError
      ? "\nsee cli.ts start --help"
      : !error.namesKeys
      ? ""
      : args.includes("--print-config")
      ? fix
      : `${fix}; then cli.ts start --print-config shows every value and where it came from`;
    // Refused by put, ls and gc too (they read dataDir as start does), which print a typed
    // error with its code: one line, one code, whichever command met it.
    const code = error instanceof MovedConfigPathError ? ` [${error.code}]` : "";
    io.err(`error${code}: ${(error as Error).message}${hint}`);
    return 2;
  }
  // The keys file is configuration too: read here, a missing or bad one is refused like any bad
  // value (exit 2), by --print-config as by the start. Read only by the HTTP API's start, it let
  // --print-config pass and the start fail exit 1 (review s78 dash, Minor).
  try {
    ApiKeys.fromConfig(resolved.config.http);
  } catch (error) {
    if (!(error instanceof ApiKeysFileError)) throw error;
    io.err(`error [${error.code}]: ${error.message}`);
    return 2;
  }
  if (args.includes("--print-config")) {
    io.out(formatResolvedConfig(resolved));
    return 0;
  }
  const { config } = resolved;
  const logIo: StartCommandIo = {
    ...io,
    out: lineLogger(config.log.format, io.out),
    err: lineLogger(config.log.format, io.err, "error"),
  };
  // A trusted-proxy setup that locks the operator's own tools out, or trusts the open internet,
  // is said once at start, before the node's own lines (review s74 verify1, F3).
  for (const warning of accessWarnings(config.http)) logIo.out(warning);
  return await runUntilStopped(
    (signal) => startNode(config, { log: logIo.out, signal }),
    logIo,
  );
}

/**
 * Start a node with `start` and run it until stop signals end it (see the module doc): the
 * life cycle of `runStart`, whatever starts the node.
 *
 * @param start Starts the node; aborting its signal must stop start-up.
 * @param io Signals, output, clock.
 * @returns The exit code: 0 after a graceful stop, 1 if the node did not start, 130 after an
 * interrupted start-up or a forced exit.
 */
export async function runUntilStopped(
  start: (signal: AbortSignal) => Promise<VeriflowNode>,
  io: StartCommandIo = PROCESS_IO,
): Promise<number> {
  const signals = new StopSignals(io.now);
  const startup = new AbortController();
  const forced = Promise.withResolvers<number>();
  let node: VeriflowNode | undefined;
  const onSignal = () => {
    const action = signals.next();
    if (action === "ignore") return;
    if (action === "force") {
      void forceExit(node, io).then(forced.resolve);
    } else if (node === undefined) {
      io.out("\ninterrupted: stopping start-up after the current step (Ctrl-C again to exit now)…");
      startup.abort(new DOMException("start-up interrupted", "AbortError"));
    } else {
      io.out(
        "\nshutting down: open requests finish (up to http.drainTimeoutMs; then the jobs left " +
          "are cancelled, each client told why), then the actors stop in reverse start order " +
          "(Ctrl-C again to exit now, abandoning running jobs)…",
      );
      void node.shutdown();
    }
  };
  // Listening from the very start: a Ctrl-C during start-up stops start-up.
  const stopListening = io.onStopSignal(onSignal);
  try {
    return await Promise.race([forced.promise, run()]);
  } finally {
    stopListening();
  }

  async function run(): Promise<number> {
    try {
      node = await start(startup.signal);
    } catch (error) {
      if (startup.signal.aborted) {
        io.err("start-up interrupted: the node was stopped before it came up");
        return INTERRUPTED_EXIT_CODE;
      }
      // A role that cannot start (a taken port, an unreadable model): say why, once, plainly.
      const { code, message } = rootReason(error);
      io.err(`error${code}: the node did not start: ${message}${writeAccessHint(error)}`);
      return 1;
    }
    // A Ctrl-C that raced the last step of start-up still stops the node.
    if (signals.stopping) void node.shutdown();
    const { fatal, reason } = await node.finished;
    if (fatal !== undefined) {
      // Its supervisor gave up (a role that kept crashing: a ledger on a disk that filled up):
      // said as a start that fails is, one line with the typed reason's code
      // (`error [disk_full]: …`), not only as the log's `fatal:` line naming the error's class.
      const { code, message } = reason === undefined
        ? { code: "", message: fatal }
        : rootReason(reason);
      const why = reason === undefined ? message : `its supervisor gave up: ${message}`;
      io.err(`error${code}: the node stopped: ${why}${writeAccessHint(reason)}`);
    }
    io.out("stopped.");
    // A node its supervisor gave up on failed: a service manager restarts it on a non-zero exit.
    return fatal === undefined ? 0 : 1;
  }
}

/** A second Ctrl-C: say what is abandoned, and exit without waiting for the drain. */
async function forceExit(node: VeriflowNode | undefined, io: StartCommandIo): Promise<number> {
  if (node === undefined) {
    io.err("forced exit during start-up");
    return INTERRUPTED_EXIT_CODE;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const jobs = await Promise.race([
    node.jobs().catch(() => undefined),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), COUNT_JOBS_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  const abandoned = jobs === undefined
    ? "the jobs still running (their number did not come in time)"
    : `${jobs.running + jobs.queued} job${jobs.running + jobs.queued === 1 ? "" : "s"} ` +
      `(${jobs.running} running, ${jobs.queued} queued)`;
  io.err(`forced exit: abandoned ${abandoned}`);
  return INTERRUPTED_EXIT_CODE;
}
