/**
 * The node's configuration: one zod schema, validated once at the edge (config file + flags),
 * trusted everywhere behind it. Every field has a default, so an empty file is a working node.
 *
 * @module
 */
import { z } from "zod";
import { VeriflowError } from "../protocols/errors.ts";
import { parsePeerAddress } from "../network/peer_address.ts";
import { type EdgeConfig, edgeConfigFields } from "../server/edge_config.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";

/** The challenge window plus the proof deadline (60 s): the least proof data must be kept. */
const MIN_PROOF_RETENTION_MS = DEFAULT_ECONOMICS.challengeWindowMs + 60_000;

function isPeerAddress(text: string): boolean {
  try {
    parsePeerAddress(text);
    return true;
  } catch {
    return false;
  }
}

/** The configuration file failed to parse or validate. */
export class ConfigError extends VeriflowError {
  /**
   * Create the error.
   * @param message What is wrong, field by field.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_config", message, options);
  }
}

/** Schema of the node configuration (JSON file `veriflow.json` and command-line flags). */
const nodeConfigSchema = z.object({
  /** Where the node keeps its identity, models, chunks and ledger. */
  dataDir: z.string().min(1).default(".veriflow"),
  /** Which actors this node runs. */
  roles: z.object({
    storage: z.boolean().default(true),
    inference: z.boolean().default(true),
    prover: z.boolean().default(true),
    validator: z.boolean().default(true),
  }).prefault({}),
  http: z.object({
    /** Loopback by default: exposing the API to a network is an explicit choice. */
    hostname: z.string().default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8080),
    /** The edge's limits and access rules (server/edge_config.ts; README, "Limits"). */
    ...edgeConfigFields,
  }).prefault({}),
  model: z.object({
    /** Directory of an exported model (model.onnx, tokenizer.json, config.json); built-in when absent. */
    dir: z.string().optional(),
    /** Size of the built-in model. */
    size: z.enum(["tiny", "small"]).default("tiny"),
    /** Seed of the built-in model's weights. */
    seed: z.number().int().min(0).default(0),
    /** Execution provider to ask for; falls back to CPU when CUDA is not present. */
    executionProvider: z.enum(["cpu", "cuda"]).default("cpu"),
    /**
     * Workers that run the model off the main thread (0: on the main thread). One by default:
     * a single stream is as fast as in-thread (the worker computes the next token while the
     * last one is sent), and the event loop — HTTP, WebSocket writes, actors, a validator's
     * challenge — never waits for a compute step. More workers run concurrent jobs on more
     * cores at one model copy each (docs/MODELS.md has the numbers).
     */
    workers: z.number().int().min(0).max(64).default(1),
    /**
     * Workers of their own for the validator's forward passes, beside `workers` (on a node
     * that validates, with `workers` ≥ 1): a challenge never queues ahead of a token step, at
     * one more model copy each. 0 shares the generation workers, which serve steps first.
     */
    validationWorkers: z.number().int().min(0).max(16).default(1),
    /**
     * A model worker that dies is restarted (its jobs fail), up to `maxRestarts` times in
     * `withinMs` (all the model's workers together); past that it is given up and `/healthz`
     * answers 503 until the node is restarted.
     */
    restart: z.object({
      maxRestarts: z.number().int().min(0).max(1_000).default(5),
      withinMs: z.number().int().min(1).default(60_000),
    }).prefault({}),
  }).prefault({}),
  inference: z.object({
    /** Jobs computed at once per model; more wait in the queue. */
    concurrency: z.number().int().min(1).max(256).default(4),
    /** Jobs allowed to wait; beyond that requests get 429. */
    queueLimit: z.number().int().min(0).max(100_000).default(64),
  }).prefault({}),
  network: z.object({
    /**
     * Where peers connect (TCP). Loopback by default, like the HTTP API: joining a network
     * beyond this machine is an explicit choice. Port 0 picks a free one (printed at start).
     */
    listen: z.object({
      hostname: z.string().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(7700),
    }).prefault({}),
    /** Accept peer connections at all. */
    listening: z.boolean().default(true),
    /** Static peers to dial and keep dialled, `HOST:PORT` or `[IPV6]:PORT`. */
    peers: z.array(z.string().refine(isPeerAddress, "expected HOST:PORT")).default([]),
    /**
     * Send a ping after this long without traffic. A third of the idle timeout: two pings can
     * be lost before a live peer is taken for dead.
     */
    keepaliveMs: z.number().int().min(10).max(600_000).default(1_500),
    /** A peer silent (or not reading) for this long is dropped and its jobs fail. */
    idleTimeoutMs: z.number().int().min(50).max(3_600_000).default(5_000),
    /**
     * Find peers on Hyperswarm, through the swarm host (a Node.js child process: Node.js 20+
     * must be installed). Off by default for now. `bootstrap`: DHT bootstrap nodes
     * (`HOST:PORT`), or null for the public DHT; `bind`: the address the DHT binds
     * (`127.0.0.1` for a local testnet).
     */
    swarm: z.object({
      enabled: z.boolean().default(false),
      bootstrap: z.array(z.string().refine(isPeerAddress, "expected HOST:PORT")).nullable()
        .default(null),
      bind: z.string().optional(),
    }).prefault({}),
  }).prefault({}),
  /** The chunk store's limits (README, "Storage limits"). */
  storage: z.object({
    /** Bytes of stored objects; a put past it fails with `quota_exceeded`. Unset: no quota. */
    quotaBytes: z.number().int().min(0).optional(),
    /** Unreferenced objects younger than this are never collected (a put's objects in flight). */
    gcGraceMs: z.number().int().min(0).default(600_000),
    /** Largest file read whole into memory (`get_bytes`); larger ones must be streamed. */
    maxInMemoryBytes: z.number().int().min(0).default(64 * 1024 * 1024),
  }).prefault({}),
  validator: z.object({
    /**
     * Probability of challenging another node's receipt; default the economics' value. The
     * worker cannot predict the coin (it is the validator's signature over the job id).
     */
    challengeProbability: z.number().min(0).max(1).optional(),
  }).prefault({}),
  /**
   * The ledger: a signed checkpoint of its working state every `checkpointEvery` entries (and
   * on shutdown), so opening verifies at most that many entries; 0: only on shutdown.
   */
  ledger: z.object({
    checkpointEvery: z.number().int().min(0).max(1_000_000).default(1_024),
  }).prefault({}),
  /**
   * Proof data the prover keeps for challenges: `retentionMs` after each job (default: the
   * challenge window + the proof deadline + 10 minutes, 21 minutes). Never less than the window
   * and the deadline (11 minutes): a worker that deletes proof data a challenge can still ask
   * for is slashed for withholding it.
   */
  proofs: z.object({
    retentionMs: z.number().int().min(MIN_PROOF_RETENTION_MS).optional(),
  }).prefault({}),
  /** Milliseconds between heartbeat lines; 0 turns them off. */
  heartbeatMs: z.number().int().min(0).default(10_000),
  /**
   * Stake recorded for the node's own key on first start (bookkeeping: there is no token). A
   * receipt locks `slashMultiplier × tokens × price` of it during its challenge window, so the
   * default backs about two hundred 256-token jobs per window at the default price.
   */
  selfStake: z.number().min(0).default(1_000_000),
});

