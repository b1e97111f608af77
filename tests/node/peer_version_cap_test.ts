/**
 * `veriflow_peer_versions` (`node/node_metrics.ts`) has at most `MAX_PEER_VERSION_SERIES` series
 * however many versions the connected peers state: the most common are kept, the rest counted
 * under `version="other"` (review s77 vstr F1: every version a peer stated was a series).
 */
import assert from "node:assert/strict";
import type { PeerInfo } from "../../network/network_actor.ts";
import { MAX_PEER_VERSION_SERIES, OTHER_PEER_VERSIONS } from "../../node/node_metrics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { PeerHelloMessage, signPeerHello } from "../../protocols/peer_hello.ts";
import { connectPeer, networkWithMetrics } from "./_network_metrics.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";

/** Versions each stated by one peer: more than the cap, so some are counted as `other`. */
const LONE_VERSIONS = MAX_PEER_VERSION_SERIES + 1;

Deno.test("veriflow_peer_versions keeps the most common versions and counts the rest as other", async () => {
  const { system, net, metrics } = await networkWithMetrics("s77-peer-version-cap");
  // Three peers on 0.2.0, two on 0.3.0, one that states "other" itself, and one each on
  // LONE_VERSIONS versions of their own.
  const versions = [
    ...["0.2.0", "0.2.0", "0.2.0", "0.3.0", "0.3.0", OTHER_PEER_VERSIONS],
    ...Array.from({ length: LONE_VERSIONS }, (_, i) => `0.1.${i}`),
  ];
  const peers: Connection[] = [];
  try {
    for (const [i, version] of versions.entries()) {
      const { identity, peer } = await connectPeer(net, `127.0.0.1:${41000 + i}`);
      peers.push(peer);
      await peer.notify(PeerHelloMessage, {
        hello: signPeerHello(identity, { version, roles: [], models: [] }, 1, Date.now()),
      });
    }
    await eventually(async () => {
      const rows = await net.ask<PeerInfo[]>({ type: "peers" });
      return rows.filter((r) => r.version !== undefined).length === versions.length || undefined;
    }, "every peer's hello taken");
    const series = parsePrometheusText(await metrics.render())
      .filter((s) => s.name === "veriflow_peer_versions");
    const count = new Map(series.map((s) => [s.labels.version, s.value]));
    assert.equal(series.length, MAX_PEER_VERSION_SERIES, JSON.stringify([...count]));
    assert.equal(count.size, series.length, "no version twice");
    assert.equal(count.get("0.2.0"), 3);
    assert.equal(count.get("0.3.0"), 2);
    // Every connection is counted once: the lone versions not kept, and the peer that said
    // "other", are under other.
    const lonesKept = MAX_PEER_VERSION_SERIES - 3; // 0.2.0, 0.3.0 and other take three
    assert.equal(count.get(OTHER_PEER_VERSIONS), 1 + LONE_VERSIONS - lonesKept);
    assert.equal([...count.values()].reduce((a, b) => a + b, 0), versions.length);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});
