/**
 * Operational routes: `GET /healthz` (liveness plus a glance at the queue) and `GET /metrics`
 * (Prometheus text). The inference collector turns the inference port's stats into metrics at
 * scrape time, so counting costs the hot path nothing.
 *
 * Given the models' runtime health, `/healthz` reports it under `model_runtime` and its
 * `status` follows it: `ok`; `degraded` while a model worker is being restarted or was given
 * up on and others still serve (HTTP 200); `failed` when a model has no worker left that can
 * serve (HTTP 503: take the node out of rotation and restart it). A model whose workers were
 * terminated as hung keeps its own `status` (`ok` once they are replaced) but counts them
 * (`abandoned_threads`), and each such model is a `degraded` condition,
 * `model_threads_abandoned`, until the node restarts: their threads may each still hold a core,
 * so it serves on fewer cores than it was sized for.
 *
 * Given the node's other conditions (a proof store the disk refuses: see
 * `actors/prover_actor.ts`; a ledger that cannot write: `actors/ledger_conditions.ts`),
 * `/healthz` lists those that hold now under `conditions` and its `status` is the worst of them
 * and the models': a node whose proof data cannot be written still serves text, without receipts,
 * and one whose ledger cannot write serves jobs whose receipts it does not record, so each is
 * `degraded` until a write succeeds again. An
 * inference port that does not give its stats (its ask timed out: a wedged actor) is such a
 * condition too, `failed`: the body says so, with `active_jobs` and `queued_jobs` null. So is
 * a port that does not list its models (a router with no worker connected: `no_worker`), with
 * `models` null: no job can be served until it does.
 *
 * Given the node's public key, `/healthz` reports it, hex, as `node_key`: a client pins it as a
 * receipt's `worker`, or adds it as a routed job's `requester`, without reading the node's log.
 *
 * Neither route needs a key, and each asks the node's actors (the mailboxes that carry its peer
 * traffic): 2000 concurrent scrapes from one client slowed a job 20× and made 487 of them drop the
 * storage series (review s71). So requests under way at once share one round of asks and get the
 * same answer (`/metrics`: `MetricsRegistry.render`; `/healthz`: here), as `/dashboard/state`
 * shares its snapshot, and each client address (an IPv6 one by its /64: `client_address.ts`) has
 * an allowance per route and per minute, bursts included, as the dashboard's state reads have
 * (`KeyLimits`): past it, 429 `rate_limited` with `Retry-After`, counted as the edge's other
 * refusals are (`veriflow_http_refused_total{code}`, given {@link HealthRoutesOptions.stats}). The
 * allowances ({@link DEFAULT_METRICS_SCRAPES_PER_MINUTE}, {@link DEFAULT_HEALTH_CHECKS_PER_MINUTE})
 * are sized so that monitoring never meets them.
 *
 * @module
 */
