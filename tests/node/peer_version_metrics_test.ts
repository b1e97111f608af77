/**
 * A peer's stated version on `/metrics` (`node/node_metrics.ts`): a hello with a hostile version
 * is refused before the peer table sees it, and the version is no label of the per-connection
 * `veriflow_peer_info`, so a peer that states a new version in each hello makes no new series
 * (review s76 F1: CR/ESC/U+202E in the label, and 200 label sets from one connection). Versions
 * are counted in `veriflow_peer_versions` by each connection's first hello, at most
 * `MAX_PEER_VERSION_SERIES` series (review s77 vstr F1).
 */
import assert from "node:assert/strict";
import type { PeerInfo } from "../../network/network_actor.ts";
import { HELLO_BURST } from "../../network/_peer_hellos.ts";
import { PeerHelloMessage, signPeerHello } from "../../protocols/peer_hello.ts";
import { connectPeer, networkWithMetrics } from "./_network_metrics.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";

const HOSTILE = 'v"} 1\r\\x\u2028\u202ey\x1b[31m'; // review s76 F1's, 16 characters

/** A network actor, its `/metrics`, and one peer connected to it over memory. */
async function nodeWithPeer() {
  const { system, net, metrics } = await networkWithMetrics("s77-peer-version");
  const { identity, peer } = await connectPeer(net, "127.0.0.1:40001");
  const say = (version: string, seq: number) =>
    peer.notify(PeerHelloMessage, {
      hello: signPeerHello(identity, { version, roles: ["inference"], models: [] }, seq, 0),
    });
  const rowSays = (version: string) =>
    eventually(async () => {
      const rows = await net.ask<PeerInfo[]>({ type: "peers" });
      return rows[0]?.version === version || undefined;
    }, `the hello stating ${version} taken`);
  const stop = async () => {
    await peer.close();
    await system.shutdown();
  };
  return { metrics, say, rowSays, stop };
}

Deno.test("a hello with a hostile version is refused, and /metrics stays valid with no trace of it", async () => {
  const { metrics, say, rowSays, stop } = await nodeWithPeer();
  try {
    // The hostile one first, with the higher seq: taken, it would make the honest one below
    // stale (a later hello replaces an earlier one by seq) and the row would never say 0.1.0.
    await say(HOSTILE, 5);
    await say("0.1.0", 2);
    await rowSays("0.1.0");
    const page = await metrics.render();
    const series = parsePrometheusText(page);
    // deno-lint-ignore no-control-regex -- the controls a hostile peer sends
    assert.doesNotMatch(page, /[\r\x1b\u2028\u202e]/u);
    assert.ok(!page.includes('v\\"} 1'), "no part of the hostile version is served");
    const versions = series.filter((s) => s.name === "veriflow_peer_versions");
    assert.deepEqual(versions.map((s) => [s.labels.version, s.value]), [["0.1.0", 1]]);
  } finally {
    await stop();
  }
});

Deno.test("a peer stating another version in each hello keeps one veriflow_peer_info and one veriflow_peer_versions series", async () => {
  const { metrics, say, rowSays, stop } = await nodeWithPeer();
  try {
    const infoSets = new Set<string>();
    const versionSets = new Set<string>();
    // Within the hello pace's burst: each one is taken at once.
    for (let i = 0; i < HELLO_BURST; i++) {
      await say(`0.1.${i}`, i + 1);
      await rowSays(`0.1.${i}`);
      for (const s of parsePrometheusText(await metrics.render())) {
        if (s.name === "veriflow_peer_info") infoSets.add(JSON.stringify(s.labels));
        if (s.name === "veriflow_peer_versions") versionSets.add(JSON.stringify(s.labels));
      }
    }
    assert.equal(infoSets.size, 1, [...infoSets].join("\n"));
    // The count by version is of the connection's first hello, for its whole life: each new
    // version it states is not a new series (review s77 vstr F1: 20 in 10 s).
    assert.deepEqual([...versionSets], [JSON.stringify({ version: "0.1.0" })]);
    const now = parsePrometheusText(await metrics.render())
      .filter((s) => s.name === "veriflow_peer_versions");
    assert.deepEqual(now.map((s) => [s.labels.version, s.value]), [["0.1.0", 1]]);
  } finally {
    await stop();
  }
});
