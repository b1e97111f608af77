/**
 * `/metrics` (`server/metrics_registry.ts`): collectors that hang or throw, counters that never go
 * down while the node runs, and the node's wire budget as `network.wire` configures it.
 */
import assert from "node:assert/strict";
import {
  COLLECTOR_FAILURES_METRIC,
  type MetricSample,
  MetricsRegistry,
} from "../../server/metrics_registry.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { describeWire, startHeartbeat } from "../../node/heartbeat.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { WireBudget } from "../../protocols/connection.ts";
import { connectedPair, Echo, settle } from "../protocols/_helpers.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { parsePrometheusText, valueOf } from "./_prometheus_text.ts";

const sample = (name: string, value: number): MetricSample => ({
  name,
  help: `${name} help`,
  type: "gauge",
  value,
});

/** `name{labels} value` lines of a rendering, without the HELP/TYPE comments. */
function seriesOf(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

Deno.test("a scrape serves every collector that answers when one hangs and another throws, and counts each by name and reason", async () => {
  const metrics = new MetricsRegistry({ collectorTimeoutMs: 20 });
  metrics.register(() => [sample("ok_one", 1)], "one");
  // Never answers: a wedged actor. Its deadline, not its answer, ends the wait.
  metrics.register(() => new Promise<MetricSample[]>(() => {}), "validator");
  // What an actor ask past its own timeout throws.
  metrics.register(() => {
    throw new VeriflowError("ask_timeout", "no reply from node/network within 1000 ms");
  }, "network");
  metrics.register(() => Promise.reject(new Error("disk gone")), "storage");
  metrics.register(() => Promise.resolve([sample("ok_two", 2)]), "two");

  const first = seriesOf(await metrics.render());
  assert.deepEqual(
    first.sort(),
    [
      "ok_one 1",
      "ok_two 2",
      `${COLLECTOR_FAILURES_METRIC}{collector="validator",reason="timeout"} 1`,
      `${COLLECTOR_FAILURES_METRIC}{collector="network",reason="timeout"} 1`,
      `${COLLECTOR_FAILURES_METRIC}{collector="storage",reason="error"} 1`,
    ].sort(),
  );
  const second = seriesOf(await metrics.render());
  assert.ok(
    second.includes(`${COLLECTOR_FAILURES_METRIC}{collector="validator",reason="timeout"} 2`),
  );
});

Deno.test("a collector is named by its function when registered without a name", async () => {
  const metrics = new MetricsRegistry();
  const inference = () => Promise.reject(new Error("down"));
  metrics.register(inference);
  assert.match(await metrics.render(), /\{collector="inference",reason="error"\} 1$/m);
});

// A counter on `/metrics` never goes down while the node runs. A router's inference counters are
// sums over the worker connections open now (`NetworkInferencePort`), and an actor's counters start
// again from 0 when its supervisor restarts it: rendered as they are, a drop from 1000 to 400 reads
// to Prometheus as a reset, and `rate()` books the 400 left as new work — a spike of work nobody
// did.

/** The value of the series `line` starts with, in a rendering. */
function counterValue(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  assert.ok(line !== undefined, `${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

Deno.test("a counter whose source drops (a worker disconnected, an actor restarted) is held, then counts on from there", async () => {
  const metrics = new MetricsRegistry();
  // Jobs finished, summed over the workers connected now: A 600 + B 400, then A leaves.
  const finished = [1000, 400, 450, 0, 5];
  const gauge = [3, 1, 2, 0, 1];
  let scrape = 0;
  metrics.register((): MetricSample[] => [
    {
      name: "app_jobs_total",
      help: "Jobs.",
      type: "counter",
      value: finished[scrape],
      labels: { state: "finished" },
    },
    { name: "app_jobs_running", help: "Running now.", type: "gauge", value: gauge[scrape] },
  ], "inference");
  const seen: number[] = [];
  const gauges: number[] = [];
  for (; scrape < finished.length; scrape++) {
    const text = await metrics.render();
    seen.push(counterValue(text, 'app_jobs_total{state="finished"}'));
    gauges.push(counterValue(text, "app_jobs_running"));
  }
  // Held at 1000 through the drop; then B's 50 more; then a reset to 0 and 5 more.
  assert.deepEqual(seen, [1000, 1000, 1050, 1050, 1055]);
  // Gauges go where their source goes.
  assert.deepEqual(gauges, gauge);
});

Deno.test("counters are held per series: a drop in one label set does not move another", async () => {
  const metrics = new MetricsRegistry();
  const values = [[5, 7], [2, 9]];
  let scrape = 0;
  metrics.register((): MetricSample[] =>
    ["a", "b"].map((actor, i) => ({
      name: "app_restarts_total",
      help: "Restarts.",
      type: "counter" as const,
      value: values[scrape][i],
      labels: { actor },
    }))
  );
  await metrics.render();
  scrape = 1;
  const text = await metrics.render();
  assert.equal(counterValue(text, 'app_restarts_total{actor="a"}'), 5);
  assert.equal(counterValue(text, 'app_restarts_total{actor="b"}'), 9);
});

// The node's wire budget on `/metrics`: what it holds against its bounds, and what each bound
// refused, ended or closed. The node's collectors ask the network actor (`wire`), which owns the
// budget every peer connection shares; here a stand-in answers with a real budget's report, filled
// by real connections.

/** A stand-in network actor: `wire` answers the budget's report; anything else an empty table. */
function networkOf(budget: WireBudget): ActorRef<NetworkMessage> {
  return {
    ask: (message: NetworkMessage) =>
      Promise.resolve(message.type === "wire" ? budget.report() : []),
  } as unknown as ActorRef<NetworkMessage>;
}

/** A registry with the node's collectors, reading `budget` through the network actor. */
function registryOf(budget: WireBudget): MetricsRegistry {
  const metrics = new MetricsRegistry();
  const network = networkOf(budget);
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => network,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  return metrics;
}

Deno.test("/metrics shows the node's wire budget: what it holds against each bound, and busy refusals by the bound that made them", async () => {
  const budget = new WireBudget({ maxHandlers: 2, maxHandlersPerPeer: 2 });
  const release = Promise.withResolvers<void>();
  const pair = connectedPair({ keepaliveMs: 0, idleTimeoutMs: 0 }, {
    keepaliveMs: 0,
    idleTimeoutMs: 0,
    budget,
  });
  pair.server.handle(Echo, async ({ text, n }) => {
    await release.promise;
    return { text, n };
  });
  const asked = [1, 2, 3].map((n) => pair.client.request(Echo, { text: "x", n }).catch(() => {}));
  await settle();
  const text = await registryOf(budget).render();
  assert.match(text, /^veriflow_wire_handlers 2$/m);
  assert.match(text, /^veriflow_wire_max_handlers 2$/m);
  assert.match(text, /^veriflow_wire_streams 0$/m);
  assert.match(text, /^veriflow_wire_max_streams 1024$/m);
  assert.match(text, /^veriflow_wire_queued_bytes \d+$/m);
  assert.match(text, /^veriflow_wire_max_queued_bytes 268435456$/m);
  assert.match(text, /^# TYPE veriflow_wire_refused_total counter$/m);
  assert.match(text, /^veriflow_wire_refused_total\{limit="handlers"\} 1$/m);
  assert.match(text, /^veriflow_wire_refused_total\{limit="connection_requests"\} 0$/m);
  assert.match(text, /^veriflow_wire_streams_ended_total\{reason="credit_timeout"\} 0$/m);
  assert.match(text, /^veriflow_wire_streams_ended_total\{reason="busy"\} 0$/m);
  release.resolve();
  await Promise.all(asked);
  await pair.close();
});

Deno.test("/metrics counts connections a limit closed by reason, one series per reason seen, and the frame-timeout series is there before any", async () => {
  const budget = new WireBudget();
  budget.connectionClosed("frame_timeout");
  budget.connectionClosed("peer_timeout");
  budget.connectionClosed("peer_timeout");
  budget.streamEnded("credit_timeout");
  const text = await registryOf(budget).render();
  assert.match(text, /^veriflow_wire_connections_closed_total\{reason="frame_timeout"\} 1$/m);
  assert.match(text, /^veriflow_wire_connections_closed_total\{reason="peer_timeout"\} 2$/m);
  assert.match(text, /^veriflow_wire_streams_ended_total\{reason="credit_timeout"\} 1$/m);
  const fresh = await registryOf(new WireBudget()).render();
  assert.match(fresh, /^veriflow_wire_connections_closed_total\{reason="frame_timeout"\} 0$/m);
});

Deno.test("a node without a network actor has no wire series, and the scrape is served", async () => {
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  const text = await metrics.render();
  assert.doesNotMatch(text, /veriflow_wire_/);
  assert.match(text, /^veriflow_process_rss_bytes \d+$/m);
});

Deno.test("the heartbeat says what the wire limits did once they did anything, and nothing while they did not", async () => {
  const budget = new WireBudget();
  assert.equal(describeWire(budget.report()), undefined, "a calm node's line stays short");
  const lines: string[] = [];
  const beat = (network: ActorRef<NetworkMessage>) => {
    const logged = Promise.withResolvers<string>();
    const heartbeat = startHeartbeat({
      everyMs: 1,
      publicKey: new Uint8Array(32),
      validator: () => undefined,
      network: () => network,
      log: (line) => logged.resolve(line),
    });
    return logged.promise.finally(() => heartbeat.stop());
  };
  lines.push(await beat(networkOf(budget)));
  assert.doesNotMatch(lines[0], /wire/);
  budget.connectionRefused("connection_requests");
  budget.streamEnded("credit_timeout");
  budget.connectionClosed("frame_timeout");
  budget.connectionClosed("frame_timeout");
  lines.push(await beat(networkOf(budget)));
  assert.match(
    lines[1],
    /wire refused 1 \(connection_requests 1\) · streams ended 1 \(credit_timeout 1\) · connections closed 2 \(frame_timeout 2\) · queued 0\/256 MiB/,
  );
});

// A started node's `/metrics` carries its wire budget as `network.wire` configures it: the
// config reaches the one budget the NetworkActor's connections share, and the scrape reads that
// budget through the actor (`wire`), not a copy made at start.

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