import { Hono } from "hono";
import type { InferenceStats } from "../inference/inference_port.ts";
import type { ModelHealth } from "../inference/model_health.ts";
import type { RegisteredModelHealth } from "../inference/model_registry.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import { toHex } from "../protocols/hash.ts";
import type { EdgeEnv } from "./client_access.ts";
import { clientAddress } from "./client_address.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { errorResponse } from "./http_errors.ts";
import { KeyLimits } from "./key_limits.ts";
import {
  type MetricSample,
  type MetricsCollector,
  type MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./metrics_registry.ts";

/** Something wrong with the node besides its models, while it holds (see the module doc). */
export interface HealthCondition {
  /** The part of the node: `proof_store`, `ledger`, ... */
  component: string;
  /** What it does to the node: `degraded` (HTTP 200) or `failed` (HTTP 503). */
  status: "degraded" | "failed";
  /** Stable error code (`proof_store_failed`, `ledger_write_failed`, ...). */
  code: string;
  /** What is wrong and what to check. */
  message: string;
  /** Unix ms since when it holds. */
  since: number;
}

/**
 * `GET /metrics` one client address may make per minute, bursts included (a bucket of a minute's
 * worth): a Prometheus scraping every 5 s makes 12, an HA pair behind one address 24, so 120 leaves
 * room for a human with `curl` and a scrape interval of 1 s beside them, while a flood is cut to
 * two scrapes a second, each sharing its round of asks with those under way.
 */
export const DEFAULT_METRICS_SCRAPES_PER_MINUTE = 120;

/**
 * `GET /healthz` one client address may make per minute, bursts included: a load balancer checks
 * every 2 to 30 s (HAProxy's default 2 s: 30 a minute), a kubelet's liveness, readiness and startup
 * probes at their 1 s minimum make 180 together; 600 (ten a second) is over three times that, and
 * still bounds one address's flood.
 */
export const DEFAULT_HEALTH_CHECKS_PER_MINUTE = 600;

/** One `/healthz` answer: its body and HTTP status, the same for every request that shared it. */
interface HealthAnswer {
  body: Record<string, unknown>;
  code: 200 | 503;
}

/** Options of {@link healthRoutes}'s allowances. */
export interface HealthRoutesOptions {
  /**
   * `/metrics` requests per client address per minute; default
   * {@link DEFAULT_METRICS_SCRAPES_PER_MINUTE}.
   */
  metricsScrapesPerMinute?: number;
  /**
   * `/healthz` requests per client address per minute; default
   * {@link DEFAULT_HEALTH_CHECKS_PER_MINUTE}.
   */
  healthChecksPerMinute?: number;
  /** Clock in milliseconds for the allowances; default `performance.now`. Tests pass their own. */
  now?: () => number;
  /**
   * Where the allowances' 429s are counted for `/metrics` (the edge's, shared with `/v1` and the
   * dashboard: `veriflow_http_refused_total{code}`); nowhere if absent.
   */
  stats?: EdgeStats;
  /**
   * Reverse proxies whose clients are counted by the address they name (`http.trustedProxies`,
   * `client_address.ts`), as `/v1` and the dashboard count them; none by default: a client behind
   * a proxy is the proxy, and every client behind one shares its allowance.
   */
  trustedProxies?: TrustedProxies;
}

/** One client address's allowance of `route` requests a minute (see the module doc). */
function perAddress(route: string, perMinute: number, now?: () => number): KeyLimits {
  return new KeyLimits({
    // Requests under way at once share one round of asks: the allowance per minute bounds them.
    concurrency: Number.POSITIVE_INFINITY,
    requestsPerMinute: perMinute,
    now,
    things: {
      holder: "this address",
      held: `${route} requests under way`,
      started: `${route} requests`,
    },
  });
}

/**
 * Routes `/healthz` and `/metrics`; mount at the root.
 *
 * @param gateway Jobs and models, for the queue and the model count.
 * @param metrics What `/metrics` renders.
 * @param modelHealth The loaded models' runtime health (see the module doc); none by default.
 * @param conditions The node's other conditions that hold now (see the module doc); none by
 *   default.
 * @param nodeKey The node's public key, reported (hex) as `node_key`; absent, no `node_key`.
 * @param options The per-address allowances (see the module doc).
 */
export function healthRoutes(
  gateway: InferenceGateway,
  metrics: MetricsRegistry,
  modelHealth?: () => RegisteredModelHealth[],
  conditions?: () => Promise<HealthCondition[]>,
  nodeKey?: Uint8Array,
  options: HealthRoutesOptions = {},
): Hono<EdgeEnv> {
  const node_key = nodeKey === undefined ? undefined : toHex(nodeKey);
  const routes = new Hono<EdgeEnv>();
  const scrapes = perAddress(
    "/metrics",
    options.metricsScrapesPerMinute ?? DEFAULT_METRICS_SCRAPES_PER_MINUTE,
    options.now,
  );
  const checks = perAddress(
    "/healthz",
    options.healthChecksPerMinute ?? DEFAULT_HEALTH_CHECKS_PER_MINUTE,
    options.now,
  );
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;
  /** Who a request is, for the allowances: behind a trusted proxy, the client it names. */
  const clientOf = (addr: Deno.Addr | undefined, request: Request) =>
    clientAddress(addr, request, trusted);
  /** The check under way, shared by every `/healthz` request that comes while it runs. */
  let checking: Promise<HealthAnswer> | undefined;
  const check = async (): Promise<HealthAnswer> => {
    const [counted, listed, others] = await Promise.all([
      gateway.stats().catch(asError),
      gateway.listModels().catch(asError),
      conditions?.() ?? [],
    ]);
    // Stats or a model list that time out or fail (a wedged inference actor; a router with no
    // worker connected) are the node's own conditions: `failed`, with the reason, rather than
    // an error page that says nothing about the node.
    const now = Date.now();
    const stats = counted instanceof Error ? undefined : counted;
    const models = listed instanceof Error ? undefined : listed;
    const runtime = modelHealth?.();
    const held = [
      ...(counted instanceof Error ? [inferenceUnresponsive(counted, now)] : []),
      ...(listed instanceof Error ? [modelsUnavailable(listed, now)] : []),
      ...(runtime ?? []).filter((m) => (m.abandonedThreads ?? 0) > 0).map(threadsAbandoned),
      ...others,
    ];
    const statuses = [...(runtime ?? []), ...held].map((x) => x.status);
    const worst = (status: ModelHealth["status"]) => statuses.includes(status);
    const status: ModelHealth["status"] = worst("failed")
      ? "failed"
      : worst("degraded")
      ? "degraded"
      : "ok";
    const body = {
      status,
      ...(node_key === undefined ? {} : { node_key }),
      models: models?.length ?? null,
      active_jobs: stats?.activeJobs ?? null,
      queued_jobs: stats?.queuedJobs ?? null,
      ...(held.length === 0 ? {} : {
        conditions: held.map((h) => ({
          component: h.component,
          status: h.status,
          code: h.code,
          message: h.message,
          since: new Date(h.since).toISOString(),
        })),
      }),
    };
    const code = status === "failed" ? 503 : 200;
    if (runtime === undefined) return { body, code };
    const model_runtime = runtime.map((m) => ({
      model: m.cid,
      name: m.name,
      status: m.status,
      restarts: m.restarts,
      abandoned_threads: m.abandonedThreads ?? 0,
      workers: m.workers.map((w) => ({
        lane: w.lane,
        state: w.state,
        restarts: w.restarts,
        ...(w.lastError === undefined ? {} : { last_error: w.lastError }),
      })),
    }));
    return { body: { ...body, model_runtime }, code };
  };
  routes.get("/healthz", async (c) => {
    const release = admitted(checks, clientOf(c.env?.remoteAddr, c.req.raw), options.stats);
    if (release instanceof Response) return release;
    try {
      checking ??= check().finally(() => (checking = undefined));
      const { body, code } = await checking;
      return c.json(body, code);
    } finally {
      release();
    }
  });
  routes.get("/metrics", async (c) => {
    const release = admitted(scrapes, clientOf(c.env?.remoteAddr, c.req.raw), options.stats);
    if (release instanceof Response) return release;
    try {
      // Scrapes under way at once share one collection (`MetricsRegistry.render`).
      return new Response(await metrics.render(), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      });
    } finally {
      release();
    }
  });
  return routes;
}

