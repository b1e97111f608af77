/**
 * The node's configuration: one zod schema, validated once at the edge (config file + flags),
 * trusted everywhere behind it. Every field has a default, so an empty file is a working node.
 *
 * @module
 */
import {
  DEFAULT_DATA_DIR,
  SHELL_HOME_REFUSAL as NO_TILDE,
  startsAtShellHome,
} from "./default_data_dir.ts";
import { z } from "zod";
import { VeriflowError } from "../protocols/errors.ts";
import { nearestName } from "./nearest_name.ts";
import { parsePeerAddress } from "../network/peer_address.ts";
import { type EdgeConfig, edgeConfigFields } from "../server/edge_config.ts";
import {
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
} from "./number_flags.ts";
import { MIN_PROOF_RETENTION_MS } from "../proof/challenge_timing.ts";
import {
  DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
  DEFAULT_GATHER_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_TOKEN_BUDGET_MS,
  DEFAULT_TOKENS_PER_EVENT,
  type RemoteInferencePortOptions,
} from "../inference/remote_port.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../network/failover.ts";
import { MAX_GATHER_MS, MAX_TOKENS_PER_EVENT } from "../protocols/inference_messages.ts";
import {
  ArchitectureSchema,
  MAX_REPORT_DELTA_BYTES,
  MAX_ROUND_STEPS,
  MAX_WIRE_MODEL_PARAMETERS,
} from "../protocols/training_messages.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../training/hyper_params.ts";

// Numbers as an operator writes them, read the same way by every command (`number_flags.ts`).
export { notDecimalNumber, notWholeNumber, parseDecimalNumber, parseWholeNumber };

/**
 * Whether `text` is an address to dial: `HOST:PORT` with a port of 1–65535. Port 0 means "any"
 * only when binding: as a peer or a DHT bootstrap node it names no listener, and the node
 * dialled it forever, every attempt refused.
 */
function isDialAddress(text: string): boolean {
  try {
    return parsePeerAddress(text).port > 0;
  } catch {
    return false;
  }
}

/** What {@link isDialAddress} refuses, as the refusal says it. */
const DIAL_ADDRESS = "expected HOST:PORT with a port 1–65535";

/** Options of a {@link ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /**
   * Whether the message names the keys (or `VERIFLOW_*` variables) at fault, so that the
   * operator can look them up (`start --print-config`); false for a file that cannot be read
   * or parsed. Default false.
   */
  namesKeys?: boolean;
}

/** The configuration file failed to parse or validate. */
export class ConfigError extends VeriflowError {
  /** Whether the message names the keys at fault (see {@link ConfigErrorOptions}). */
  readonly namesKeys: boolean;
  /**
   * Create the error.
   * @param message What is wrong, field by field.
   * @param options Standard error options, and whether the message names keys.
   */
  constructor(message: string, options?: ConfigErrorOptions) {
    super("invalid_config", message, options);
    this.namesKeys = options?.namesKeys ?? false;
  }
}

/**
 * Said of an empty host: the system's own refusal would come at start, blamed on the port.
 */
const HOST_REQUIRED = "expected an address to listen on, such as 127.0.0.1 (this machine only) " +
  "or 0.0.0.0 (every interface), got an empty one";

/**
 * Said of an empty model path (`--model "$DIR"` with the variable unset): accepted, it bound the
 * port, took the data directory and wrote the identity before the load failed on "".
 */
const MODEL_DIR_REQUIRED = "expected the directory of an exported model (model.onnx, " +
  "config.json, tokenizer.json) or a .onnx file, got an empty path; leave it out for the " +
  "built-in model";

/** Whether `path` is free of a leading `~` (`SHELL_HOME_REFUSAL`, in `default_data_dir.ts`). */
function notShellHome(path: string): boolean {
  return !startsAtShellHome(path);
}

/**
 * The longest delay a timer can wait (`setTimeout` takes a signed 32-bit delay): ~24.8 days.
 * Every setting that becomes a timer's delay is capped at it: past it Deno warns and waits 1 ms,
 * so `--heartbeat 3000000000` logged a heartbeat every millisecond.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The shortest heartbeat: a line a second is already more than a person reads. Below it is a
 * unit taken for seconds (`--heartbeat 10`), which logged a line — and asked three actors —
 * every 10 ms.
 */
const MIN_HEARTBEAT_MS = 1_000;

/**
 * The shortest `training.arch.contextLength` a node can train or coordinate: its rounds train on
 * samples of `DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes` bytes (the length each trainer commits its
 * shard at), and the model reads all of a sample but its last byte at once. A shorter context
 * crashed the coordinator at start, naming no setting.
 */
const MIN_TRAINING_CONTEXT = DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes - 1;

