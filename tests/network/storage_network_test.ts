/**
 * Storage across peers: files placed, read and repaired over peer connections, an audit round over
 * the wire, and jobs routed to the storage holders of their input (data locality).
 */
import assert from "node:assert/strict";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import {
  chunksToRepair,
  HolderRepair,
  type HolderRepairPass,
} from "../../storage/holder_repair.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { blocksOf, fullMesh, holds, startNode, type TestNode } from "./_storage_mesh.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL, ListModelsMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import { DEFAULT_REPLICAS, type ReplicatedStore } from "../../storage/replicated_store.ts";

// ---- storage network ------------------------------------------------------------------------------
// Storage across peers, in one process: five nodes (a StorageActor and a NetworkActor each, in
// their own actor system) joined over in-memory pairs. A file put through one node lands on r
// holders chosen by rendezvous hashing over every node; another node reads it; when a holder
// leaves, the best-ranked surviving holder of each of its chunks restores r copies, and the file
// still reads back after its first holder is gone too.

Deno.test("storage across peers: a put lands on r holders, another node reads it, a departed holder's chunks are repaired to r copies", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-storage-net-" });
  const lines: string[] = [];
  const nodes: TestNode[] = [];
  try {
    for (const name of ["a", "b", "c", "d", "e"]) nodes.push(await startNode(root, name, lines));
    await fullMesh(nodes);
    const [a, , , d] = nodes;
    const bytes = pseudoRandomBytes(5 * 64 * 1024 + 123, 7);
    const handle = await a.storage.ask<PutHandle>({
      type: "put",
      source: streamOf(bytes),
      name: "five-chunks.bin",
    });
    const { cid } = await handle.done;
    const blocks = await blocksOf(a, cid);
    assert.ok(blocks.length >= 2, "a manifest and at least one chunk");
    const everyone = nodes.map((n) => ({ id: n.id }));
    // Each block is on exactly its top-3 holders (rendezvous over all five nodes), once the
    // writes beyond the quorum have landed.
    for (const block of blocks) {
      const holders = rankPeers(block, everyone).slice(0, 3).map((p) => p.id);
      await eventually(async () => {
        for (const n of nodes) if (holders.includes(n.id) && !(await holds(n, block))) return;
        return true;
      }, `the holders of ${block}`);
    }
    // Another node reads it back, byte for byte.
    const read = await d.storage.ask<ReadableStream<Uint8Array>>({ type: "get", cid });
    assert.deepEqual(await collect(unwrapReply(read)), bytes);

    // The first holder of the manifest leaves (its actors stop: its connections close).
    const first = nodes.find((n) => n.id === rankPeers(cid, everyone)[0].id)!;
    const rest = nodes.filter((n) => n !== first);
    const survivors = rest.map((n) => ({ id: n.id }));
    // Which surviving node is to repair what (computed from the peer sets alone).
    const expectedRepairers = new Set<string>();
    for (const n of rest) {
      const held: string[] = [];
      for (const block of blocks) if (await holds(n, block)) held.push(block);
      if (chunksToRepair(held, everyone, survivors, n.id, 3).length > 0) {
        expectedRepairers.add(n.id);
      }
    }
    await first.system.shutdown();
    // Every block is back on its 3 holders among the four left.
    for (const block of blocks) {
      const holders = rankPeers(block, survivors).slice(0, 3).map((p) => p.id);
      await eventually(async () => {
        for (const n of rest) if (holders.includes(n.id) && !(await holds(n, block))) return;
        return true;
      }, `r copies of ${block} after a holder left`);
    }
    for (const n of rest) await n.actor.repairIdle();
    const repairers = lines.filter((l) => l.includes("holder(s) left; repaired"));
    assert.ok(repairers.length >= 1, lines.join("\n"));
    assert.ok(expectedRepairers.size >= 1);
    // And it still reads back through a node that did not put it.
    const reader = rest.find((n) => n !== a)!;
    const again = await reader.storage.ask<ReadableStream<Uint8Array>>({ type: "get", cid });
    assert.deepEqual(await collect(unwrapReply(again)), bytes);
  } finally {
    for (const n of nodes) await n.system.shutdown().catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("chunksToRepair: only chunks a departed peer held, each by its best surviving holder", () => {
  const peers = ["p1", "p2", "p3", "p4", "p5"].map((id) => ({ id }));
  // 60 distinct CIDs: enough that every peer ranks first among survivors for some.
  const sample = Array.from({ length: 60 }, (_, i) => cidOf(new Uint8Array([i])));
  const departed = "p3";
  const after = peers.filter((p) => p.id !== departed);
  const r = 3;
  const union = new Set<string>();
  for (const self of after) {
    for (const cid of chunksToRepair(sample, peers, after, self.id, r)) {
      assert.ok(!union.has(cid), `${cid} repaired by two nodes`);
      union.add(cid);
    }
  }
  for (const cid of sample) {
    const held = rankPeers(cid, peers).slice(0, r).some((p) => p.id === departed);
    assert.equal(union.has(cid), held, cid);
  }
  // Nobody left: nothing to do.
  assert.deepEqual(chunksToRepair(sample, peers, peers, "p1", r), []);
});

Deno.test("a holder-repair pass over a large store ranks it in slices and repairs exactly the chunks chunksToRepair picks", async () => {
  const before = ["p1", "p2", "p3", "p4", "p5"].map((id) => ({ id }));
  const after = before.filter((p) => p.id !== "p4");
  const held = Array.from(
    { length: 1_300 },
    (_, i) => cidOf(new Uint8Array([i & 0xff, i >> 8, 7])),
  );
  const asked: string[][] = [];
  const store = {
    peers: after,
    replicas: 3,
    repair: (cids: string[]) => {
      asked.push([...cids]);
      return Promise.resolve({ checked: cids.length, repaired: 0, lost: [], failedChecks: 0 });
    },
  } as unknown as ReplicatedStore;
  const passes: HolderRepairPass[] = [];
  const repair = new HolderRepair({
    selfId: "p2",
    held: async function* () {
      yield* held;
    },
    onPass: (pass) => passes.push(pass),
  });
  await repair.peersChanged(store, before);
  // Since stop 45 also the chunks a holder may have missed the write of: the departed peer ranked
  // just past the holders, or "p2" survives below a better-ranked holder (it asks that one first).
  const guarded = (cid: string) => {
    const ranked = rankPeers(cid, before);
    const survivors = ranked.slice(0, 3).filter((p) => p.id !== "p4");
    return (survivors.length < 3 || ranked[3].id === "p4") && survivors.some((p) => p.id === "p2");
  };
  assert.deepEqual(asked, [
    held.filter((c) => chunksToRepair([c], before, after, "p2", 3).length > 0 || guarded(c)),
  ]);
  assert.ok(asked[0].length > 0);
  assert.deepEqual(passes.map((p) => p.departed), [["p4"]]);
  // Nobody left: no pass.
  await repair.peersChanged({ ...store, peers: before } as unknown as ReplicatedStore, before);
  assert.equal(repair.passes, 1);
});

// ---- storage audit network ------------------------------------------------------------------------
// An audit round across real peer connections: four storage nodes joined over in-memory pairs (the
// `Connection` protocol, the NetworkActor's storage service), one of which answers every possession
// challenge "I do not hold it" while still taking writes. The owner's round asks each holder of its
// file over the wire, fetches its reference copies from the other holders, blames that one holder
// alone, and writes the blocks it failed on again.

/** A holder that takes every write but answers every possession challenge with "not held". */
class Forgetful extends StorageActor {
  override receive(message: StorageMessage, ctx?: Parameters<StorageActor["receive"]>[1]) {
    if (message.type === "prove") {
      const none: StorageReply<null[]> = { ok: true, value: message.cids.map(() => null) };
      return Promise.resolve(none);
    }
    return super.receive(message, ctx);
  }
}

Deno.test("an audit round over peer connections blames the one holder that lost what it was given, and repairs it", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-audit-net-" });
  const lines: string[] = [];
  const nodes: TestNode[] = [];
  try {
    // Fixed keys: placement (rendezvous over keys and block CIDs) is then the same every run.
    // With random keys the forgetful node held none of the file's three blocks about once in
    // 64 runs ((1/4)^3), and the test failed before it audited anything.
    const key = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));
    nodes.push(await startNode(root, "owner", lines, undefined, key(1)));
    nodes.push(await startNode(root, "liar", lines, (options) => new Forgetful(options), key(2)));
    nodes.push(await startNode(root, "b", lines, undefined, key(3)));
    nodes.push(await startNode(root, "c", lines, undefined, key(4)));
    await fullMesh(nodes);
    const [owner, liar] = nodes;
    const handle = await owner.storage.ask<PutHandle>({
      type: "put",
      source: streamOf(pseudoRandomBytes(6 * 64 * 1024, 11)),
      name: "audited.bin",
    });
    const { cid } = await handle.done;
    // As the store and the placement name them (a root's key is its raw CID).
    const blocks = (await blocksOf(owner, cid)).map(storageKey);
    const everyone = nodes.map((n) => ({ id: n.id }));
    const liarHolds = blocks.filter((b) =>
      rankPeers(b, everyone).slice(0, 3).some((p) => p.id === liar.id)
    );
    assert.ok(liarHolds.length > 0, "the forgetful node holds some of the file");
    // Every copy the put gave (beyond its write quorum too) has landed: each was given.
    for (const block of blocks) {
      const holders = rankPeers(block, everyone).slice(0, 3).map((p) => p.id);
      await eventually(async () => {
        for (const n of nodes) if (holders.includes(n.id) && !(await holds(n, block))) return;
        return true;
      }, `the holders of ${block}`);
    }

    const report = await unwrapReply<AuditRoundHandle>(
      await owner.storage.ask({ type: "audit_round" }),
    ).done;
    assert.equal(report.files, 1);
    assert.equal(report.errors, 0, lines.join("\n"));
    const holders = new Set(blocks.flatMap((b) => rankPeers(b, everyone).slice(0, 3)))
      .size - 1; // the owner is one of them, and never audits itself
    // Each holder the owner has a record of giving a block to (its record of a write lands
    // when the write's answer does, a moment after the holder has the block).
    assert.ok(report.holders >= 2 && report.holders <= holders, `${report.holders} audited`);
    assert.equal(report.failedHolders, 1, "only the forgetful holder fails");
    assert.ok(report.failedChunks.length > 0);
    assert.ok(report.failedChunks.every((c) => liarHolds.includes(c)));
    assert.ok(lines.some((l) => /owner: storage: audited \d+ holder\(s\).*1 failed/.test(l)));
  } finally {
    for (const n of nodes) await n.system.shutdown().catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});

