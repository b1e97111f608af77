/**
 * The NetworkActor hands storage one holder per peer key, now with the address group the peer
 * connects from (review s76 F4: without it, 32 fresh keys from one host beside 5 honest storage
 * peers held all 3 replicas of 64 % of chunks). Placed over those holders and this node itself,
 * as the StorageActor places (`storage/rendezvous.ts`), no chunk has two replicas on one host.
 * IPv6 peers are grouped by /48, one site's allocation, and every peer whose address is not known
 * (a relayed swarm peer) is in one shared group: 32 keys from 32 /64s of one /48, or 32 relayed
 * keys, held all 3 replicas of 59 % of chunks when each /64, and each relayed key, was a group of
 * its own (review s76 vstore F1). A peer on this machine (`loopback`, an in-memory link) is in no
 * group, so a one-host cluster is still placed by key, the same on every node of it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { addressGroup } from "../../network/connection_limits.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import type { ConnectionStoragePeer } from "../../storage/connection_storage_peer.ts";
import { type RankedPeer, rankPeers } from "../../storage/rendezvous.ts";
import { DEFAULT_REPLICAS } from "../../storage/replicated_store.ts";

const encoder = new TextEncoder();
const cids = Array.from({ length: 1_000 }, (_, i) => cidOf(encoder.encode(`chunk ${i}`)));

/** A node's NetworkActor, and how a storage peer connects to it from `host`. */
async function node(system: ActorSystem) {
  const identity = Identity.generate();
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () => new NetworkActor({ identity, services: {} }),
  });
  const opened: Connection[] = [];
  /**
   * A storage peer's connection, taken as one it opened from `host` (an `addressGroup`;
   * undefined: an in-memory link), or, `relayed`, a swarm peer whose address is not known.
   */
  const connect = async (host: string | undefined, relayed = false) => {
    const [a, b] = memoryDuplexPair();
    const protocols = [STORAGE_PROTOCOL];
    const peer = Identity.generate();
    const [near, far] = await Promise.all([
      Connection.open(a, { identity, protocols }),
      Connection.open(b, { identity: peer, protocols }),
    ]);
    opened.push(near, far);
    await net.tell({
      type: "peer_up",
      connection: near,
      address: host ?? (relayed ? "swarm:relayed" : "mem"),
      outbound: false,
      host,
      ...(relayed ? { unaddressed: true } : {}),
    });
    return toHex(peer.publicKey);
  };
  const holders = () => net.ask<ConnectionStoragePeer[]>({ type: "storage_peers" });
  const close = () => Promise.all(opened.map((c) => c.close()));
  return { self: toHex(identity.publicKey), net, connect, holders, close };
}

Deno.test("through the NetworkActor's holders, 5 honest hosts and 32 keys of one host: no chunk has two replicas on one host", async () => {
  const system = new ActorSystem({ name: "placement-groups" });
  const n = await node(system);
  try {
    for (let i = 1; i <= 5; i++) await n.connect(`198.51.100.${i}`);
    const oneHost = new Set<string>();
    for (let i = 0; i < 32; i++) oneHost.add(await n.connect("203.0.113.66"));
    const holders = await n.holders();
    assert.equal(holders.length, 37);
    // As the StorageActor places: this node first (no group), then its peers.
    const peers: RankedPeer[] = [{ id: n.self }, ...holders];
    for (const cid of cids) {
      const placed = rankPeers(cid, peers).slice(0, DEFAULT_REPLICAS);
      const onHost = placed.filter((p) => oneHost.has(p.id)).length;
      assert.ok(onHost <= 1, `chunk ${cid}: ${onHost} replicas on the one host`);
    }
  } finally {
    await n.close();
    await system.shutdown();
  }
});

/**
 * Chunks placed over `holders` and this node, as the StorageActor places, with more than one
 * replica among `attacker`'s keys.
 */
function overOne(self: string, holders: readonly RankedPeer[], attacker: ReadonlySet<string>) {
  const peers: RankedPeer[] = [{ id: self }, ...holders];
  return cids.filter((cid) =>
    rankPeers(cid, peers).slice(0, DEFAULT_REPLICAS).filter((p) => attacker.has(p.id)).length > 1
  ).length;
}

Deno.test("5 honest hosts and 32 keys from 32 /64s of one IPv6 /48: no chunk has two replicas on that /48", async () => {
  const system = new ActorSystem({ name: "placement-one-site" });
  const n = await node(system);
  try {
    for (let i = 1; i <= 5; i++) await n.connect(`198.51.100.${i}`);
    const oneSite = new Set<string>();
    for (let i = 0; i < 32; i++) {
      oneSite.add(await n.connect(addressGroup(`2001:db8:66:${i.toString(16)}::1`)));
    }
    const holders = await n.holders();
    assert.equal(holders.length, 37);
    assert.equal(overOne(n.self, holders, oneSite), 0);
  } finally {
    await n.close();
    await system.shutdown();
  }
});

Deno.test("5 honest hosts and 32 relayed keys (no address known): they share one group, no chunk has two replicas among them", async () => {
  const system = new ActorSystem({ name: "placement-relayed" });
  const n = await node(system);
  try {
    for (let i = 1; i <= 5; i++) await n.connect(`198.51.100.${i}`);
    const relayed = new Set<string>();
    for (let i = 0; i < 32; i++) relayed.add(await n.connect(undefined, true));
    const holders = await n.holders();
    assert.equal(holders.length, 37);
    assert.equal(overOne(n.self, holders, relayed), 0);
  } finally {
    await n.close();
    await system.shutdown();
  }
});

Deno.test("a peer on this machine (loopback, an in-memory link) is in no group: a one-host cluster is placed by key, r holders found", async () => {
  const system = new ActorSystem({ name: "placement-one-host" });
  const n = await node(system);
  try {
    for (let i = 0; i < 3; i++) await n.connect("loopback");
    await n.connect(undefined);
    await n.connect("192.0.2.9");
    const holders = await n.holders();
    assert.deepEqual(holders.map((h) => h.group).sort(), [
      "192.0.2.9",
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    const local = [{ id: n.self }, ...holders.filter((h) => h.group === undefined)];
    const byKey = (cid: string) => rankPeers(cid, local.map(({ id }) => ({ id })));
    for (const cid of cids.slice(0, 200)) {
      const placed = rankPeers(cid, local);
      assert.deepEqual(placed.map((p) => p.id), byKey(cid).map((p) => p.id));
      assert.equal(new Set(placed.slice(0, DEFAULT_REPLICAS).map((p) => p.id)).size, 3);
    }
  } finally {
    await n.close();
    await system.shutdown();
  }
});
