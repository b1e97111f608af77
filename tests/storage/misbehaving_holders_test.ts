/**
 * What a storage holder that misbehaves costs the others, and how the node sees it: one that is
 * slow, hostile or flapping, that serves garbage or nothing, or whose reads and writes fail.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type StorageAnswers,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkNotFoundError, ReplicationError } from "../../storage/errors.ts";
import { HolderRepair, type HolderRepairPass } from "../../storage/holder_repair.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { type ReplicaFailure, ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { turns } from "../_helpers/fake_timers.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

// ---- slow, hostile and flapping holders ---------------------------------------------------------
//
// Replication across peers (`storage/replicated_store.ts`, `storage/holder_repair.ts`): what a
// slow, hostile or flapping holder costs the others. Every holder here lives in memory
// (`_memory_peer.ts`); nothing waits on wall-clock time — a hold-up is a promise the test answers,
// and "did it move on" is checked by event-loop turns.s fix.

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

// ---- a holder that served bytes not matching the CID --------------------------------------------
//
// A holder that served bytes not matching the CID is asked last for that chunk on the next reads.
// It kept its rank: every read asked it first, paid for its answer and sent it a read repair copy —
// a holder that keeps the chunk for audits (its possession proofs are right) but answers reads with
// a few bytes of garbage served nothing, and made every reader upload the chunk to it again on each
// read.

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

// ---- a holder that keeps a chunk but serves no reads of it --------------------------------------
//
// A holder that keeps a chunk for its audits but answers every read of it `chunk_not_found` (it
// serves nothing: a free rider on the readers' bandwidth). Its possession proofs are right, so
// audits pass and it keeps its standing; before, every read asked it first (its rank) and, its
// answer "proving" its copy missing, sent it a read-repair copy of the chunk — the reader uploaded
// the chunk to it again on each read, as the section above found for a holder answering reads with
// garbage. Now a holder that answered a read of a chunk without its bytes (not found, or bytes not
// matching) is asked last for that chunk until it serves it.

/** A holder that, once `refusing`, answers reads `chunk_not_found` but keeps (and proves) its chunks. */
class ReadRefusingPeer extends MemoryPeer {
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
  const peers = [new ReadRefusingPeer(), new ReadRefusingPeer(), new ReadRefusingPeer()];
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3, readParallelism: 1 });
  const bytes = new TextEncoder().encode("a chunk the first holder keeps but will not serve");
  const cid = await store.put(bytes);
  await store.flush();
  // Whichever peer the (random) keys rank first for the chunk is the free rider.
  const rider = store.holders(cid)[0] as ReadRefusingPeer;
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

// ---- replica failures are visible to the operator -----------------------------------------------
//
// A storage peer that misbehaves (serves bytes that do not match the CID, times out, fails reads or
// writes) is visible to the operator. `ReplicatedStore` reported each replica failure to an
// `onReplicaFailure` observer, but the node passed none: such a holder showed in no log line and no
// metric. The StorageActor now counts them by reason (the `capacity` answer,
// `veriflow_storage_replica_failures_total` on `/metrics`) and logs them, a few lines per peer at a
// time (`network/log_limiter.ts`).

/** A holder that, once `lying`, answers every read with one byte of garbage. */
class LyingPeer extends MemoryPeer {
  lying = false;

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return this.lying ? Promise.resolve(new Uint8Array([1])) : super.getChunk(cid, options);
  }
}

const FAILURES = "veriflow_storage_replica_failures_total";

/** A node's storage actor over `peers` (both hold every chunk; reads ask one at a time). */
async function storageNode(peers: LyingPeer[], lines: string[]) {
  const system = new ActorSystem({ name: "review-s56-replica-failures" });
  const dir = await Deno.makeTempDir();
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        peers,
        replication: { replicas: 2, writeQuorum: 2, readParallelism: 1 },
        log: (line) => lines.push(line),
      }),
  });
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
    storage: () => ref,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  /** The replica failures `/metrics` shows, by reason. */
  const failures = async () => {
    const series = parsePrometheusText(await metrics.render());
    return Object.fromEntries(
      series.filter((s) => s.name === FAILURES).map((s) => [s.labels.reason, s.value]),
    );
  };
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { ref, failures, close };
}

