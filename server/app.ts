/**
 * The node's client-facing HTTP app: one Hono app with the route modules mounted on it.
 *
 * | Module | Routes |
 * | --- | --- |
 * | `openai_routes.ts` | `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models[/{id}]` |
 * | `stream_routes.ts` | `GET /v1/stream` (WebSocket) |
 * | `health_routes.ts` | `GET /healthz`, `GET /metrics` |
 * | `file_routes.ts` | `POST /v1/files`, `GET /v1/files/{cid}` (mounted by the node with storage) |
 * | `dashboard_routes.ts` | `GET /` (the dashboard), `/dashboard/*`, `/dashboard/live` (WebSocket) |
 *
 * In front of every route, `origin_policy.ts` refuses browser pages from origins the operator
 * did not allow; in front of `/v1/*`, `client_access.ts` decides who may use the API (API keys,
 * or loopback only); in front of `/metrics`, `metrics_access.ts` who may read it
 * (`http.metricsAccess`). Other areas mount theirs on the returned app with Hono's
 * `app.route(prefix, subApp)`; errors thrown by any route become OpenAI-shaped error bodies
 * with the right status here, in one place.
 *
 * @module
 */
import { hostGuard } from "./host_guard.ts";
import { Hono } from "hono";
import type { InferencePort, ModelCatalog } from "../inference/inference_port.ts";
import type { RegisteredModelHealth } from "../inference/model_registry.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { ApiKeys } from "./api_keys.ts";
import { clientAccess, type EdgeEnv } from "./client_access.ts";
import { type DashboardOptions, dashboardRoutes } from "./dashboard_routes.ts";
import { bearerToken, grantOf } from "./credentials.ts";
import { type EdgeConfig, edgeConfig } from "./edge_config.ts";
import { edgeCollector, EdgeStats } from "./edge_stats.ts";
import { type HealthCondition, healthRoutes, inferenceCollector } from "./health_routes.ts";
import { errorResponse, isInternalError } from "./http_errors.ts";
import { InferenceGateway } from "./inference_gateway.ts";
import { ADDRESS_JOB_LIMITS, KeyLimits } from "./key_limits.ts";
import { MetricsRegistry } from "./metrics_registry.ts";
import { openAiRoutes } from "./openai_routes.ts";
import { originPolicy } from "./origin_policy.ts";
import { metricsAccess } from "./metrics_access.ts";
import { allowedMethods } from "./allowed_methods.ts";
import { streamRoutes } from "./stream_routes.ts";
import { WebSocketMemoryGuard } from "./websocket_memory_guard.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { contentEncodingGuard } from "./content_encoding_guard.ts";
import { TrustedProxies } from "./trusted_proxies.ts";

