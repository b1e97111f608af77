/**
 * Address groups where a router routes (review s76 routegaps R2, R3): its guess of a job input's
 * holders ranks its storing peers as storage places copies, spread over their placement groups
 * (`network/_worker_routing.ts`, `storage/rendezvous.ts`), so keys of one host cannot claim the
 * locality of most inputs; and a TCP peer this node dialled is in the group of the address it
 * reached (`peer_up`'s `dialled`, `network/_peer_transports.ts`), for placement and for the
 * router's record of its workers, as a peer that dialled in is. A real NetworkActor, its
 * connections in memory (their groups given as a TCP listener or dial would give them), and one
 * real TCP dial over loopback.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { addressGroup } from "../../network/connection_limits.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { workerRecordOf } from "../../network/worker_record.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, ListModelsMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import type { ConnectionStoragePeer } from "../../storage/connection_storage_peer.ts";
import { type RankedPeer, rankPeers } from "../../storage/rendezvous.ts";
import { DEFAULT_REPLICAS } from "../../storage/replicated_store.ts";
import { eventually } from "../_helpers/wait.ts";

const MODEL = { cid: "m", name: "m", kind: "text" as const };
/** One host's address (TEST-NET-3), whose keys join first. */
const ONE_HOST = "203.0.113.66";
/** Hosts of one key each (TEST-NET-2). */
const HONEST_HOSTS = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];

/** How a peer's connection reached the router: opened by the peer from `host`, or dialled. */
type Way = { host: string } | { dialled: string };

/** A router's NetworkActor (storing, or not), and how workers that store join it. */
async function router(name: string, stores: boolean) {
  const system = new ActorSystem({ name });
  const identity = Identity.generate();
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () =>
      new NetworkActor({
        identity,
        services: stores ? { storage: "router/storage" } : {},
      }),
  });
  const opened: Connection[] = [];
  /** A worker that stores joins, idle, listing the model; its hex key. */
  const join = async (way: Way, identityOf = Identity.generate()) => {
    const [a, b] = memoryDuplexPair();
    // A router that stores speaks storage with its storing peers; one that does not, does not.
    const protocols = [INFERENCE_PROTOCOL, PEER_PROTOCOL, ...(stores ? [STORAGE_PROTOCOL] : [])];
    const [near, far] = await Promise.all([
      Connection.open(a, { identity, protocols }),
      Connection.open(b, { identity: identityOf, protocols }),
    ]);
    opened.push(near, far);
    far.handle(ListModelsMessage, () => ({ models: [MODEL] }));
    // What the actor's transports do for a connection they open (`PeerTransports.open`).
    near.handle(PeerHelloMessage, async ({ hello }) => {
      await network.tell({ type: "peer_hello", connection: near, hello });
    });
    const address = "host" in way ? way.host : way.dialled;
    await network.tell({
      type: "peer_up",
      connection: near,
      address,
      outbound: !("host" in way),
      ...way,
    });
    const body: PeerHelloBody = {
      version: "1",
      roles: ["inference", "storage"],
      models: ["m"],
      load: { running: 0, queued: 0, slots: 4, queueLimit: 0 },
    };
    await far.notify(PeerHelloMessage, { hello: signPeerHello(identityOf, body, 1, Date.now()) });
    return toHex(identityOf.publicKey);
  };
  /** Once every joined worker listed its model and said its load. */
  const listed = (count: number) =>
    eventually(async () => {
      const rows = await network.ask<PeerInfo[]>({ type: "peers" });
      return rows.length === count && rows.every((r) => r.models.length > 0 && r.load) ||
        undefined;
    }, "every worker listed");
  const pick = async (input?: string, exclude?: string[]) => {
    const c = await network.ask<Connection | undefined>({
      type: "worker",
      model: "m",
      input,
      exclude,
    });
    return c === undefined ? undefined : toHex(c.peerKey!);
  };
  const close = async () => {
    await Promise.all(opened.map((c) => c.close()));
    await system.shutdown();
  };
  return { system, self: toHex(identity.publicKey), network, join, listed, pick, close };
}

/**
 * Four keys of one host join a router first, then one key of each honest host; a job naming an
 * input whose holders by key alone would be that host's goes to a holder as storage places it.
 */
