/**
 * What peers may place in a store: the cap on chunks held for other nodes and the disk space kept
 * free of them (`replicaQuotaBytes`, `replicaMinFreeBytes`), the node's own puts never counted
 * against either, and where the copy a full holder refuses goes.
 */
import * as assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ChunkPutOptions,
  ChunkStore,
  type ChunkStoreOptions,
  OBJECT_OVERHEAD_BYTES,
  PACK_OVERHEAD_BYTES,
  REPLICA_OVERHEAD_BYTES,
} from "../../storage/chunk_store.ts";
import type { ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { collect, pseudoRandomBytes, streamOf, tempFilesUnder } from "./_helpers.ts";
import { servedNode } from "./_tracked_peer.ts";

// ---- the replica cap and free space -------------------------------------------------------------
//
// What peers may place in a store: the cap on chunks held for other nodes and the disk space kept
// free of them (`replicaQuotaBytes`, `replicaMinFreeBytes`), and that the node's own puts are never
// counted against either.

const held = (...lengths: number[]) =>
  lengths.reduce((sum, length) => sum + length + REPLICA_OVERHEAD_BYTES, 0);

const refused = (e: ReplicaQuotaExceededError) => e.code === "replica_quota_exceeded";

Deno.test("replica cap: a peer's chunk past it is refused, nothing written; own puts still fit", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, {
    quotaBytes: 64_000,
    replicaQuotaBytes: held(6000, 6000),
    durable: false,
  });
  const a = pseudoRandomBytes(6000, 1);
  const b = pseudoRandomBytes(6000, 2);
  const c = pseudoRandomBytes(6000, 3);
  await store.put(a, { cid: cidOf(a), replica: true });
  await store.put(b, { cid: cidOf(b), replica: true });
  assert.equal((await store.stats()).replicaBytes, held(6000, 6000));
  await assert.rejects(store.put(c, { cid: cidOf(c), replica: true }), refused);
  assert.equal(await store.has(cidOf(c)), false);
  assert.equal(await store.isReplica(cidOf(c)), false);
  assert.equal((await tempFilesUnder(dir)).length, 0);
  // A peer sending a chunk it already placed here costs nothing and is not refused.
  await store.put(a, { cid: cidOf(a), replica: true });
  // The node's own puts are not what peers hold: they fit up to the store's quota.
  for (let seed = 10; seed < 14; seed++) await store.put(pseudoRandomBytes(6000, seed));
  const stats = await store.stats();
  assert.equal(stats.replicaBytes, held(6000, 6000));
  assert.equal(stats.replicaQuotaBytes, held(6000, 6000));
  assert.equal(stats.replicaCount, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("replica cap: concurrent chunks from peers never take it past the cap", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, {
    replicaQuotaBytes: held(1000, 1000, 1000),
    durable: false,
  });
  const chunks = Array.from({ length: 10 }, (_, i) => pseudoRandomBytes(1000, 100 + i));
  const results = await Promise.allSettled(
    chunks.map((bytes) => store.put(bytes, { cid: cidOf(bytes), replica: true })),
  );
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 3);
  for (const r of results) {
    if (r.status === "rejected") assert.ok(refused(r.reason));
  }
  assert.equal((await store.stats()).replicaBytes, held(1000, 1000, 1000));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("replica cap: what is held for peers is counted again after a reopen", async () => {
  const dir = await Deno.makeTempDir();
  const options = { replicaQuotaBytes: held(4000, 4000), durable: false };
  const first = await ChunkStore.open(dir, options);
  const a = pseudoRandomBytes(4000, 1);
  await first.put(a, { cid: cidOf(a), replica: true });
  await first.put(pseudoRandomBytes(9000, 2)); // the node's own, not counted
  const again = await ChunkStore.open(dir, options);
  assert.equal((await again.stats()).replicaBytes, held(4000));
  const b = pseudoRandomBytes(4000, 3);
  await again.put(b, { cid: cidOf(b), replica: true });
  const c = pseudoRandomBytes(10, 4);
  await assert.rejects(again.put(c, { cid: cidOf(c), replica: true }), refused);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("replica cap: a chunk of the node's own that a peer also places here is charged once", async () => {
  const dir = await Deno.makeTempDir();
  let now = 0;
  const store = await ChunkStore.open(dir, {
    replicaQuotaBytes: held(3000, 3000),
    durable: false,
    gcGraceMs: 1000,
    clock: () => now,
  });
  const own = pseudoRandomBytes(3000, 1);
  await store.put(own);
  now = 10_000; // past the grace period: the replica put writes a fresh copy of its own
  await store.put(own, { cid: cidOf(own), replica: true });
  assert.equal((await store.stats()).replicaBytes, held(3000));
  const other = pseudoRandomBytes(3000, 2);
  await store.put(other, { cid: cidOf(other), replica: true });
  assert.equal((await store.stats()).replicaBytes, held(3000, 3000));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("replica cap: a write that fails leaves nothing charged", async () => {
  const dir = await Deno.makeTempDir();
  let fail = true;
  const store = await ChunkStore.open(dir, {
    replicaQuotaBytes: held(2000),
    durable: false,
    faults: {
      beforeWrite() {
        if (fail) throw Object.assign(new Error("No space left on device"), { code: "ENOSPC" });
      },
    },
  });
  const a = pseudoRandomBytes(2000, 1);
  await assert.rejects(store.put(a, { cid: cidOf(a), replica: true }));
  assert.equal((await store.stats()).replicaBytes, 0);
  fail = false;
  await store.put(a, { cid: cidOf(a), replica: true }); // the room it had is still there
  assert.equal((await store.stats()).replicaBytes, held(2000));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("disk reserve: a peer's chunk that would leave less free space is refused; own puts are not", async () => {
  const dir = await Deno.makeTempDir();
  let free = 1_000_000;
  const store = await ChunkStore.open(dir, {
    replicaMinFreeBytes: 900_000,
    durable: false,
    faults: { freeBytes: () => free },
  });
  const a = pseudoRandomBytes(50_000, 1);
  await store.put(a, { cid: cidOf(a), replica: true });
  free -= 60_000; // what the write took, as the filesystem would report it
  const b = pseudoRandomBytes(50_000, 2);
  await assert.rejects(
    store.put(b, { cid: cidOf(b), replica: true }),
    (e: ReplicaQuotaExceededError) => refused(e) && /kept free/.test(e.message),
  );
  assert.equal(await store.has(cidOf(b)), false);
  await store.put(b); // the node's own put: the reserve is for it
  assert.ok(await store.has(cidOf(b)));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("over the wire: a full holder answers replica_quota_exceeded and the file goes to the others", async () => {
  const full = await servedNode({ replicaQuotaBytes: 0 });
  const others = [await servedNode(), await servedNode()];
  const chunk = pseudoRandomBytes(1000, 1);
  await assert.rejects(full.remote.putChunk(cidOf(chunk), chunk), refused);

  const replicated = new ReplicatedStore([full.remote, ...others.map((o) => o.remote)], {
    replicas: 2,
    writeQuorum: 2,
  });
  const files = new FileStore(replicated, { chunkSize: 4096 });
  const bytes = pseudoRandomBytes(40_000, 2);
  const { cid: id } = await files.put(streamOf(bytes));
  await replicated.flush();
  assert.equal((await full.store.stats()).objectCount, 0);
  for (const other of others) assert.ok((await other.store.stats()).replicaCount > 0);
  assert.deepEqual(await collect(await files.get(id)), bytes);
  for (const node of [full, ...others]) await node.shutdown();
});

Deno.test("repair hands a full holder's place to the next peer in rank order, as a put does", async () => {
  const dirs: string[] = [];
  const peer = async (options: ChunkStoreOptions) => {
    const dir = await Deno.makeTempDir();
    dirs.push(dir);
    const store = await ChunkStore.open(dir, { durable: false, ...options });
    return { store, peer: new LocalStoragePeer(store, Identity.generate().publicKey) };
  };
  const full = await peer({ replicaQuotaBytes: 0 });
  const others = [await peer({}), await peer({}), await peer({})];
  const replicated = new ReplicatedStore([full, ...others].map((p) => p.peer), {
    replicas: 2,
    writeQuorum: 2,
  });
  // A chunk the full node ranks among the two holders of.
  let bytes = pseudoRandomBytes(500, 0);
  for (let seed = 1; !replicated.holders(cidOf(bytes)).includes(full.peer); seed++) {
    bytes = pseudoRandomBytes(500, seed);
  }
  const cid = await replicated.put(bytes);
  await replicated.flush();
  const copies = [];
  for (const o of others) if (await o.store.has(cid)) copies.push(o);
  assert.equal(copies.length, 2, "the put gave the full holder's copy to the next peer");
  // The copy beyond the ranked holders is lost; repair restores two copies without the full node.
  const substitute = copies.find((o) => !replicated.holders(cid).includes(o.peer))!;
  await substitute.store.delete(cid);
  const report = await replicated.repair([cid]);
  assert.equal(report.failedChecks, 0, JSON.stringify(report));
  assert.equal(report.repaired, 1);
  let held = 0;
  for (const o of others) if (await o.store.has(cid)) held++;
  assert.equal(held, 2);
  assert.equal(await full.store.has(cid), false);
  for (const dir of dirs) await Deno.remove(dir, { recursive: true });
});

// ---- a full holder keeps its rank; its copy goes to the next peer -------------------------------
//
// A holder that holds no more for peers (`replica_quota_exceeded`) keeps its rank, and the copy it
// cannot take goes to the next peer: at put time, at a full repair pass, and at the presence pass
// the departure repair runs (`holder_repair.ts`), so a chunk keeps r copies.

Deno.test("a presence repair (the departure repair's) hands a full holder's place to the next peer in rank order", async () => {
  const dirs: string[] = [];
  const peer = async (options: ChunkStoreOptions) => {
    const dir = await Deno.makeTempDir();
    dirs.push(dir);
    const store = await ChunkStore.open(dir, { durable: false, ...options });
    return { store, peer: new LocalStoragePeer(store, Identity.generate().publicKey) };
  };
  const full = await peer({ replicaQuotaBytes: 0 });
  const others = [await peer({}), await peer({}), await peer({})];
  const replicated = new ReplicatedStore([full, ...others].map((p) => p.peer), {
    replicas: 2,
    writeQuorum: 2,
  });
  // A chunk the full node ranks among the two holders of.
  let bytes = pseudoRandomBytes(500, 0);
  for (let seed = 1; !replicated.holders(cidOf(bytes)).includes(full.peer); seed++) {
    bytes = pseudoRandomBytes(500, seed);
  }
  const cid = await replicated.put(bytes);
  await replicated.flush();
  const copies = [];
  for (const o of others) if (await o.store.has(cid)) copies.push(o);
  assert.equal(copies.length, 2, "the put gave the full holder's copy to the next peer");
  // The copy beyond the ranked holders is lost; the presence pass restores it, not on the full node.
  const substitute = copies.find((o) => !replicated.holders(cid).includes(o.peer))!;
  await substitute.store.delete(cid);
  const report = await replicated.repair([cid], {
    presence: true,
    local: () => Promise.resolve(bytes),
  });
  assert.equal(report.failedChecks, 0, JSON.stringify(report));
  assert.equal(report.repaired, 1);
  let held = 0;
  for (const o of others) if (await o.store.has(cid)) held++;
  assert.equal(held, 2, "the chunk keeps r copies");
  assert.equal(await full.store.has(cid), false);
  for (const dir of dirs) await Deno.remove(dir, { recursive: true });
});

Deno.test("replica cap: a peer's record of a young chunk of the node's own must fit under the cap, as a written one must", async () => {
  const dir = await Deno.makeTempDir();
  const held = (...lengths: number[]) =>
    lengths.reduce((sum, length) => sum + length + REPLICA_OVERHEAD_BYTES, 0);
  const store = await ChunkStore.open(dir, { replicaQuotaBytes: held(3000), durable: false });
  const peers = pseudoRandomBytes(3000, 1);
  await store.put(peers, { cid: cidOf(peers), replica: true });
  const own = pseudoRandomBytes(3000, 2);
  await store.put(own); // the node's own, just written: a peer's put of it writes nothing
  // Recorded, it is held for peers for good (a GC root however the owner unpins it): past the cap.
  await assert.rejects(
    store.put(own, { cid: cidOf(own), replica: true }),
    (e: { code?: string }) => e.code === "replica_quota_exceeded",
  );
  assert.equal(await store.isReplica(cidOf(own)), false);
  const stats = await store.stats();
  assert.ok(
    stats.replicaBytes <= held(3000),
    `${stats.replicaBytes} bytes held for peers under a cap of ${held(3000)}`,
  );
  await Deno.remove(dir, { recursive: true });
});

/**
 * A store whose first pack write pauses once it is in place, before the writer indexes it, while
 * `meanwhile` runs: a reload then finds the pack first (CI, stop 72, found this moment counted twice).
 */
async function pausedFirstPack(
  options: ChunkStoreOptions,
  meanwhile: (store: ChunkStore) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  let paused = false;
  const queued = new Map<string, () => void>();
  const store: ChunkStore = await ChunkStore.open(dir, {
    ...options,
    durable: false,
    faults: {
      queued: (cid) => queued.get(cid)?.(),
      beforeIndex: async () => {
        if (paused) return;
        paused = true;
        await meanwhile(store);
      },
    },
  });
  /** Put `bytes` and wait until it is refused or queued for a pack (which cannot finish yet). */
  const startPut = async (bytes: Uint8Array, put: ChunkPutOptions) => {
    const inQueue = new Promise<void>((resolve) => queued.set(cidOf(bytes).toString(), resolve));
    const putting = store.put(bytes, put);
    const outcome = await Promise.race([
      inQueue.then(() => "queued"),
      putting.catch(() => "refused"),
    ]);
    return { outcome, putting };
  };
  return { dir, store, startPut };
}

Deno.test("replica cap: a peer's chunk in a pack a reload finds before the writer indexes it is charged once", async () => {
  let second: { outcome: string; putting: Promise<string> } | undefined;
  const b = pseudoRandomBytes(6000, 2);
  const { dir, store, startPut } = await pausedFirstPack(
    { quotaBytes: 64_000, replicaQuotaBytes: held(6000, 6000) },
    async (store) => {
      await store.stats(); // reloads: the paused pack is found and indexed
      assert.equal(store.heldFor(""), held(6000));
      second = await startPut(b, { cid: cidOf(b), replica: true });
    },
  );
  const a = pseudoRandomBytes(6000, 1);
  await store.put(a, { cid: cidOf(a), replica: true });
  // Counted twice (its reserve and its indexed copy), `a` took the room of `b`, refused.
  assert.equal(second?.outcome, "queued");
  await second?.putting;
  assert.equal((await store.stats()).replicaBytes, held(6000, 6000));
  assert.equal(store.heldFor(""), held(6000, 6000));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("store quota: an object in a pack a reload finds before the writer indexes it is counted once", async () => {
  const packOf = (length: number) => length + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
  let second: { outcome: string; putting: Promise<string> } | undefined;
  const b = pseudoRandomBytes(6000, 2);
  const { dir, store, startPut } = await pausedFirstPack(
    { quotaBytes: packOf(6000) * 2 },
    async (store) => {
      await store.stats();
      second = await startPut(b, {});
    },
  );
  await store.put(pseudoRandomBytes(6000, 1));
  assert.equal(second?.outcome, "queued");
  await second?.putting;
  assert.equal((await store.stats()).usedBytes, packOf(6000) * 2);
  await Deno.remove(dir, { recursive: true });
});
