import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ChunkNotFoundError, type ReplicationError } from "../../storage/errors.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import type { LocalStoragePeer, PeerCallOptions, StoragePeer } from "../../storage/storage_peer.ts";
import { flipObjectBit, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { removePeers, trackedPeer, type TrackedStoragePeer } from "./_tracked_peer.ts";

async function makePeers(n: number): Promise<{ peers: TrackedStoragePeer[] }> {
  const peers: TrackedStoragePeer[] = [];
  for (let i = 0; i < n; i++) peers.push(await trackedPeer());
  return { peers };
}

/** A peer wrapper whose operations can be made to hang or fail. */
class FaultyPeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  gate: Promise<void> | null = null;
  down = false;
  puts = 0;
  constructor(readonly inner: StoragePeer) {
    this.id = inner.id;
    this.publicKey = inner.publicKey;
  }
  async putChunk(cid: string, bytes: Uint8Array, o?: PeerCallOptions & { repair?: boolean }) {
    this.puts++;
    if (this.down) throw new Error("peer down");
    if (this.gate) await this.gate;
    return this.inner.putChunk(cid, bytes, o);
  }
  getChunk(cid: string, o?: PeerCallOptions) {
    if (this.down) return Promise.reject(new Error("peer down"));
    return this.inner.getChunk(cid, o);
  }
  hasChunk(cid: string) {
    if (this.down) return Promise.reject(new Error("peer down"));
    return this.inner.hasChunk(cid);
  }
  proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    if (this.down) return Promise.reject(new Error("peer down"));
    return this.inner.proveChunks(nonce, cids);
  }
}

Deno.test("rendezvous ranking is order-independent and moves only the lost peer's chunks", () => {
  const peers = Array.from({ length: 10 }, (_, i) => ({ id: `peer-${i}` }));
  let moved = 0;
  for (let i = 0; i < 200; i++) {
    const cid = cidOf(new TextEncoder().encode(`chunk ${i}`));
    const before = rankPeers(cid, peers).slice(0, 3).map((p) => p.id);
    assert.deepEqual(rankPeers(cid, [...peers].reverse()).slice(0, 3).map((p) => p.id), before);
    const remaining = peers.filter((p) => p.id !== "peer-0");
    const after = rankPeers(cid, remaining).slice(0, 3).map((p) => p.id);
    if (!before.includes("peer-0")) assert.deepEqual(after, before, "unaffected chunks stay");
    moved += before.filter((id) => !after.includes(id)).length;
  }
  // Only copies held by the removed peer move: about 3/10 of 200 chunks.
  assert.ok(moved > 30 && moved < 100, `moved ${moved}`);
});

Deno.test("a replicated put stores r copies on the rendezvous holders", async () => {
  const { peers } = await makePeers(5);
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 2 });
  const bytes = pseudoRandomBytes(3000);
  const cid = await store.put(bytes);
  await store.flush();
  const holders = store.holders(cid).map((p) => p.id);
  for (const peer of peers) {
    assert.equal(await peer.hasChunk(cid), holders.includes(peer.id), peer.id);
  }
  assert.deepEqual(await store.get(cid), bytes);
  await removePeers(peers);
});

Deno.test("a put returns once w holders acknowledged, before the slowest one", async () => {
  const { peers } = await makePeers(3);
  const faulty = peers.map((p) => new FaultyPeer(p));
  const store = new ReplicatedStore(faulty, { replicas: 3, writeQuorum: 2 });
  const bytes = pseudoRandomBytes(2000, 7);
  const slowest = rankPeers(cidOf(bytes), faulty)[2];
  const release = Promise.withResolvers<void>();
  slowest.gate = release.promise;
  const cid = await store.put(bytes);
  assert.equal(await slowest.inner.hasChunk(cid), false, "the slow holder has not written yet");
  release.resolve();
  await store.flush();
  assert.equal(await slowest.inner.hasChunk(cid), true);
  await removePeers(peers);
});