/** Schema of the node configuration (JSON file `veriflow.json` and command-line flags). */
const nodeConfigSchema = z.strictObject({
  /** Where the node keeps its identity, models, chunks and ledger. */
  dataDir: z.string().min(1).refine(notShellHome, NO_TILDE).default(DEFAULT_DATA_DIR),
  /** Which actors this node runs. */
  roles: z.strictObject({
    storage: z.boolean().default(true),
    inference: z.boolean().default(true),
    prover: z.boolean().default(true),
    validator: z.boolean().default(true),
  }).prefault({}),
  http: z.strictObject({
    /** Loopback by default: exposing the API to a network is an explicit choice. */
    hostname: z.string().min(1, HOST_REQUIRED).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8080),
    /** The edge's limits and access rules (server/edge_config.ts; README, "Limits"). */
    ...edgeConfigFields,
  }).prefault({}),
  model: z.strictObject({
    /** Directory of an exported model (model.onnx, tokenizer.json, config.json); built-in when absent. */
    dir: z.string().min(1, MODEL_DIR_REQUIRED).refine(notShellHome, NO_TILDE).optional(),
    /** Size of the built-in model. */
    size: z.enum(["tiny", "small", "brown"]).default("brown"),
    /** Seed of the built-in model's weights. */
    seed: z.number().int().min(0).default(0),
    /**
     * Execution provider to ask for (`--device`): `cuda` and `webgpu` fall back to CPU when they
     * cannot start, with the reason logged and in `/v1/models` (`execution_provider_fallback`).
     */
    executionProvider: z.enum(["cpu", "cuda", "webgpu"]).default("cpu"),
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
    restart: z.strictObject({
      maxRestarts: z.number().int().min(0).max(1_000).default(5),
      withinMs: z.number().int().min(1).default(60_000),
      /**
       * A worker that leaves its requests unanswered this long is taken for hung (a graph that
       * never ends) and restarted like a crash, its jobs failed; 0: never.
       */
      stallMs: z.number().int().min(0).default(120_000),
    }).prefault({}),
  }).prefault({}),
  inference: z.strictObject({
    /**
     * Jobs computed at once per model that does not report its batch seats; a text model runs
     * as many as it seats (batch size × workers), more or fewer. More wait in the queue.
     */
    concurrency: z.number().int().min(1).max(256).default(4),
    /** Jobs allowed to wait; beyond that requests get 429. */
    queueLimit: z.number().int().min(0).max(100_000).default(64),
  }).prefault({}),
  network: z.strictObject({
    /**
     * Where peers connect (TCP). Loopback by default, like the HTTP API: joining a network
     * beyond this machine is an explicit choice. Port 0 picks a free one (printed at start).
     */
    listen: z.strictObject({
      hostname: z.string().min(1, HOST_REQUIRED).default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(7700),
    }).prefault({}),
    /** Accept peer connections at all. */
    listening: z.boolean().default(true),
    /** Static peers to dial and keep dialled, `HOST:PORT` or `[IPV6]:PORT`. */
    peers: z.array(z.string().refine(isDialAddress, DIAL_ADDRESS)).default([]),
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
    swarm: z.strictObject({
      enabled: z.boolean().default(false),
      bootstrap: z.array(z.string().refine(isDialAddress, DIAL_ADDRESS)).nullable()
        .default(null),
      bind: z.string().min(1, HOST_REQUIRED).optional(),
    }).prefault({}),
    /**
     * How a node without a model of its own forwards a client's job to a worker and when it
     * moves the job on (docs/PROTOCOL.md, "Routing"): the worker's `start` within
     * `startTimeoutMs`; a started job's next event within `stallTimeoutMs` (counted while the
     * client reads); its first token within `firstTokenTimeoutMs` while the worker streams
     * other jobs; another worker asked to take the job over beside the first after
     * `queueHoldMs` without a first token (0: never); after the first token, at most
     * `stallTimeoutMs` plus `tokenBudgetMs` per later token waiting on the worker (0: no such
     * floor, only the stall timeout). `tokensPerEvent` and `gatherMs`: how many ready tokens
     * the worker may send in one event, and how long it gathers them (1 and 0: each token on
     * its own at once).
     */
    routing: z.strictObject({
      startTimeoutMs: z.number().int().min(100).max(MAX_TIMER_MS).default(DEFAULT_START_TIMEOUT_MS),
      stallTimeoutMs: z.number().int().min(100).max(MAX_TIMER_MS).default(DEFAULT_STALL_TIMEOUT_MS),
      firstTokenTimeoutMs: z.number().int().min(100).max(MAX_TIMER_MS)
        .default(DEFAULT_FIRST_TOKEN_TIMEOUT_MS),
      queueHoldMs: z.number().int().min(0).max(MAX_TIMER_MS).default(DEFAULT_QUEUE_HOLD_MS),
      tokenBudgetMs: z.number().int().min(0).max(MAX_TIMER_MS).default(DEFAULT_TOKEN_BUDGET_MS),
      tokensPerEvent: z.number().int().min(1).max(MAX_TOKENS_PER_EVENT)
        .default(DEFAULT_TOKENS_PER_EVENT),
      gatherMs: z.number().int().min(0).max(MAX_GATHER_MS).default(DEFAULT_GATHER_MS),
    }).refine(
      (r) => r.firstTokenTimeoutMs >= r.stallTimeoutMs,
      {
        message: "firstTokenTimeoutMs must be at least stallTimeoutMs (a job queued behind " +
          "others waits at least as long as a stalled one)",
        path: ["firstTokenTimeoutMs"],
      },
    ).prefault({}),
  }).refine(
    // An idle connection hears only pings: peers that ping no sooner than they give up on each
    // other drop every idle connection at the timeout, and redial, for ever.
    (n) => n.keepaliveMs < n.idleTimeoutMs,
    {
      message: "keepaliveMs must be below idleTimeoutMs (an idle peer is heard only by its " +
        "pings: a third of it lets two be lost)",
      path: ["keepaliveMs"],
    },
  ).prefault({}),
  /** The chunk store's limits (README, "Storage limits"). */
  storage: z.strictObject({
    /**
     * Bytes the store may take on disk (every copy of every object plus 512 B per copy and 4 KiB
     * per pack file); a put past it fails with `quota_exceeded`. Unset: no quota.
     */
    quotaBytes: z.number().int().min(0).optional(),
    /**
     * Most bytes held for other nodes (chunks peers put here), each with 512 B; past it a peer's
     * chunk is refused with `replica_quota_exceeded` and goes to another holder. The node's own
     * puts do not count. Unset: half of `quotaBytes`, so peers never take more than half of it;
     * no cap of its own without a quota.
     */
    replicaQuotaBytes: z.number().int().min(0).optional(),
    /**
     * Free disk space a peer's chunk may never take: one that would leave less is refused with
     * `replica_quota_exceeded`. Default 1 GiB.
     */
    replicaMinFreeBytes: z.number().int().min(0).default(1024 ** 3),
    /** Unreferenced objects younger than this are never collected (a put's objects in flight). */
    gcGraceMs: z.number().int().min(0).default(600_000),
    /**
     * How often this node audits the holders of its replicated files, ms (0: never): a round
     * samples a few files and asks each holder for a few chunks it was given; a failure is a
     * signed verdict in the ledger, and the failed chunks are repaired at once.
     */
    auditIntervalMs: z.number().int().min(0).max(MAX_TIMER_MS).default(600_000),
    /** Largest file read whole into memory (`get_bytes`); larger ones must be streamed. */
    maxInMemoryBytes: z.number().int().min(0).default(64 * 1024 * 1024),
  }).prefault({}),
  validator: z.strictObject({
    /**
     * Probability of challenging another node's receipt; default the economics' value. The
     * worker cannot predict the coin (it is the validator's signature over the job id).
     */
    challengeProbability: z.number().min(0).max(1).optional(),
  }).prefault({}),
  /**
   * Decentralized training (docs/TRAINING.md, "The network round"). `trainer`: train on shard
   * `shard` of `shards` of the Brown corpus (`--train`, `--train-shard I/N`); the data stays on
   * this node. `coordinator`: run `rounds` rounds (0: until stopped) of H = `steps` local steps,
   * each waiting `deadlineMs` for reports, once `minTrainers` have joined (`--coordinate-training`).
   * `validate`: take training gossip (receipts, fraud proofs, round models) on a node that
   * neither trains nor coordinates (those always do, when they keep a ledger).
   * `challengeProbability`: chance of challenging a training receipt (default the economics').
   * `arch` is the trained model's architecture (default the built-in `tiny`); `corpusDocs`
   * limits the corpus (every node of a network must use the same value: shards must not overlap).
   */
  training: z.strictObject({
    arch: z.strictObject({
      numLayers: z.number().int().min(1).max(64).default(2),
      hiddenSize: z.number().int().min(1).max(8192).default(64),
      numHeads: z.number().int().min(1).max(128).default(4),
      contextLength: z.number().int().min(
        MIN_TRAINING_CONTEXT,
        `expected at least ${MIN_TRAINING_CONTEXT}: a round trains on samples of ` +
          `${DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes} bytes, read ${MIN_TRAINING_CONTEXT} at once`,
      ).max(65_536).default(256),
    }).refine(
      (arch) => ArchitectureSchema.safeParse(arch).success,
      `hiddenSize must be a multiple of numHeads, and the model at most ${MAX_WIRE_MODEL_PARAMETERS} parameters, its delta within ${MAX_REPORT_DELTA_BYTES} bytes (a round's report carries it inline, a byte a parameter and a scale a row)`,
    ).prefault({}),
    corpusDocs: z.number().int().min(10).max(500).default(500),
    trainer: z.strictObject({
      enabled: z.boolean().default(false),
      shard: z.number().int().min(0).default(0),
      shards: z.number().int().min(1).max(1_000).default(1),
    }).refine((t) => t.shard < t.shards, "shard must be below shards").prefault({}),
    coordinator: z.strictObject({
      enabled: z.boolean().default(false),
      rounds: z.number().int().min(0).default(0),
      steps: z.number().int().min(1).max(MAX_ROUND_STEPS).default(50),
      deadlineMs: z.number().int().min(100).max(MAX_TIMER_MS).default(120_000),
      minTrainers: z.number().int().min(1).max(1_000).default(1),
      seed: z.number().int().min(0).default(0),
    }).prefault({}),
    validate: z.boolean().default(false),
    challengeProbability: z.number().min(0).max(1).optional(),
  }).prefault({}),
  /**
   * The ledger: a signed checkpoint of its working state every `checkpointEvery` entries (and
   * on shutdown), so opening verifies at most that many entries; 0: only on shutdown.
   */
  ledger: z.strictObject({
    checkpointEvery: z.number().int().min(0).max(1_000_000).default(1_024),
  }).prefault({}),
  /**
   * Proof data the prover keeps for challenges: `retentionMs` after each job (default and least:
   * 21 minutes, `MIN_PROOF_RETENTION_MS` in `proof/challenge_timing.ts` — the 5 minutes a receipt
   * may take to reach a ledger, twice the 2.5 minutes clocks may differ, the 10-minute challenge
   * window and the 1-minute proof deadline). A worker that deletes proof data a challenge can
   * still ask for is slashed for withholding it, so less is refused.
   */
  proofs: z.strictObject({
    retentionMs: z.number().int().min(MIN_PROOF_RETENTION_MS).optional(),
  }).prefault({}),
  /** Milliseconds between heartbeat lines, at least {@link MIN_HEARTBEAT_MS}; 0 turns them off. */
  heartbeatMs: z.number().int().min(0).max(MAX_TIMER_MS)
    .refine((ms) => ms === 0 || ms >= MIN_HEARTBEAT_MS, {
      message: `is in milliseconds, at least ${MIN_HEARTBEAT_MS} (10000: a line every 10 s), ` +
        "or 0 for none",
    })
    .default(10_000),
  /**
   * How log lines are written: `text` for a terminal (one readable line each), `json` for a log
   * collector (one object per line: time, level, component, msg; see node/log_format.ts).
   */
  log: z.strictObject({
    format: z.enum(["text", "json"]).default("text"),
  }).prefault({}),
  /**
   * The live dashboard at `/` (server/dashboard_routes.ts). Read-only for anyone the API serves;
   * submitting a job from it needs the operator token, kept in `<dataDir>/operator.token`.
   */
  dashboard: z.strictObject({
    enabled: z.boolean().default(true),
  }).prefault({}),
  /**
   * Stake recorded for the node's own key on first start (bookkeeping: there is no token). A
   * receipt locks `slashMultiplier × tokens × price` of it during its challenge window, so the
   * default backs about two hundred 256-token jobs per window at the default price.
   */
  selfStake: z.number().min(0).default(1_000_000),
}).superRefine((c, ctx) => {
  // The HTTP API binds first: the peer listener then failed on the node's own port, blamed on
  // "another node on this port?", after the data directory was taken and the model loaded.
  if (!c.network.listening || !sharePort(c.http, c.network.listen)) return;
  ctx.addIssue({
    code: "custom",
    message: `the same as http.port (${c.http.port}) on ${c.network.listen.hostname}, which ` +
      `the HTTP API takes first: give peers a port of their own (--p2p-port), or --no-listen`,
    path: ["network", "listen", "port"],
  });
});

