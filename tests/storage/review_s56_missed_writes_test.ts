/**
 * Review s56: the replicated store's memory of holders that missed a write is bounded. A holder
 * that stays in the peer set but refuses every write (full, or hostile) was remembered for every
 * chunk the node ever wrote to it, for the node's whole life: nothing read the record back but
 * `missedWrite`, and only a later successful write or the peer leaving the set dropped entries.
 */
import assert from "node:assert/strict";
import { ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder that holds no more for peers: it refuses every write. */
class FullPeer extends MemoryPeer {
  override putChunk(cid: string, _bytes: Uint8Array, _options?: PeerCallOptions): Promise<void> {
    return Promise.reject(new ReplicaQuotaExceededError(0, `${cid}: full`));
  }
}

Deno.test("a holder that refuses every write is remembered for at most maxMissedWrites chunks, the latest", async () => {
  const full = new FullPeer();
  const store = new ReplicatedStore([new MemoryPeer(), new MemoryPeer(), full], {
    replicas: 3,
    writeQuorum: 2,
    maxMissedWrites: 16,
  });
  const cids: string[] = [];
  for (let i = 0; i < 40; i++) cids.push(await store.put(new TextEncoder().encode(`chunk ${i}`)));
  await store.flush();
  const remembered = cids.filter((cid) => store.missedWrite(full.id, cid));
  assert.deepEqual(remembered, cids.slice(-16), "the 16 latest misses, and no more");
});

Deno.test("the missed-write record is forgotten for a holder that leaves the peer set", async () => {
  const full = new FullPeer();
  const others = [new MemoryPeer(), new MemoryPeer()];
  const store = new ReplicatedStore([...others, full], { replicas: 3, writeQuorum: 2 });
  const cid = await store.put(new TextEncoder().encode("one chunk"));
  await store.flush();
  assert.equal(store.missedWrite(full.id, cid), true);
  store.setPeers(others);
  store.setPeers([...others, full]);
  assert.equal(store.missedWrite(full.id, cid), false);
});
