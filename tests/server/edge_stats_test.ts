/**
 * The edge's counters on `/metrics` (`server/edge_stats.ts`).
 *
 * - Review s74 F4: `veriflow_http_refused_total` had no series for a code until its first refusal
 *   (none at all on a fresh node, and gone after a restart), so `increase()` missed the first
 *   burst of 429s after a start.
 * - Review s74 F2: answers with a 5xx (507 `disk_full`, 503 `storage_unwritable`) were counted
 *   nowhere.
 */
import assert from "node:assert/strict";
import { VeriflowError } from "../../protocols/errors.ts";
import { DiskFullError, StorageUnwritableError } from "../../storage/errors.ts";
import { edgeCollector, EdgeStats } from "../../server/edge_stats.ts";
import { EdgeError, httpStatusOf } from "../../server/http_errors.ts";
import type { MetricSample } from "../../server/metrics_registry.ts";

async function samplesOf(stats: EdgeStats): Promise<MetricSample[]> {
  return await edgeCollector(stats)();
}

function valueOf(samples: MetricSample[], name: string, code: string): number | undefined {
  const sample = samples.find((s) => s.name === name && s.labels?.code === code);
  return sample && "value" in sample ? sample.value : undefined;
}

Deno.test("edge stats: every known refusal code is listed at 0 before the first refusal", async () => {
  const samples = await samplesOf(new EdgeStats());
  for (const code of ["too_many_jobs", "invalid_request", "unknown_model", "rate_limited"]) {
    assert.equal(valueOf(samples, "veriflow_http_refused_total", code), 0, code);
  }
  // Only 4xx codes: a 5xx code is not a refusal.
  assert.equal(valueOf(samples, "veriflow_http_refused_total", "disk_full"), undefined);
  for (const s of samples.filter((s) => s.name === "veriflow_http_refused_total")) {
    const status = httpStatusOf(new EdgeError(s.labels!.code, "x"));
    assert.ok(status >= 400 && status < 500, `${s.labels!.code} is ${status}`);
  }
});

Deno.test("edge stats: a 5xx is counted by its code, an unknown or untyped one as internal", async () => {
  const stats = new EdgeStats();
  const before = await samplesOf(stats);
  assert.equal(valueOf(before, "veriflow_http_errors_total", "disk_full"), 0);
  assert.equal(valueOf(before, "veriflow_http_errors_total", "storage_unwritable"), 0);
  stats.countRefusal(new DiskFullError());
  stats.countRefusal(new DiskFullError());
  stats.countRefusal(new StorageUnwritableError("/tmp/x", new Error("EROFS")));
  stats.countRefusal(new Error("a bug"));
  stats.countRefusal(new VeriflowError("a_peers_own_word", "from elsewhere"));
  stats.countRefusal(new EdgeError("too_many_jobs", "queue full"));
  const after = await samplesOf(stats);
  assert.equal(valueOf(after, "veriflow_http_errors_total", "disk_full"), 2);
  assert.equal(valueOf(after, "veriflow_http_errors_total", "storage_unwritable"), 1);
  assert.equal(valueOf(after, "veriflow_http_errors_total", "internal"), 2);
  assert.equal(valueOf(after, "veriflow_http_errors_total", "a_peers_own_word"), undefined);
  assert.equal(valueOf(after, "veriflow_http_refused_total", "too_many_jobs"), 1);
  assert.equal(valueOf(after, "veriflow_http_refused_total", "disk_full"), undefined);
});