/** Options of {@link createApp}. */
export interface AppOptions {
  /** Where jobs go: a `LocalInferencePort` over this node's InferenceActor, or any port. */
  inference: InferencePort;
  /**
   * The models `/v1/models` lists and requests may name. Default: the port's `models()`, which
   * is what a node serves; give one only to list something else.
   */
  models?: ModelCatalog;
  /**
   * The registry `/metrics` renders; the app registers the inference and edge series on it.
   * Default: a fresh registry, so `/metrics` works without one.
   */
  metrics?: MetricsRegistry;
  /**
   * The edge's counters (`/metrics`); default a fresh one. Give the node's when routes mounted
   * beside the app count into them too (the read slots' idle cut-offs, `node/_http_api.ts`).
   */
  stats?: EdgeStats;
  /** CID or name of the model used when a request names none; default: the first text model. */
  defaultModel?: string;
  /** Whether the model computes on this thread; see `InferenceGatewayOptions`. Default true. */
  computesOnEventLoop?: boolean;
  /**
   * Limits and access rules of the edge (`http` in the node's configuration); `EDGE_DEFAULTS`
   * for what is left out. An unreadable `apiKeysFile` throws here, as does a malformed
   * `trustedProxies` entry (`trusted_proxy_malformed`).
   */
  edge?: Partial<EdgeConfig>;
  /**
   * The clock and timers of the edge's deadlines: the request body's
   * (`http.requestBodyTimeoutMs`), an SSE or WebSocket client's idle cut-off
   * (`http.clientIdleTimeoutMs`) and the dashboard's `auth` deadline; default the system's.
   */
  timers?: ConnectionTimers;
  /**
   * Where a line per job start, end and cancel goes, and one per internal error a request ran
   * into (answered 500 without its message: untyped, or typed with no status of its own), with
   * its stack, and the dashboard's own failures (`DashboardOptions.log`); nowhere by default.
   */
  log?: (line: string) => void;
  /**
   * Where an OpenAI request that samples without a `seed` gets its job's seed
   * (`request_seed.ts`); default a fresh random one per request, as OpenAI's samples vary.
   */
  drawSeed?: () => number;
  /** The loaded models' runtime health, reported by `/healthz` (see `health_routes.ts`). */
  modelHealth?: () => RegisteredModelHealth[];
  /** The node's other conditions that hold now, reported by `/healthz`; none by default. */
  conditions?: () => Promise<HealthCondition[]>;
  /** The node's public key, reported (hex) by `/healthz` as `node_key`; absent, not reported. */
  nodeKey?: Uint8Array;
  /**
   * Serve the live dashboard at `/` (see `dashboard_routes.ts`); its jobs go to `inference`,
   * which should be the port `jobs` wraps. With `page: false` (`--no-dashboard`) only
   * `/dashboard/state`, to this machine, for `cli.ts status`. Absent: none of its routes.
   */
  dashboard?: Pick<DashboardOptions, "sources" | "jobs" | "operatorToken" | "tickMs" | "page">;
  /**
   * The process's RSS in bytes past which WebSockets running no job are dropped, and at the next
   * check still over it those running one too (`server.wsMemoryLimitBytes`,
   * `websocket_memory_guard.ts`); default half the machine's memory.
   */
  wsMemoryLimitBytes?: number;
}

/**
 * Build the app. Serve it with `serve({ app })` (server/serve.ts), which passes the peer's
 * address the loopback rule needs; called without it, a request counts as remote.
 *
 * @example
 * ```ts ignore
 * const inference = new LocalInferencePort({ inference: inferenceRef, models: registry });
 * const app = createApp({ inference, edge: { apiKeys: ["a-long-random-key-1234"] } });
 * app.route("/dashboard", dashboardRoutes); // mount more modules
 * const server = serve({ app, port: 8080 });
 * ```
 */
