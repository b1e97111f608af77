/**
 * Review (stop 54) of replication across peers (`storage/replicated_store.ts`,
 * `storage/holder_repair.ts`): what a slow, hostile or flapping holder costs the others. Every
 * holder here lives in memory (`_memory_peer.ts`); nothing waits on wall-clock time — a hold-up
 * is a promise the test answers, and "did it move on" is checked by event-loop turns. Each test
 * failed on the code before its fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkNotFoundError, ReplicationError } from "../../storage/errors.ts";
import { HolderRepair, type HolderRepairPass } from "../../storage/holder_repair.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { turns } from "../_helpers/fake_timers.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

const CHUNK = 1024;

/**
 * A holder that lost everything and says so at once (`chunk_not_found`), but keeps every write
 * waiting, unanswered, until `answer()`: a hostile or overloaded peer. Counts the writes it holds.
 */
class LostAndSlowPeer extends MemoryPeer {
  readonly waiting: (() => void)[] = [];
  mostWaiting = 0;
  writes = 0;

  override getChunk(cid: string): Promise<Uint8Array> {
    return Promise.reject(new ChunkNotFoundError(cid));
  }

  override async putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    this.writes++;
    const answered = Promise.withResolvers<void>();
    this.waiting.push(answered.resolve);
    this.mostWaiting = Math.max(this.mostWaiting, this.waiting.length);
    await answered.promise;
    this.waiting.splice(this.waiting.indexOf(answered.resolve), 1);
    await super.putChunk(cid, bytes);
  }

  answer(): void {
    for (const resolve of [...this.waiting]) resolve();
  }
}

Deno.test("read repairs to a holder that never answers its writes hold a bounded number of chunks: a fast reader cannot pile them up", async () => {
  const good = new MemoryPeer();
  const bad = new LostAndSlowPeer();
  const store = new ReplicatedStore([good, bad], {
    replicas: 2,
    writeQuorum: 1,
    readParallelism: 2,
    maxBackgroundBytes: 4 * CHUNK,
    peerTimeoutMs: 3_600_000, // the holder's silence, not a timeout, is what is tested
  });
  const cids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const bytes = pseudoRandomBytes(CHUNK, 5400 + i);
    const cid = cidOf(bytes);
    good.chunks.set(cid, bytes);
    cids.push(cid);
  }
  // A reader streaming a file: every chunk read well from `good`, `bad` failed each one.
  for (const cid of cids) await store.get(cid);
  await turns(5);
  const held = bad.mostWaiting;
  bad.answer();
  await store.flush();
  bad.answer();
  assert.ok(
    held <= 4,
    `read repairs to the silent holder held ${held} chunks at once (bound: 4 chunks)`,
  );
});

Deno.test("concurrent reads of one chunk a holder lost send it one read-repair copy, not one per read", async () => {
  const good = new MemoryPeer();
  const bad = new LostAndSlowPeer();
  const store = new ReplicatedStore([good, bad], {
    replicas: 2,
    writeQuorum: 1,
    readParallelism: 2,
    peerTimeoutMs: 3_600_000,
  });
  const bytes = pseudoRandomBytes(CHUNK, 5450);
  const cid = cidOf(bytes);
  good.chunks.set(cid, bytes);
  // Eight clients read a popular file at once.
  await Promise.all(Array.from({ length: 8 }, () => store.get(cid)));
  await turns(5);
  const writes = bad.writes;
  bad.answer();
  await store.flush();
  assert.equal(writes, 1, `the holder that lost the chunk was sent ${writes} copies of it`);
  assert.ok(bad.chunks.has(cid), "the holder has its copy back");
});

/** A holder whose writes of one chunk wait, unanswered, until `answer()`. */
class SlowForOnePeer extends MemoryPeer {
  #slow: string | undefined;
  readonly #gate = Promise.withResolvers<void>();

  slowFor(cid: string): void {
    this.#slow = cid;
  }

