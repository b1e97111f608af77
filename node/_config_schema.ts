/**
 * What a valid node configuration is: the zod schema behind `node/config.ts` (every field, its
 * limits and default, the refusals an operator reads, the checks across fields), and its leaves
 * as the rest of the node names them (`http.port`, `VERIFLOW_HTTP_PORT`, how each is read).
 * `config.ts` validates against it; nothing else imports it. Private: `config.ts` (and so
 * `mod.ts`) re-exports the leaves (`configLeaves`, `ConfigLeaf`, `ConfigLeafKind`, `ENV_PREFIX`).
 *
 * @module
 */
import {
  DEFAULT_DATA_DIR,
  SHELL_HOME_REFUSAL as NO_TILDE,
  startsAtShellHome,
} from "./default_data_dir.ts";
import { z } from "zod";
import { parsePeerAddress } from "../network/peer_address.ts";
import { edgeConfigFields } from "../server/edge_config.ts";
import { MIN_PROOF_RETENTION_MS } from "../proof/challenge_timing.ts";
import {
  DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
  DEFAULT_GATHER_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_TOKEN_BUDGET_MS,
  DEFAULT_TOKENS_PER_EVENT,
} from "../inference/remote_port.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../network/failover.ts";
import { DEFAULT_PREFILL_TOKENS_PER_TICK } from "../inference/_prefill_planner.ts";
import { DEFAULT_LOAD_TIMEOUT_MS } from "../inference/model_health.ts";
import { MAX_QUEUE_LIMIT } from "../actors/_fair_queue.ts";
import { MAX_GATHER_MS, MAX_TOKENS_PER_EVENT } from "../protocols/inference_messages.ts";
import {
  ArchitectureSchema,
  MAX_REPORT_DELTA_BYTES,
  MAX_ROUND_STEPS,
  MAX_WIRE_MODEL_PARAMETERS,
} from "../protocols/training_messages.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../training/hyper_params.ts";
import { trainingStakeRefusal } from "../training/training_stake.ts";
import { roundAnswerRefusal } from "../training/opening_window.ts";
// Every setting that becomes a timer's delay is capped at it (~24.8 days): past it Deno warns and
// waits 1 ms, so `--heartbeat 3000000000` logged a heartbeat every millisecond.
import { MAX_TIMER_MS } from "../protocols/connection_timers.ts";
import {
  DEFAULT_NODE_MAX_HANDLERS,
  DEFAULT_NODE_MAX_HANDLERS_PER_PEER,
  DEFAULT_NODE_MAX_QUEUED_BYTES,
  DEFAULT_NODE_MAX_STREAMS,
  DEFAULT_NODE_MAX_STREAMS_PER_PEER,
} from "../protocols/wire_budget.ts";
import {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_STREAM_CREDIT_TIMEOUT_MS,
} from "../protocols/connection.ts";

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
/**
 * What peers may place in this node's store when neither `storage.replicaQuotaBytes` nor
 * `storage.quotaBytes` is set: 16 GiB (65 536 chunks of 256 KiB). Without a cap one peer could
 * fill the whole disk down to `storage.replicaMinFreeBytes` with chunks nobody asked for, and
 * keep it for good, since replica records are never released (review s71, finding 4). A fixed
 * size, not a share of the free disk, so the limit is the same at every start and reads in the
 * config's origins (`replicaQuotaOf`, `config.ts`); an operator lending more of a large disk sets `storage.replicaQuotaBytes`.
 */
export const DEFAULT_REPLICA_QUOTA_BYTES: number = 16 * 1024 ** 3;

/**
 * Free disk the node's own puts leave when `storage.putMinFreeBytes` is not set: 256 MiB. Without
 * a floor an API client could fill the disk to the last byte, after which receipts failed
 * (`proof_store_failed`, `ledger_write_failed`) and the node refused to restart (review s75 F1).
 * A receipt's proof record and ledger entry are a few KiB, so this leaves room for tens of
 * thousands of jobs, the log and the index while the operator frees space; it stays under
 * `storage.replicaMinFreeBytes` (1 GiB) so peers still stop first and cannot fill the disk under
 * the node's own uploads.
 */
export const DEFAULT_PUT_MIN_FREE_BYTES: number = 256 * 1024 ** 2;

const DIAL_ADDRESS = "expected HOST:PORT with a port 1–65535";

/**
 * A `HOST:PORT` list item, refused quoting the item: with several `--peer` flags, the index alone
 * (`network.peers.1`) left the operator counting flags from 0.
 */
const dialAddress = () =>
  z.string().refine(isDialAddress, {
    error: (issue) => `${DIAL_ADDRESS}, got ${JSON.stringify(issue.input)}`,
  });

/**
 * Said of an empty host: the system's own refusal would come at start, blamed on the port.
 */
