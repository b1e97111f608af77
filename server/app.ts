/**
 * The node's client-facing HTTP app: one Hono app with the route modules mounted on it.
 *
 * | Module | Routes |
 * | --- | --- |
 * | `openai_routes.ts` | `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models` |
 * | `stream_routes.ts` | `GET /v1/stream` (WebSocket) |
 * | `health_routes.ts` | `GET /healthz`, `GET /metrics` |
 *
 * Other areas mount theirs on the returned app with Hono's `app.route(prefix, subApp)`; errors
 * thrown by any route become OpenAI-shaped error bodies with the right status here, in one
 * place.
 *
 * @module
 */
import { Hono } from "hono";
import type { InferencePort, ModelCatalog } from "../inference/inference_port.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { healthRoutes, inferenceCollector } from "./health_routes.ts";
import { errorResponse } from "./http_errors.ts";
import { InferenceGateway } from "./inference_gateway.ts";
import { MetricsRegistry } from "./metrics_registry.ts";
import { openAiRoutes } from "./openai_routes.ts";
import { streamRoutes } from "./stream_routes.ts";

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
   * The registry `/metrics` renders; the app registers the inference series on it. Default: a
   * fresh registry, so `/metrics` works without one.
   */
  metrics?: MetricsRegistry;
  /** CID or name of the model used when a request names none; default: the first text model. */
  defaultModel?: string;
  /** Whether the model computes on this thread; see `InferenceGatewayOptions`. Default true. */
  computesOnEventLoop?: boolean;
}

/**
 * Build the app. Serve it with `serve({ app })` (server/serve.ts) or `Deno.serve(app.fetch)`.
 *
 * @example
 * ```ts ignore
 * const inference = new LocalInferencePort({ inference: inferenceRef, models: registry });
 * const app = createApp({ inference });
 * app.route("/dashboard", dashboardRoutes); // mount more modules
 * const server = serve({ app, port: 8080 });
 * ```
 */
export function createApp(options: AppOptions): Hono {
  const gateway = new InferenceGateway(options);
  const metrics = options.metrics ?? new MetricsRegistry();
  metrics.register(inferenceCollector(gateway));
  const app = new Hono();
  app.onError((error) => errorResponse(error));
  app.notFound((c) =>
    errorResponse(new VeriflowError("not_found", `no route for ${c.req.method} ${c.req.path}`))
  );
  app.route("/", healthRoutes(gateway, metrics));
  app.route("/v1", openAiRoutes(gateway));
  app.route("/v1", streamRoutes(gateway));
  return app;
}
