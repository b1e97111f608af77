/**
 * When a read's `chunk_not_found` is a storage peer's failure (`storage/_replica_reads.ts`), and so
 * counted in `veriflow_storage_replica_failures_total{reason="missing"}` and logged naming the peer.
 *
 * Review s72 (docs F2): every `chunk_not_found` was reported, this node's own store included, so
 * any client drove the counter and the log lines with GETs of CIDs nobody stores (two per 404 on a
 * node with one peer, one of them naming the node itself). Now a miss is a peer's failure only
 * where that peer was expected to hold the chunk: the store's record says it was given it, or it
 * is one of the chunk's holders and another replica served the chunk (so it exists and this holder
 * lacks it). This node's own store (`selfId`) is never reported missing.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { type ReplicaFailure, ReplicatedStore } from "../../storage/replicated_store.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** `op:peer index:reason` of each failure reported, the index into `peers`. */
function described(failures: ReplicaFailure[], peers: MemoryPeer[]): string[] {
  return failures.map((f) => `${f.op}:${peers.findIndex((p) => p.id === f.peerId)}:${f.reason}`);
}

/** A raw CID no peer was ever given: what a client's typo or a probe asks for. */
function unstoredCid(seed: number): string {
  return cidOf(pseudoRandomBytes(64, seed));
}

Deno.test("a read of a CID no holder stores reports no replica failure: a client's 404 is no peer's fault", async () => {
  const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer()];
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore(peers, {
    replicas: 2,
    onReplicaFailure: (f) => void failures.push(f),
  });
  for (let seed = 1; seed <= 3; seed++) {
    await assert.rejects(store.get(unstoredCid(seed)), ChunkNotFoundError);
  }
  await store.flush();
  assert.deepEqual(described(failures, peers), []);
});

Deno.test("a holder the store gave a chunk that has lost it is reported missing, even when no replica has it", async () => {
  const peers = [new MemoryPeer(), new MemoryPeer()];
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore(peers, {
    replicas: 2,
    writeQuorum: 2,
    readRepair: false,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const cid = await store.put(new TextEncoder().encode("given to both, lost by both"));
  for (const peer of peers) peer.chunks.delete(cid);
  await assert.rejects(store.get(cid), ChunkNotFoundError);
  await store.flush();
  assert.deepEqual(described(failures, peers).sort(), ["get:0:missing", "get:1:missing"]);
});

Deno.test("a holder with no record of the chunk is reported missing once another replica served it", async () => {
  const peers = [new MemoryPeer(), new MemoryPeer()];
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore(peers, {
    replicas: 2,
    readRepair: false,
    onReplicaFailure: (f) => void failures.push(f),
  });
  // Placed past the store (no record that either holder was given it), on one holder only.
  const bytes = new TextEncoder().encode("held by one of its two holders");
  const cid = cidOf(bytes);
  peers[1].chunks.set(cid, bytes);
  assert.deepEqual(await store.get(cid), bytes);
  await store.flush();
  assert.deepEqual(described(failures, peers), ["get:0:missing"]);
});

Deno.test("this node's own store (selfId) is never reported missing; a peer that lost the chunk still is", async () => {
  const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer()];
  const self = peers[0];
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore(peers, {
    replicas: 3,
    writeQuorum: 3,
    readParallelism: 3,
    readRepair: false,
    selfId: self.id,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const cid = await store.put(new TextEncoder().encode("held by all three"));
  self.chunks.delete(cid);
  peers[1].chunks.delete(cid);
  assert.ok(await store.get(cid), "served by the third holder");
  await assert.rejects(store.get(unstoredCid(9)), ChunkNotFoundError);
  await store.flush();
  assert.deepEqual(described(failures, peers), ["get:1:missing"]);
});

Deno.test("a node holding its own copy counts no missing replica and logs no line for GETs of CIDs nobody stores", async () => {
  const system = new ActorSystem({ name: "review-s72-docs-f2" });
  const dir = await Deno.makeTempDir();
  const identity = Identity.generate();
  const lines: string[] = [];
  try {
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: 1024,
          identity,
          holdHere: true,
          peers: [new MemoryPeer()],
          replication: { replicas: 2, writeQuorum: 1 },
          log: (line) => lines.push(line),
        }),
    });
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: identity.publicKey,
      prover: () => undefined,
      validator: () => undefined,
      network: () => undefined,
      storage: () => ref,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    for (let seed = 1; seed <= 3; seed++) {
      const cid = unstoredCid(seed);
      await assert.rejects(
        async () => unwrapReply(await ref.ask({ type: "get_bytes", cid })),
        (error: unknown) => (error as { code?: string }).code === "chunk_not_found",
      );
    }
    const series = parsePrometheusText(await metrics.render())
      .filter((s) => s.name === "veriflow_storage_replica_failures_total");
    assert.equal(series.find((s) => s.labels.reason === "missing")?.value, 0);
    assert.deepEqual(lines.filter((line) => line.includes("storage: peer")), []);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
