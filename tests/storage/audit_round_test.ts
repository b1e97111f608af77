/**
 * The audit round (`storage/audit_round.ts`, run by the StorageActor): which holders it asks about
 * which chunks, what it gives back to holders short of a copy, and what a failed audit costs the
 * holder.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { cidFromDigest, storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import {
  AUDIT_CHUNKS_PER_HOLDER,
  type AuditAssignment,
  type AuditRoundReport,
  runAuditRound,
} from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ChunkNotFoundError, ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import {
  DEMOTION_ROUNDS,
  ReplicatedStore,
  STRIKE_WINDOW_ROUNDS,
} from "../../storage/replicated_store.ts";
import {
  LocalStoragePeer,
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { eventually } from "../_helpers/wait.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

// ---- an owner that crashed mid-put: chunks left at w copies -------------------------------------
//
// What restores r copies after an owner crashes in the middle of a put (`storage/audit_round.ts`,
// run by the StorageActor): a replicated put is done, and the file pinned, once w holders
// acknowledged each chunk; the copies past the quorum finish in the background. An owner killed in
// that window restarts with the file pinned and some chunks at w copies. Nothing in memory survives
// (the put's pending writes, the replicated store's record of missed writes), no holder left (no
// holder repair runs), and the audit round only asks a holder for chunks it was given — the holder
// whose copy never arrived is never asked, never fails, and the chunk stayed below r copies for
// good. The round now also checks a few chunks per holder that it was never given, and gives it
// those it lacks, without blaming it.

const R = 3;
const CHUNKS = 16;

Deno.test("an owner killed between a put's quorum and its last copies: audit rounds after its restart bring every chunk back to r copies, blaming no one", async () => {
  const ids = Array.from({ length: 4 }, () => Identity.generate());
  const dirs = await Promise.all(ids.map(() => Deno.makeTempDir({ prefix: "review_s49_" })));
  const verdicts: Verdict[] = [];
  const make = (i: number) =>
    new StorageActor({
      dir: dirs[i],
      chunkSize: 1024,
      identity: ids[i],
      holdHere: true,
      store: { durable: false },
      onVerdict: (v) => void verdicts.push(v),
      // The owner's writes wait as long as it takes: only its crash ends them.
      replication: { replicas: R, writeQuorum: 2, peerTimeoutMs: 1e9 },
    });
  const actors = ids.map((_, i) => make(i));
  /** Whether node 0 is its restarted incarnation (the killed one is never stopped). */
  let restarted = false;
  /**
   * The calls running in the nodes (each until it ends): a read asks two holders and cancels the
   * slower, which goes on in its node, so cleanup waits for them (as `_storage_actors.ts` does).
   */
  const calls = new Set<Promise<unknown>>();
  const peerOf = (i: number) =>
    new StorageActorPeer({
      ask: (m: StorageMessage) => {
        const call = actors[i].receive(m);
        calls.add(call);
        const done = () => calls.delete(call);
        call.then(done, done);
        return call as never;
      },
    }, ids[i].publicKey);
  try {
    for (const a of actors) await a.preStart();
    // Node 1 is slow: the owner (node 0) crashes before any of its copies arrive.
    const slow = peerOf(1);
    const slowPeer: StoragePeer = {
      id: slow.id,
      publicKey: slow.publicKey,
      putChunk: () => new Promise<void>(() => {}),
      getChunk: (cid: string, o?: PeerCallOptions) => slow.getChunk(cid, o),
      hasChunk: (cid: string, o?: PeerCallOptions) => slow.hasChunk(cid, o),
      proveChunks: (n: Uint8Array, cids: readonly string[], o?: PeerCallOptions) =>
        slow.proveChunks(n, cids, o),
    };
    unwrapReply(
      await actors[0].receive({ type: "set_peers", peers: [slowPeer, peerOf(2), peerOf(3)] }),
    );
    for (const i of [1, 2, 3]) {
      const peers = [0, 1, 2, 3].filter((j) => j !== i).map(peerOf);
      unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
    }
    const data = pseudoRandomBytes(CHUNKS * 1024, 49);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    const leaves = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid))
      .map(storageKey)
      .filter((b) => b !== storageKey(cid));
    const short = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const b of leaves) {
        let copies = 0;
        for (const a of actors) {
          const [proof] = unwrapReply<(Uint8Array | null)[]>(
            await a.receive({ type: "prove", nonce: new Uint8Array(32), cids: [b] }),
          );
          if (proof) copies++;
        }
        if (copies < R) out.push(b);
      }
      return out;
    };
    const shortAtCrash = (await short()).length;
    assert.ok(shortAtCrash > 0, "the crash left chunks below r copies");

    // Killed: no postStop, nothing in memory kept. The restarted owner sees the same peers.
    actors[0] = make(0);
    restarted = true;
    await actors[0].preStart();
    unwrapReply(await actors[0].receive({ type: "set_peers", peers: [1, 2, 3].map(peerOf) }));
    const rounds = Math.ceil(CHUNKS / AUDIT_CHUNKS_PER_HOLDER) + 1;
    for (let i = 0; i < rounds; i++) {
      await unwrapReply<AuditRoundHandle>(await actors[0].receive({ type: "audit_round" })).done;
    }
    assert.deepEqual(
      await short(),
      [],
      `after ${rounds} rounds, of ${shortAtCrash} chunks below r at the crash`,
    );
    assert.equal(verdicts.length, 0, "the holder that never got its copies is not blamed");
  } finally {
    // Every node running is stopped: the restarted owner too, whose audit rounds' read repairs
    // and cancelled reads may still ask the others. The killed owner is not: its copies to the
    // slow node never end (a crashed process's writes); its asks of the others are waited for.
    const live = restarted ? actors : actors.slice(1);
    let running: number;
    do {
      for (const a of live) await a.postStop();
      running = calls.size;
      while (calls.size > 0) await Promise.allSettled([...calls]);
    } while (running > 0);
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

// ---- the stand-in holder of a full holder's copy is audited -------------------------------------
//
// Who audits a stand-in holder (`storage/audit_round.ts`, run by the StorageActor): a holder that
// claims room but refuses every `put_chunk` as full (`replica_quota_exceeded`) keeps its rank, and
// the copy it refused goes to the next-ranked peer, past the first r — the stand-in. The audit
// round asked only the first r holders of a chunk, so the stand-in, given the chunk and counted as
// one of its r copies, was never challenged on it: one that deleted what it stood in for was never
// blamed, and its copy came back only when a placement check of the full holder happened to sample
// the chunk.

Deno.test("a stand-in that took a full holder's copy and deleted it fails the next audit round, and the chunk is back at r copies", async () => {
  const verdicts: Verdict[] = [];
  const net = await storageActors(
    5,
    { replicas: R, writeQuorum: 2 },
    (v) => void verdicts.push(v),
  );
  const { ids, dirs, actors, peerOf } = net;
  // As node 0 (the owner) sees them: node 1 refuses every copy as full; every other node may
  // delete what it was given (`dropped`), and stores it again when given it again.
  const dropped = new Map<number, Set<string>>();
  const liar = (i: number): StoragePeer => {
    const real = peerOf(i);
    return {
      id: real.id,
      publicKey: real.publicKey,
      putChunk: (cid: string, bytes: Uint8Array, o?: PeerCallOptions & { repair?: boolean }) => {
        if (i === 1) return Promise.reject(new ReplicaQuotaExceededError(bytes.length, "a lie"));
        dropped.get(i)?.delete(storageKey(cid));
        return real.putChunk(cid, bytes, o);
      },
      getChunk: (cid: string, o?: PeerCallOptions) =>
        dropped.get(i)?.has(storageKey(cid))
          ? Promise.reject(new ChunkNotFoundError(cid))
          : real.getChunk(cid, o),
      hasChunk: async (cid: string, o?: PeerCallOptions) =>
        !dropped.get(i)?.has(storageKey(cid)) && await real.hasChunk(cid, o),
      proveChunks: async (n: Uint8Array, cids: readonly string[], o?: PeerCallOptions) =>
        (await real.proveChunks(n, cids, o)).map((p, k) =>
          dropped.get(i)?.has(storageKey(cids[k])) ? null : p
        ),
    };
  };
  try {
    for (const a of actors) await a.preStart();
    unwrapReply(await actors[0].receive({ type: "set_peers", peers: [1, 2, 3, 4].map(liar) }));
    for (const i of [1, 2, 3, 4]) {
      const peers = [0, 1, 2, 3, 4].filter((j) => j !== i).map(peerOf);
      unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
    }
    // One-chunk files until one has node 1 among its holders and, ranked r + 1 by the owner, a
    // stand-in other than the owner (which audits no one for its own copy); the others are
    // unpinned, so the round samples that one file, and the stand-in deletes its chunk.
    const everyone = ids.map((id, i) => ({ id: toHex(id.publicKey), i }));
    let chunk: string | undefined;
    let standIn = -1;
    for (let seed = 1; chunk === undefined; seed++) {
      assert.ok(seed < 64, "some file has node 1 among its holders");
      const data = pseudoRandomBytes(1000, seed);
      const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
      const { cid } = await (handle as PutHandle).done;
      const ranked = rankPeers(storageKey(cid), everyone);
      if (ranked.slice(0, R).some((p) => p.i === 1) && ranked[R].i !== 0) {
        [chunk, standIn] = [storageKey(cid), ranked[R].i];
      } else unwrapReply(await actors[0].receive({ type: "unpin", cid }));
    }
    const blocks = await new FileStore(await ChunkStore.open(dirs[0])).blocks(chunk);
    assert.deepEqual(blocks.map(storageKey), [chunk], "a one-chunk file is one block");
    // Past the write quorum the last copies land in the background after `done`: the stand-in's
    // may be one of them (the CI of 98959c8 read it too soon, once).
    const given = chunk;
    await eventually(
      async () => (await liar(standIn).proveChunks(new Uint8Array(32), [given]))[0] ?? undefined,
      "the stand-in was given the copy the full holder refused",
    );
    dropped.set(standIn, new Set([chunk]));

    await unwrapReply<AuditRoundHandle>(await actors[0].receive({ type: "audit_round" })).done;
    const blamed = verdicts.map((v) => toHex(v.target));
    assert.ok(blamed.includes(toHex(ids[standIn].publicKey)), "the stand-in is blamed");
    // Review s62: the owner's own verdict places the stand-in last for the chunk it failed, so the
    // round's repair hands the full holder's copy to the next peer, not back to it (before, it was
    // sent a fresh copy every round it failed, paid by the owner).
    assert.ok(dropped.get(standIn)!.has(chunk), "the stand-in is not sent the chunk again");
    const copies = [];
    for (const i of [0, 1, 2, 3, 4]) {
      if (i === standIn) continue;
      if ((await peerOf(i).proveChunks(new Uint8Array(32), [chunk]))[0] !== null) copies.push(i);
    }
    assert.equal(copies.length, R, `the chunk is back at r copies (on ${copies})`);
  } finally {
    await net.remove();
  }
});

// ---- a round over a very large file -------------------------------------------------------------
//
// An audit round over a large file (`storage/audit_round.ts`): the round gathered the blocks of the
// files it sampled with `chunks.push(...blocks)`, one argument per block. Past about 125,000 blocks
// (a 32 GB file at 256 KiB chunks: a model's weights) that call overflows the stack, the round
// counted the file as "not reached" and went on — every round, so the holders of a large file were
// never challenged: one that dropped it kept its pay.
//
// And it planned in one go: ranking the peers for every block of the sampled files (a hash per peer
// per block, for the audits, then again for the placement checks) without letting the event loop
// turn — 20,000 blocks (a 5 GB file) among 10 peers held it for ~7 s here, every round, while the
// node's HTTP, actors and token streams waited.

/** Blocks of the large file: 200,000 (a 52 GB file at 256 KiB chunks). */
const BLOCKS = 200_000;

/**
 * `n` distinct well-formed raw CIDs, cheaply: a CID of a zero digest with 8 of its base32 digest
 * characters replaced by a counter (hashing or encoding 200,000 CIDs takes seconds).
 */
function cheapCids(n: number): string[] {
  const template = cidFromDigest(new Uint8Array(32));
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let counter = "";
    for (let k = 0, rest = i; k < 8; k++, rest = Math.floor(rest / 32)) {
      counter += alphabet[rest % 32];
    }
    out.push(template.slice(0, 10) + counter + template.slice(18));
  }
  return out;
}

