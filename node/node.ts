/**
 * The Veriflow node: builds the supervision tree from the configuration and serves the client
 * APIs. This file only wires; each flow between actors is a message from one to another:
 *
 * ```
 * node                  (system: root supervisor, one_for_one)
 * └── node/sup          NodeSupervisor, one_for_one, backoff
 *     ├── node/storage     StorageActor   — chunk store under <dataDir>/store; with storage
 *     │                                      peers, files spread over them and this node
 *     ├── node/prover      ProverActor    — fingerprints each job's stream, signs receipts
 *     ├── node/validator   ValidatorActor — ledger; challenges other nodes' receipts
 *     ├── node/inference   InferenceActor — job queue, one child per running job
 *     ├── node/training-validator TrainingValidator — challenges training receipts, settles
 *     │                                          training fraud proofs, serves round models
 *     ├── node/trainer     TrainerService — trains on this node's private shard (--train)
 *     ├── node/training-coordinator RoundCoordinator — runs training rounds
 *     │                                          (--coordinate-training)
 *     └── node/network     NetworkActor   — peer connections (TCP, Hyperswarm), what goes to
 *                                          and from peers
 * ```
 *
 * The proof path: the InferenceActor tees each text job's tokens to the prover, which signs
 * the receipt; the validator records it (origin `local`) before it is returned to the requester
 * with the job's end, and has the NetworkActor announce it to other nodes' validators — it never
 * challenges its own. Receipts, verdicts and fraud proofs from peers
 * arrive through the NetworkActor at the same validator; a challenge fetches the worker's proof
 * data through it; verdicts and fraud proofs go back out through it.
 *
 * The client edge talks to an inference port: the local InferenceActor, or — on a node that
 * runs no model — the peers that do. Children start in this order and stop in the reverse
 * one: the network first (no new work from peers), storage last (nothing lost mid-write).
 *
 * @module
 */
import { JobInputError, type JobInputReader } from "../protocols/job_input.ts";
import { join } from "node:path";
import { ActorSystem, formatTree } from "../actors/actor_system.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ChildSpec } from "../actors/actor.ts";
import { formatEvent } from "../actors/events.ts";
import { InferenceActor, type InferenceMessage } from "../actors/inference_actor.ts";
import {
  proofStoreConditions,
  ProverActor,
  proverHook,
  type ProverMessage,
} from "../actors/prover_actor.ts";
import { StorageActor } from "../actors/storage_actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { storageGateway } from "../actors/storage_actor_peer.ts";
import { ValidatorActor, type ValidatorMessage } from "../actors/validator_actor.ts";
import type { Account } from "../proof/ledger.ts";
import { challengeProbabilityWarning, DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { ModelRegistry } from "../inference/model_registry.ts";
import { webgpuPoolClamp } from "../inference/_model_worker_pool.ts";
import type { InferencePort, ModelCatalog } from "../inference/inference_port.ts";
import { LocalInferencePort } from "../inference/local_port.ts";
import { NetworkActor, type NetworkMessage } from "../network/network_actor.ts";
import { checkPeerAddress } from "../network/peer_listener.ts";
import { NetworkInferencePort } from "../network/network_inference_port.ts";
import { parsePeerAddress, type PeerAddress } from "../network/peer_address.ts";
import type { Identity } from "../protocols/identity.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import { loadOrCreatePledge } from "./node_pledge.ts";
import { createApp } from "../server/app.ts";
import { ApiKeys } from "../server/api_keys.ts";
import { fileRoutes } from "../server/file_routes.ts";
import { gatewayRoutes } from "../server/gateway_routes.ts";
import { nodeHello } from "./node_hello.ts";
import { describeAccess } from "../server/client_access.ts";
import { MetricsRegistry } from "../server/metrics_registry.ts";
import { nodeCollectors } from "./node_metrics.ts";
import { startHeartbeat } from "./heartbeat.ts";
import {
  forwardingOptionsOf,
  type NodeConfig,
  replicaQuotaOf,
  type RoutingConfig,
} from "./config.ts";
import { loadOrCreateIdentity } from "./node_identity.ts";
import { DataDirLock } from "./data_dir_lock.ts";
import { CalibrationStore } from "../proof/calibration.ts";
import { HttpListener } from "./http_listener.ts";
import { JobMonitor } from "../server/job_monitor.ts";
import { NodeActivity } from "./node_activity.ts";
import { dashboardSources, loadOrCreateOperatorToken } from "./dashboard_sources.ts";
import { loadBrownCorpus, splitCorpus, type TextShard } from "../training/brown_corpus.ts";
import { RoundModels } from "../training/round_models.ts";
import {
  type TrainerMessage,
  TrainerService,
  type TrainFunction,
} from "../training/trainer_service.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../training/training_validator.ts";
import { type CoordinatorMessage, RoundCoordinator } from "../training/round_coordinator.ts";
import { JoinedTrainers } from "../training/joined_trainers.ts";
import { keepShardPrivate } from "../training/private_shard.ts";
import { OwnerKey } from "../storage/private_tier.ts";

/** Names of the node's actors in the registry. */
export const NODE_ACTORS = {
  supervisor: "node/sup",
  storage: "node/storage",
  prover: "node/prover",
  validator: "node/validator",
  inference: "node/inference",
  network: "node/network",
} as const;

/**
 * Names of the training actors, started only on a node that trains, coordinates or validates
 * training (docs/TRAINING.md, "The network round"): apart from {@link NODE_ACTORS}, which every
 * default node runs.
 */
export const TRAINING_ACTORS = {
  validator: "node/training-validator",
  trainer: "node/trainer",
  coordinator: "node/training-coordinator",
} as const;

/**
 * NodeSupervisor restart intensity: 5 restarts in 30 s. A role that crashes in a loop (a bad
 * model file, a full disk) escalates within seconds and the node stops with the reason
 * instead of spinning; an isolated crash is absorbed.
 */
const NODE_MAX_RESTARTS = 5;
const NODE_RESTART_WINDOW_MS = 30_000;
/** First restart delay, doubling: gives a failing dependency (disk, device) time to recover. */
const NODE_BACKOFF_INITIAL_MS = 100;

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Where progress and event lines go; default none (silent). */
  log?: (line: string) => void;
  /**
   * The models to serve and validate with, already registered. Default: a registry holding
   * the configured model (`model.dir`, or the built-in model of `model.size`). The node takes a
   * registry given here over: its `shutdown()` closes it (and the worker pools it holds), so a
   * second node needs a registry of its own. A start that fails leaves it open.
   */
  models?: ModelRegistry;
  /**
   * Aborting it stops start-up at the next step (a step already running — a model load, the
   * ledger's verification — finishes first): what was started is stopped again, the port and
   * the data directory released, and `startNode` rejects with the signal's reason. Once the
   * node is up, stop it with `shutdown()`.
   */
  signal?: AbortSignal;
  /**
   * How this node's trainer trains a round (default the honest `trainAndSign`): the one
   * injection point of the training round, for test fixtures (`tests/training/_lazy_trainer.ts`).
   */
  train?: TrainFunction;
}

