/**
 * `ReplicatedStore` (`storage/replicated_store.ts`): puts placed on r holders by rendezvous rank,
 * acknowledged at w, read from any holder, repaired by presence checks; what a put holds in memory,
 * what it remembers of missed writes, and reads its caller cancels.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import {
  ChunkNotFoundError,
  ReplicaQuotaExceededError,
  type ReplicationError,
} from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import {
  type ReplicaFailure,
  ReplicatedStore,
  type ReplicatedStoreOptions,
} from "../../storage/replicated_store.ts";
import type { LocalStoragePeer, PeerCallOptions, StoragePeer } from "../../storage/storage_peer.ts";
import { tracker, turns } from "../_helpers/fake_timers.ts";
import { flipObjectBit, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { storageActors } from "./_storage_actors.ts";
import { removePeers, trackedPeer, TrackedStoragePeer } from "./_tracked_peer.ts";

// ---- puts, reads and repair ---------------------------------------------------------------------

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
  // (stop 54, `misbehaving_holders_test.ts`).
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

// ---- the memory a replicated put holds ----------------------------------------------------------
//
// The memory a replicated put holds (`storage/replicated_store.ts`): a put resolves once w holders
// acknowledged, and the copies past the quorum are written in the background, each holding its
// chunk until its holder answers or the peer timeout (10 s) ends it. Nothing bounded them: a file
// put read its source as fast as the w fastest holders answered, so behind a holder that answers
// slowly, or never (a hostile peer that takes `put_chunk` and keeps quiet), the put held every
// chunk of the last 10 s of its upload — gigabytes at disk speed — where the file store promises
// `concurrency` chunks whatever the file size.

/** A holder in memory; `held` keeps its writes waiting (unanswered) until `answer()`. */
class HeldWritePeer extends MemoryPeer {
  /** Writes not answered yet, each holding its chunk. */
  readonly waiting: (() => void)[] = [];
  /** Most writes waiting at once. */
  mostWaiting = 0;
  #held: boolean;

  constructor(held = false) {
    super();
    this.#held = held;
  }