Deno.test("a dead holder is replaced by the next-ranked peer; too few peers is replication_failed", async () => {
  const { peers } = await makePeers(4);
  const faulty = peers.map((p) => new FaultyPeer(p));
  const store = new ReplicatedStore(faulty, { replicas: 3, writeQuorum: 3 });
  const bytes = pseudoRandomBytes(2000, 8);
  const ranked = rankPeers(cidOf(bytes), faulty);
  ranked[0].down = true;
  const cid = await store.put(bytes);
  assert.equal(await ranked[3].inner.hasChunk(cid), true);
  for (const p of faulty) p.down = true;
  faulty[0].down = false;
  await assert.rejects(
    store.put(pseudoRandomBytes(100, 9)),
    (e: ReplicationError) => e.code === "replication_failed",
  );
  await removePeers(peers);
});

Deno.test("a bit flip in one replica is detected on read, served from another, and repaired", async () => {
  const { peers } = await makePeers(3);
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, readParallelism: 1 });
  const bytes = pseudoRandomBytes(10_000, 3);
  const cid = await store.put(bytes);
  const first = store.holders(cid)[0] as LocalStoragePeer;
  await flipObjectBit(first.store.dir, cid, 99);
  const failures: string[] = [];
  const watched = new ReplicatedStore(peers, {
    replicas: 3,
    readParallelism: 1,
    onReplicaFailure: (f) => failures.push(`${f.op}:${(f.error as { code?: string }).code}`),
  });
  assert.deepEqual(await watched.get(cid), bytes);
  assert.deepEqual(failures, ["get:corrupt_chunk"]);
  await watched.flush(); // read repair
  assert.deepEqual(await first.store.get(cid), bytes);
  await removePeers(peers);
});

Deno.test("a repair pass restores r copies after a holder is lost and a copy rots", async () => {
  const { peers } = await makePeers(5);
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 });
  const files = new FileStore(store, { chunkSize: 1024 });
  const data = pseudoRandomBytes(8000, 4);
  const { cid } = await files.put(streamOf(data));
  const manifest = await files.stat(cid);
  const all = [cid, ...manifest.chunks];
  // Lose one peer entirely.
  const lost = store.holders(all[1])[0];
  const survivors = peers.filter((p) => p !== lost);
  store.setPeers(survivors);
  // And rot one copy on a surviving holder.
  const rotten = store.holders(all[2])[1] as LocalStoragePeer;
  await flipObjectBit(rotten.store.dir, all[2], 0);

  const report = await store.repair(all);
  assert.equal(report.checked, all.length);
  assert.deepEqual(report.lost, []);
  // At least the lost peer's replacement got copies; the rotten copy is fixed either by this
  // pass or by the read repair of the pass's own verified read, whichever sees it first.
  assert.ok(report.repaired >= 1, `repaired ${report.repaired}`);
  for (const c of all) {
    for (const holder of store.holders(c) as LocalStoragePeer[]) {
      assert.ok(await holder.store.get(c), `${holder.id} holds a valid ${c}`);
    }
  }
  // A second pass finds nothing to do.
  assert.equal((await store.repair(all)).repaired, 0);
  assert.deepEqual(await files.bytes(cid), data);
  await removePeers(peers);
});

Deno.test("reads fall back across replicas when holders are down", async () => {
  const { peers } = await makePeers(3);
  const faulty = peers.map((p) => new FaultyPeer(p));
  const store = new ReplicatedStore(faulty, { replicas: 3, writeQuorum: 3, readParallelism: 2 });
  const bytes = pseudoRandomBytes(5000, 5);
  const cid = await store.put(bytes);
  const ranked = rankPeers(cid, faulty);
  ranked[0].down = true;
  ranked[1].down = true;
  assert.deepEqual(await store.get(cid), bytes);
  ranked[2].down = true;
  // Every holder down is not every holder saying it lacks the chunk: unavailable, not missing
  // (stop 54, `review_s54_replication_test.ts`).
  await assert.rejects(store.get(cid), (e: { code: string }) => e.code === "replication_failed");
  await removePeers(peers);
});