/** Jobs on a node now, from {@link VeriflowNode.jobs}. */
export interface NodeJobs {
  /** Jobs computing (or being relayed to a peer). */
  running: number;
  /** Jobs waiting for a slot. */
  queued: number;
}

/** A running node. */
export interface VeriflowNode {
  /** The node's ed25519 identity (signs receipts, verdicts, ledger entries; proves its peers). */
  readonly identity: Identity;
  /** The actor system holding the supervision tree. */
  readonly system: ActorSystem;
  /** The served models. */
  readonly models: ModelRegistry;
  /** Base URL of the HTTP API (`ws:` + same host for `/v1/stream`); absent without one. */
  readonly url?: string;
  /**
   * The TCP address peers connect to (`connectTcp` + `Connection.open` reach its
   * `RemoteInferencePort`): the bound port when `network.listen.port` was 0. Undefined when the
   * node runs no network or does not listen.
   */
  peerAddress(): Promise<PeerAddress | undefined>;
  /** The supervision tree as text. */
  tree(): string;
  /** Jobs running and queued now (none when the node serves no jobs). */
  jobs(): Promise<NodeJobs>;
  /** Stop serving, stop every actor in reverse start order, release models. Idempotent. */
  shutdown(): Promise<void>;
  /**
   * Resolves once the node has fully stopped: by `shutdown`, or with `fatal` (the reason) when
   * its supervisor gave up on a role that kept crashing.
   */
  readonly finished: Promise<{ fatal?: string }>;
}

/**
 * Start a node.
 *
 * Every failure is a rejection, and what it took (the ports, the data directory) is released
 * first. A role whose actor fails to start rejects it with an `ActorCrashedError` carrying
 * the role's error as `reason`.
 *
 * @throws {HttpListenError} the HTTP port cannot be bound (taken, not this machine's).
 * @throws {PeerListenError} the peer port cannot be bound.
 * @throws {ApiKeysFileError} `http.apiKeysFile` cannot be read, or holds a malformed key.
 * @throws {DataDirLockedError} another node or command holds the data directory.
 * @throws {ModelLoadError} the configured model cannot be loaded.
 *
 * @example
 * ```ts ignore
 * const node = await startNode(parseNodeConfig({ http: { port: 0 } }), { log: console.log });
 * console.log(node.url);
 * await node.shutdown();
 * ```
 */