/**
 * A place in `limits` for `client` (its `clientAddress`), or the 429 that refuses it, counted in
 * `stats`: it is answered here, not thrown, so the app's error handler, which counts the others,
 * never sees it.
 */
function admitted(
  limits: KeyLimits,
  client: string,
  stats: EdgeStats | undefined,
): (() => void) | Response {
  try {
    return limits.admit(client);
  } catch (error) {
    stats?.countRefusal(error);
    return errorResponse(error);
  }
}

/** The condition of a node whose inference stats could not be had (see `healthRoutes`). */
function inferenceUnresponsive(error: Error, now: number): HealthCondition {
  return {
    component: "inference",
    status: "failed",
    code: "inference_unresponsive",
    message: `the inference port did not give its stats (${error.message}): its jobs may ` +
      `hang too; check the node's log and restart it`,
    since: now,
  };
}

/**
 * The condition of a node whose models could not be listed (see `healthRoutes`): every job
 * names a model, so none can be served meanwhile.
 */
function modelsUnavailable(error: Error, now: number): HealthCondition {
  return {
    component: "models",
    status: "failed",
    code: "models_unavailable",
    message: `the inference port did not list its models (${error.message}): no job can be ` +
      `served until it does; on a node that forwards jobs, check that a worker is connected`,
    since: now,
  };
}