  override async putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    if (cid === this.#slow) await this.#gate.promise;
    await super.putChunk(cid, bytes);
  }

  answer(): void {
    this.#gate.resolve();
  }
}

Deno.test("a repair does not wait for an unrelated put's copy to a slow holder: it checks the holders while that copy is still on its way", async () => {
  const peers = [new SlowForOnePeer(), new SlowForOnePeer(), new SlowForOnePeer()];
  const store = new ReplicatedStore(peers, {
    replicas: 3,
    writeQuorum: 1,
    peerTimeoutMs: 3_600_000,
  });
  // A put whose third copy waits on a slow holder (an upload in progress, say).
  const slowBytes = pseudoRandomBytes(CHUNK, 5460);
  const slowCid = cidOf(slowBytes);
  const slowHolder = rankPeers(slowCid, peers)[2];
  slowHolder.slowFor(slowCid);
  await store.put(slowBytes);
  // Another chunk, on every holder; one holder loses it.
  const bytes = pseudoRandomBytes(CHUNK, 5461);
  const cid = await store.put(bytes);
  await turns(5);
  const loser = peers.find((p) => p !== slowHolder)!;
  loser.chunks.delete(cid);
  // The repair of that chunk, with a verified copy at hand, needs nothing from the slow put.
  let checkedWhileSlow = false;
  const prove = loser.proveChunks.bind(loser);
  loser.proveChunks = (nonce, cids) => {
    checkedWhileSlow = !slowHolder.chunks.has(slowCid);
    slowHolder.answer(); // let the old code finish rather than hang
    return prove(nonce, cids);
  };
  const repairing = store.repair([cid], { local: () => Promise.resolve(bytes) });
  for (let i = 0; i < 1000 && !checkedWhileSlow && !slowHolder.chunks.has(slowCid); i++) {
    await turns(1);
  }
  slowHolder.answer();
  const report = await repairing;
  await store.flush();
  assert.ok(checkedWhileSlow, "the repair waited for an unrelated put's copy before it checked");
  assert.equal(report.repaired, 1);
  assert.ok(loser.chunks.has(cid));
});

/** The same holder twice: a second object for one peer, as a caller building the list may pass. */
function twin(peer: MemoryPeer): MemoryPeer {
  const other = new MemoryPeer();
  Object.defineProperty(other, "id", { value: peer.id });
  Object.defineProperty(other, "publicKey", { value: peer.publicKey });
  other.putChunk = (cid, bytes, options?: PeerCallOptions) => peer.putChunk(cid, bytes, options);
  other.getChunk = (cid, options) => peer.getChunk(cid, options);
  other.proveChunks = (nonce, cids) => peer.proveChunks(nonce, cids);
  return other;
}

/** A holder that refuses every write. */
class RefusingPeer extends MemoryPeer {
  override putChunk(): Promise<void> {
    return Promise.reject(new Error("refused"));
  }
}

Deno.test("one peer listed twice in the peer set counts as one copy: a put whose only other holder refuses fails its quorum", async () => {
  const a = new MemoryPeer();
  const b = new RefusingPeer();
  const store = new ReplicatedStore([a, twin(a), b], { replicas: 3, writeQuorum: 2 });
  assert.equal(new Set(store.holders(cidOf(new Uint8Array([1]))).map((p) => p.id)).size, 2);
  await assert.rejects(
    store.put(pseudoRandomBytes(CHUNK, 5470)),
    ReplicationError,
    "two acknowledgements from one peer were taken for a quorum of two copies",
  );
  store.setPeers([a, b, twin(a)]);
  assert.equal(store.peers.length, 2, "setPeers keeps one entry per peer id");
});