export async function startNode(
  config: NodeConfig,
  options: StartNodeOptions = {},
): Promise<VeriflowNode> {
  options.signal?.throwIfAborted();
  // The HTTP port first: one another process holds is refused before anything touches the data
  // directory (node/http_listener.ts).
  const http = HttpListener.open({ ...config.http, log: options.log });
  try {
    // The peer port too (the NetworkActor binds it later, once the node is built).
    if (config.network.listening) checkPeerAddress(config.network.listen);
    // And the API keys file (the edge reads it once the node is built): a mistyped path is
    // said now, not after a model load that can take minutes.
    ApiKeys.fromConfig(config.http);
  } catch (error) {
    await http.close();
    throw error;
  }
  // One owner per data directory for the node's whole life: a second node is refused, naming
  // this process (node/data_dir_lock.ts).
  let lock: DataDirLock;
  try {
    lock = await DataDirLock.acquire(config.dataDir, "node");
  } catch (error) {
    await http.close();
    throw error;
  }
  let node: VeriflowNode;
  try {
    node = await startLockedNode(config, options, http);
  } catch (error) {
    await http.close();
    await lock.release();
    throw error;
  }
  const finished = node.finished.finally(() => lock.release());
  const shutdown = async () => {
    try {
      await node.shutdown();
    } finally {
      await lock.release();
    }
  };
  return { ...node, shutdown, finished };
}

/**
 * {@link startNode} once the port is bound and the data directory is this node's. On a failure
 * or an abort, stops what it started (the caller releases the port and the directory).
 */
async function startLockedNode(
  config: NodeConfig,
  options: StartNodeOptions,
  http: HttpListener,
): Promise<VeriflowNode> {
  const log = options.log ?? (() => {});
  const signal = options.signal;
  /** What to stop if start-up goes no further, in start order. */
  const started: (() => Promise<void>)[] = [];
  try {
    return await startSteps(config, options, http, log, started);
  } catch (error) {
    if (signal?.aborted) log("start-up interrupted: stopping what was started…");
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw error;
  }
}