/** Addresses that bind a port on every interface of the machine. */
const EVERY_INTERFACE: ReadonlySet<string> = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * Whether two listeners would ask for one port: the same non-zero port on the same address, or
 * with either on every interface (port 0 picks a free one each).
 */
function sharePort(
  a: { hostname: string; port: number },
  b: { hostname: string; port: number },
): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  return a.hostname === b.hostname || EVERY_INTERFACE.has(a.hostname) ||
    EVERY_INTERFACE.has(b.hostname);
}

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
    size: "tiny" | "small" | "brown";
    seed: number;
    executionProvider: "cpu" | "cuda" | "webgpu";
    workers: number;
    validationWorkers: number;
    restart: { maxRestarts: number; withinMs: number; stallMs: number };
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
    routing: RoutingConfig;
  };
  /**
   * Chunk store limits: quota (none), what peers may place here (half the quota; 1 GiB of disk
   * kept free), GC grace period (10 min), largest in-memory read (64 MiB); how often the holders
   * of this node's files are audited (10 min).
   */
  storage: {
    quotaBytes?: number;
    replicaQuotaBytes?: number;
    replicaMinFreeBytes: number;
    gcGraceMs: number;
    maxInMemoryBytes: number;
    auditIntervalMs: number;
  };
  /** Validator settings: the challenge probability (default: the economics' value). */
  validator: { challengeProbability?: number };
  /** Decentralized training: trainer, coordinator and validator settings (off by default). */
  training: {
    arch: { numLayers: number; hiddenSize: number; numHeads: number; contextLength: number };
    corpusDocs: number;
    trainer: { enabled: boolean; shard: number; shards: number };
    coordinator: {
      enabled: boolean;
      rounds: number;
      steps: number;
      deadlineMs: number;
      minTrainers: number;
      seed: number;
    };
    validate: boolean;
    challengeProbability?: number;
  };
  /** Ledger checkpoints: every `checkpointEvery` entries (default 1,024). */
  ledger: { checkpointEvery: number };
  /** How long the prover keeps proof data (default: window + proof deadline + 10 minutes). */
  proofs: { retentionMs?: number };
  /** Milliseconds between heartbeat lines; 0 turns them off. Default 10 000. */
  heartbeatMs: number;
  /** Log lines as readable text (default) or one JSON object per line. */
  log: { format: "text" | "json" };
  /** The dashboard at `/`: on by default. */
  dashboard: { enabled: boolean };
  /** Stake recorded for the node's own key on first start. Default 1 000 000. */
  selfStake: number;
}

