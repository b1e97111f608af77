/**
 * Review (stop 52) of a replicated read its caller cancels (`storage/replicated_store.ts`): each
 * replica's read failed with the caller's abort, which the read took for that replica's failure —
 * it reported the replica failed, asked the next one (failing at once, for the same reason), and
 * ended with `chunk_not_found` — so a repair cancelled while it fetched the copy of its last chunk
 * (a node stopping mid-pass) returned normally and reported that chunk lost: a false alarm of
 * data loss, and every holder named in a failure that was the caller's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ReplicaFailure, ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder in memory whose reads, once `slow`, answer only when their signal aborts them. */
class SlowReadPeer extends MemoryPeer {
  slow = false;
  #readStarted = Promise.withResolvers<void>();

  /** Resolves once a read has started here. */
  get readStarted(): Promise<void> {
    return this.#readStarted.promise;
  }

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.#readStarted.resolve();
    if (!this.slow) return super.getChunk(cid);
    return new Promise((_, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

/** Three holders of one chunk, every one slow to read from now on. */
async function slowHolders() {
  const peers = [new SlowReadPeer(), new SlowReadPeer(), new SlowReadPeer()];
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore(peers, {
    replicas: 3,
    writeQuorum: 3,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const cid = await store.put(pseudoRandomBytes(2000, 52));
  await store.flush();
  for (const peer of peers) peer.slow = true;
  return { peers, store, cid, failures };
}

Deno.test("a replicated read its caller cancels rejects with the abort reason, not chunk_not_found, and blames no replica", async () => {
  const { peers, store, cid, failures } = await slowHolders();
  const cancel = new AbortController();
  const read = store.get(cid, { signal: cancel.signal });
  await Promise.race(peers.map((p) => p.readStarted));
  const reason = new Error("the caller gave up");
  cancel.abort(reason);
  await assert.rejects(read, (error) => error === reason);
  assert.deepEqual(failures.map((f) => f.peerId), [], "no replica failed: the caller gave up");
});

Deno.test("a repair cancelled while it reads its last chunk's copy rejects with the abort reason, and reports nothing lost", async () => {
  const { peers, store, cid } = await slowHolders();
  for (const peer of peers) peer.chunks.clear(); // every holder lost it: the repair must read a copy
  peers[0].chunks.set(cid, pseudoRandomBytes(2000, 52)); // but one still has it, slowly
  const cancel = new AbortController();
  const repair = store.repair([cid], { signal: cancel.signal });
  await Promise.race(peers.map((p) => p.readStarted));
  const reason = new Error("the node is stopping");
  cancel.abort(reason);
  const outcome = await repair.then((report) => report, (error: unknown) => error);
  assert.equal(outcome, reason, `the repair ended with ${JSON.stringify(outcome)}`);
});