Deno.test("an audit round over a file of 200,000 blocks audits its holder: one that dropped the file gets a missing_chunk verdict", async () => {
  const ownerDir = await Deno.makeTempDir();
  const holderDir = await Deno.makeTempDir();
  try {
    // The file's first blocks are real (the owner keeps them: the reference copies); the rest are
    // listed by the round, never read by it.
    const owner = await ChunkStore.open(ownerDir, { durable: false });
    const files = new FileStore(owner, { chunkSize: 1024 });
    const { cid: root } = await files.put(streamOf(pseudoRandomBytes(4 * 1024, 52)));
    const first = (await files.blocks(root)).map(storageKey);
    const blocks = [...first, ...cheapCids(BLOCKS - first.length)];
    // A holder that was given every block and has dropped them all.
    const holder = new LocalStoragePeer(
      await ChunkStore.open(holderDir, { durable: false }),
      Identity.generate().publicKey,
    );
    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (cid) => owner.get(cid), // verified
      onVerdict: (v) => void verdicts.push(v),
    });
    const repaired: string[] = [];
    const report = await runAuditRound({
      roots: [root],
      blocksOf: () => Promise.resolve(blocks),
      holders: () => [holder],
      wasGiven: () => true,
      randomBelow: () => 0, // the first blocks: the real ones
      audit: (peer, cids) => auditor.audit(peer, cids),
      repair: (cids) => {
        repaired.push(...cids);
        return Promise.resolve({ checked: cids.length, repaired: 0, lost: [], failedChecks: 0 });
      },
    });
    assert.equal(report.errors, 0, "the file was listed");
    assert.equal(report.files, 1);
    assert.equal(report.holders, 1, "its holder was audited");
    assert.equal(report.failedHolders, 1);
    assert.equal(verdicts.length, 1, "the holder that dropped the file pays");
    assert.equal(verdicts[0].reason, "missing_chunk");
    assert.deepEqual(verdicts[0].target, holder.publicKey);
    assert.ok(repaired.includes(storageKey(root)), "what it lost is repaired");
  } finally {
    await Deno.remove(ownerDir, { recursive: true });
    await Deno.remove(holderDir, { recursive: true });
  }
});

