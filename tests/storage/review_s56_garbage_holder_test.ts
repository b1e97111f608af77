/**
 * Review s56: a holder that served bytes not matching the CID is asked last for that chunk on the
 * next reads. It kept its rank: every read asked it first, paid for its answer and sent it a read
 * repair copy — a holder that keeps the chunk for audits (its possession proofs are right) but
 * answers reads with a few bytes of garbage served nothing, and made every reader upload the
 * chunk to it again on each read.
 */
import assert from "node:assert/strict";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder that, once `lying`, answers reads with garbage; counts what it is sent and asked. */
class CountingPeer extends MemoryPeer {
  lying = false;
  reads = 0;
  repairs = 0;

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.reads++;
    return this.lying ? Promise.resolve(new Uint8Array([1])) : super.getChunk(cid, options);
  }

  override putChunk(
    cid: string,
    bytes: Uint8Array,
    options?: PeerCallOptions & { repair?: boolean },
  ): Promise<void> {
    if (options?.repair) this.repairs++;
    return super.putChunk(cid, bytes, options);
  }
}

Deno.test("a holder that served garbage for a chunk is asked last for it, and sent one repair copy", async () => {
  const peers = [new CountingPeer(), new CountingPeer(), new CountingPeer()];
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, readParallelism: 1 });
  const bytes = new TextEncoder().encode("a chunk the first holder will not serve");
  const cid = await store.put(bytes);
  await store.flush();
  const liar = store.holders(cid)[0] as CountingPeer;
  liar.lying = true;
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await store.get(cid), bytes);
    await store.flush();
  }
  // Asked once, then after the holders that serve; sent one read-repair copy, not one per read.
  assert.deepEqual({ reads: liar.reads, repairs: liar.repairs }, { reads: 1, repairs: 1 });
  // Still a source when the others fail: it is asked last, not dropped.
  for (const peer of peers) if (peer !== liar) peer.chunks.delete(cid);
  liar.lying = false;
  assert.deepEqual(await store.get(cid), bytes);
});

Deno.test("a holder demoted for one chunk keeps its rank for the others", async () => {
  const peers = [new CountingPeer(), new CountingPeer(), new CountingPeer()];
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, readParallelism: 1 });
  const encoder = new TextEncoder();
  const liar = peers[0];
  // Peer ids are random, so which chunks rank the liar first is too: put chunks until two do.
  const ledByLiar: string[] = [];
  for (let i = 0; ledByLiar.length < 2; i++) {
    assert.ok(i < 1000, "no two chunks ranked the liar first");
    const cid = await store.put(encoder.encode(`chunk ${i}`));
    if (store.holders(cid)[0] === liar) ledByLiar.push(cid);
  }
  await store.flush();
  const [bad, good] = ledByLiar;
  liar.lying = true;
  await store.get(bad);
  await store.flush();
  liar.lying = false;
  const before = liar.reads;
  await store.get(good);
  assert.equal(liar.reads, before + 1, "still asked first for a chunk it serves");
});
