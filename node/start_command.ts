/**
 * `cli.ts start`: read the configuration (file, then flags on top), start the node, print its
 * supervision tree and URLs, and run until SIGINT/SIGTERM, then shut down gracefully.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, loadNodeConfig, type NodeConfig, parseNodeConfig } from "./config.ts";
import { startNode } from "./node.ts";
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

/** Run the `start` command; resolves with the process exit code once the node has stopped. */
export async function runStart(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  let config: NodeConfig;
  try {
    config = await configFromArgs(args);
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(config, { log: (line) => console.log(line) });
  } catch (error) {
    // A role that cannot start (a taken port, an unreadable model): say why, once, plainly.
    console.error(`error: the node did not start: ${rootReason(error)}`);
    return 1;
  }
  let stopping = false;
  const stop = () => {
    // `deno task` and npx forward the same signal, so a second one is routine: say it once.
    if (stopping) return;
    stopping = true;
    console.log("\nshutting down (stopping children in reverse start order)…");
    node.shutdown();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await node.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  console.log("stopped.");
  return 0;
}