Deno.test("an audit round over 5,000 blocks among 10 peers ranks each block once, and lets the event loop turn while it plans", async () => {
  const peers: StoragePeer[] = Array.from({ length: 10 }, () => {
    const publicKey = Identity.generate().publicKey;
    const id = Array.from(publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
    return {
      id,
      publicKey,
      putChunk: () => Promise.resolve(),
      getChunk: (cid: string) => Promise.reject(new Error(`no ${cid} here`)),
      hasChunk: () => Promise.resolve(true),
      proveChunks: (_: Uint8Array, cids: readonly string[]) =>
        Promise.resolve(cids.map(() => null)),
    };
  });
  const blocks = cheapCids(5_000);
  // A timer that re-arms itself: each firing is a turn of the event loop. Counted: the rankings
  // done since the last turn (the longest stretch the round held the loop, in blocks ranked).
  let rankedSinceTurn = 0;
  let mostRankedBetweenTurns = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    rankedSinceTurn = 0;
    timer = setTimeout(tick, 0);
  };
  timer = setTimeout(tick, 0);
  let rankings = 0;
  const audited: AuditAssignment[] = [];
  try {
    const report = await runAuditRound({
      roots: ["root"],
      blocksOf: () => Promise.resolve(blocks),
      holders: (cid) => {
        rankings++;
        mostRankedBetweenTurns = Math.max(mostRankedBetweenTurns, ++rankedSinceTurn);
        return rankPeers(cid, peers).slice(0, 3);
      },
      wasGiven: (peerId, cid) => cid.charCodeAt(12) % 2 === peerId.length % 2, // half of them
      audit: (peer, cids) => {
        audited.push({ peer, cids });
        return Promise.resolve({
          passed: true,
          holderId: peer.id,
          roundId: "0",
          sampled: cids,
          failures: [],
          unjudged: [],
        });
      },
      repair: (cids) =>
        Promise.resolve({ checked: cids.length, repaired: 0, lost: [], failedChecks: 0 }),
    });
    assert.equal(report.files, 1);
    assert.equal(report.holders, peers.length, "every peer holds some: every one audited");
    for (const { cids } of audited) assert.equal(cids.length, 4);
    assert.ok(report.unplaced > 0, "the blocks never given were checked");
  } finally {
    clearTimeout(timer);
  }
  assert.ok(
    mostRankedBetweenTurns <= 1024,
    `${mostRankedBetweenTurns} blocks ranked without a turn of the event loop`,
  );
  assert.equal(rankings, blocks.length, "each block ranked once");
});

