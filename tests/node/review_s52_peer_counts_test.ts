/**
 * Review s52 of what the node says about its peers (`node/node_metrics.ts`, `node/heartbeat.ts`,
 * `node/dashboard_sources.ts`): counts of peers, not of connections. A peer key is often
 * connected twice (both nodes dialled each other with `--peer`, or a TCP and a swarm
 * connection: the `NetworkActor` keeps both, `tests/network/review_s46_peers_test.ts`), and the
 * router sends jobs, and the storage actor files, to the key (`worker_choice.ts`, `#holders`).
 * Counted per connection, such a peer was two workers on `/metrics` and in the heartbeat, two
 * storage peers, and the dashboard added the bytes it stores twice: an operator read twice the
 * replication the node had.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import { dashboardSources } from "../../node/dashboard_sources.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";

const A = "aa".repeat(32);
const B = "bb".repeat(32);

/** A peer's connection as the network actor's table lists it. */
function connection(key: string, address: string, more: Partial<PeerInfo>): PeerInfo {
  return {
    key,
    address,
    outbound: false,
    protocols: [],
    models: [],
    convicted: false,
    roles: [],
    ...more,
  };
}

/**
 * Worker and storage peer A, connected twice (it dialled us, we dialled it), and storage peer
 * B, connected once.
 */
const TABLE: PeerInfo[] = [
  connection(A, "127.0.0.1:40001", {
    models: ["m"],
    roles: ["inference", "storage"],
    storage: { usedBytes: 4096, quotaBytes: null },
  }),
  connection(A, "127.0.0.1:7700", {
    outbound: true,
    models: ["m"],
    roles: ["inference", "storage"],
    storage: { usedBytes: 4096, quotaBytes: null },
  }),
  connection(B, "127.0.0.1:40002", {
    roles: ["storage"],
    storage: { usedBytes: 1000, quotaBytes: null },
  }),
];

/** A network actor that answers `peers` with {@link TABLE}, and a storage actor. */
async function nodeStandIns() {
  const system = new ActorSystem({ name: "review-s52-peer-counts" });
  const network = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => ({
      receive: (m: NetworkMessage) => m.type === "peers" ? TABLE : undefined,
    }),
  });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => ({
      receive: (m: StorageMessage) =>
        m.type === "capacity"
          ? {
            ok: true,
            value: {
              usedBytes: 0,
              quotaBytes: null,
              objectCount: 0,
              pinCount: 0,
              replicaCount: 0,
              replicaBytes: 0,
              replicaQuotaBytes: null,
            },
          }
          : { ok: true, value: [] },
    }),
  });
  return { system, network, storage };
}

Deno.test("s52: a worker and storage peer connected twice is one worker and one storage peer on /metrics", async () => {
  const { system, network, storage } = await nodeStandIns();
  try {
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: new Uint8Array(32),
      prover: () => undefined,
      validator: () => undefined,
      network: () => network,
      storage: () => storage,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    const series = parsePrometheusText(await metrics.render());
    const value = (name: string) => series.find((s) => s.name === name)?.value;
    assert.equal(value("veriflow_peers"), 3, "connections, as its help says");
    assert.equal(value("veriflow_peer_workers"), 1, "workers jobs can go to");
    assert.equal(value("veriflow_storage_peers"), 2, "peers files are spread over");
  } finally {
    await system.shutdown();
  }
});

Deno.test("s52: the heartbeat counts a worker connected twice as one worker", async () => {
  const { system, network } = await nodeStandIns();
  const line = Promise.withResolvers<string>();
  const heartbeat = startHeartbeat({
    everyMs: 1,
    publicKey: new Uint8Array(32),
    validator: () => undefined,
    network: () => network,
    log: (text) => line.resolve(text),
  });
  try {
    const text = await line.promise;
    assert.match(text, /peers 3 \(workers 1\)/, text);
  } finally {
    heartbeat.stop();
    await system.shutdown();
  }
});

Deno.test("s52: the dashboard's storage panel counts a storage peer connected twice once, and its bytes once", async () => {
  const { system, network, storage } = await nodeStandIns();
  try {
    const sources = dashboardSources({
      publicKey: new Uint8Array(32),
      system,
      inferenceName: "node/inference",
      network: () => network,
      validator: () => undefined,
      storage: () => storage,
    });
    const panel = await sources.storage() as { storagePeers: number; peerBytes: number };
    assert.equal(panel.storagePeers, 2);
    assert.equal(panel.peerBytes, 4096 + 1000);
  } finally {
    await system.shutdown();
  }
});