/**
 * How a routing node forwards jobs (`network.routing`; defaults in parentheses): the worker's
 * `start` within `startTimeoutMs` (30 s), a started job's next event within `stallTimeoutMs`
 * (60 s), the first token within `firstTokenTimeoutMs` (10 min) while the worker streams other
 * jobs, a second worker asked after `queueHoldMs` (30 s; 0: never), `tokenBudgetMs` per token
 * after the first (2 s; 0: no floor), up to `tokensPerEvent` tokens (8) gathered for
 * `gatherMs` (5 ms) in one event.
 */
export interface RoutingConfig {
  /** How long the worker may take to answer a job with its `start`. */
  startTimeoutMs: number;
  /** How long a started job may wait for the worker's next event while the client reads. */
  stallTimeoutMs: number;
  /** How long a job may wait for its first token while the worker streams other jobs. */
  firstTokenTimeoutMs: number;
  /** How long without a first token before a second worker is asked; 0: never. */
  queueHoldMs: number;
  /** Waiting allowed per token after the first, beyond the stall timeout; 0: no such floor. */
  tokenBudgetMs: number;
  /** Most ready tokens the worker may send in one event. */
  tokensPerEvent: number;
  /** How long the worker gathers ready tokens into one event. */
  gatherMs: number;
}