/** Holders listed only when the test lets them: a pass held up while the peer set changes. */
function gatedHeld(cids: string[]) {
  let gate = Promise.withResolvers<void>();
  let listed = 0;
  return {
    held: async function* (): AsyncGenerator<string> {
      listed++;
      await gate.promise;
      yield* cids;
    },
    open(): void {
      gate.resolve();
    },
    close(): void {
      gate = Promise.withResolvers<void>();
    },
    get listed(): number {
      return listed;
    },
  };
}

Deno.test("a holder that flaps while a repair pass runs costs one more pass, not one per departure, and every chunk ends on its r holders", async () => {
  const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer(), new MemoryPeer()];
  const writer = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 });
  const cids: string[] = [];
  for (let i = 0; i < 30; i++) cids.push(await writer.put(pseudoRandomBytes(CHUNK, 5480 + i)));
  await writer.flush();
  const [self, , , flapper] = peers;
  const mine = cids.filter((cid) => rankPeers(cid, peers).slice(0, 3).includes(self));
  const store = new ReplicatedStore(peers, { replicas: 3 });
  const gated = gatedHeld(mine);
  const passes: HolderRepairPass[] = [];
  const repair = new HolderRepair({
    selfId: self.id,
    held: gated.held,
    read: (cid) => Promise.resolve(self.chunks.get(cid)),
    onPass: (pass) => passes.push(pass),
    clock: { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} }, // no retry fires here
  });
  const all = [...peers];
  const without = peers.filter((p) => p !== flapper);
  // The flapper leaves: a pass starts and is held up listing what this node holds.
  store.setPeers(without);
  repair.peersChanged(store, all);
  await turns(2);
  // It comes back and leaves again, ten times, while that pass runs; then it is back for good.
  for (let i = 0; i < 10; i++) {
    store.setPeers(all);
    repair.peersChanged(store, without);
    store.setPeers(without);
    repair.peersChanged(store, all);
  }
  store.setPeers(all);
  repair.peersChanged(store, without);
  gated.open();
  await repair.idle();
  assert.ok(
    passes.length <= 2 && gated.listed <= 2,
    `${passes.length} passes listed the store ${gated.listed} times for one flapping holder`,
  );
  // Every chunk is at its r holders under the final set (the flapper back, with its copies).
  for (const cid of cids) {
    for (const holder of rankPeers(cid, all).slice(0, 3)) {
      assert.ok(holder.chunks.has(cid), `${cid} missing on a holder`);
    }
  }
  gated.close();
});

/** A holder that has every chunk but whose reads fail (time out, its link drops); counts writes. */
class UnreachableReadsPeer extends MemoryPeer {
  writes = 0;

  override getChunk(): Promise<Uint8Array> {
    return Promise.reject(new DOMException("The signal timed out.", "TimeoutError"));
  }

  override putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    this.writes++;
    return super.putChunk(cid, bytes);
  }
}

Deno.test("a holder whose read timed out is not sent a read-repair copy: only an answer that proves its copy bad does", async () => {
  const good = new MemoryPeer();
  const busy = new UnreachableReadsPeer();
  const lost = new MemoryPeer();
  let lostWrites = 0;
  const put = lost.putChunk.bind(lost);
  lost.putChunk = (cid, bytes) => (lostWrites++, put(cid, bytes));
  const store = new ReplicatedStore([good, busy, lost], { replicas: 3, readParallelism: 3 });
  for (let i = 0; i < 10; i++) {
    const bytes = pseudoRandomBytes(CHUNK, 5490 + i);
    const cid = cidOf(bytes);
    good.chunks.set(cid, bytes);
    busy.chunks.set(cid, bytes); // it has them: it is only slow, or its link is down
    await store.get(cid);
  }
  await store.flush();
  // An overloaded holder is not handed 10 more chunks to write for each 10 it failed to serve.
  assert.equal(busy.writes, 0, `the holder that timed out was sent ${busy.writes} copies`);
  assert.equal(lostWrites, 10, "the holder that answered chunk_not_found got each chunk back");
});

