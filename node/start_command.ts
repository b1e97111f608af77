/**
 * `cli.ts start`: read the configuration (file, then flags on top), start the node, print its
 * supervision tree and URLs, and run until SIGINT/SIGTERM, then shut down gracefully.
 *
 * Ctrl-C (or SIGTERM) during start-up stops start-up after the step under way and exits 130;
 * once the node is up it drains (open requests finish, then the actors stop in reverse start
 * order) and exits 0. A second Ctrl-C exits at once (130), saying how many jobs it abandoned
 * (`stop_signals.ts` tells a second Ctrl-C from a forwarded copy of the first).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, loadNodeConfig, type NodeConfig, parseNodeConfig } from "./config.ts";
import { startNode, type VeriflowNode } from "./node.ts";
import { StopSignals } from "./stop_signals.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { ActorError } from "../actors/errors.ts";

const HELP = `Usage: cli.ts start [options]

  --config FILE     JSON configuration (see README, "Configuration")
  --port N          HTTP/WebSocket port (default 8080; 0 picks a free one)
  --host H          address to listen on (default 127.0.0.1)
  --api-key KEY     accept this API key (Authorization: Bearer KEY; repeatable). Without keys
                    only clients on this machine are served
  --api-keys-file F accept the API keys in F, one per line
  --allow-origin O  let browser pages from origin O (https://app.example, or *) use the API
                    (repeatable)
  --data DIR        data directory (default .veriflow)
  --model DIR       serve an exported model directory instead of the built-in model
  --model-size S    built-in model size: tiny (default) or small
  --cuda            ask for the CUDA execution provider (falls back to CPU)
  --workers N       run the model in N worker threads (default 1; 0: on the main thread)
  --validation-workers N
                    model workers of their own for the validator's forward passes (default 1;
                    0: share the generation workers, which serve token steps first)
  --no-storage, --no-inference, --no-prover, --no-validator
                    switch a role off
  --p2p-port N      port peers connect to (default 7700; 0 picks a free one)
  --p2p-host H      address peers connect to (default 127.0.0.1)
  --no-listen       accept no peer connections (dial out only)
  --peer HOST:PORT  dial this peer and keep it dialled (repeatable)
  --swarm           find peers on Hyperswarm's public DHT (needs Node.js 20+ installed)
  --swarm-bootstrap HOST:PORT
                    find peers on Hyperswarm through these DHT bootstrap nodes (repeatable)
  --swarm-bind ADDR bind the DHT to ADDR (127.0.0.1 for a local testnet)
  --challenge-probability P
                    chance of challenging another node's receipt (0..1)
  --heartbeat MS    milliseconds between heartbeat lines (0: off)`;

/** Parse `start` flags into a validated configuration. */
export async function configFromArgs(args: string[]): Promise<NodeConfig> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      config: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string", multiple: true },
      "api-keys-file": { type: "string" },
      "allow-origin": { type: "string", multiple: true },
      data: { type: "string" },
      model: { type: "string" },
      "model-size": { type: "string" },
      cuda: { type: "boolean" },
      workers: { type: "string" },
      "validation-workers": { type: "string" },
      "no-storage": { type: "boolean" },
      "no-inference": { type: "boolean" },
      "no-prover": { type: "boolean" },
      "no-validator": { type: "boolean" },
      heartbeat: { type: "string" },
      "p2p-port": { type: "string" },
      "p2p-host": { type: "string" },
      "no-listen": { type: "boolean" },
      peer: { type: "string", multiple: true },
      swarm: { type: "boolean" },
      "swarm-bootstrap": { type: "string", multiple: true },
      "swarm-bind": { type: "string" },
      "challenge-probability": { type: "string" },
    },
  });
  const base: Record<string, unknown> = values.config
    ? structuredClone(await loadNodeConfig(values.config)) as unknown as Record<string, unknown>
    : {};
  const section = (key: string) => (base[key] ??= {}) as Record<string, unknown>;
  const num = (flag: string, text: string) => {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new ConfigError(`--${flag} expects a number, got "${text}"`);
    return n;
  };
  if (values.port !== undefined) section("http").port = num("port", values.port);
  if (values.host !== undefined) section("http").hostname = values.host;
  const http = section("http");
  if (values["api-key"]) http.apiKeys = [...(http.apiKeys as string[] ?? []), ...values["api-key"]];
  if (values["api-keys-file"] !== undefined) http.apiKeysFile = values["api-keys-file"];
  if (values["allow-origin"]) {
    http.allowedOrigins = [...(http.allowedOrigins as string[] ?? []), ...values["allow-origin"]];
  }
  if (values.data !== undefined) base.dataDir = values.data;
  if (values.model !== undefined) section("model").dir = values.model;
  if (values["model-size"] !== undefined) section("model").size = values["model-size"];
  if (values.cuda) section("model").executionProvider = "cuda";
  if (values.workers !== undefined) section("model").workers = num("workers", values.workers);
  if (values["validation-workers"] !== undefined) {
    section("model").validationWorkers = num("validation-workers", values["validation-workers"]);
  }
  for (const role of ["storage", "inference", "prover", "validator"]) {
    if (values[`no-${role}` as "no-storage"]) section("roles")[role] = false;
  }
  if (values.heartbeat !== undefined) base.heartbeatMs = num("heartbeat", values.heartbeat);
  const network = section("network");
  const listen = (network.listen ??= {}) as Record<string, unknown>;
  if (values["p2p-port"] !== undefined) listen.port = num("p2p-port", values["p2p-port"]);
  if (values["p2p-host"] !== undefined) listen.hostname = values["p2p-host"];
  if (values["no-listen"]) network.listening = false;
  if (values.swarm || values["swarm-bootstrap"] !== undefined) {
    const swarm = (network.swarm ??= {}) as Record<string, unknown>;
    swarm.enabled = true;
    if (values["swarm-bootstrap"] !== undefined) swarm.bootstrap = values["swarm-bootstrap"];
    if (values["swarm-bind"] !== undefined) swarm.bind = values["swarm-bind"];
  }
  if (values.peer !== undefined) {
    network.peers = [...(network.peers as string[] ?? []), ...values.peer];
  }
  if (values["challenge-probability"] !== undefined) {
    section("validator").challengeProbability = num(
      "challenge-probability",
      values["challenge-probability"],
    );
  }
  return parseNodeConfig(base);
}

