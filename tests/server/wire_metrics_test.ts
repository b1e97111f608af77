/**
 * The node's wire budget on `/metrics` (stop 66): what it holds against its bounds, and what each
 * bound refused, ended or closed. The node's collectors ask the network actor (`wire`), which
 * owns the budget every peer connection shares; here a stand-in answers with a real budget's
 * report, filled by real connections.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { describeWire, startHeartbeat } from "../../node/heartbeat.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { WireBudget } from "../../protocols/connection.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { connectedPair, Echo, settle } from "../protocols/_helpers.ts";

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