/** A holder that has its chunks but cannot be reached (its reads time out); counts proofs asked. */
class UnreachablePeer extends MemoryPeer {
  override getChunk(): Promise<Uint8Array> {
    return Promise.reject(new DOMException("The signal timed out.", "TimeoutError"));
  }

  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return Promise.reject(new DOMException("The signal timed out.", "TimeoutError"));
  }
}

Deno.test("a read no replica answered fails as unavailable (replication_failed, 503), not chunk_not_found (404), and a repair retries it instead of calling it lost", async () => {
  const peers = [new UnreachablePeer(), new UnreachablePeer(), new UnreachablePeer()];
  const bytes = pseudoRandomBytes(CHUNK, 5500);
  const cid = cidOf(bytes);
  for (const peer of peers) peer.chunks.set(cid, bytes); // every holder has it: none answers
  const store = new ReplicatedStore(peers, { replicas: 3 });
  await assert.rejects(
    store.get(cid),
    (e: { code?: string }) => e.code === "replication_failed",
    "a file every holder of which timed out was reported as not existing",
  );
  const failedChecks: string[] = [];
  const report = await store.repair([cid], { onFailedCheck: (c) => failedChecks.push(c) });
  assert.deepEqual(report.lost, [], "a chunk whose holders did not answer was counted lost");
  assert.deepEqual(failedChecks, [cid], "the chunk is left to be tried again");
  // One holder that does answer, and says it lacks the chunk, with the others silent: still not
  // a proof that it is gone.
  const answering = new MemoryPeer();
  const mixed = new ReplicatedStore([answering, ...peers], { replicas: 3 });
  await assert.rejects(mixed.get(cid), (e: { code?: string }) => e.code === "replication_failed");
  // Every holder answering that it lacks it is chunk_not_found, as before.
  const empty = new ReplicatedStore([new MemoryPeer(), new MemoryPeer()], { replicas: 2 });
  await assert.rejects(empty.get(cid), (e: { code?: string }) => e.code === "chunk_not_found");
});

/** A holder that never answers in time: each call ends in the peer timeout. Counts the calls. */
class TimingOutPeer extends MemoryPeer {
  calls = 0;

  override putChunk(): Promise<void> {
    this.calls++;
    return Promise.reject(new DOMException("The signal timed out.", "TimeoutError"));
  }

  override proveChunks(): Promise<(Uint8Array | null)[]> {
    this.calls++;
    return Promise.reject(new DOMException("The signal timed out.", "TimeoutError"));
  }
}

Deno.test("a repair pass waits out a silent holder's timeout once, not once per chunk it holds: its chunks are left for a later pass", async () => {
  for (const presence of [false, true]) {
    const silent = new TimingOutPeer();
    const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer(), silent];
    const cids: string[] = [];
    const copies = new Map<string, Uint8Array>();
    for (let i = 0; i < 24; i++) {
      const bytes = pseudoRandomBytes(CHUNK, 5510 + i);
      const cid = cidOf(bytes);
      copies.set(cid, bytes);
      for (const p of rankPeers(cid, peers).slice(0, 3)) if (p !== silent) p.chunks.set(cid, bytes);
      cids.push(cid);
    }
    const held = cids.filter((cid) => rankPeers(cid, peers).slice(0, 3).includes(silent));
    const store = new ReplicatedStore(peers, { replicas: 3 });
    const failed = new Set<string>();
    const report = await store.repair(cids, {
      presence,
      local: (cid) => Promise.resolve(copies.get(cid)),
      onFailedCheck: (cid) => failed.add(cid),
    });
    // Each of those calls is a peer timeout (10 s) that holds up the pass, chunk after chunk.
    assert.equal(
      silent.calls,
      1,
      `presence ${presence}: the silent holder of ${held.length} chunks was waited on ` +
        `${silent.calls} times`,
    );
    assert.deepEqual([...failed].sort(), [...held].sort(), "each of its chunks is a failed check");
    assert.equal(report.lost.length, 0);
  }
});