/** The first reason below the supervision wrappers (`actor … crashed: …`) of a failed start. */
function rootReason(error: unknown): string {
  let reason = error;
  while (
    reason instanceof Error && reason.cause instanceof Error &&
    !(reason instanceof VeriflowError && !(reason instanceof ActorError))
  ) {
    reason = reason.cause;
  }
  return reason instanceof Error ? reason.message : String(reason);
}

/** What {@link runStart} needs from the process; tests substitute their own. */
export interface StartCommandIo {
  /** Calls `listener` on each SIGINT and SIGTERM; returns a function that stops listening. */
  onStopSignal(listener: () => void): () => void;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Writes a line to stderr. */
  err(line: string): void;
  /** A monotonic clock in milliseconds. */
  now(): number;
}

/** The real process: its signals, stdout and stderr, `performance.now`. */
export const PROCESS_IO: StartCommandIo = {
  onStopSignal(listener) {
    Deno.addSignalListener("SIGINT", listener);
    Deno.addSignalListener("SIGTERM", listener);
    return () => {
      Deno.removeSignalListener("SIGINT", listener);
      Deno.removeSignalListener("SIGTERM", listener);
    };
  },
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  now: () => performance.now(),
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
    io.out(HELP);
    return 0;
  }
  let config: NodeConfig;
  try {
    config = await configFromArgs(args);
  } catch (error) {
    io.err(`error: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  return await runUntilStopped((signal) => startNode(config, { log: io.out, signal }), io);
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
        "\nshutting down: open requests finish, then the actors stop in reverse start order " +
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
      io.err(`error: the node did not start: ${rootReason(error)}`);
      return 1;
    }
    // A Ctrl-C that raced the last step of start-up still stops the node.
    if (signals.stopping) void node.shutdown();
    await node.finished;
    io.out("stopped.");
    return 0;
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