/** The steps of start-up, each pushing its undo onto `started`; checks the signal between them. */
async function startSteps(
  config: NodeConfig,
  options: StartNodeOptions,
  http: HttpListener,
  log: (line: string) => void,
  started: (() => Promise<void>)[],
): Promise<VeriflowNode> {
  const step = () => options.signal?.throwIfAborted();
  await Deno.mkdir(config.dataDir, { recursive: true });
  const identity = await loadOrCreateIdentity(config.dataDir);
  log(`veriflow node ${toHex(identity.publicKey)}`);
  log(`data directory ${config.dataDir}`);
  step();
  const models = options.models ?? await loadModels(config, log);
  if (options.models === undefined) started.push(() => models.close());
  step();
  // The validator's tolerances per model, from `cli.ts calibrate` (read at start).
  const calibration = config.roles.validator
    ? await CalibrationStore.open(join(config.dataDir, "calibration"))
    : undefined;
  if (calibration !== undefined) {
    const calibrated = calibration.models.length;
    log(
      calibrated > 0
        ? `calibration: ${calibrated} model profile(s) from ${calibration.dir}`
        : `calibration: none (default tolerances; run \`cli.ts calibrate\` per model)`,
    );
    for (const { file, reason } of calibration.rejected) {
      log(
        `warning: calibration: ${join(calibration.dir, file)} not loaded (its model gets the ` +
          `default tolerances): ${reason}`,
      );
    }
  }

  if (config.roles.inference && config.roles.prover && !config.roles.validator) {
    // Receipts, the stake pledge and proof data travel on the validation protocol, which a node
    // offers only with a validator (`network/peer_services.ts`): a worker without one signs
    // receipts that no peer ever records.
    log(
      "roles: the prover is on and the validator off: this node's receipts, stake pledge and " +
        "proof data travel on the validation protocol, which it offers only with a validator, " +
        "so no peer records its work and it earns no credit; keep the validator on a worker",
    );
  }

  // One pledge per key, ever, the same bytes on every run (see node_pledge.ts).
  const pledge = config.selfStake > 0
    ? await loadOrCreatePledge(config.dataDir, identity, config.selfStake, log)
    : undefined;

  const training = await trainingInputs(config, options.train, log);
  // Private files (a trainer's shard) are sealed under a key derived from the node's secret.
  const ownerKey = await OwnerKey.fromSecret(identity.exportSecretKey());
  step();

  // The root restarts nothing: `node/sup` holds the restart budget (5 in 30 s, with backoff), and
  // when it gives up the node stops with the reason. A root that restarted `node/sup` would give
  // it a fresh budget each time, and a role crashing in a loop would restart the whole tree
  // every few seconds, forever.
  const system = new ActorSystem({ name: "node", maxRestarts: 0 });
  started.push(() => system.shutdown());
  system.events.subscribe((event) => {
    // Per-job children start and stop all the time; their crashes still show.
    if (event.name.startsWith(`${NODE_ACTORS.inference}/`) && event.type !== "crashed") return;
    log(formatEvent(event));
  });
  const lookup = <M>(name: string): ActorRef<M> | undefined => system.lookup<M>(name);
  // Every job this node runs — its clients' and its peers' — is watched on its way out (the
  // dashboard's live jobs, the latency histograms); the validator tells what it judged.
  const jobMonitor = new JobMonitor();
  const activity = config.roles.validator ? new NodeActivity() : undefined;
  // A job's input (`protocols/job_input.ts`) is read from this node's storage: its own chunks
  // first, then its storage peers'. A node without the storage role reads none.
  const readInput: JobInputReader | undefined = config.roles.storage
    ? (cid, signal) => {
      const storage = lookup<StorageMessage>(NODE_ACTORS.storage);
      if (storage === undefined) {
        return Promise.reject(
          new JobInputError("input_unavailable", `storage is not running: input ${cid} unread`),
        );
      }
      return storageGateway(storage).block(cid, signal);
    }
    : undefined;
  const localPort = (): InferencePort | undefined => {
    const inference = lookup<InferenceMessage>(NODE_ACTORS.inference);
    return inference &&
      jobMonitor.wrap(
        new LocalInferencePort({ inference, models: offeredModels(models), readInput }),
      );
  };

  await system.supervise({
    name: NODE_ACTORS.supervisor,
    strategy: "one_for_one",
    maxRestarts: NODE_MAX_RESTARTS,
    withinMs: NODE_RESTART_WINDOW_MS,
    backoff: { initialMs: NODE_BACKOFF_INITIAL_MS },
    children: nodeChildren(
      config,
      identity,
      models,
      lookup,
      localPort,
      log,
      calibration,
      pledge,
      activity,
      training,
      ownerKey,
    ),
  });
  step();

  const validator = lookup<ValidatorMessage>(NODE_ACTORS.validator);
  if (validator !== undefined && config.selfStake > 0) {
    // Once per key, ever: a node slashed to nothing does not refill its stake by restarting.
    if (!await validator.ask<boolean>({ type: "has_staked", key: identity.publicKey })) {
      await validator.ask({ type: "deposit", key: identity.publicKey, amount: config.selfStake });
      log(`ledger: recorded a stake of ${config.selfStake} for this node's key (first start)`);
    }
  }
  step();

  const network = lookup<NetworkMessage>(NODE_ACTORS.network);
  const local = localPort();
  const port: InferencePort | undefined = local ??
    (network && jobMonitor.wrap(
      new NetworkInferencePort(
        network,
        validator,
        identity,
        forwardingOptionsOf(config.network.routing),
      ),
    ));
  let url: string | undefined;
  if (port !== undefined) {
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: identity.publicKey,
      prover: () => lookup<ProverMessage>(NODE_ACTORS.prover),
      validator: () => lookup<ValidatorMessage>(NODE_ACTORS.validator),
      network: () => lookup<NetworkMessage>(NODE_ACTORS.network),
      models: () => models.health(),
      storage: () => lookup<StorageMessage>(NODE_ACTORS.storage),
      tree: () => system.tree(),
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    metrics.register(jobMonitor.collector(), "jobs");
    if (activity !== undefined) metrics.register(activity.collector(), "activity");
    // Only an in-thread model blocks the event loop between tokens (see computesOnEventLoop).
    const computesOnEventLoop = local !== undefined && config.model.workers === 0;
    const app = createApp({
      inference: port,
      metrics,
      computesOnEventLoop,
      edge: config.http,
      log,
      modelHealth: () => models.health(),
      conditions: () => proofStoreConditions(lookup<ProverMessage>(NODE_ACTORS.prover)),
      dashboard: config.dashboard.enabled
        ? {
          jobs: jobMonitor,
          operatorToken: await loadOrCreateOperatorToken(config.dataDir),
          sources: dashboardSources({
            publicKey: identity.publicKey,
            system,
            inferenceName: NODE_ACTORS.inference,
            network: () => lookup<NetworkMessage>(NODE_ACTORS.network),
            validator: () => lookup<ValidatorMessage>(NODE_ACTORS.validator),
            storage: () => lookup<StorageMessage>(NODE_ACTORS.storage),
            activity,
            coordinator: () => lookup<CoordinatorMessage>(TRAINING_ACTORS.coordinator),
            trainer: () => lookup<TrainerMessage>(TRAINING_ACTORS.trainer),
          }),
        }
        : undefined,
    });
    if (config.roles.storage) {
      const storagePort = () => {
        const ref = lookup<StorageMessage>(NODE_ACTORS.storage);
        return ref && storageGateway(ref);
      };
      app.route(
        "/v1",
        fileRoutes(storagePort, { requestBodyTimeoutMs: config.http.requestBodyTimeoutMs }),
      );
      app.route("/", gatewayRoutes(storagePort));
    }
    http.mount(app);
    url = http.url;
  } else {
    await http.close();
  }

  const tree = () => formatTree(system.tree());
  // A line per call: the log writes what one call says as one line.
  log("\nsupervision tree:");
  const treeLines = tree().split("\n");
  treeLines.forEach((line, i) => log(i === treeLines.length - 1 ? `${line}\n` : line));
  for (const line of apiLines(url, config, local !== undefined)) log(line);

  const heartbeat = startHeartbeat({
    everyMs: config.heartbeatMs,
    publicKey: identity.publicKey,
    port,
    validator: () => lookup<ValidatorMessage>(NODE_ACTORS.validator),
    network: () => lookup<NetworkMessage>(NODE_ACTORS.network),
    models: () => models.health(),
    log,
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    // Each step runs whatever the one before it did: a port that failed to close must not leave
    // the actors (the ledger, the proof store) running, nor a model that failed to release
    // reject the stop, which left the data directory locked and, in `cli.ts start`, ended the
    // process on an unhandled rejection (a review found it at stop 45).
    const step = async (what: string, stop: () => Promise<void>) => {
      try {
        await stop();
      } catch (error) {
        log(`error: stopping ${what}: ${(error as Error)?.message ?? String(error)}`);
      }
    };
    stopping ??= (async () => {
      heartbeat.stop();
      await step("the HTTP API", () => http.close());
      await step("the actors", () => system.shutdown());
      await step("the models", () => models.close());
    })();
    return stopping;
  };
  const finished = system.terminated.then(async (termination) => {
    let fatal: string | undefined;
    if (termination.reason === "fatal") {
      fatal = `the node supervisor gave up: ${String(termination.error)}`;
      log(`fatal: ${fatal}`);
    }
    await shutdown();
    return fatal === undefined ? {} : { fatal };
  });

  const jobs = async (): Promise<NodeJobs> => {
    const stats = await port?.stats();
    return { running: stats?.activeJobs ?? 0, queued: stats?.queuedJobs ?? 0 };
  };
  const peerAddress = async (): Promise<PeerAddress | undefined> => {
    const addr = await lookup<NetworkMessage>(NODE_ACTORS.network)?.ask<Deno.NetAddr | undefined>(
      { type: "listening" },
    );
    return addr === undefined ? undefined : { hostname: addr.hostname, port: addr.port };
  };
  return { identity, system, models, url, peerAddress, tree, jobs, shutdown, finished };
}

/**
 * What the node serves over HTTP, for the start-up summary: the endpoints, and — on a node
 * without a model of its own (`--no-inference`) — that its jobs go to peers; without any
 * inference port, that no HTTP API is served.
 */
function apiLines(url: string | undefined, config: NodeConfig, localModel: boolean): string[] {
  if (url === undefined) {
    return [
      "HTTP API        none: this node runs no model (--no-inference) and has no peers to " +
      "forward jobs to",
    ];
  }
  const ws = url.replace(/^http/, "ws");
  return [
    localModel ? `HTTP API        ${url}` : `HTTP API        ${url}   (this node runs no jobs ` +
      `itself, --no-inference: each job is forwarded to a connected peer that serves its ` +
      `model, and gets 503 no_worker while none is connected)`,
    ...(localModel ? [] : [`  routing       ${describeRouting(config.network.routing)}`]),
    ...(config.dashboard.enabled
      ? [
        `  dashboard     ${url}/   (read-only; the prompt box needs the operator token in ` +
        `${join(config.dataDir, "operator.token")})`,
      ]
      : []),
    `  completions   ${url}/v1/completions   (OpenAI-compatible, stream: true → SSE)`,
    `  chat          ${url}/v1/chat/completions`,
    `  models        ${url}/v1/models`,
    `  health        ${url}/healthz`,
    `  metrics       ${url}/metrics`,
    `WebSocket API   ${ws}/v1/stream`,
    describeAccess(config.http),
    `try: deno run -A cli.ts infer --url ${ws} "Once upon a time"`,
  ];
}

/** A routing node's timeouts as the start log shows them (`network.routing`). */
function describeRouting(routing: RoutingConfig): string {
  const { startTimeoutMs, stallTimeoutMs, firstTokenTimeoutMs, queueHoldMs, tokenBudgetMs } =
    routing;
  return `a worker's start within ${duration(startTimeoutMs)}, each event within ` +
    `${duration(stallTimeoutMs)}, the first token within ${duration(firstTokenTimeoutMs)}; ` +
    (queueHoldMs === 0
      ? "no second worker asked"
      : `a second worker asked after ${duration(queueHoldMs)} without one`) +
    (tokenBudgetMs === 0 ? "" : `; ${duration(tokenBudgetMs)} a token after the first`) +
    " (network.routing)";
}

/** `1500` → "1.5 s", `600000` → "10 min", `250` → "250 ms". */
function duration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000 || ms % 60_000 !== 0) return `${+(ms / 1_000).toFixed(1)} s`;
  return `${ms / 60_000} min`;
}