Deno.test("s56: a storage peer serving garbage is counted by reason on /metrics, and the log names it", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(600, 7); // one chunk: the file's CID is the chunk's
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const liar = rankPeers(storageKey(cid), peers)[0];
    const honest = peers.find((p) => p !== liar)!;
    liar.lying = true;
    const read = unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid }));
    assert.deepEqual(read, data, "read from the honest holder");

    const counted = await node.failures();
    assert.equal(counted.corrupt, 1, `one read answered with garbage: ${JSON.stringify(counted)}`);
    for (const [reason, value] of Object.entries(counted)) {
      if (reason !== "corrupt") assert.equal(value, 0, `no ${reason} failure`);
    }
    const named = lines.filter((line) => line.includes(liar.id.slice(0, 16)));
    assert.equal(named.length, 1, `one line names the liar: ${JSON.stringify(lines)}`);
    assert.match(named[0], /corrupt/);
    assert.ok(
      !lines.some((line) => line.includes(honest.id.slice(0, 16))),
      "the honest holder is named nowhere",
    );
  } finally {
    await node.close();
  }
});

Deno.test("s56: honest storage peers leave no failure count and no log line", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(5000, 8);
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const read = unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid }));
    assert.deepEqual(read, data);
    const counted = await node.failures();
    assert.deepEqual(
      Object.keys(counted).sort(),
      ["corrupt", "error", "full", "missing", "timeout"],
      "every reason is a series from the start, at 0",
    );
    for (const [reason, value] of Object.entries(counted)) assert.equal(value, 0, reason);
    assert.deepEqual(lines, []);
  } finally {
    await node.close();
  }
});

Deno.test("s56: a peer serving garbage for many chunks writes a few log lines, then one count", async () => {
  const peers = [new LyingPeer(), new LyingPeer()];
  const lines: string[] = [];
  const node = await storageNode(peers, lines);
  try {
    const data = pseudoRandomBytes(40 * 1024, 9); // 40 chunks
    const { cid } = unwrapReply<StorageAnswers["put_bytes"]>(
      await node.ref.ask({ type: "put_bytes", bytes: data }),
    );
    const liar = peers[0];
    liar.lying = true;
    assert.deepEqual(unwrapReply<Uint8Array>(await node.ref.ask({ type: "get_bytes", cid })), data);
    const counted = await node.failures();
    assert.ok(counted.corrupt > 6, `the liar ranks first for many chunks: ${counted.corrupt}`);
    await node.close(); // the stop writes the count of the lines left out
    const named = lines.filter((line) => line.includes(liar.id.slice(0, 16)));
    assert.ok(named.length <= 6, `a few lines, not one per chunk: ${named.length}`);
    assert.match(named.at(-1)!, /more line\(s\) left out/);
  } finally {
    await node.close().catch(() => {});
  }
});

/** A holder whose writes never land: each waits until its call is aborted. */
class StalledWriter extends MemoryPeer {
  override putChunk(_cid: string, _bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    return new Promise((_, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

Deno.test("s56: a put its caller gave up on is no failure of the holders it was writing to", async () => {
  const failures: ReplicaFailure[] = [];
  const store = new ReplicatedStore([new StalledWriter(), new StalledWriter()], {
    replicas: 2,
    writeQuorum: 2,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const caller = new AbortController();
  const put = store.put(new TextEncoder().encode("a client that went away"), {
    signal: caller.signal,
  });
  caller.abort(new Error("the client went away"));
  await assert.rejects(put, /the client went away/);
  await store.flush();
  assert.deepEqual(failures.map((f) => `${f.op}:${f.reason}`), []);
});

/** A holder that times out on every proof (as its connection's request timeout says). */
class SilentProver extends MemoryPeer {
  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return Promise.reject(new DOMException("no answer in time", "TimeoutError"));
  }
}

Deno.test("s56: a holder that timed out in a repair is one timeout, not one per chunk it holds", async () => {
  const failures: ReplicaFailure[] = [];
  const silent = new SilentProver();
  const store = new ReplicatedStore([silent, new MemoryPeer()], {
    replicas: 2,
    writeQuorum: 2,
    onReplicaFailure: (f) => void failures.push(f),
  });
  const cids: string[] = [];
  for (let i = 0; i < 6; i++) cids.push(await store.put(new TextEncoder().encode(`chunk ${i}`)));
  const report = await store.repair(cids, { presence: true });
  assert.equal(report.failedChecks, 6, "each of its chunks is a failed check, tried later");
  assert.deepEqual(failures.map((f) => `${f.op}:${f.peerId === silent.id}:${f.reason}`), [
    "prove:true:timeout",
  ]);
});
