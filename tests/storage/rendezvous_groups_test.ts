/**
 * Placement spread over address groups (`storage/rendezvous.ts`): ranked by key alone, 32 fresh
 * keys from one host beside 5 honest peers held all 3 replicas of 64 % of chunks (review s76
 * F4). With each peer's `group`, a chunk's first r holders are in r distinct groups while there
 * are r groups; with fewer, every group holds one and the rest come in rank order; and nodes
 * that see the same peers grouped alike (whatever the groups are called) compute the same holders.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { type RankedPeer, rankPeers } from "../../storage/rendezvous.ts";

const R = 3;
const CHUNKS = 2_000;
/** One host's keys: the per-address bound on connections (`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`). */
const SYBIL_KEYS = 32;

const encoder = new TextEncoder();
const cids = Array.from({ length: CHUNKS }, (_, i) => cidOf(encoder.encode(`chunk ${i}`)));
/** Fixed ids (hex-like, as a key's), so every run ranks the same. */
const idOf = (name: string) => cidOf(encoder.encode(name)).slice(-32);

/** Groups that hold two or more of `holders`. */
function sharedGroups(holders: readonly RankedPeer[]): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const { group } of holders) {
    if (group === undefined) continue;
    if (seen.has(group)) twice.push(group);
    seen.add(group);
  }
  return twice;
}

Deno.test("5 honest hosts and 32 keys of one host: no chunk has two replicas in one group, and every chunk has at most one on that host", () => {
  const honest = Array.from({ length: 5 }, (_, i) => ({
    id: idOf(`honest ${i}`),
    group: `198.51.100.${i + 1}`,
  }));
  const sybil = Array.from({ length: SYBIL_KEYS }, (_, i) => ({
    id: idOf(`sybil ${i}`),
    group: "203.0.113.66",
  }));
  // This node itself: no group (one of its own).
  const peers: RankedPeer[] = [{ id: idOf("self") }, ...honest, ...sybil];
  let onSybil = 0;
  for (const cid of cids) {
    const holders = rankPeers(cid, peers).slice(0, R);
    assert.equal(holders.length, R);
    assert.deepEqual(sharedGroups(holders), [], `chunk ${cid}`);
    onSybil += holders.filter((p) => p.group === "203.0.113.66").length;
  }
  // The host still takes its share of copies (one per chunk at most), just never all of them.
  assert.ok(onSybil > 0 && onSybil <= CHUNKS, `${onSybil} copies on the one host`);
});

Deno.test("fewer groups than r (a cluster behind one address, or two): every group holds a copy and the rest come in rank order, so r holders are still found", () => {
  const byKey = (cid: string, peers: readonly RankedPeer[]) =>
    rankPeers(cid, peers.map(({ id }) => ({ id }))).map((p) => p.id);
  // One group: exactly the ranking by key.
  const oneHost = Array.from({ length: 5 }, (_, i) => ({ id: idOf(`node ${i}`), group: "lan" }));
  for (const cid of cids.slice(0, 200)) {
    const ranked = rankPeers(cid, oneHost);
    assert.deepEqual(ranked.map((p) => p.id), byKey(cid, oneHost));
    assert.equal(new Set(ranked.slice(0, R).map((p) => p.id)).size, R);
  }
  // Two groups: each holds one of the first r; the third is the best-ranked of the rest.
  const twoHosts = [
    ...Array.from({ length: 4 }, (_, i) => ({ id: idOf(`a ${i}`), group: "192.0.2.1" })),
    { id: idOf("b"), group: "192.0.2.2" },
  ];
  for (const cid of cids.slice(0, 200)) {
    const ranked = rankPeers(cid, twoHosts);
    const holders = ranked.slice(0, R);
    assert.deepEqual(new Set(holders.map((p) => p.group)), new Set(["192.0.2.1", "192.0.2.2"]));
    // First the best of each host, in rank order; then the rest, in rank order.
    const order = byKey(cid, twoHosts);
    const onlyB = twoHosts[4].id;
    const bestOfA = order.find((id) => id !== onlyB)!;
    const firsts = order.filter((id) => id === onlyB || id === bestOfA);
    assert.deepEqual(ranked.slice(0, 2).map((p) => p.id), firsts);
    const rest = order.filter((id) => !firsts.includes(id));
    assert.deepEqual(ranked.slice(2).map((p) => p.id), rest, "the rest in rank order");
  }
});

Deno.test("two nodes that see the same peers grouped alike compute the same holders, whatever each calls the groups and in whatever order it lists the peers", () => {
  // Node X sees three hosts by their LAN addresses; node Y by their public ones, through a NAT
  // each: the same partition of the peers, other names.
  const hosts = [["10.0.0.1", "198.51.100.1"], ["10.0.0.2", "198.51.100.2"], [
    "10.0.0.3",
    "198.51.100.3",
  ]];
  const ids = Array.from({ length: 9 }, (_, i) => idOf(`peer ${i}`));
  const viewX = ids.map((id, i) => ({ id, group: hosts[i % 3][0] }));
  const viewY = ids.map((id, i) => ({ id, group: hosts[i % 3][1] })).reverse();
  for (const cid of cids.slice(0, 500)) {
    const x = rankPeers(cid, viewX).slice(0, R);
    const y = rankPeers(cid, viewY).slice(0, R);
    assert.deepEqual(x.map((p) => p.id), y.map((p) => p.id), `chunk ${cid}`);
    assert.deepEqual(sharedGroups(x), [], "one copy per host");
  }
});