/**
 * The condition of a model whose workers were terminated as hung (see `healthRoutes`): their
 * threads may hold a core each until the process ends, so the node computes on fewer cores
 * while the model, its workers replaced, reports `ok`.
 */
function threadsAbandoned(model: RegisteredModelHealth): HealthCondition {
  return {
    component: "model_runtime",
    status: "degraded",
    code: "model_threads_abandoned",
    message: `model ${model.name} (${model.cid}): ${model.abandonedThreads} worker thread(s) ` +
      `terminated as hung (model.restart.stallMs) may each still hold a core until the process ` +
      `ends; the model serves on its replacements, on fewer cores: restart the node to free them`,
    since: model.abandonedSince ?? Date.now(),
  };
}

/** A rejection's reason as an `Error`, to be told apart from a value. */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** The Prometheus series of the inference port, by stats field. */
const INFERENCE_SERIES: ReadonlyArray<
  [keyof InferenceStats, string, "counter" | "gauge", string]
> = [
  ["jobsStarted", "veriflow_inference_jobs_started_total", "counter", "Jobs that got a slot."],
  [
    "jobsFinished",
    "veriflow_inference_jobs_finished_total",
    "counter",
    "Jobs that ran to their end.",
  ],
  ["jobsCancelled", "veriflow_inference_jobs_cancelled_total", "counter", "Jobs cancelled."],
  [
    "jobsFailed",
    "veriflow_inference_jobs_failed_total",
    "counter",
    "Jobs that ended with an error.",
  ],
  [
    "jobsRejected",
    "veriflow_inference_jobs_rejected_total",
    "counter",
    "Jobs refused because the queue was full.",
  ],
  ["tokensGenerated", "veriflow_inference_tokens_generated_total", "counter", "Tokens generated."],
  ["activeJobs", "veriflow_inference_active_jobs", "gauge", "Jobs running now."],
  ["queuedJobs", "veriflow_inference_queued_jobs", "gauge", "Jobs waiting for a slot now."],
];

/**
 * What a forwarding node's port adds to its stats (`NetworkInferencePort.stats`, its
 * `ForwardingStats`): read by shape, since the edge knows ports only as `InferencePort`s. A port
 * that runs its jobs itself has none of them, and no series for them is served.
 */
interface ForwardedCounts {
  /** Runs of client jobs on workers: the first worker, each takeover, each hedge. */
  workerAttempts?: number;
  /** Times a job left its worker mid-job for another, by cause. */
  failovers?: Readonly<Record<string, number>>;
  /** Hedges asked beside a worker that held a job without a token, by outcome. */
  hedges?: Readonly<Record<string, number>>;
  /** Faults of its memory of the jobs it assigned, by kind (`network/_assigned_jobs.ts`). */
  assignedJobs?: Readonly<Record<string, number>>;
}

/**
 * What a port that runs jobs itself (the InferenceActor's) adds to its stats: its budget of
 * unread token bytes (`actors/_unread_token_budget.ts`), now, and the jobs evicted from it since
 * the actor (re)started. A forwarding port has neither, and no series for them is served.
 */
interface UnreadTokenCounts {
  /** Bytes of tokens waiting in memory for readers that stopped reading. */
  unreadTokenBytes?: number;
  /** Jobs whose unread tokens were dropped to make room for another's. */
  unreadTokenEvictions?: number;
}

