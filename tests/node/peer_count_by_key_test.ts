/**
 * Review s78 F4: one peer over two connections (each node dialling the other, or one address
 * given twice) was counted and listed as two peers: the heartbeat's `peers 2`, `status` listing
 * the key twice, `/metrics`' `veriflow_peers 2` beside `veriflow_storage_peers 1`, and two
 * `veriflow_peer_info` series with one label set (an exposition parsers refuse). Every view now
 * counts and lists peers by key; `/metrics` counts the connections apart.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL, PeerHelloMessage, signPeerHello } from "../../protocols/peer_hello.ts";
import { describe as describeStatus } from "../../cli/status_command.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";
import { firstHeartbeat } from "./_first_heartbeat.ts";
import { metricsOver, networkWithMetrics } from "./_network_metrics.ts";

/** The address both connections name: one `--peer` given twice dials it twice. */
const ADDRESS = "127.0.0.1:18792";

/** Connect `identity` to `net` as a dial of {@link ADDRESS}, with a signed storage hello. */
async function dialledTwice(
  net: ActorRef<NetworkMessage>,
  identity: Identity,
): Promise<Connection> {
  const [a, b] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address: ADDRESS, outbound: true }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL] }),
  ]);
  const hello = signPeerHello(
    identity,
    {
      version: "1.0.0",
      roles: ["storage"],
      models: [],
      storage: { usedBytes: 0, quotaBytes: null },
    },
    1,
    Date.now(),
  );
  await peer.notify(PeerHelloMessage, { hello });
  return peer;
}

/**
 * A network actor with one peer connected twice under {@link ADDRESS}, both hellos taken: `run`
 * gets it, the peer's key and the network's table.
 */
async function withPeerTwice(
  run: (net: ActorRef<NetworkMessage>, key: string, table: PeerInfo[]) => Promise<void>,
): Promise<void> {
  const { system, net } = await networkWithMetrics("s78-peer-by-key");
  const peerKey = Identity.generate();
  const connections: Connection[] = [];
  try {
    connections.push(await dialledTwice(net, peerKey), await dialledTwice(net, peerKey));
    const table = await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.length === 2 && peers.every((p) => p.roles.length > 0) ? peers : undefined;
    }, "both connections with their hello");
    await run(net, toHex(peerKey.publicKey), table);
  } finally {
    await Promise.all(connections.map((c) => c.close()));
    await system.shutdown();
  }
}

Deno.test("one peer over two connections to one address is one peer on /metrics, with one veriflow_peer_info series and its connections counted apart", async () => {
  await withPeerTwice(async (net, key) => {
    const metrics = metricsOver(net);
    // The parser refuses a page that gives one series twice.
    const series = parsePrometheusText(await metrics.render());
    const value = (name: string) => series.find((s) => s.name === name)?.value;
    assert.equal(value("veriflow_peers"), 1, "peers by key");
    assert.equal(value("veriflow_peer_connections"), 2, "the connections, apart");
    const info = series.filter((s) => s.name === "veriflow_peer_info");
    assert.deepEqual(info.map((s) => s.labels.key), [key], "one series per key");
  });
});

Deno.test("one peer over two connections is one peer in the heartbeat, its connections said beside it", async () => {
  await withPeerTwice(async (net) => {
    const text = await firstHeartbeat(net);
    assert.match(text, /peers 1 \(2 connections, workers 0\)/, text);
  });
});

Deno.test("status lists one peer over two connections once, with its connections counted", async () => {
  await withPeerTwice((_net, key, table) => {
    // `status` reads the dashboard's snapshot, whose `peers` is the network's table.
    const lines = describeStatus({
      node: { key: "ab".repeat(32), version: "0.0.0" },
      tree: { name: "node", status: "running", restarts: 0, children: [] },
      peers: table,
    });
    const peersLine = lines.find((l) => l.startsWith("peers"));
    assert.equal(peersLine, `peers    1: ${key.slice(0, 12)} storage (2 connections)`);
    return Promise.resolve();
  });
});