const HOST_REQUIRED = "expected an address to listen on, such as 127.0.0.1 (this machine only) " +
  "or 0.0.0.0 (every interface), got an empty one";

/**
 * A host name (DNS labels of letters, digits, `-` and `_`, dot-separated) or an IPv4 address:
 * what a listening host takes besides an IPv6 address.
 */
const HOST_NAME =
  /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/** An IPv6 address (hex groups and colons, an IPv4 tail, a `%zone`), without brackets. */
const IPV6_ADDRESS = /^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?$/;

/**
 * A host to listen on: a name or an address, refused here whichever layer set it (a flag, the
 * file, the environment), so a host that cannot be one is bad input (exit 2), not a node that
 * failed to bind it after its data directory was touched (review s70).
 */
const listenHost = z.string().min(1, HOST_REQUIRED).refine(
  (host) => host === "" || HOST_NAME.test(host) || IPV6_ADDRESS.test(host),
  { error: (issue) => `expected a host name or an IP address to listen on, got "${issue.input}"` },
);

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

/**
 * The largest `model.prefillTokensPerTick`. A budget at least a prompt's length reads that prompt
 * whole, so past the longest prompt a served model takes the value changes nothing; a larger
 * one is a slip (a digit too many), refused rather than run as "never cut a prompt".
 */
export const MAX_PREFILL_TOKENS_PER_TICK = 65_536;

/**
 * What a `model.prefillTokensPerTick` that is not one is told, whatever is wrong with it (not a
 * number, a fraction, out of range): one line naming the range, not one per failed check.
 */
const PREFILL_RANGE = `expected a whole number of prompt tokens from 1 to ` +
  `${MAX_PREFILL_TOKENS_PER_TICK} (unset: ${DEFAULT_PREFILL_TOKENS_PER_TICK}, with pieces ` +
  `sized to the measured step)`;

/**
 * What an `inference.queueLimit` past {@link MAX_QUEUE_LIMIT} is told: one line with the bound and
 * why, instead of zod's bare `expected number to be <=4096`.
 */
const QUEUE_LIMIT_RANGE = `at most ${MAX_QUEUE_LIMIT} waiting jobs per model (every queue change ` +
  `retells each waiting job its place; a longer queue is hours of waiting anyway)`;

/** Least `server.wsMemoryLimitBytes`: above the node's own idle RSS (about 180 MiB, measured). */
const MIN_WS_MEMORY_LIMIT_BYTES = 256 << 20;