/** The series of a forwarding port's {@link ForwardedCounts}, when it has them. */
function forwardedSamples(counts: ForwardedCounts): MetricSample[] {
  const samples: MetricSample[] = [];
  if (typeof counts.workerAttempts === "number") {
    samples.push({
      name: "veriflow_inference_worker_attempts_total",
      help: "Runs of forwarded jobs on workers (first workers, takeovers, hedges).",
      type: "counter",
      value: counts.workerAttempts,
    });
  }
  for (const [cause, value] of Object.entries(counts.failovers ?? {})) {
    samples.push({
      name: "veriflow_inference_failovers_total",
      help: "Times a forwarded job left its worker mid-job for another, by cause.",
      type: "counter",
      value,
      labels: { cause },
    });
  }
  for (const [outcome, value] of Object.entries(counts.hedges ?? {})) {
    samples.push({
      name: "veriflow_inference_hedges_total",
      help: "Workers asked beside one that held a forwarded job without a token, by outcome.",
      type: "counter",
      value,
      labels: { outcome },
    });
  }
  for (const [kind, value] of Object.entries(counts.assignedJobs ?? {})) {
    samples.push({
      name: "veriflow_router_assigned_jobs_faults_total",
      help: "Faults of the router's memory of the jobs it assigned (file loads and appends " +
        "failed, records dropped, ids forced out inside the keep window), by kind.",
      type: "counter",
      value,
      labels: { kind },
    });
  }
  return samples;
}

/** A metrics collector reporting the inference port's stats. */
export function inferenceCollector(gateway: InferenceGateway): MetricsCollector {
  // Named `inference`: the registry names a collector that fails a scrape by its function name.
  const inference: MetricsCollector = async () => {
    const stats = await gateway.stats();
    const samples: MetricSample[] = INFERENCE_SERIES.map(([field, name, type, help]) => ({
      name,
      help,
      type,
      value: stats[field],
    }));
    // The same counts as one family by state, for a single query over every job. Not
    // `veriflow_jobs`: under OpenMetrics that is the family of the counter `veriflow_jobs_total`
    // below, and the two clashed in converters (review s70).
    const states: [string, number][] = [["queued", stats.queuedJobs], [
      "running",
      stats.activeJobs,
    ]];
    for (const [state, value] of states) {
      samples.push({
        name: "veriflow_jobs_active",
        help: "Jobs on this node now, by state (queued: the queue depth).",
        type: "gauge",
        value,
        labels: { state },
      });
    }
    const ended: [string, number][] = [
      ["finished", stats.jobsFinished],
      ["cancelled", stats.jobsCancelled],
      ["failed", stats.jobsFailed],
      ["rejected", stats.jobsRejected],
    ];
    for (const [state, value] of ended) {
      samples.push({
        name: "veriflow_jobs_total",
        help: "Jobs that ended, by how (rejected: refused with a full queue).",
        type: "counter",
        value,
        labels: { state },
      });
    }
    // Only a port that runs jobs itself has an unread budget (`actors/_unread_token_budget.ts`):
    // without these an operator could not see slow readers filling it or being evicted.
    const unread = stats as InferenceStats & UnreadTokenCounts;
    if (typeof unread.unreadTokenBytes === "number") {
      samples.push({
        name: "veriflow_unread_token_bytes",
        help: "Bytes of tokens waiting in memory for readers that stopped reading, now.",
        type: "gauge",
        value: unread.unreadTokenBytes,
      });
    }
    if (typeof unread.unreadTokenEvictions === "number") {
      samples.push({
        name: "veriflow_unread_token_evictions_total",
        help: "Jobs whose unread tokens were dropped to make room for another's (since a restart).",
        type: "counter",
        value: unread.unreadTokenEvictions,
      });
    }
    samples.push(...forwardedSamples(stats as InferenceStats & ForwardedCounts));
    return samples;
  };
  return inference;
}
