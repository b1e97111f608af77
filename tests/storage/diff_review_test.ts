/**
 * A holder that holds no more for peers (`replica_quota_exceeded`) keeps its rank, and the copy
 * it cannot take goes to the next peer: at put time, at a full repair pass, and at the presence
 * pass the departure repair runs (`holder_repair.ts`), so a chunk keeps r copies.
 */
import * as assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  ChunkStore,
  type ChunkStoreOptions,
  OBJECT_OVERHEAD_BYTES,
} from "../../storage/chunk_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

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
    lengths.reduce((sum, length) => sum + length + OBJECT_OVERHEAD_BYTES, 0);
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