/**
 * The routing port's options for `network.routing` (its worker ports' options and the
 * failover's `queueHoldMs`): the same values, except that 0 turns the queue hold and the
 * delivery floor off (Infinity to the port).
 */
export function forwardingOptionsOf(
  routing: RoutingConfig,
): RemoteInferencePortOptions & { queueHoldMs: number } {
  const { queueHoldMs, tokenBudgetMs, ...rest } = routing;
  return {
    ...rest,
    queueHoldMs: queueHoldMs === 0 ? Infinity : queueHoldMs,
    tokenBudgetMs: tokenBudgetMs === 0 ? Infinity : tokenBudgetMs,
  };
}

// Compile-time proof that the schema produces exactly a NodeConfig.
const _schemaMatches: (c: z.infer<typeof nodeConfigSchema>) => NodeConfig = (c) => c;

/** Where a configuration value came from, highest precedence last. */
export type ConfigSource = "default" | "file" | "env" | "flag";

/**
 * One layer of configuration: values (nested like the file) from one source, with what set each
 * leaf (`--port`, `VERIFLOW_HTTP_PORT`, the file's path) by dotted key path.
 */
export interface ConfigLayer {
  /** Which kind of source. */
  source: Exclude<ConfigSource, "default">;
  /** The values, nested like the configuration file. */
  values: Record<string, unknown>;
  /** What set each leaf, by dotted key path (`http.port` → `--port`). */
  setBy: Map<string, string>;
}

