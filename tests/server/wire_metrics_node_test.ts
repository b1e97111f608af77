/**
 * A started node's `/metrics` carries its wire budget as `network.wire` configures it: the
 * config reaches the one budget the NetworkActor's connections share, and the scrape reads that
 * budget through the actor (`wire`), not a copy made at start.
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { parsePrometheusText, valueOf } from "./_prometheus_text.ts";

Deno.test({
  name: "a node's /metrics shows network.wire's bounds and an empty budget; every line parses",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0 },
      network: { listening: false, wire: { maxHandlers: 100, maxQueuedBytes: 1 << 20 } },
    }));
    try {
      const series = parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
      assert.equal(valueOf(series, "veriflow_wire_max_handlers"), 100);
      assert.equal(valueOf(series, "veriflow_wire_max_queued_bytes"), 1 << 20);
      assert.equal(valueOf(series, "veriflow_wire_max_streams"), 1024);
      assert.equal(valueOf(series, "veriflow_wire_handlers"), 0);
      assert.equal(valueOf(series, "veriflow_wire_queued_bytes"), 0);
      assert.equal(valueOf(series, "veriflow_wire_refused_total", { limit: "handlers" }), 0);
      assert.equal(
        valueOf(series, "veriflow_wire_connections_closed_total", { reason: "frame_timeout" }),
        0,
      );
      assert.equal(
        valueOf(series, "veriflow_metrics_collector_failures_total", {
          collector: "wire",
          reason: "error",
        }) || 0,
        0,
      );
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