// ---- a failed audit demotes the holder ----------------------------------------------------------
//
// A failed audit cost the holder nothing. The verdict went to the auditor's ledger only, and
// placement ranked by key alone, so a holder that kept nothing stayed a holder of every chunk it
// failed: each round's repair sent it a fresh copy of them, paid by the auditor, and every put went
// on giving it its share. Now the auditor's own verdict demotes it: ranked last for each chunk it
// failed (repair places the chunk on the next peer, and it is sent no copy of it again), and for
// every chunk of this node while it failed audits in several recent rounds. One audit missed (the
// holder was unreachable) demotes it for the chunks asked, not for all.
//
// Fixed keys and fixed files: the placement is the same on every run. Which chunks a round asks is
// drawn at random, so every assertion holds whatever the draw (a holder that keeps nothing fails
// whichever it is asked).

/** Identity `n` of the test, the same on every run. */
const fixedIdentity = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));

/** Chunk size of the test files: small, so a file is many chunks. */
const CHUNK = 1024;

/** A holder in memory that counts the copies it is sent; it can drop all, or be unreachable. */
class CountingHolder implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly chunks = new Map<string, Uint8Array>();
  /** Copies it was sent (writes and repairs), by storage key. */
  readonly sent: string[] = [];
  /** It keeps nothing it is sent (and has dropped what it had). */
  keepsNothing = false;
  /** Its connection is down: challenges fail (a peer unreachable). */
  unreachable = false;

  constructor(identity: Identity) {
    this.publicKey = identity.publicKey;
    this.id = toHex(identity.publicKey);
  }

  putChunk(cid: string, bytes: Uint8Array, _options?: PeerCallOptions): Promise<void> {
    this.sent.push(storageKey(cid));
    if (!this.keepsNothing) this.chunks.set(storageKey(cid), bytes);
    return Promise.resolve();
  }

  getChunk(cid: string): Promise<Uint8Array> {
    const bytes = this.chunks.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }

  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(storageKey(cid)));
  }

  async proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (this.unreachable) throw new Error("connection closed");
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(storageKey(cid));
      out.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    return out;
  }
}