/** Where one effective value came from. */
export interface ConfigOrigin {
  /** The kind of source. */
  source: ConfigSource;
  /** The flag, variable or file that set it; absent for defaults. */
  by?: string;
}

/** A validated configuration and where each of its leaves came from. */
export interface ResolvedConfig {
  /** The effective configuration. */
  config: NodeConfig;
  /** The origin of every leaf, by dotted key path, in schema order. */
  origins: Map<string, ConfigOrigin>;
}

/** What kind of value a configuration leaf holds (how an environment variable is read). */
export type ConfigLeafKind = "string" | "integer" | "number" | "boolean" | "list";

/** A leaf of the configuration schema. */
export interface ConfigLeaf {
  /** Dotted key path (`http.port`). */
  path: string;
  /** Its environment variable (`VERIFLOW_HTTP_PORT`). */
  env: string;
  /** How its text form is read. */
  kind: ConfigLeafKind;
}

/** Prefix of every configuration environment variable. */
export const ENV_PREFIX = "VERIFLOW_";

/**
 * `VERIFLOW_*` variables that are not configuration leaves but are read elsewhere (the config
 * file's path here; the client's key and the tests' log switch by their own commands).
 */
const OTHER_ENV = new Set(["VERIFLOW_CONFIG", "VERIFLOW_API_KEY", "VERIFLOW_TEST_LOG"]);

type ZodDef = {
  type: string;
  innerType?: ZodLike;
  shape?: Record<string, ZodLike>;
  checks?: { _zod: { def: { check: string; format?: string } } }[];
};
type ZodLike = { _zod: { def: ZodDef } };

/** zod's number formats that only hold whole numbers (`z.number().int()` is `safeint`). */
const INTEGER_FORMATS: ReadonlySet<string> = new Set(["safeint", "int32", "uint32"]);

/** The leaf kind of a schema node, seen through default/optional/nullable wrappers. */
function leafKind(schema: ZodLike): ConfigLeafKind | ZodLike {
  let def = schema._zod.def;
  while (def.innerType !== undefined && def.type !== "object") def = def.innerType._zod.def;
  switch (def.type) {
    case "object":
      return { _zod: { def } };
    case "number":
      return def.checks?.some(({ _zod: { def: check } }) =>
          check.check === "number_format" && INTEGER_FORMATS.has(check.format ?? "")
        )
        ? "integer"
        : "number";
    case "boolean":
      return "boolean";
    case "array":
      return "list";
    default:
      return "string";
  }
}

/** `checkpointEvery` → `CHECKPOINT_EVERY`. */
function envSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Every leaf of the configuration schema, in schema order. */
export function configLeaves(): ConfigLeaf[] {
  const leaves: ConfigLeaf[] = [];
  const walk = (schema: ZodLike, path: string[]) => {
    const kind = leafKind(schema);
    if (typeof kind === "string") {
      leaves.push({
        path: path.join("."),
        env: ENV_PREFIX + path.map(envSegment).join("_"),
        kind,
      });
      return;
    }
    for (const [key, child] of Object.entries(kind._zod.def.shape ?? {})) {
      walk(child, [...path, key]);
    }
  };
  walk(nodeConfigSchema as unknown as ZodLike, []);
  return leaves;
}

/** Set `value` at dotted `path` in `target`, creating sections on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let section = target;
  for (const key of keys.slice(0, -1)) {
    const next = section[key];
    section = (next !== null && typeof next === "object" && !Array.isArray(next)
      ? next
      : (section[key] = {})) as Record<string, unknown>;
  }
  section[keys[keys.length - 1]] = value;
}

/**
 * Dotted paths of every leaf (non-object value) in `values`; an empty object counts as a leaf,
 * so that a section set to `{}` still has a source to name.
 */
function leafPaths(values: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(values).flatMap(([key, value]) => {
    const path = prefix + key;
    return value !== null && typeof value === "object" && !Array.isArray(value) &&
        Object.keys(value).length > 0
      ? leafPaths(value as Record<string, unknown>, path + ".")
      : [path];
  });
}

/** `b` merged over `a`: sections merge key by key; lists and values replace. */
function mergeOver(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const under = out[key];
    const bothSections = [under, value].every((v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
    );
    out[key] = bothSections
      ? mergeOver(under as Record<string, unknown>, value as Record<string, unknown>)
      : value;
  }
  return out;
}

/** A configuration file's values as a layer (every leaf set by the file). */
export function fileLayer(values: Record<string, unknown>, path: string): ConfigLayer {
  return {
    source: "file",
    values,
    setBy: new Map(leafPaths(values).map((p) => [p, path])),
  };
}

