/**
 * The node's HTTP API: the edge app built on its inference port — the OpenAI-style and WebSocket
 * APIs, `/metrics`, the dashboard and, with the storage role, the file and gateway routes —
 * mounted on the node's listener ({@link serveHttpApi}), and the start-up lines that say what it
 * serves ({@link apiLines}). Used by `node.ts`. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import type { ActorSystem } from "../actors/actor_system.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import { proofStoreConditions, type ProverMessage } from "../actors/prover_actor.ts";
import { ledgerConditions } from "../actors/ledger_conditions.ts";
import { storageConditions } from "../actors/storage_conditions.ts";
import { ConditionOnsets } from "../actors/condition_onsets.ts";
import { peerConditions } from "../network/peer_conditions.ts";
import { PendingAsks } from "../actors/pending_asks.ts";
import { TreeConditions } from "../actors/tree_conditions.ts";
import type { DiskRoom } from "./disk_room.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { storageGateway } from "../actors/storage_actor_peer.ts";
import type { ValidatorMessage } from "../actors/validator_actor.ts";
import type { ModelRegistry } from "../inference/model_registry.ts";
import type { InferencePort } from "../inference/inference_port.ts";
import type { NetworkMessage } from "../network/network_actor.ts";
import { swarmHostConditions } from "../network/swarm_host_health.ts";
import type { Identity } from "../protocols/identity.ts";
import { createApp } from "../server/app.ts";
import { fileRoutes } from "../server/file_routes.ts";
import { gatewayRoutes } from "../server/gateway_routes.ts";
import { describeAccess } from "../server/client_access.ts";
import { ApiKeys } from "../server/api_keys.ts";
import { ReadSlots } from "../server/read_slots.ts";
import { EdgeStats } from "../server/edge_stats.ts";
import { TrustedProxies } from "../server/trusted_proxies.ts";
import { MetricsRegistry } from "../server/metrics_registry.ts";
import type { JobMonitor } from "../server/job_monitor.ts";
import type { CoordinatorMessage } from "../training/round_coordinator.ts";
import type { TrainerMessage } from "../training/trainer_service.ts";
import { nodeCollectors } from "./node_metrics.ts";
import type { NodeConfig, RoutingConfig } from "./config.ts";
import type { HttpListener } from "./http_listener.ts";
import type { NodeActivity } from "./node_activity.ts";
import { dashboardSources, loadOrCreateOperatorToken } from "./dashboard_sources.ts";
import { NODE_ACTORS, TRAINING_ACTORS } from "./_actor_names.ts";

/** What {@link serveHttpApi} serves from: the node's parts, as `startNode` built them. */
export interface HttpApiParts {
  config: NodeConfig;
  identity: Identity;
  system: ActorSystem;
  models: ModelRegistry;
  lookup: <M>(name: string) => ActorRef<M> | undefined;
  /** Every job the edge runs, watched on its way out (dashboard, latency histograms). */
  jobMonitor: JobMonitor;
  activity: NodeActivity | undefined;
  /** The local InferenceActor's port; undefined on a node that forwards every job to peers. */
  local: InferencePort | undefined;
  log: (line: string) => void;
  /** The node's read-only state on a full disk: a `disk_full` condition while it holds. */
  disk?: DiskRoom;
}

/**
 * Build the edge app on `port` (the local InferenceActor's, or the peers' that serve models) and
 * mount it on `http`; returns the API's base URL.
 */
export async function serveHttpApi(
  http: HttpListener,
  port: InferencePort,
  { config, identity, system, models, lookup, jobMonitor, activity, local, log, disk }:
    HttpApiParts,
): Promise<string> {
  const metrics = new MetricsRegistry();
  // Listens from now: the tree's crashes the node's `/healthz` reports (its listener goes with
  // the system's events when the node stops).
  const tree = new TreeConditions(system);
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
  // Health probes come every second: a question the actor has not answered is not asked again
  // (`actors/pending_asks.ts`, review s74 F1).
  const healthAsks = new PendingAsks();
  // When the store's conditions with no time of their own began (`condition_onsets.ts`).
  const storageOnsets = new ConditionOnsets();
  // Shared with the read slots below, so reads cut for idleness count where streams' cuts do.
  const stats = new EdgeStats();
  const app = createApp({
    inference: port,
    metrics,
    stats,
    computesOnEventLoop,
    edge: config.http,
    wsMemoryLimitBytes: config.server.wsMemoryLimitBytes,
    log,
    modelHealth: () => models.health(),
    // The proof store, the ledger and the store: a disk that refuses any makes the node
    // degraded; so does an actor of the tree that is down or crash-looping, and a swarm host
    // that could not start or gave up restarting, and a configured peer that cannot be reached.
    conditions: async () =>
      (await Promise.all([
        proofStoreConditions(lookup<ProverMessage>(NODE_ACTORS.prover), healthAsks),
        ledgerConditions(lookup<ValidatorMessage>(NODE_ACTORS.validator), healthAsks),
        storageConditions(
          lookup<StorageMessage>(NODE_ACTORS.storage),
          Date.now,
          healthAsks,
          storageOnsets,
        ),
        peerConditions(lookup<NetworkMessage>(NODE_ACTORS.network), Date.now, healthAsks),
        tree.conditions(),
        swarmHostConditions(system),
        disk?.conditions() ?? [],
      ])).flat(),
    nodeKey: identity.publicKey,
    // Without the page (`--no-dashboard`) the state is still served, to this machine only, for
    // `cli.ts status` (review s78 dash, F7); no operator token is made for a page not served.
    dashboard: {
      page: config.dashboard.enabled,
      jobs: jobMonitor,
      operatorToken: config.dashboard.enabled
        ? await loadOrCreateOperatorToken(config.dataDir)
        : undefined,
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
        disk: disk && (() => disk.state()),
      }),
    },
  });
  if (config.roles.storage) {
    const storagePort = () => {
      const ref = lookup<StorageMessage>(NODE_ACTORS.storage);
      return ref && storageGateway(ref);
    };
    // One client's reads on both routes count together (`read_slots.ts`), named as the edge
    // names its clients.
    const reads = new ReadSlots({
      stats,
      log,
      keys: ApiKeys.fromConfig(config.http),
      trustedProxies: TrustedProxies.from(
        config.http.trustedProxies,
        config.http.trustedProxyHeader,
      ),
    });
    app.route(
      "/v1",
      fileRoutes(storagePort, { requestBodyTimeoutMs: config.http.requestBodyTimeoutMs, reads }),
    );
    app.route("/", gatewayRoutes(storagePort, { reads }));
  }
  http.mount(app);
  return http.url;
}

/**
 * What the node serves over HTTP, for the start-up summary: the endpoints, and — on a node
 * without a model of its own (`--no-inference`) — that its jobs go to peers; without any
 * inference port, that no HTTP API is served.
 */
export function apiLines(
  url: string | undefined,
  config: NodeConfig,
  localModel: boolean,
): string[] {
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
