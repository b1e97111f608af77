/**
 * Operational routes: `GET /healthz` (liveness plus a glance at the queue) and `GET /metrics`
 * (Prometheus text). The inference collector turns the inference port's stats into metrics at
 * scrape time, so counting costs the hot path nothing.
 *
 * @module
 */
import { Hono } from "hono";
import type { InferenceStats } from "../inference/inference_port.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import {
  type MetricSample,
  type MetricsCollector,
  type MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./metrics_registry.ts";

/** Routes `/healthz` and `/metrics`; mount at the root. */
export function healthRoutes(gateway: InferenceGateway, metrics: MetricsRegistry): Hono {
  const routes = new Hono();
  routes.get("/healthz", async (c) => {
    const [stats, models] = await Promise.all([gateway.stats(), gateway.listModels()]);
    return c.json({
      status: "ok",
      models: models.length,
      active_jobs: stats.activeJobs,
      queued_jobs: stats.queuedJobs,
    });
  });
  routes.get("/metrics", async () => {
    return new Response(await metrics.render(), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
    });
  });
  return routes;
}

/** The Prometheus series of the inference port, by stats field. */
const INFERENCE_SERIES: ReadonlyArray<
  [keyof InferenceStats, string, MetricSample["type"], string]
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

/** A metrics collector reporting the inference port's stats. */
export function inferenceCollector(gateway: InferenceGateway): MetricsCollector {
  // Named `inference`: the registry names a collector that fails a scrape by its function name.
  const inference: MetricsCollector = async () => {
    const stats = await gateway.stats();
    return INFERENCE_SERIES.map(([field, name, type, help]) => ({
      name,
      help,
      type,
      value: stats[field],
    }));
  };
  return inference;
}
