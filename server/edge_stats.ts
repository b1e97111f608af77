/**
 * Counters of the HTTP/WebSocket edge, for `/metrics`: requests refused at the edge by error
 * code (too large, wrong origin, no key, over a key's limits, ...) and clients cut off for not
 * reading. Plain fields, read at scrape time by {@link edgeCollector}.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { httpStatusOf } from "./http_errors.ts";
import type { MetricSample, MetricsCollector } from "./metrics_registry.ts";

/** The edge's counters. */
export class EdgeStats {
  /** Clients cut off after `http.clientIdleTimeoutMs` without reading (their jobs cancelled). */
  idleTimeouts = 0;
  /** Requests and WebSocket messages refused with a 4xx, by error code. */
  readonly refused = new Map<string, number>();

  /** Count `error` if it is a client error (4xx). */
  countRefusal(error: unknown): void {
    const status = httpStatusOf(error);
    if (status < 400 || status >= 500 || !(error instanceof VeriflowError)) return;
    this.refused.set(error.code, (this.refused.get(error.code) ?? 0) + 1);
  }
}

/** A metrics collector reporting the edge's counters. */
export function edgeCollector(stats: EdgeStats): MetricsCollector {
  // Named: the registry names a collector that fails a scrape by its function name.
  const edge: MetricsCollector = () => {
    const samples: MetricSample[] = [{
      name: "veriflow_http_idle_timeouts_total",
      help:
        "Clients cut off for reading nothing for http.clientIdleTimeoutMs; their jobs cancelled.",
      type: "counter",
      value: stats.idleTimeouts,
    }];
    for (const [code, value] of stats.refused) {
      samples.push({
        name: "veriflow_http_refused_total",
        help: "Requests refused at the edge (4xx), by error code.",
        type: "counter",
        value,
        labels: { code },
      });
    }
    return samples;
  };
  return edge;
}
