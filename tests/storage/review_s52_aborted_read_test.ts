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
import { Identity } from "../../protocols/identity.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { type ReplicaFailure, ReplicatedStore } from "../../storage/replicated_store.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

/** A holder in memory whose reads, once `slow`, answer only when their signal aborts them. */
class MemoryPeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly chunks = new Map<string, Uint8Array>();
  slow = false;
  #readStarted = Promise.withResolvers<void>();

  constructor() {
    this.publicKey = Identity.generate().publicKey;
    this.id = Array.from(this.publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Resolves once a read has started here. */
  get readStarted(): Promise<void> {
    return this.#readStarted.promise;
  }

  putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    this.chunks.set(cid, bytes);
    return Promise.resolve();
  }

  getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.#readStarted.resolve();
    if (this.slow) {
      return new Promise((_, reject) => {
        const signal = options?.signal;
        if (signal?.aborted) return reject(signal.reason);
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    const bytes = this.chunks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }

  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(cid));
  }

  async proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(cid);
      out.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    return out;
  }
}

/** Three holders of one chunk, every one slow to read from now on. */
async function slowHolders() {
  const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer()];
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