/**
 * The models this node offers (`/v1/models`, a peer's model list, the hello): those registered,
 * less any whose pool gave up on every generation worker (`failed` in `/healthz`), on which every
 * job fails until the node is restarted. Listed, such a model drew its clients' jobs and, through
 * the hello, its peers' (a review found it at stop 45); it is offered again once it serves.
 */
function offeredModels(models: ModelRegistry): ModelCatalog {
  return {
    list: () => {
      const failed = new Set(
        models.health().filter((m) => m.status === "failed").map((m) => m.cid),
      );
      return models.list().filter((m) => !failed.has(m.cid));
    },
  };
}

/** Register and load the configured model (a lazy load would land on the first job's TTFT). */
async function loadModels(config: NodeConfig, log: (line: string) => void) {
  const inWorkers = config.model.workers > 0;
  const pool = {
    executionProvider: config.model.executionProvider,
    ...(inWorkers ? { worker: true, workerCount: config.model.workers } : {}),
    // The validator's forward passes on a worker of their own, never ahead of a token step.
    ...(inWorkers && config.roles.validator
      ? { validationWorkers: config.model.validationWorkers }
      : {}),
  };
  const clamp = inWorkers ? webgpuPoolClamp(pool) : undefined;
  if (clamp !== undefined) log(clamp);
  const models = new ModelRegistry({
    ...pool,
    restart: config.model.restart,
    onWorkerEvent: (event) => log(event.message),
  });
  if (!config.roles.inference && !config.roles.validator) return models;
  const started = performance.now();
  const dir = config.model.dir ??
    await ensureBuiltinModel(join(config.dataDir, "models"), config.model.size, config.model.seed);
  const model = await models.register(dir);
  await models.get(model.cid);
  const source = config.model.dir ? dir : `built-in ${config.model.size}`;
  log(
    `model ${model.cid} (${model.kind}, ${source}) ready in ${
      Math.round(performance.now() - started)
    } ms`,
  );
  return models;
}