/** Schema of the node configuration (JSON file `veriflow.json` and command-line flags). */
export const nodeConfigSchema = z.strictObject({
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
    hostname: listenHost.default("127.0.0.1"),
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
     * Text models: most prompt tokens a batch reads in one step while its streams decode
     * (`inference/_batch_decoder.ts`, docs/MODELS.md "Continuous batching"): a joining prompt is
     * read in pieces of this many, one per step. Higher brings a joining stream's first token
     * sooner and stalls the running streams longer between two tokens; lower the reverse. Unset:
     * `DEFAULT_PREFILL_TOKENS_PER_TICK` (128) with pieces sized to the measured decode step
     * under it; set, the pieces are of this size. Optional, not defaulted, for that reason.
     */
    prefillTokensPerTick: z.number({ error: PREFILL_RANGE })
      .int({ error: PREFILL_RANGE, abort: true })
      .min(1, { error: PREFILL_RANGE, abort: true })
      .max(MAX_PREFILL_TOKENS_PER_TICK, { error: PREFILL_RANGE })
      .optional(),
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
    /**
     * Longest the model's first load in its workers may take (ms) before the node gives up on it
     * (its start fails, naming the model and this key); 0: never. Ten minutes by default
     * (`DEFAULT_LOAD_TIMEOUT_MS`): a large export on a slow machine loads in minutes, a hung one
     * never. With `workers` 0 the load blocks the main thread and is not timed.
     */
    loadTimeoutMs: z.number().int().min(0).default(DEFAULT_LOAD_TIMEOUT_MS),
  }).prefault({}),
  inference: z.strictObject({
    /**
     * Jobs computed at once per model that does not report its batch seats; a text model runs
     * as many as it seats (batch size × workers), more or fewer. More wait in the queue.
     */
    concurrency: z.number().int().min(1).max(256).default(4),
    /**
     * Jobs allowed to wait; beyond that requests get 429. At most {@link MAX_QUEUE_LIMIT}: each
     * queue change retells every waiting job its place, in the actor's turn.
     */
    queueLimit: z.number().int().min(0).max(MAX_QUEUE_LIMIT, { error: QUEUE_LIMIT_RANGE })
      .default(64),
  }).prefault({}),
  network: z.strictObject({
    /**
     * Where peers connect (TCP). Loopback by default, like the HTTP API: joining a network
     * beyond this machine is an explicit choice. Port 0 picks a free one (printed at start).
     */
    listen: z.strictObject({
      hostname: listenHost.default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(7700),
    }).prefault({}),
    /** Accept peer connections at all. */
    listening: z.boolean().default(true),
    /** Static peers to dial and keep dialled, `HOST:PORT` or `[IPV6]:PORT`. */
    peers: z.array(dialAddress()).default([]),
    /**
     * Send a ping after this long without traffic. A third of the idle timeout: two pings can
     * be lost before a live peer is taken for dead.
     */
    keepaliveMs: z.number().int().min(10).max(600_000).default(1_500),
    /** A peer silent (or not reading) for this long is dropped and its jobs fail. */
    idleTimeoutMs: z.number().int().min(50).max(3_600_000).default(5_000),
    /**
     * The node's wire limits, shared by all its peer connections (`WireConfig`; docs/PROTOCOL.md,
     * "Limits and defaults"): without them each connection's own bounds multiplied by the
     * connections a node holds.
     */
    wire: z.strictObject({
      maxHandlers: z.number().int().min(1).default(DEFAULT_NODE_MAX_HANDLERS),
      maxHandlersPerPeer: z.number().int().min(1).default(DEFAULT_NODE_MAX_HANDLERS_PER_PEER),
      maxStreams: z.number().int().min(1).default(DEFAULT_NODE_MAX_STREAMS),
      maxStreamsPerPeer: z.number().int().min(1).default(DEFAULT_NODE_MAX_STREAMS_PER_PEER),
      maxQueuedBytes: z.number().int().min(1).default(DEFAULT_NODE_MAX_QUEUED_BYTES),
      streamCreditTimeoutMs: z.number().int().min(0).max(MAX_TIMER_MS)
        .default(DEFAULT_STREAM_CREDIT_TIMEOUT_MS),
      frameTimeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).default(DEFAULT_FRAME_TIMEOUT_MS),
    }).prefault({}),
    /**
     * Find peers on Hyperswarm, through the swarm host (a Node.js child process: Node.js 20+
     * must be installed). Off by default for now. `bootstrap`: DHT bootstrap nodes
     * (`HOST:PORT`), or null for the public DHT; `bind`: the address the DHT binds
     * (`127.0.0.1` for a local testnet).
     */
    swarm: z.strictObject({
      enabled: z.boolean().default(false),
      bootstrap: z.array(dialAddress()).nullable()
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
     * without a quota, {@link DEFAULT_REPLICA_QUOTA_BYTES} (16 GiB).
     */
    replicaQuotaBytes: z.number().int().min(0).optional(),
    /**
     * Free disk space a peer's chunk may never take: one that would leave less is refused with
     * `replica_quota_exceeded`. Default 1 GiB.
     */
    replicaMinFreeBytes: z.number().int().min(0).default(1024 ** 3),
    /**
     * Free disk space the node's own puts (API uploads) may never take: one that would leave less
     * is refused with `disk_full` (507). Default {@link DEFAULT_PUT_MIN_FREE_BYTES} (256 MiB).
     */
    putMinFreeBytes: z.number().int().min(0).default(DEFAULT_PUT_MIN_FREE_BYTES),
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
   * each waiting `deadlineMs` for reports, once `minTrainers` have joined (`--coordinate-training`),
   * evaluating each round's model on `heldOutFile` (`--held-out FILE`: private text on this node)
   * or, unset, on the corpus's public held-out split.
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
      // A UTF-8 text file only this operator holds, evaluated instead of the public Brown split
      // (`training/held_out_text.ts`); read, and refused with the reason, at start.
      heldOutFile: z.string().min(1).refine(notShellHome, NO_TILDE).optional(),
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
   * The process-wide guards of the HTTP/WebSocket edge. `wsMemoryLimitBytes`: the RSS past which
   * WebSockets running no job are dropped (server/websocket_memory_guard.ts), since Deno bounds no
   * WebSocket message; unset, half the machine's memory. At least 256 MiB: the node idles at about
   * 180 MiB with the built-in model, and a lower limit would drop every idle socket each second.
   */
  server: z.strictObject({
    wsMemoryLimitBytes: z.number().int().min(MIN_WS_MEMORY_LIMIT_BYTES).optional(),
  }).prefault({}),
  /**
   * Stake recorded for the node's own key on first start (bookkeeping: there is no token). A
   * receipt locks `slashMultiplier ×` its reward (output tokens × price, plus the prompt tokens it
   * signs × price × `promptTokenShare`) during its challenge window, so the default backs about two
   * hundred 256-token jobs per window at the default price (a 256-token prompt adds a sixteenth).
   * A worker refuses (`insufficient_stake`, before the work) a job whose worst-case lock
   * (`maxTokens` and its prompt count) its free stake, less the jobs it runs, cannot back, and a
   * router ranks first the workers whose free stake covers it (`network/_job_stake_lock.ts`,
   * `docs/PROOF.md`, review s78 vprompt F2): a receipt past the stake is refused unpaid.
   */
  selfStake: z.number().min(0).default(1_000_000),
}).superRefine((c, ctx) => {
  // A coordinator's rounds lock each trainer's stake (a work-priced credit × slashMultiplier, a
  // challenge window long): at the default stake an honest trainer of a 4 × 128 model had round 1
  // recorded and the next refused `insufficient_stake`, trained and unpaid (review s71 F1).
  const { arch, coordinator } = c.training;
  if (coordinator.enabled && ArchitectureSchema.safeParse(arch).success) {
    const terms = { arch, steps: coordinator.steps, roundMs: coordinator.deadlineMs };
    const refusal = trainingStakeRefusal(terms, c.selfStake);
    if (refusal !== undefined) {
      ctx.addIssue({ code: "custom", message: refusal, path: ["selfStake"] });
    }
  }
  // A round's challenge must end inside its receipts' challenge window, or its conviction of a
  // lazy or withholding trainer settles in this node's ledger alone (review s79 trainnet F1).
  if (coordinator.enabled) {
    const late = roundAnswerRefusal(coordinator.steps);
    if (late !== undefined) {
      ctx.addIssue({ code: "custom", message: late, path: ["training", "coordinator", "steps"] });
    }
  }
  // `/metrics` for a key only, on a node with no key and no operator token (the dashboard makes
  // it): nothing could ever read it, and the scraper's 401s would be the first word of it.
  if (
    c.http.metricsAccess === "key" && c.http.apiKeys.length === 0 &&
    c.http.apiKeysFile === undefined && !c.dashboard.enabled
  ) {
    ctx.addIssue({
      code: "custom",
      message: 'is "key", but this node has no API key (http.apiKeys, http.apiKeysFile) and no ' +
        "operator token (the dashboard is off): nothing could read /metrics; add a key, or use " +
        '"local"',
      path: ["http", "metricsAccess"],
    });
  }
  // A peer listed twice: dialled twice, one peer counted as two and its /metrics series repeated
  // (review s78 F4). Refused, naming both places, as a mistake the operator should see.
  const firstAt = new Map<string, number>();
  c.network.peers.forEach((peer, i) => {
    const first = firstAt.get(peer.toLowerCase());
    if (first === undefined) {
      firstAt.set(peer.toLowerCase(), i);
      return;
    }
    ctx.addIssue({
      code: "custom",
      message: `${peer} is listed twice (also at index ${first}): give each peer once`,
      path: ["network", "peers", i],
    });
  });
  if (!c.network.listening) return;
  // A peer to dial that is this node's own listener: the node dialled itself for as long as it
  // ran, each side of every attempt logging "the peer claims our own key", which names neither
  // the address nor the flag.
  c.network.peers.forEach((peer, i) => {
    if (!isDialAddress(peer) || !dialsListener(peer, c.network.listen)) return;
    ctx.addIssue({
      code: "custom",
      message: `${peer} is this node's own peer port (--p2p-port ${c.network.listen.port}): ` +
        `a node does not peer with itself; give the other node's --p2p-port`,
      path: ["network", "peers", i],
    });
  });
  // The HTTP API binds first: the peer listener then failed on the node's own port, blamed on
  // "another node on this port?", after the data directory was taken and the model loaded.
  if (!sharePort(c.http, c.network.listen)) return;
  ctx.addIssue({
    code: "custom",
    message: `the same as http.port (${c.http.port}) on ${c.network.listen.hostname}, which ` +
      `the HTTP API takes first: give peers a port of their own (--p2p-port), or --no-listen`,
    path: ["network", "listen", "port"],
  });
});

/** Names of this machine's loopback interface a peer address may use. */
const LOOPBACK: ReadonlySet<string> = new Set(["localhost", "::1"]);

/** Whether `host` names this machine's loopback interface (127.0.0.0/8, ::1, localhost). */
function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Whether dialling `peer` (a valid `HOST:PORT`) reaches the listener `listen` of the same node:
 * its port, on its address, or on loopback when it listens there or on every interface. Another
 * host at the same port is another machine's node; port 0 is a free port no peer can name.
 */
function dialsListener(peer: string, listen: { hostname: string; port: number }): boolean {
  const { hostname, port } = parsePeerAddress(peer);
  if (listen.port === 0 || port !== listen.port) return false;
  if (hostname === listen.hostname) return true;
  return isLoopback(hostname) &&
    (isLoopback(listen.hostname) || EVERY_INTERFACE.has(listen.hostname));
}

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
