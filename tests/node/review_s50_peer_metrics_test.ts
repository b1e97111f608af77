/**
 * Review (s50) of the node's own series on `/metrics` (`node/node_metrics.ts`) as a peer sees
 * them: what a peer does (send jobs, connect) must not make the exposition invalid or its series
 * grow without bound.
 *
 * - `veriflow_actor_restarts_total` had one series per running job: the inference actor's
 *   per-job runners (`node/inference/job-<job id>-<n>`, `restart: "temporary"`: never restarted,
 *   their count always 0) were in the tree it walks. Every job that spanned a scrape added a
 *   series named after its id and a sequence number, so Prometheus' series grew with the jobs
 *   peers and clients sent, for good.
 * - A peer key connected twice (both nodes dialled each other, or a peer opened a second
 *   connection: `NetworkActor` keeps both) had its `veriflow_peer_jobs{key}` and
 *   `veriflow_peer_stored_bytes{key}` written once per connection: the same series twice in one
 *   exposition, which `promtool check metrics` (and `tests/server/_prometheus_text.ts`) refuses.
 */
import assert from "node:assert/strict";
import type { ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL, PeerHelloMessage, signPeerHello } from "../../protocols/peer_hello.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { parsePrometheusText, type Series } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";

/** A registry with the node's collectors over `sources`' tree and network. */
function registryOf(
  sources: Partial<Parameters<typeof nodeCollectors>[0]>,
): MetricsRegistry {
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
    ...sources,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  return metrics;
}

type InferenceMsg = { type: "start"; id: string } | { type: "end"; name: string };

Deno.test("review s50: /metrics has no series per job: the per-job runners (temporary, never restarted) are not in veriflow_actor_restarts_total", async () => {
  const system = new ActorSystem({ name: "node" });
  // What the inference actor does per job: a linked runner named after the job id and a
  // sequence number (`#spawnRunner`), temporary, stopped when the job ends.
  let seq = 0;
  const inference = await system.spawn<InferenceMsg>({
    name: "node/inference",
    factory: () => ({
      async receive(m: InferenceMsg, ctx: ActorContext<InferenceMsg>) {
        if (m.type === "end") return await ctx.system.stop(m.name);
        const ref = await ctx.spawn<string>({
          name: `${ctx.name}/job-${m.id.slice(0, 12)}-${++seq}`,
          factory: () => ({ receive: () => {} }),
          restart: "temporary",
        });
        return ref.name;
      },
    }),
  });
  const metrics = registryOf({ tree: () => system.tree() });
  const actorSeries = (series: Series[]) =>
    series.filter((s) => s.name === "veriflow_actor_restarts_total").map((s) => s.labels.actor);
  try {
    const idle = actorSeries(parsePrometheusText(await metrics.render()));
    assert.ok(idle.includes("node/inference"), `the inference actor is counted: ${idle}`);
    // Jobs come and go; a scrape lands while each runs.
    const seen = new Set(idle);
    for (let i = 0; i < 5; i++) {
      const id = toHex(crypto.getRandomValues(new Uint8Array(16)));
      const runner = await inference.ask<string>({ type: "start", id });
      for (const actor of actorSeries(parsePrometheusText(await metrics.render()))) {
        seen.add(actor);
      }
      await inference.ask({ type: "end", name: runner });
    }
    assert.deepEqual([...seen].sort(), [...idle].sort(), "series came and went with the jobs");
  } finally {
    await system.shutdown();
  }
});

/**
 * Open a connection from `identity` to the network actor `net` under `address`, and send a
 * signed hello saying a load and a storage use. Resolves with the peer's end.
 */
async function connectAs(
  net: ActorRef<NetworkMessage>,
  identity: Identity,
  address: string,
  outbound: boolean,
): Promise<Connection> {
  const [a, b] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address, outbound }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL] }),
  ]);
  const hello = signPeerHello(
    identity,
    {
      version: "1.0.0",
      roles: ["storage"],
      models: [],
      storage: { usedBytes: 4096, quotaBytes: null },
      load: { running: 1, queued: 2, slots: 4, queueLimit: 8 },
    },
    1,
    Date.now(),
  );
  await peer.notify(PeerHelloMessage, { hello });
  return peer;
}

Deno.test("review s50: a peer connected twice has one veriflow_peer_jobs and one veriflow_peer_stored_bytes series, and /metrics stays valid", async () => {
  const system = new ActorSystem({ name: "s50-peer-twice" });
  const net = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const peerKey = Identity.generate();
  const key = toHex(peerKey.publicKey);
  const peers: Connection[] = [];
  try {
    // It dialled us and we dialled it: two connections, one key.
    peers.push(await connectAs(net, peerKey, "127.0.0.1:40001", false));
    peers.push(await connectAs(net, peerKey, "127.0.0.1:9000", true));
    const metrics = registryOf({ network: () => net });
    // Both connections have had their hello.
    await eventually(async () => {
      const peers = await net.ask<{ load?: unknown }[]>({ type: "peers" });
      return peers.length === 2 && peers.every((p) => p.load !== undefined) || undefined;
    }, "both hellos taken");
    const series = parsePrometheusText(await metrics.render());
    const of = (name: string) => series.filter((s) => s.name === name && s.labels.key === key);
    assert.equal(of("veriflow_peer_info").length, 2, "one per connection");
    assert.deepEqual(of("veriflow_peer_jobs").map((s) => s.value), [3]);
    assert.deepEqual(of("veriflow_peer_stored_bytes").map((s) => s.value), [4096]);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});