/** A validated node configuration with every default filled in (see README, "Configuration"). */
export interface NodeConfig {
  /** Where the node keeps its identity, models, chunks, proofs and ledger. Default `.veriflow`. */
  dataDir: string;
  /** Which actors this node runs; all on by default. */
  roles: { storage: boolean; inference: boolean; prover: boolean; validator: boolean };
  /** Where the HTTP/WebSocket API listens (default 127.0.0.1:8080), its limits and access rules. */
  http: { hostname: string; port: number } & EdgeConfig;
  /** The served model: an exported model directory, or the built-in model of `size` and `seed`. */
  model: {
    dir?: string;
    size: "tiny" | "small";
    seed: number;
    executionProvider: "cpu" | "cuda";
    workers: number;
    validationWorkers: number;
    restart: { maxRestarts: number; withinMs: number };
  };
  /** Jobs computed at once per model, and jobs allowed to wait. Default 4 and 64. */
  inference: { concurrency: number; queueLimit: number };
  /**
   * Peers: where this node listens (default 127.0.0.1:7700), the static peers it dials, and
   * how fast a dead peer is noticed (keepalive 1.5 s, idle timeout 5 s).
   */
  network: {
    listen: { hostname: string; port: number };
    listening: boolean;
    peers: string[];
    keepaliveMs: number;
    idleTimeoutMs: number;
    swarm: { enabled: boolean; bootstrap: string[] | null; bind?: string };
  };
  /** Chunk store limits: quota (none), GC grace period (10 min), largest in-memory read (64 MiB). */
  storage: { quotaBytes?: number; gcGraceMs: number; maxInMemoryBytes: number };
  /** Validator settings: the challenge probability (default: the economics' value). */
  validator: { challengeProbability?: number };
  /** Ledger checkpoints: every `checkpointEvery` entries (default 1,024). */
  ledger: { checkpointEvery: number };
  /** How long the prover keeps proof data (default: window + proof deadline + 10 minutes). */
  proofs: { retentionMs?: number };
  /** Milliseconds between heartbeat lines; 0 turns them off. Default 10 000. */
  heartbeatMs: number;
  /** Stake recorded for the node's own key on first start. Default 1 000 000. */
  selfStake: number;
}

// Compile-time proof that the schema produces exactly a NodeConfig.
const _schemaMatches: (c: z.infer<typeof nodeConfigSchema>) => NodeConfig = (c) => c;

/** Validate a raw configuration value (from JSON); throws {@link ConfigError} with every issue. */
export function parseNodeConfig(raw: unknown): NodeConfig {
  const result = nodeConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((i) =>
      `  ${i.path.join(".") || "(root)"}: ${i.message}`
    );
    throw new ConfigError(`invalid configuration:\n${issues.join("\n")}`);
  }
  return result.data;
}

/** Read and validate a JSON configuration file. */
export async function loadNodeConfig(path: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    throw new ConfigError(`cannot read configuration file ${path}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return parseNodeConfig(raw);
}