/** What the training roles need beyond the configuration: the corpus parts this node holds. */
interface TrainingInputs {
  /** This trainer's private shard (`--train`). */
  shard?: TextShard;
  /** Held-out text the coordinator evaluates on (`--coordinate-training`). */
  heldOut?: TextShard;
  /** The trainer's train function (a test fixture's, or the honest default). */
  train?: TrainFunction;
}

/** Load the corpus parts the configured training roles need (nothing when none is on). */
async function trainingInputs(
  config: NodeConfig,
  train: TrainFunction | undefined,
  log: (line: string) => void,
): Promise<TrainingInputs> {
  const { trainer, coordinator, corpusDocs } = config.training;
  if (!trainer.enabled && !coordinator.enabled) return {};
  const docs = await loadBrownCorpus({ limit: corpusDocs });
  const split = splitCorpus(docs, trainer.shards);
  if (trainer.enabled) {
    log(
      `training: trainer on shard ${trainer.shard}/${trainer.shards} of ${docs.length} Brown ` +
        `documents (kept on this node)`,
    );
  }
  return {
    shard: trainer.enabled ? split.shards[trainer.shard] : undefined,
    heldOut: coordinator.enabled ? split.heldOut : undefined,
    train,
  };
}

/** The supervisor's children for `config`, in start order. */
function nodeChildren(
  config: NodeConfig,
  identity: Identity,
  models: ModelRegistry,
  lookup: <M>(name: string) => ActorRef<M> | undefined,
  localPort: () => InferencePort | undefined,
  log: (line: string) => void,
  calibration: CalibrationStore | undefined,
  pledge: StakePledge | undefined,
  activity: NodeActivity | undefined,
  training: TrainingInputs,
  ownerKey: OwnerKey,
): ChildSpec<never>[] {
  const children: ChildSpec<never>[] = [];
  const add = <M>(spec: ChildSpec<M>) => children.push(spec as unknown as ChildSpec<never>);
  const { roles } = config;
  if (roles.storage) {
    add<StorageMessage>({
      name: NODE_ACTORS.storage,
      factory: () =>
        new StorageActor({
          dir: join(config.dataDir, "store"),
          store: {
            quotaBytes: config.storage.quotaBytes,
            replicaQuotaBytes: replicaQuotaOf(config.storage),
            replicaMinFreeBytes: config.storage.replicaMinFreeBytes,
            gcGraceMs: config.storage.gcGraceMs,
          },
          maxInMemoryBytes: config.storage.maxInMemoryBytes,
          auditIntervalMs: config.storage.auditIntervalMs,
          identity,
          ownerKey,
          // With storage peers, files are spread over them and this node (r copies each).
          holdHere: true,
          network: NODE_ACTORS.network,
          log,
          onVerdict: async (verdict) => {
            await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.tell({
              type: "verdict",
              verdict,
            });
          },
        }),
    });
  }
  if (roles.prover) {
    add<ProverMessage>({
      name: NODE_ACTORS.prover,
      factory: () =>
        new ProverActor({
          identity,
          dir: join(config.dataDir, "proofs"),
          proofRetentionMs: config.proofs.retentionMs,
          // Each receipt is recorded in this node's ledger before it leaves the prover.
          validator: roles.validator ? NODE_ACTORS.validator : undefined,
          log,
        }),
    });
  }
  if (roles.validator) {
    const unsafe = challengeProbabilityWarning(
      config.validator.challengeProbability ?? DEFAULT_ECONOMICS.challengeProbability,
    );
    if (unsafe !== undefined) log(`warning: validator: ${unsafe} (validator.challengeProbability)`);
    add<ValidatorMessage>({
      name: NODE_ACTORS.validator,
      factory: () =>
        new ValidatorActor({
          identity,
          ledgerDir: join(config.dataDir, "ledger"),
          ledger: { checkpointEvery: config.ledger.checkpointEvery },
          // `has` answers the intake's "can this ledger check it" from the registry, loading
          // nothing: a receipt on a model not registered here earns no credit here.
          models: {
            has: (cid) => models.has(cid),
            get: async (cid) => models.has(cid) ? await models.get(cid) : undefined,
          },
          challengeProbability: config.validator.challengeProbability,
          validation: calibration && { calibration: calibration.lookup },
          network: NODE_ACTORS.network,
          log,
          onActivity: activity && ((a) => activity.record(a)),
          // The training validator resumes its own interrupted challenges (addTrainingChildren).
          trainingProofsResumed: trainingValidates(config, training),
        }),
    });
  }
  if (roles.inference) {
    add<InferenceMessage>({
      name: NODE_ACTORS.inference,
      factory: () => {
        const prover = roles.prover ? lookup<ProverMessage>(NODE_ACTORS.prover) : undefined;
        const validator = roles.validator
          ? lookup<ValidatorMessage>(NODE_ACTORS.validator)
          : undefined;
        return new InferenceActor({
          models,
          concurrency: config.inference.concurrency,
          queueLimit: config.inference.queueLimit,
          prover: prover && proverHook(prover),
          // One receipt per job, across restarts: the ledger remembers every one this node signed.
          // Asked about this node's own: another key's receipt for the job (a requester, a router
          // or a failover's first worker knew the job first) must not make it refuse the job.
          receiptSigned: validator &&
            ((jobId) =>
              validator.ask<boolean>({ type: "job_recorded", jobId, worker: identity.publicKey })),
        });
      },
    });
  }
  const names = addTrainingChildren(config, identity, models, lookup, log, training, add);
  const { network } = config;
  add<NetworkMessage>({
    name: NODE_ACTORS.network,
    factory: () =>
      new NetworkActor({
        identity,
        listen: network.listening ? network.listen : undefined,
        peers: network.peers.map(parsePeerAddress),
        services: {
          inference: localPort(),
          prover: roles.prover ? NODE_ACTORS.prover : undefined,
          validator: roles.validator ? NODE_ACTORS.validator : undefined,
          storage: roles.storage ? NODE_ACTORS.storage : undefined,
          ...names,
        },
        pledge,
        connection: { keepaliveMs: network.keepaliveMs, idleTimeoutMs: network.idleTimeoutMs },
        describe: nodeHello({
          roles,
          inference: localPort,
          storage: () => roles.storage ? lookup<StorageMessage>(NODE_ACTORS.storage) : undefined,
          queueLimit: config.inference.queueLimit,
        }),
        swarm: network.swarm.enabled
          ? {
            bootstrap: network.swarm.bootstrap,
            bind: network.swarm.bind,
            socketDir: config.dataDir,
          }
          : undefined,
        log,
      }),
  });
  return children;
}