Deno.test("an aborted replicated put rejects with the abort reason, not a replication error", async () => {
  const { peers } = await makePeers(3);
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 2 });
  const abort = new AbortController();
  abort.abort(new Error("caller gave up"));
  await assert.rejects(
    store.put(pseudoRandomBytes(100, 12), { signal: abort.signal }),
    /caller gave up/,
  );
  await removePeers(peers);
});

Deno.test("read repair also fixes a replica whose bad answer arrives after the first good copy", async () => {
  const { peers } = await makePeers(3);
  const bytes = pseudoRandomBytes(10_000, 13);
  const cid = await new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 }).put(bytes);
  const [fast, slow] = rankPeers(cid, peers);
  await flipObjectBit(slow.store.dir, cid, 42);
  // The second replica asked (default read parallelism 2) answers only after the read is over,
  // and ignores the cancellation, as a remote peer's answer already on the wire would.
  const answer = Promise.withResolvers<void>();
  const late: StoragePeer = {
    id: slow.id,
    publicKey: slow.publicKey,
    putChunk: (c, b, o) => slow.putChunk(c, b, o),
    getChunk: async (c) => {
      await answer.promise;
      return await slow.getChunk(c);
    },
    hasChunk: (c) => slow.hasChunk(c),
    proveChunks: (n, c) => slow.proveChunks(n, c),
  };
  const failures: string[] = [];
  const store = new ReplicatedStore(peers.map((p) => p === slow ? late : p), {
    replicas: 3,
    onReplicaFailure: (f) => failures.push(`${f.op}:${f.peerId}:${(f.error as Error).name}`),
  });
  assert.deepEqual(await store.get(cid), bytes);
  assert.equal(fast.id, rankPeers(cid, peers)[0].id);
  answer.resolve();
  await store.flush();
  assert.deepEqual(failures, [`get:${slow.id}:CorruptChunkError`]);
  assert.deepEqual(await slow.store.get(cid), bytes, "the late bad copy was repaired");
  await removePeers(peers);
});

/** Counts reads, so a test can tell a repair that read nothing from one that read. */
class CountingPeer extends FaultyPeer {
  gets = 0;
  override getChunk(cid: string, o?: PeerCallOptions) {
    this.gets++;
    return super.getChunk(cid, o);
  }
}

Deno.test("a presence repair reads nothing when every holder has its copy, and sends the local copy to a new holder", async () => {
  const { peers: inner } = await makePeers(5);
  try {
    const peers = inner.map((p) => new CountingPeer(p));
    const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 });
    const bytes = pseudoRandomBytes(20_000, 9);
    const cid = await store.put(bytes);
    await store.flush();
    const reads = () => peers.reduce((n, p) => n + p.gets, 0);
    const quiet = await store.repair([cid], { presence: true });
    assert.deepEqual(quiet, { checked: 1, repaired: 0, lost: [], failedChecks: 0 });
    assert.equal(reads(), 0, "nothing read: every holder said it has it");

    // A holder leaves; the next-ranked peer is a holder now and lacks the chunk.
    const [gone, ...rest] = store.holders(cid);
    store.setPeers(peers.filter((p) => p !== gone));
    const fresh = store.holders(cid).find((p) => !rest.includes(p))!;
    assert.equal(await fresh.hasChunk(cid), false);
    const local = rest[0] as CountingPeer;
    const report = await store.repair([cid], {
      presence: true,
      local: (c) => local.inner.getChunk(c),
    });
    assert.equal(report.repaired, 1);
    assert.equal(await fresh.hasChunk(cid), true);
    assert.equal(reads(), 0, "the local copy was sent: no replica was read");
    // A local copy that does not match its CID is not sent: a replica is read instead.
    const other = store.holders(cid).find((p) => p !== fresh)! as CountingPeer;
    await (other.inner as LocalStoragePeer).store.delete(cid);
    const again = await store.repair([cid], {
      presence: true,
      local: () => Promise.resolve(new Uint8Array([1, 2, 3])),
    });
    assert.equal(again.repaired, 1);
    assert.ok(reads() >= 1);
    assert.equal(await other.hasChunk(cid), true);
  } finally {
    await removePeers(inner);
  }
});