/**
 * The `VERIFLOW_*` environment variables as a layer: `VERIFLOW_HTTP_PORT=9000` sets `http.port`
 * (one variable per leaf, its path in upper snake case: `configLeaves()` lists them); a list is
 * comma-separated, a boolean `true`/`false` (or `1`/`0`), a whole number decimal digits only and
 * any other number plain decimal notation (as a flag's: {@link parseWholeNumber},
 * {@link parseDecimalNumber}). A variable that names no leaf is refused, naming it, like
 * an unknown key in the file.
 *
 * @param env The environment (`Deno.env.toObject()`).
 */
export function envLayer(env: Readonly<Record<string, string>>): ConfigLayer {
  const byName = new Map(configLeaves().map((leaf) => [leaf.env, leaf]));
  const layer: ConfigLayer = { source: "env", values: {}, setBy: new Map() };
  const problems: string[] = [];
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || OTHER_ENV.has(name)) continue;
    const leaf = byName.get(name);
    if (leaf === undefined) {
      problems.push(`  ${name}: unknown variable (${closest(name, [...byName.keys()])})`);
      continue;
    }
    let value: unknown = text;
    if (leaf.kind === "integer") {
      value = parseWholeNumber(text);
      if (value === undefined) problems.push(`  ${notWholeNumber(name, text)}`);
    } else if (leaf.kind === "number") {
      value = parseDecimalNumber(text);
      if (value === undefined) problems.push(`  ${notDecimalNumber(name, text)}`);
    } else if (leaf.kind === "boolean") {
      const t = text.trim().toLowerCase();
      value = t === "true" || t === "1" ? true : t === "false" || t === "0" ? false : undefined;
      if (value === undefined) problems.push(`  ${name}: expected true or false, got "${text}"`);
    } else if (leaf.kind === "list") {
      value = text.split(",").map((item) => item.trim()).filter((item) => item !== "");
    }
    setPath(layer.values, leaf.path, value);
    layer.setBy.set(leaf.path, name);
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid environment:\n${problems.join("\n")}`, { namesKeys: true });
  }
  return layer;
}

/**
 * `did you mean X?` for the name nearest `name` among `known` and `alsoNear` (names that are
 * not settings themselves, such as sections), or the size of `known` when none is near.
 */
function closest(name: string, known: readonly string[], alsoNear: readonly string[] = []): string {
  const best = nearestName(name, [...known, ...alsoNear]);
  return best !== undefined
    ? `did you mean ${best}?`
    : `see README, "Configuration", for the ${known.length} known ones`;
}

/**
 * Merge layers (later ones win: pass them file, env, flags for the documented precedence
 * flag > env > file > default), validate the result, and say where each leaf came from. Throws
 * {@link ConfigError} naming each wrong key path, why, and which flag, variable or file set it.
 */
export function resolveNodeConfig(layers: readonly ConfigLayer[]): ResolvedConfig {
  let merged: Record<string, unknown> = {};
  for (const layer of layers) merged = mergeOver(merged, layer.values);
  const originOf = (path: string): ConfigOrigin => {
    for (const layer of [...layers].reverse()) {
      const by = layer.setBy.get(path);
      if (by !== undefined) return { source: layer.source, by };
    }
    // A section (an unknown one, say) has no entry of its own: layers record leaves. The layer
    // that set a leaf under it set the section.
    for (const layer of [...layers].reverse()) {
      for (const [leaf, by] of layer.setBy) {
        if (leaf.startsWith(`${path}.`)) return { source: layer.source, by };
      }
    }
    return { source: "default" };
  };
  const config = parseNodeConfig(merged, (path) => {
    const origin = originOf(path);
    return origin.by === undefined ? undefined : origin.by;
  });
  const origins = new Map(configLeaves().map((leaf) => [leaf.path, originOf(leaf.path)]));
  return { config, origins };
}

/**
 * Leaves whose values are secrets: `--print-config` shows how many there are, never the values
 * (its output is what an operator pastes into a bug report).
 */
const SECRET_LEAVES: ReadonlySet<string> = new Set(["http.apiKeys"]);

/** How `--print-config` shows a value: JSON, or for a secret leaf only its count. */
function shownValue(path: string, value: unknown): string {
  if (value === undefined) return "(unset)";
  if (!SECRET_LEAVES.has(path)) return JSON.stringify(value);
  const count = Array.isArray(value) ? value.length : 1;
  return count === 0 ? "[]" : `(${count} ${count === 1 ? "value" : "values"}, not shown)`;
}

/**
 * The effective configuration, one leaf a line with where it came from, for
 * `cli.ts start --print-config`; secrets (the API keys) are counted, not shown:
 *
 * ```
 * http.port                 8080              default
 * dataDir                   "/srv/vf"         env VERIFLOW_DATA_DIR
 * http.apiKeys              (2 values, not shown)  env VERIFLOW_HTTP_API_KEYS
 * ```
 */
export function formatResolvedConfig(resolved: ResolvedConfig): string {
  const rows = [...resolved.origins].map(([path, origin]) => {
    let value: unknown = resolved.config;
    for (const key of path.split(".")) value = (value as Record<string, unknown>)?.[key];
    const shown = shownValue(path, value);
    const from = origin.by === undefined ? origin.source : `${origin.source} ${origin.by}`;
    return [path, shown, from];
  });
  const width = (i: number) => Math.max(...rows.map((r) => r[i].length));
  const [w0, w1] = [width(0), Math.min(width(1), 40)];
  return rows.map(([path, shown, from]) => `${path.padEnd(w0)}  ${shown.padEnd(w1)}  ${from}`).join(
    "\n",
  );
}

/**
 * The cap on what peers may place in this node's store: `storage.replicaQuotaBytes`, else half
 * of `storage.quotaBytes`, else none (`undefined`).
 */
export function replicaQuotaOf(storage: NodeConfig["storage"]): number | undefined {
  if (storage.replicaQuotaBytes !== undefined) return storage.replicaQuotaBytes;
  return storage.quotaBytes === undefined ? undefined : Math.floor(storage.quotaBytes / 2);
}

/**
 * Validate a raw configuration value (from JSON); throws {@link ConfigError} naming every wrong
 * key path and the reason.
 *
 * @param raw The value (a parsed file, or merged layers).
 * @param setBy What set the value at a dotted path (a flag, a variable, a file), to name it.
 */
export function parseNodeConfig(
  raw: unknown,
  setBy: (path: string) => string | undefined = () => undefined,
): NodeConfig {
  const result = nodeConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const known = configLeaves().map((leaf) => leaf.path);
    // An unknown section is near a known section, not a leaf: `htttp` → `http`.
    const sections = new Set<string>();
    for (const leaf of known) {
      for (let dot = leaf.indexOf("."); dot > 0; dot = leaf.indexOf(".", dot + 1)) {
        sections.add(leaf.slice(0, dot));
      }
    }
    // Layers record a list as one leaf (`--peer` sets `network.peers`, not `network.peers.0`):
    // an item's source is its list's.
    const sourceOf = (at: readonly string[]): string | undefined => {
      let keys = at;
      for (;;) {
        const by = setBy(keys.join("."));
        if (by !== undefined || keys.length === 0 || !/^\d+$/.test(keys[keys.length - 1])) {
          return by;
        }
        keys = keys.slice(0, -1);
      }
    };
    const issues = result.error.issues.flatMap((issue) => {
      const at = issue.path.map(String);
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((key) => {
          const path = [...at, key].join(".");
          const by = sourceOf([...at, key]);
          const hint = closest(path, known, [...sections]);
          return `  ${path}: unknown key (${hint})${by === undefined ? "" : ` [from ${by}]`}`;
        });
      }
      const path = at.join(".") || "(root)";
      const by = sourceOf(at.length === 0 ? ["(root)"] : at);
      return [`  ${path}: ${issue.message}${by === undefined ? "" : ` [from ${by}]`}`];
    });
    throw new ConfigError(`invalid configuration:\n${issues.join("\n")}`, { namesKeys: true });
  }
  return result.data;
}

/**
 * Read a JSON configuration file (not yet validated: a layer for {@link resolveNodeConfig}); a
 * path led by `~` is refused like a configured one (`SHELL_HOME_REFUSAL`).
 */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  if (startsAtShellHome(path)) {
    // Refused as such: "no such file" sent the operator looking for a file that is there.
    throw new ConfigError(
      `configuration file ${path} ${NO_TILDE} (check the path given to --config or ` +
        `VERIFLOW_CONFIG)`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    throw new ConfigError(
      `cannot read configuration file ${path} (${(cause as Error).message}); check the path ` +
        `given to --config or VERIFLOW_CONFIG`,
      { cause },
    );
  }
  let raw: unknown;
  try {
    // One byte-order mark is the encoding's, not the JSON's (Notepad and PowerShell 5 write
    // it): JSON.parse refused it as an invisible "Unexpected token".
    raw = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
  } catch (cause) {
    throw new ConfigError(`${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`${path}: expected a JSON object at the top level`);
  }
  return raw as Record<string, unknown>;
}

/** Read and validate a JSON configuration file. */
export async function loadNodeConfig(path: string): Promise<NodeConfig> {
  return resolveNodeConfig([fileLayer(await readConfigFile(path), path)]).config;
}