  override async putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    if (this.#held) {
      const answered = Promise.withResolvers<void>();
      this.waiting.push(answered.resolve);
      this.mostWaiting = Math.max(this.mostWaiting, this.waiting.length);
      await answered.promise;
    }
    await super.putChunk(cid, bytes);
  }

  /** Answer every waiting write, and every write from now on at once. */
  answer(): void {
    this.#held = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

const CHUNK = 1024;
const CHUNKS = 48;
const CONCURRENCY = 4;
/** What the store may hold past its puts' quorum: 4 chunks. */
const BACKGROUND_BYTES = 4 * CHUNK;

Deno.test("a file put behind a holder that does not answer holds a bounded number of chunks, and every copy lands once it answers", async () => {
  const fast = [new HeldWritePeer(), new HeldWritePeer()];
  const slow = new HeldWritePeer(true);
  const store = new ReplicatedStore([...fast, slow], {
    replicas: 3,
    writeQuorum: 2,
    peerTimeoutMs: 600_000, // the slow holder is never cut off here: only memory is in question
    maxBackgroundBytes: BACKGROUND_BYTES,
  } as ReplicatedStoreOptions);
  const files = new FileStore(store, { chunkSize: CHUNK, concurrency: CONCURRENCY });
  const data = pseudoRandomBytes(CHUNKS * CHUNK, 52);
  const put = files.put(streamOf(data, CHUNK));
  const done = tracker(put);
  await turns(100); // far more than 48 puts to two holders in memory need
  // Past the quorum: at most the bound's worth of chunks, plus one per put in flight.
  const bound = BACKGROUND_BYTES / CHUNK + CONCURRENCY;
  assert.ok(
    slow.mostWaiting <= bound,
    `${slow.mostWaiting} chunks held for the slow holder at once; at most ${bound}`,
  );
  assert.equal(done(), false, "the put waits for the slow holder rather than hold more");
  slow.answer();
  await put;
  await store.flush();
  assert.ok(slow.mostWaiting <= bound, `${slow.mostWaiting} chunks held at once`);
  for (let i = 0; i < CHUNKS; i++) {
    const cid = cidOf(data.subarray(i * CHUNK, (i + 1) * CHUNK));
    for (const peer of [...fast, slow]) {
      assert.ok(peer.chunks.has(cid), `chunk ${i} on every holder`);
    }
  }
});

Deno.test("a put waiting for room behind a holder that does not answer ends with its caller's abort, and its copies still land", async () => {
  const fast = [new HeldWritePeer(), new HeldWritePeer()];
  const slow = new HeldWritePeer(true);
  const store = new ReplicatedStore([...fast, slow], {
    replicas: 3,
    writeQuorum: 2,
    peerTimeoutMs: 600_000,
    maxBackgroundBytes: BACKGROUND_BYTES,
  } as ReplicatedStoreOptions);
  const chunks = Array.from({ length: 6 }, (_, i) => pseudoRandomBytes(CHUNK, 100 + i));
  for (const chunk of chunks.slice(0, 4)) await store.put(chunk); // the bound, all waiting
  const cancel = new AbortController();
  const put = store.put(chunks[4], { signal: cancel.signal });
  const done = tracker(put);
  await turns(20);
  assert.equal(done(), false, "past the bound: it waits for room");
  const reason = new Error("the caller gave up");
  cancel.abort(reason);
  await assert.rejects(put, (error) => error === reason);
  slow.answer();
  await store.flush();
  for (const chunk of chunks.slice(0, 5)) {
    for (const peer of [...fast, slow]) assert.ok(peer.chunks.has(cidOf(chunk)));
  }
});

// ---- the record of holders that missed a write is bounded ---------------------------------------
//
// The replicated store's memory of holders that missed a write is bounded. A holder that stays in
// the peer set but refuses every write (full, or hostile) was remembered for every chunk the node
// ever wrote to it, for the node's whole life: nothing read the record back but `missedWrite`, and
// only a later successful write or the peer leaving the set dropped entries.

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

// ---- a read its caller cancels ------------------------------------------------------------------
//
// A replicated read its caller cancels (`storage/replicated_store.ts`): each replica's read failed
// with the caller's abort, which the read took for that replica's failure — it reported the replica
// failed, asked the next one (failing at once, for the same reason), and ended with
// `chunk_not_found` — so a repair cancelled while it fetched the copy of its last chunk (a node
// stopping mid-pass) returned normally and reported that chunk lost: a false alarm of data loss,
// and every holder named in a failure that was the caller's.

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

// ---- presence repair against a holder's false claims --------------------------------------------
//
// Presence repair (`storage/replicated_store.ts`, `RepairOptions.presence`) against a holder that
// claims a chunk it does not hold: it answers every `prove` with 32 bytes of its own making. A
// repairer without a verified copy of its own (its copy rotted, or it holds none) takes any proof
// as presence so that nothing is read while every holder has its copy — but once another holder
// lacks the chunk and a verified copy is fetched anyway, the claims must be checked against it: a
// false claim counted as a copy leaves the chunk with fewer than r real copies, and nobody repairs
// it.

/**
 * A holder that stores what it is sent but claims, with made-up proofs, what it lacks; asked for
 * a chunk, it stalls until the reader gives up (so a read repair never hands it one by chance).
 */
class ClaimingPeer extends TrackedStoragePeer {
  override getChunk(_cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return new Promise((_, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  override async proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
  ): Promise<(Uint8Array | null)[]> {
    const honest = await super.proveChunks(nonce, cids);
    return honest.map((proof) => proof ?? crypto.getRandomValues(new Uint8Array(32)));
  }
}

/** A holder over a store in a new temporary directory, kept in `peers` to be removed. */
async function holder<P extends TrackedStoragePeer>(
  peers: TrackedStoragePeer[],
  Peer: new (store: ChunkStore, publicKey: Uint8Array) => P,
): Promise<P> {
  const dir = await Deno.makeTempDir({ prefix: "review_s49_" });
  const peer = new Peer(
    await ChunkStore.open(dir, { durable: false }),
    Identity.generate().publicKey,
  );
  peers.push(peer);
  return peer;
}

/** How many of `peers` really hold a verified copy of `cid` (the network's count). */
async function realCopies(peers: LocalStoragePeer[], cid: string): Promise<number> {
  let n = 0;
  for (const peer of peers) {
    try {
      await peer.store.get(cid);
      n++;
    } catch { /* not here */ }
  }
  return n;
}

Deno.test("a presence repair that fetched a copy checks every holder's proof against it: a holder claiming a chunk it lacks gets a copy", async () => {
  const peers: TrackedStoragePeer[] = [];
  try {
    const honest = await holder(peers, TrackedStoragePeer);
    await holder(peers, TrackedStoragePeer); // missed the write
    const claimer = await holder(peers, ClaimingPeer);
    const bytes = pseudoRandomBytes(4096, 49);
    const cid = await cidOfAsync(bytes);
    await honest.putChunk(cid, bytes); // the only real copy; the other two hold none
    const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 1 });

    const report = await store.repair([cid], { presence: true });
    await store.flush();

    assert.deepEqual(report.lost, []);
    assert.equal(await realCopies(peers, cid), 3, "r real copies after the repair");
    assert.equal(report.repaired, 2);
    assert.ok(store.wasGiven(claimer.id, cid), "the claimer was given the copy it lacked");
  } finally {
    await removePeers(peers); // a read a faster holder won still runs in the slower one
  }
});

Deno.test("after a departure, a survivor whose own copy rotted does not count a new holder's false claim as a copy (StorageActors)", async () => {
  const R = 3;
  const net = await storageActors(5, { replicas: R, writeQuorum: R });
  const { hexIds, dirs, actors } = net;
  const CLAIMER = 3;
  try {
    for (const a of actors) await a.preStart();
    const peerOf = (i: number): StoragePeer => {
      const peer = net.peerOf(i);
      if (i !== CLAIMER) return peer;
      // Node 3 as the others see it: it claims what it lacks, and serves no reads.
      return {
        id: peer.id,
        publicKey: peer.publicKey,
        putChunk: (cid, bytes, o) => peer.putChunk(cid, bytes, o),
        hasChunk: () => Promise.resolve(true),
        getChunk: (_cid, o) =>
          new Promise((_, reject) => {
            if (o?.signal?.aborted) return reject(o.signal.reason);
            o?.signal?.addEventListener("abort", () => reject(o.signal!.reason), { once: true });
          }),
        proveChunks: async (nonce, cids, o) =>
          (await peer.proveChunks(nonce, cids, o)).map((p) =>
            p ?? crypto.getRandomValues(new Uint8Array(32))
          ),
      };
    };
    const setPeers = (live: number[]) => net.setPeers(live, peerOf);
    await setPeers([0, 1, 2, 3, 4]);
    const data = pseudoRandomBytes(64 * 1024, 51);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    const blocks = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid)).map(
      storageKey,
    );
    // Chunks the leaver held and the claimer ranks next for (it takes the leaver's place, with
    // no copy): the best survivor's own copy rots before the departure. The keys are random, so
    // which chunks those are is too: with node 4 always the leaver, none was in ~0.003 % of runs
    // (0.85^65). The leaver is the first of nodes 4, 2 and 1 (not the writer, not the claimer)
    // that has such chunks: any does whenever the claimer ranks next for a block at all.
    const all = hexIds.map((id) => ({ id }));
    const targetsOf = (leaver: number) =>
      blocks.filter((b) => {
        const ranked = rankPeers(b, all).map((p) => hexIds.indexOf(p.id));
        return ranked.slice(0, R).includes(leaver) && ranked[R] === CLAIMER;
      });
    const leaver = [4, 2, 1].find((i) => targetsOf(i).length > 0);
    assert.ok(leaver !== undefined, "some chunk puts the claimer in a leaver's place");
    const targets = targetsOf(leaver);
    for (const b of targets) {
      const best = rankPeers(b, all).map((p) => hexIds.indexOf(p.id)).find((i) => i !== leaver)!;
      await flipObjectBit(dirs[best], b, 7);
    }
    const live = [0, 1, 2, 3, 4].filter((i) => i !== leaver);
    await setPeers(live);
    for (const a of actors) await a.postStop();
    const short: string[] = [];
    for (const b of targets) {
      let copies = 0;
      for (const i of live) {
        const [proof] = unwrapReply<(Uint8Array | null)[]>(
          await actors[i].receive({ type: "prove", nonce: new Uint8Array(32), cids: [b] }),
        );
        if (proof) copies++;
      }
      if (copies < R) short.push(b);
    }
    assert.deepEqual(short, [], `${short.length} of ${targets.length} chunks below r real copies`);
  } finally {
    await net.remove();
  }
});