/** An actor over four counting holders (r = 2, every copy written before a put is done). */
async function setUp() {
  const dir = await Deno.makeTempDir();
  const peers = [1, 2, 3, 4].map((n) => new CountingHolder(fixedIdentity(n)));
  const verdicts: Verdict[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: CHUNK,
    store: { durable: false },
    peers,
    replication: { replicas: 2, writeQuorum: 2 },
    identity: fixedIdentity(9),
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  await actor.preStart();
  const put = async (size: number, seed: number) => {
    const handle = await actor.receive({
      type: "put",
      source: streamOf(pseudoRandomBytes(size, seed)),
    }) as PutHandle;
    return (await handle.done).cid;
  };
  /** A file's blocks (storage keys): its root and its chunks. */
  const blocks = async (cid: string) => {
    const { chunks } = unwrapReply<{ chunks: string[] }>(
      await actor.receive({ type: "stat", cid }),
    );
    return new Set([cid, ...chunks].map(storageKey));
  };
  const round = async (): Promise<AuditRoundReport> =>
    await unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" })).done;
  const done = async () => {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  };
  return { actor, peers, verdicts, put, blocks, round, done };
}

/** The two peers the key ranking alone places `cid` on. */
const rankedHolders = (cid: string, peers: CountingHolder[]) => rankPeers(cid, peers).slice(0, 2);

Deno.test("a holder that failed an audit is not sent the chunks it failed again: the repair places them on the next peer", async () => {
  const { actor, peers, verdicts, put, blocks, round, done } = await setUp();
  try {
    // Three chunks and a root: no holder has more than the four a round asks of it, so the one
    // that keeps nothing is asked, and fails, on every block it was given.
    const file = await put(3 * CHUNK, 62);
    const chunks = await blocks(file);
    const counts = peers.map((p) => [...chunks].filter((c) => p.chunks.has(c)).length);
    const cheat = peers[counts.indexOf(Math.max(...counts))];
    const failed = [...chunks].filter((c) => cheat.chunks.has(c));
    cheat.keepsNothing = true;
    cheat.chunks.clear();
    const sentBefore = cheat.sent.length;

    const report = await round();
    assert.equal(report.failedHolders, 1);
    assert.deepEqual(new Set(report.failedChunks), new Set(failed));
    assert.equal(verdicts.length, 1);
    assert.equal(toHex(verdicts[0].target), cheat.id);

    // Each failed chunk is on two other peers now; the failing holder got no copy of any.
    for (const cid of failed) {
      const others = peers.filter((p) => p !== cheat && p.chunks.has(cid));
      assert.equal(others.length, 2, `chunk ${cid} has its two copies on other peers`);
    }
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "the round's repair sent it nothing");

    // A repair of every pin asks the chunk's holders again: still nothing for it.
    unwrapReply(await actor.receive({ type: "repair" }));
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "a later repair sends it nothing");
    // The file reads back whole.
    const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid: file }));
    assert.deepEqual(bytes, pseudoRandomBytes(3 * CHUNK, 62));
  } finally {
    await done();
  }
});

