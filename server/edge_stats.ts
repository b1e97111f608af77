/**
 * Counters of the HTTP/WebSocket edge, for `/metrics`: requests refused at the edge by error
 * code (too large, wrong origin, no key, over a key's limits, ...), the node's own failures
 * answered with a 5xx by error code (a full disk, a store that cannot be written, no worker), and
 * clients cut off for not reading. Plain fields, read at scrape time by {@link edgeCollector}.
 *
 * Every code of the edge's status table (`http_errors.ts`' `STATUS_BY_CODE`) is listed from the
 * start, at 0 (review s74 F4: a code's series appeared at its first refusal, so `increase()` over
 * a window missed the first burst, and a restart made it vanish). A 5xx was counted nowhere
 * (review s74 F2: 507 `disk_full` refusals showed in no series).
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { httpStatusOf, STATUS_BY_CODE } from "./http_errors.ts";
import type { MetricSample, MetricsCollector } from "./metrics_registry.ts";

/**
 * The `code` a 5xx is counted under when its error is untyped or its code is not in the table (a
 * bug, a crashed actor): a code from elsewhere (a peer's) would make a series per word it sends.
 */
export const INTERNAL_ERROR_CODE = "internal";

/** The table's codes whose status is in `[from, to)`, each at 0. */
function zeroedCodes(from: number, to: number): Map<string, number> {
  const codes = new Map<string, number>();
  for (const [code, status] of Object.entries(STATUS_BY_CODE)) {
    if (status >= from && status < to) codes.set(code, 0);
  }
  return codes;
}

/** The edge's counters. */
export class EdgeStats {
  /**
   * Clients cut off for reading nothing: a stream's after `http.clientIdleTimeoutMs` (its job
   * cancelled), a read of a stored file's after `READ_IDLE_TIMEOUT_MS` (`read_slot_body.ts`, its
   * read slot freed).
   */
  idleTimeouts = 0;
  /** Requests and WebSocket messages refused with a 4xx, by error code (every known one listed). */
  readonly refused: Map<string, number> = zeroedCodes(400, 500);
  /**
   * Requests answered with a 5xx, by error code (every known one listed, and
   * {@link INTERNAL_ERROR_CODE} for the rest).
   */
  readonly errors: Map<string, number> = new Map([
    ...zeroedCodes(500, 600),
    [INTERNAL_ERROR_CODE, 0],
  ]);

  /** Count `error`: a client error (4xx) as refused, a server error (5xx) as an error. */
  countRefusal(error: unknown): void {
    const status = httpStatusOf(error);
    if (status >= 500) {
      const code = error instanceof VeriflowError && STATUS_BY_CODE[error.code] !== undefined
        ? error.code
        : INTERNAL_ERROR_CODE;
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
      return;
    }
    if (status < 400 || !(error instanceof VeriflowError)) return;
    this.refused.set(error.code, (this.refused.get(error.code) ?? 0) + 1);
  }
}

/** A metrics collector reporting the edge's counters. */
export function edgeCollector(stats: EdgeStats): MetricsCollector {
  // Named: the registry names a collector that fails a scrape by its function name.
  const edge: MetricsCollector = () => {
    const samples: MetricSample[] = [{
      name: "veriflow_http_idle_timeouts_total",
      help: "Clients cut off for reading nothing: streams after http.clientIdleTimeoutMs (their " +
        "jobs cancelled), reads of stored files after 60 s (their read slots freed).",
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
    for (const [code, value] of stats.errors) {
      samples.push({
        name: "veriflow_http_errors_total",
        help: "Requests answered with a server error (5xx), by error code.",
        type: "counter",
        value,
        labels: { code },
      });
    }
    return samples;
  };
  return edge;
}