/**
 * Whether this node runs a TrainingValidator: a ledger-keeping node that trains, coordinates or
 * is told to validate training.
 */
function trainingValidates(config: NodeConfig, inputs: TrainingInputs): boolean {
  const { roles, training } = config;
  const trains = training.trainer.enabled && inputs.shard !== undefined;
  return roles.validator && (trains || training.coordinator.enabled || training.validate);
}

/**
 * The training children (docs/TRAINING.md, "The network round"): a TrainingValidator on a
 * ledger-keeping node that trains, coordinates or is told to validate; a TrainerService with
 * `--train`; a RoundCoordinator with `--coordinate-training`. Returns their registry names for
 * the peer services.
 */
function addTrainingChildren(
  config: NodeConfig,
  identity: Identity,
  models: ModelRegistry,
  lookup: <M>(name: string) => ActorRef<M> | undefined,
  log: (line: string) => void,
  inputs: TrainingInputs,
  add: <M>(spec: ChildSpec<M>) => void,
): { trainer?: string; coordinator?: string; trainingValidator?: string } {
  const { roles, training } = config;
  const trains = training.trainer.enabled && inputs.shard !== undefined;
  const coordinates = training.coordinator.enabled;
  const validates = trainingValidates(config, inputs);
  if (!trains && !coordinates && !validates) return {};
  const roundModels = new RoundModels({
    modelsDir: join(config.dataDir, "models"),
    storage: () => roles.storage ? lookup<StorageMessage>(NODE_ACTORS.storage) : undefined,
  });
  // A round's model is served here (and checkable by this node's validator).
  const serve = roles.inference || roles.validator
    ? async (dir: string) => {
      await models.register(dir);
    }
    : undefined;
  if (validates) {
    const unsafe = challengeProbabilityWarning(
      training.challengeProbability ?? DEFAULT_ECONOMICS.challengeProbability,
    );
    if (unsafe !== undefined) {
      log(`warning: training validator: ${unsafe} (training.challengeProbability)`);
    }
    add<TrainingValidatorMessage>({
      name: TRAINING_ACTORS.validator,
      factory: () =>
        new TrainingValidator({
          identity,
          models: roundModels,
          ledger: NODE_ACTORS.validator,
          network: NODE_ACTORS.network,
          serve,
          challengeProbability: training.challengeProbability,
          // Rounds started from a seeded model carry no momentum: the default seed and this
          // node's coordinator's (round_audit.ts).
          genesisSeeds: [...new Set([0, training.coordinator.seed])],
          log,
          // Its own fraud proofs until they settle, beside the ledger (resumed after a stop).
          ownProofsDir: join(config.dataDir, "ledger"),
        }),
    });
  }
  if (trains) {
    add<TrainerMessage>({
      name: TRAINING_ACTORS.trainer,
      factory: () =>
        new TrainerService({
          identity,
          // The round slots it signed survive a restart: never two receipts for one slot.
          dataDir: join(config.dataDir, "training"),
          shard: inputs.shard!,
          keepShard: roles.storage
            ? async (shard) => {
              const storage = lookup<StorageMessage>(NODE_ACTORS.storage);
              if (storage === undefined) return shard;
              const { shard: shardNo, shards } = training.trainer;
              const kept = await keepShardPrivate(storage, config.dataDir, {
                shard,
                deal: { shard: shardNo, shards, corpusDocs: training.corpusDocs },
              });
              log(
                `training: shard ${kept.stored ? "stored" : "found"} in the private tier as ` +
                  `${kept.cid} (this node only, encrypted)`,
              );
              return kept.shard;
            }
            : undefined,
          models: roundModels,
          train: inputs.train,
          // Openings reveal batches of the shard: owed to the round's coordinator and to keys
          // with stake in this ledger, the bar a ledger sets for a peer's fraud proof.
          stakeOf: roles.validator
            ? async (key) =>
              (await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.ask<Account>({
                type: "account",
                key,
              }))?.stake ?? 0
            : undefined,
          refusedModel: validates
            ? async (cid) =>
              await lookup<TrainingValidatorMessage>(TRAINING_ACTORS.validator)?.ask<
                string | null
              >({ type: "model_standing", model: cid }) ?? null
            : undefined,
          log,
        }),
    });
  }
  if (coordinates) {
    const c = training.coordinator;
    // Outside the factory: a coordinator its supervisor restarts keeps the trainers joined on
    // connections that stay open (they join only when a connection opens).
    const joined = new JoinedTrainers();
    add<CoordinatorMessage>({
      name: TRAINING_ACTORS.coordinator,
      factory: () =>
        new RoundCoordinator({
          identity,
          arch: training.arch,
          seed: c.seed,
          rounds: c.rounds,
          steps: c.steps,
          roundDeadlineMs: c.deadlineMs,
          minTrainers: c.minTrainers,
          models: roundModels,
          heldOut: inputs.heldOut,
          validator: validates ? TRAINING_ACTORS.validator : undefined,
          network: NODE_ACTORS.network,
          convicted: roles.validator
            ? async (trainer) =>
              await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.ask<boolean>({
                type: "convicted",
                key: fromHex(trainer),
              }) ?? false
            : undefined,
          serve,
          // The rounds survive a crash or restart: resumed from the last finished one.
          statePath: join(config.dataDir, "training", "coordinator.json"),
          trainers: joined,
          log,
        }),
    });
  }
  return {
    trainer: trains ? TRAINING_ACTORS.trainer : undefined,
    coordinator: coordinates ? TRAINING_ACTORS.coordinator : undefined,
    trainingValidator: validates ? TRAINING_ACTORS.validator : undefined,
  };
}