Deno.test("a holder that failed audits in three rounds is given none of a new file; one that missed one audit while unreachable keeps its rank", async () => {
  const { peers, verdicts, put, round, done, blocks } = await setUp();
  try {
    // Enough chunks that every holder is asked (four chunks) in each of three rounds.
    const file = await put(48 * CHUNK, 7);
    const chunks = await blocks(file);
    const [honest, cheat] = [peers[0], peers[1]];
    assert.ok([...chunks].filter((c) => cheat.chunks.has(c)).length >= 12);
    cheat.keepsNothing = true;
    cheat.chunks.clear();

    honest.unreachable = true;
    await round();
    honest.unreachable = false;
    // Its first failure has every chunk it was given checked (review s75: the round's sweep) and
    // re-placed: it fails again only on what it is given after, a new file before each round.
    assert.equal([...chunks].some((c) => rankedHolders(c, peers).includes(cheat)), true);
    const cheatVerdicts = () => verdicts.filter((v) => toHex(v.target) === cheat.id).length;
    for (let seed = 100; seed < 102; seed++) {
      const before = cheatVerdicts();
      await put(24 * CHUNK, seed);
      await round();
      assert.ok(cheatVerdicts() > before, "it fails in each round");
    }
    const blamed = new Set(verdicts.map((v) => toHex(v.target)));
    assert.deepEqual(blamed, new Set([honest.id, cheat.id]));
    assert.equal(verdicts.filter((v) => toHex(v.target) === honest.id).length, 1);

    const sentBefore = cheat.sent.length;
    const next = await put(24 * CHUNK, 8);
    const nextChunks = [...await blocks(next)];
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "the demoted holder is given nothing new");
    // The honest holder is given its share by rank, as before it missed that audit.
    const expected = nextChunks.filter((c) => rankedHolders(c, peers).includes(honest));
    assert.ok(expected.length > 0);
    for (const cid of expected) assert.ok(honest.chunks.has(cid), `honest holder got ${cid}`);
  } finally {
    await done();
  }
});

Deno.test("a demotion for every chunk needs three failed rounds among the last eight, and ends after its rounds", () => {
  const peers = [1, 2, 3, 4].map((n) => new CountingHolder(fixedIdentity(n)));
  const store = new ReplicatedStore(peers, { replicas: 2 });
  const [peer] = peers;
  const cid = storageKey("bafkreigfnxsvb24exfvrxqqir7j2cgwghuu7onnl7kphrfafygcwgggnvy");
  const endRounds = (n: number) => {
    for (let i = 0; i < n; i++) store.auditRoundEnded();
  };
  // Two strikes in one round are one; strikes further apart than the window never add up.
  store.failedAudit(peer.id, [cid]);
  store.failedAudit(peer.id, [cid]);
  endRounds(STRIKE_WINDOW_ROUNDS);
  store.failedAudit(peer.id, [cid]);
  endRounds(STRIKE_WINDOW_ROUNDS);
  store.failedAudit(peer.id, [cid]);
  assert.equal(store.demoted(peer.id), false);
  // The failed chunk itself: placed last for it.
  assert.equal(store.placement(cid).at(-1), peer);

  endRounds(1);
  store.failedAudit(peer.id, [cid]);
  endRounds(1);
  store.failedAudit(peer.id, [cid]);
  assert.equal(store.demoted(peer.id), true);
  const other = storageKey("bafkreierbigx4b5tdnttlv5x5nj57e3lwj2m4divjzzlst5d5pksyk66gq");
  assert.equal(store.placement(other).at(-1), peer, "placed last for a chunk it never failed");

  endRounds(DEMOTION_ROUNDS);
  assert.equal(store.demoted(peer.id), true, "its last strike's rounds are not over");
  endRounds(1);
  assert.equal(store.demoted(peer.id), false);
  assert.deepEqual(store.placement(other), rankPeers(other, peers));

  // A peer that leaves and comes back is still placed last for what it failed (review s75: a
  // reconnect forgot it); `demotion_reconnect_test.ts` has when it is forgotten.
  store.failedAudit(peer.id, [cid]);
  store.setPeers(peers.slice(1));
  store.setPeers(peers);
  assert.equal(store.placement(cid).at(-1), peer);
});