// ---- input locality -------------------------------------------------------------------------------
// Data locality on a router: a job that names an input by CID (`protocols/job_input.ts`) goes to
// one of that CID's storage holders — the peers the router's storage would place its chunk on
// (rendezvous over its storage peers) — before an equally idle worker that would have to fetch it;
// a job without an input keeps the order the workers connected in.

const MODEL = { cid: "m", name: "m", kind: "text" as const };

/** A worker that also stores joins the router, lists the model and says it is idle. */
async function joinStoringWorker(network: ActorRef<NetworkMessage>, identity: Identity) {
  const [near, far] = memoryDuplexPair();
  const [, workerSide] = await Promise.all([
    network.ask<Connection>({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, {
      identity,
      protocols: [INFERENCE_PROTOCOL, PEER_PROTOCOL, STORAGE_PROTOCOL],
    }),
  ]);
  workerSide.handle(ListModelsMessage, () => ({ models: [MODEL] }));
  const body: PeerHelloBody = {
    version: "1",
    roles: ["inference", "storage"],
    models: ["m"],
    load: { running: 0, queued: 0, slots: 4, queueLimit: 0 },
  };
  await workerSide.notify(PeerHelloMessage, {
    hello: signPeerHello(identity, body, 1, Date.now()),
  });
  return workerSide;
}

/**
 * Four idle workers that store join a router (storing itself or not); a job naming an input goes
 * to a holder of it, one without goes to the first worker.
 */
async function routesToHolder(routerStores: boolean): Promise<void> {
  const system = new ActorSystem({ name: "input-locality" });
  try {
    // The router stores too (so it speaks the storage protocol with its peers); no StorageActor
    // runs under that name here, which the router's choice does not need.
    const router = Identity.generate();
    const network = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () =>
        new NetworkActor({ identity: router, services: { storage: "router/storage" } }),
    });
    const workers = Array.from({ length: DEFAULT_REPLICAS + 1 }, () => Identity.generate());
    const keys = workers.map((w) => toHex(w.publicKey));
    const sides = [];
    for (const worker of workers) sides.push(await joinStoringWorker(network, worker));
    await eventually(async () => {
      const rows = await network.ask<PeerInfo[]>({ type: "peers" });
      return rows.length === workers.length && rows.every((r) => r.models.length > 0);
    }, "every worker listed with its model");
    // An input whose holders (the first r by rendezvous) leave out the first worker to connect,
    // the one a job without an input goes to.
    let input = "";
    let holders: string[] = [];
    for (
      let i = 0;
      holders.length === 0 || holders.includes(keys[0]) || !keys.some((k) => holders.includes(k));
      i++
    ) {
      input = cidOf(new TextEncoder().encode(`stored text ${i}`));
      const placed = [...keys, ...(routerStores ? [toHex(router.publicKey)] : [])]
        .map((id) => ({ id }));
      holders = rankPeers(input, placed).slice(0, DEFAULT_REPLICAS).map((p) => p.id);
    }
    const plain = await network.ask<Connection | undefined>({ type: "worker", model: "m" });
    assert.equal(toHex(plain!.peerKey!), keys[0], "without an input: the first idle worker");
    const near = await network.ask<Connection | undefined>({ type: "worker", model: "m", input });
    assert.ok(
      holders.includes(toHex(near!.peerKey!)),
      `with input ${input}: a holder of it (${holders.join(", ")}), not ${toHex(near!.peerKey!)}`,
    );
    await Promise.all(sides.map((side) => side.close()));
  } finally {
    await system.shutdown();
  }
}

Deno.test("a job naming an input CID goes to a storage holder of it, where a job without one goes to the first idle worker: on a router that stores", async () => {
  await routesToHolder(true);
});

Deno.test("a job naming an input CID goes to a storage holder of it: on a router that stores nothing, by its peers' hellos", async () => {
  await routesToHolder(false);
});