async function holderByGroups(stores: boolean): Promise<void> {
  const r = await router(`input-holder-groups-${stores}`, stores);
  try {
    const keys: string[] = [];
    const groups = new Map<string, string>();
    for (let i = 0; i < 4; i++) {
      const key = await r.join({ host: ONE_HOST });
      keys.push(key);
      groups.set(key, ONE_HOST);
    }
    for (const host of HONEST_HOSTS) {
      const key = await r.join({ host });
      keys.push(key);
      groups.set(key, host);
    }
    await r.listed(keys.length);
    const self: RankedPeer[] = stores ? [{ id: r.self }] : [];
    const byKey = (cid: string) =>
      rankPeers(storageKey(cid), [...self, ...keys.map((id) => ({ id }))])
        .slice(0, DEFAULT_REPLICAS).map((p) => p.id);
    // As storage places (`addressBlock` of an IPv4 group is the address; this node in none).
    const placed = (cid: string) =>
      rankPeers(storageKey(cid), [...self, ...keys.map((id) => ({ id, group: groups.get(id) }))])
        .slice(0, DEFAULT_REPLICAS).map((p) => p.id);
    // All candidates are alike but for holding the input, so the first to join that holds it is
    // picked: an input where that is one of the host's keys ranked by key, and not as placed.
    const firstHolder = (holders: string[]) => keys.find((k) => holders.includes(k));
    let input = "";
    for (let i = 0; input === ""; i++) {
      const cid = cidOf(new TextEncoder().encode(`an input ${i}`));
      const wrong = firstHolder(byKey(cid));
      if (wrong !== undefined && !placed(cid).includes(wrong)) input = cid;
    }
    const holders = placed(input);
    assert.ok(holders.filter((k) => groups.get(k) === ONE_HOST).length <= 1);
    assert.equal(await r.pick(input), firstHolder(holders), `holders ${holders.join(", ")}`);
  } finally {
    await r.close();
  }
}

Deno.test("routegaps R2: a job's input holders are ranked over address groups as storage places them: one host's keys that joined first do not take a job for an input its honest holders hold (a router that stores nothing, by its peers' hellos)", async () => {
  await holderByGroups(false);
});

Deno.test("routegaps R2: a job's input holders are ranked over address groups as storage places them (a router that stores, over its storage holders)", async () => {
  await holderByGroups(true);
});

Deno.test("routegaps R3: a TCP peer this node dialled is placed in the group of the address it reached (an IPv6 one by its /48); one reached over loopback in none", async () => {
  const r = await router("dialled-placement", true);
  try {
    const v4 = await r.join({ dialled: "192.0.2.50" });
    const v6 = await r.join({ dialled: addressGroup("2001:db8:5:7::1") });
    const local = await r.join({ dialled: addressGroup("127.0.0.1") });
    const holders = await r.network.ask<ConnectionStoragePeer[]>({ type: "storage_peers" });
    const groupOf = new Map(holders.map((h) => [h.id, h.group]));
    assert.equal(groupOf.get(v4), "192.0.2.50");
    assert.equal(groupOf.get(v6), "2001:db8:5::/48");
    assert.equal(groupOf.has(local), true);
    assert.equal(groupOf.get(local), undefined);
  } finally {
    await r.close();
  }
});

Deno.test("routegaps R3: a failure of a worker this node dialled counts against its address group: a fresh key that dialled in from that host is picked after a clean stranger", async () => {
  const r = await router("dialled-record", false);
  try {
    const dialled = await r.join({ dialled: "192.0.2.50" });
    const sameHost = await r.join({ host: "192.0.2.50" });
    const clean = await r.join({ host: "198.51.100.9" });
    await r.listed(3);
    // A pick notes each candidate's group in the record; all alike, the first to join wins.
    assert.equal(await r.pick(), dialled);
    workerRecordOf(r.system).failed(dialled); // it dropped that job
    assert.equal(workerRecordOf(r.system).of(sameHost).suspect, true);
    assert.equal(await r.pick(undefined, [dialled]), clean);
  } finally {
    await r.close();
  }
});

Deno.test("routegaps R3: a real TCP dial over loopback: the peer is up and, on this machine, in no placement group (a one-host cluster is placed by key, as before)", async () => {
  const peerSystem = new ActorSystem({ name: "dial-peer" });
  const system = new ActorSystem({ name: "dial-router" });
  try {
    const peer = await peerSystem.spawn<NetworkMessage>({
      name: "p/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: { storage: "p/storage" },
          listen: { hostname: "127.0.0.1", port: 0 },
        }),
    });
    const { port } = await peer.ask<Deno.NetAddr>({ type: "listening" });
    const network = await system.spawn<NetworkMessage>({
      name: "d/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: { storage: "d/storage" },
          peers: [{ hostname: "127.0.0.1", port }],
        }),
    });
    const [holder] = await eventually(async () => {
      const holders = await network.ask<ConnectionStoragePeer[]>({ type: "storage_peers" });
      return holders.length > 0 ? holders : undefined;
    }, "the dialled peer is up");
    assert.equal(holder.group, undefined);
  } finally {
    await system.shutdown();
    await peerSystem.shutdown();
  }
});