export function createApp(options: AppOptions): Hono<EdgeEnv> {
  const edge = edgeConfig(options.edge);
  const keys = ApiKeys.fromConfig(edge);
  const trustedProxies = TrustedProxies.from(edge.trustedProxies, edge.trustedProxyHeader);
  const stats = options.stats ?? new EdgeStats();
  const gateway = new InferenceGateway({
    ...options,
    maxPromptChars: edge.maxPromptChars,
    keyLimits: new KeyLimits({
      concurrency: edge.perKeyConcurrency,
      requestsPerMinute: edge.perKeyRequestsPerMinute,
    }),
    addressLimits: new KeyLimits({
      concurrency: edge.perKeyConcurrency,
      requestsPerMinute: edge.perKeyRequestsPerMinute,
      things: ADDRESS_JOB_LIMITS,
    }),
  });
  // One for `/v1/stream` and the dashboard together: they fill one process's memory.
  const memoryGuard = new WebSocketMemoryGuard({
    limitBytes: options.wsMemoryLimitBytes,
    timers: options.timers,
    log: options.log,
  });
  const metrics = options.metrics ?? new MetricsRegistry();
  metrics.register(inferenceCollector(gateway));
  metrics.register(edgeCollector(stats));
  const app = new Hono<EdgeEnv>();
  app.onError((error, c) => {
    stats.countRefusal(error);
    // An internal error (a 500: untyped, a bug, or typed with no status of its own, such as
    // `model_load_failed` or `actor_crashed` at submission) is answered without its message,
    // which may name internals: its cause goes to the operator's log, the one place that
    // records it. Any other says what it is in the body (the client's fault, or a 503/504 that
    // says why), and a job's failure is in the job's own log line.
    if (isInternalError(error)) {
      const code = error instanceof VeriflowError ? ` (${error.code})` : "";
      options.log?.(
        `error: internal error${code} answering ${c.req.method} ${c.req.path}: ${
          error instanceof Error ? error.stack ?? `${error.name}: ${error.message}` : String(error)
        }`,
      );
    }
    return errorResponse(error);
  });
  app.notFound((c) => {
    // A known path asked with another method is the client's wrong method, not a wrong URL:
    // 405 with `Allow`, as OpenAI answers it ("Invalid method for URL").
    const allowed = allowedMethods(app.routes, c.req.path);
    if (allowed.length === 0) {
      return errorResponse(
        new VeriflowError("not_found", `no route for ${c.req.method} ${c.req.path}`),
      );
    }
    const response = errorResponse(
      new VeriflowError(
        "method_not_allowed",
        `Invalid method for URL (${c.req.method} ${c.req.path}): it takes ${allowed.join(", ")}`,
      ),
    );
    response.headers.set("allow", allowed.join(", "));
    return response;
  });
  // Before every route: a request from this machine under a name it was not given is a
  // DNS-rebinding page's (`host_guard.ts`).
  app.use(
    "*",
    hostGuard(edge.allowedHosts, (authorization) => {
      const token = bearerToken(authorization);
      return token !== undefined &&
        grantOf(token, keys, options.dashboard?.operatorToken) !== undefined;
    }),
  );
  // Before any route reads a body: one in a content coding would be read as its plain bytes.
  app.use("*", contentEncodingGuard());
  if (options.dashboard !== undefined) {
    // Before the origin policy: the page's own origin is this node, checked by the route.
    app.route(
      "/",
      dashboardRoutes({
        ...options.dashboard,
        inference: options.inference,
        keys,
        allowUnauthenticatedRemote: edge.allowUnauthenticatedRemote,
        trustedProxies,
        allowedOrigins: edge.allowedOrigins,
        maxRequestBytes: edge.maxRequestBytes,
        limits: {
          socketsPerClient: edge.dashboardSocketsPerClient,
          socketOpensPerMinute: edge.dashboardSocketOpensPerMinute,
          stateReadsPerMinute: edge.dashboardStateReadsPerMinute,
          anonymousSockets: edge.dashboardAnonymousSockets,
          authPendingSockets: edge.dashboardAuthPendingSockets,
          authPendingSocketsPerAddress: edge.dashboardAuthPendingSocketsPerAddress,
        },
        timers: options.timers,
        stats,
        memoryGuard,
        log: options.log,
      }),
    );
  }
  app.use("*", originPolicy(edge.allowedOrigins));
  app.use("/v1/*", clientAccess(keys, edge.allowUnauthenticatedRemote, trustedProxies));
  app.use(
    "/metrics",
    metricsAccess(edge.metricsAccess, {
      keys,
      operatorToken: options.dashboard?.operatorToken,
      trustedProxies,
    }),
  );
  app.route(
    "/",
    healthRoutes(gateway, metrics, options.modelHealth, options.conditions, options.nodeKey, {
      stats,
      trustedProxies,
    }),
  );
  app.route(
    "/v1",
    openAiRoutes(gateway, edge, stats, options.timers, options.drawSeed, options.log),
  );
  app.route(
    "/v1",
    streamRoutes(gateway, edge, stats, options.log, options.timers, {
      trustedProxies,
      memoryGuard,
    }),
  );
  return app;
}