Deno.test("a presence repair sends a copy to a holder that keeps only the CID and cannot prove it", async () => {
  const { peers: honest } = await makePeers(2);
  try {
    // Drops the bytes, keeps the name: says it has every chunk, proves none (null, then garbage).
    const sent: string[] = [];
    let answer: "null" | "garbage" = "null";
    const liar: { -readonly [K in keyof StoragePeer]: StoragePeer[K] } = {
      id: "liar",
      publicKey: Identity.generate().publicKey,
      putChunk: (c) => {
        sent.push(c);
        return Promise.resolve();
      },
      getChunk: (c) => Promise.reject(new ChunkNotFoundError(c)),
      hasChunk: () => Promise.resolve(true),
      proveChunks: (_n, cs) =>
        Promise.resolve(cs.map(() => answer === "null" ? null : new Uint8Array(32))),
    };
    const store = new ReplicatedStore([...honest, liar], { replicas: 3, writeQuorum: 2 });
    const bytes = pseudoRandomBytes(3000, 9);
    const cid = await store.put(bytes);
    await store.flush();
    const local = () => Promise.resolve(bytes);
    sent.length = 0;
    const report = await store.repair([cid], { presence: true, local });
    assert.deepEqual(report, { checked: 1, repaired: 1, lost: [], failedChecks: 0 });
    assert.deepEqual(sent, [cid]);
    // A proof that is not the right one is checked against the local copy.
    answer = "garbage";
    const again = await store.repair([cid], { presence: true, local });
    assert.equal(again.repaired, 1);
    assert.deepEqual(sent, [cid, cid]);
    // So is another holder's proof passed on as its own: the proof is bound to the prover's key.
    liar.proveChunks = (nonce, cids) => honest[0].proveChunks(nonce, cids);
    for (const presence of [true, false]) {
      const relayed = await store.repair([cid], { presence, local });
      assert.equal(relayed.repaired, 1, `presence ${presence}`);
    }
    assert.deepEqual(sent, [cid, cid, cid, cid]);
    // The honest holders proved theirs: nothing was sent to them.
    assert.equal(await honest[0].hasChunk(cid), true);
    assert.equal(await honest[1].hasChunk(cid), true);
  } finally {
    await removePeers(honest);
  }
});

Deno.test("a peer out of the peer set past the record's retention is no longer counted as given, on disk too; one that flaps back in time still is", async () => {
  const { peers } = await makePeers(3);
  const recordDir = await Deno.makeTempDir();
  const path = join(recordDir, GIVEN_CHUNKS_FILE);
  let now = 5_000_000;
  const options = { now: () => now, departedRetentionMs: 60_000 };
  try {
    const given = await GivenChunks.open(path, options);
    const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, given });
    const cid = await store.put(pseudoRandomBytes(2000, 21));
    await store.flush();
    const [leaver, ...stayers] = peers;
    assert.ok(peers.every((p) => store.wasGiven(p.id, cid)));

    store.setPeers(stayers); // a dropped connection
    now += 30_000;
    store.setPeers(peers); // back within the retention
    now += 120_000;
    store.setPeers(peers);
    assert.equal(store.wasGiven(leaver.id, cid), true, "a flap keeps the record");

    store.setPeers(stayers); // gone for good
    now += 60_000;
    store.setPeers(stayers); // the next peer-set update finds it gone too long
    assert.equal(store.wasGiven(leaver.id, cid), false);
    assert.equal(store.wasGiven(stayers[0].id, cid), true);
    await store.flush();
    await given.close();

    const reopened = await GivenChunks.open(path, options);
    assert.equal(reopened.has(leaver.id, cid), false);
    assert.equal(reopened.has(stayers[0].id, cid), true);
    await reopened.close();
  } finally {
    await removePeers(peers);
    await Deno.remove(recordDir, { recursive: true });
  }
});
