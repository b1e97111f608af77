/**
 * Review s62: a holder that keeps a chunk for its audits but answers every read of it
 * `chunk_not_found` (it serves nothing: a free rider on the readers' bandwidth). Its possession
 * proofs are right, so audits pass and it keeps its standing; before, every read asked it first
 * (its rank) and, its answer "proving" its copy missing, sent it a read-repair copy of the chunk
 * — the reader uploaded the chunk to it again on each read, as review s56 found for a holder
 * answering reads with garbage. Now a holder that answered a read of a chunk without its bytes
 * (not found, or bytes not matching) is asked last for that chunk until it serves it.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder that, once `refusing`, answers reads `chunk_not_found` but keeps (and proves) its chunks. */
class RefusingPeer extends MemoryPeer {
  refusing = false;
  reads = 0;
  repairs = 0;

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.reads++;
    if (this.refusing) return Promise.reject(new ChunkNotFoundError(cid));
    return super.getChunk(cid, options);
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

Deno.test("a holder that answers reads chunk_not_found while passing its audits is asked last for the chunk and sent one repair copy, not one per read", async () => {
  const peers = [new RefusingPeer(), new RefusingPeer(), new RefusingPeer()];
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, readParallelism: 1 });
  const bytes = new TextEncoder().encode("a chunk the first holder keeps but will not serve");
  const cid = await store.put(bytes);
  await store.flush();
  // Whichever peer the (random) keys rank first for the chunk is the free rider.
  const rider = store.holders(cid)[0] as RefusingPeer;
  rider.refusing = true;

  // It keeps the chunk: an audit finds nothing wrong with it (no verdict is signed).
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: () => Promise.resolve(bytes),
  });
  const audit = await auditor.audit(rider, [cid]);
  assert.equal(audit.passed, true);
  assert.equal(audit.verdict, undefined);

  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await store.get(cid), bytes);
    await store.flush();
  }
  // Asked once, then after the holders that serve; one read-repair copy in all.
  assert.deepEqual({ reads: rider.reads, repairs: rider.repairs }, { reads: 1, repairs: 1 });

  // Still a source when the others fail: asked last, not dropped.
  for (const peer of peers) if (peer !== rider) peer.chunks.delete(cid);
  rider.refusing = false;
  assert.deepEqual(await store.get(cid), bytes);
});
