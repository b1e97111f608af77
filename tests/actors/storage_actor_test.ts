import assert from "node:assert/strict";
import { join } from "node:path";
import { CID } from "multiformats/cid";
import { base58btc } from "multiformats/bases/base58";
import * as Digest from "multiformats/hashes/digest";
import { cidOf, RAW_CODEC, SHA2_256_CODE, storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { encodeManifest, MANIFEST_TYPE, MANIFEST_VERSION } from "../../protocols/manifest.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageAnswers,
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { type AuditResult, StorageAuditor } from "../../storage/audit.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { ChunkStore, type ChunkStoreStats, type GcResult } from "../../storage/chunk_store.ts";
import { LEGACY_MANIFESTS_DIR } from "../../storage/legacy_manifests.ts";
import { type FileInfo, FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import {
  LocalStoragePeer,
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { removePeers, trackedPeer, TrackedStoragePeer } from "../storage/_tracked_peer.ts";

Deno.test("StorageActor answers put with a handle at once and serves get, get_bytes and ranges", async () => {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({ dir, chunkSize: 4096 });
  await actor.preStart();
  const data = pseudoRandomBytes(30_000);
  // A source that has not produced anything yet: the answer must not wait for the transfer.
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const source = new ReadableStream<Uint8Array>({
    async start(controller) {
      await gate;
      for (let o = 0; o < data.length; o += 5000) controller.enqueue(data.slice(o, o + 5000));
      controller.close();
    },
  });
  const handle = await actor.receive({ type: "put", source, name: "d.bin" }) as PutHandle;
  // The actor is free while the put waits on its source.
  const cap = unwrapReply<ChunkStoreStats>(await actor.receive({ type: "capacity" }));
  assert.equal(cap.pinCount, 0);
  release();
  const { cid, size } = await handle.done;
  assert.equal(size, data.length);
  const stream = unwrapReply<ReadableStream<Uint8Array>>(
    await actor.receive({ type: "get", cid, start: 100, end: 9000 }),
  );
  assert.deepEqual(await collect(stream), data.slice(100, 9000));
  assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), data);
  const list = unwrapReply<FileInfo[]>(await actor.receive({ type: "list" }));
  assert.deepEqual(list.map((f) => [f.cid, f.name]), [[cid, "d.bin"]]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("StorageActor answers expected failures as typed error replies instead of crashing", async () => {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({ dir, store: { quotaBytes: 1000 } });
  const missing = await actor.receive({
    type: "get_bytes",
    cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
  }) as StorageReply<Uint8Array>;
  assert.equal(missing.ok, false);
  assert.equal(!missing.ok && missing.error.code, "chunk_not_found");
  const bad = await actor.receive({ type: "stat", cid: "garbage" }) as StorageReply<unknown>;
  assert.equal(!bad.ok && bad.error.code, "invalid_cid");
  const tooBig = await actor.receive({ type: "put", source: streamOf(pseudoRandomBytes(5000)) });
  await assert.rejects(
    (tooBig as PutHandle).done,
    (e: { code: string }) => e.code === "quota_exceeded",
  );
  const noKey = await actor.receive({
    type: "put",
    source: streamOf(new Uint8Array(10)),
    private: true,
  }) as PutHandle;
  await assert.rejects(noKey.done, (e: { code: string }) => e.code === "key_required");
  assert.throws(() => unwrapReply(missing), (e: { code: string }) => e.code === "chunk_not_found");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("StorageActor stores private files, pins, collects garbage and audits holders", async () => {
  const dir = await Deno.makeTempDir();
  const verdicts: Verdict[] = [];
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    ownerKey,
    identity: Identity.generate(),
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  const secret = new TextEncoder().encode("top secret ".repeat(300));
  const { cid } = await (await actor.receive({
    type: "put",
    source: streamOf(secret),
    private: true,
  }) as PutHandle).done;
  assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), secret);
  const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
  assert.equal(info.tier, "private");
  assert.equal(info.size, secret.length);

  const temp = unwrapReply<{ cid: string }>(
    await actor.receive({ type: "put_bytes", bytes: new Uint8Array([1, 2, 3]), pin: false }),
  );
  const gc = unwrapReply<{ removed: number }>(await actor.receive({ type: "gc", graceMs: -1 }));
  assert.equal(gc.removed, 1); // the unpinned file: a one-chunk public file is its raw leaf
  assert.equal(
    (await actor.receive({ type: "get_bytes", cid: temp.cid }) as StorageReply<unknown>).ok,
    false,
  );

  // This node audits another holder that proved two chunks, then lost one of them.
  const holderStore = await ChunkStore.open(await Deno.makeTempDir(), { durable: false });
  const holder = new LocalStoragePeer(holderStore, Identity.generate().publicKey);
  const chunks = info.chunks;
  for (const c of chunks.slice(0, 2)) {
    const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_chunk", cid: c }));
    await holder.putChunk(c, bytes);
  }
  const ok = unwrapReply<AuditResult>(
    await actor.receive({ type: "audit", holder, cids: chunks.slice(0, 2) }),
  );
  assert.equal(ok.passed, true);
  // Chunks this node never gave it and never saw it prove are not judged.
  const unknown = unwrapReply<AuditResult>(
    await actor.receive({ type: "audit", holder, cids: chunks.slice(2) }),
  );
  assert.equal(unknown.passed, true);
  assert.ok(unknown.unjudged.every((u) => u.reason === "never_given"));
  assert.equal(verdicts.length, 0);
  await holderStore.delete(chunks[1]);
  const failed = unwrapReply<AuditResult>(
    await actor.receive({ type: "audit", holder, cids: chunks.slice(0, 2) }),
  );
  assert.equal(failed.passed, false);
  assert.equal(verdicts.length, 1);
  assert.equal(verdicts[0].reason, "missing_chunk");
  await Deno.remove(holderStore.dir, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("StorageActor runs under the actor system: asks are answered and it stays up after errors", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "storage-test" });
  try {
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir, chunkSize: 4096 }),
    });
    const data = pseudoRandomBytes(20_000, 5);
    const handle = await ref.ask<PutHandle>({ type: "put", source: streamOf(data) });
    const { cid } = await handle.done;
    const missing = await ref.ask<StorageReply<Uint8Array>>({
      type: "get_bytes",
      cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    });
    assert.equal(!missing.ok && missing.error.code, "chunk_not_found");
    const bytes = unwrapReply<StorageAnswers["get_bytes"]>(
      await ref.ask({ type: "get_bytes", cid }),
    );
    assert.deepEqual(bytes, data);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StorageActorPeer lets a replicated store and an auditor use a node through its actor", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "storage-peer-test" });
  try {
    const identity = Identity.generate(); // the node's: its possession proofs are bound to it
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir, identity }),
    });
    const peer = new StorageActorPeer(ref, identity.publicKey);
    const bytes = pseudoRandomBytes(1000, 3);
    const store = new ReplicatedStore([peer], { replicas: 1, writeQuorum: 1 });
    const cid = await store.put(bytes);
    assert.deepEqual(await store.get(cid), bytes);
    assert.equal(await peer.hasChunk(cid), true);
    await assert.rejects(
      peer.getChunk("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
      (e: { code: string }) => e.code === "chunk_not_found",
    );
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: () => Promise.resolve(bytes),
    });
    assert.equal((await auditor.audit(peer, [cid])).passed, true);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("set_peers switches the actor's files to replicated storage and repair restores copies", async () => {
  const dir = await Deno.makeTempDir();
  // Tracked: a read asks both peers and cancels the slower, which goes on in its store.
  const peers = [await trackedPeer(), await trackedPeer()];
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    replication: { replicas: 2, writeQuorum: 2 },
  });
  try {
    unwrapReply(await actor.receive({ type: "set_peers", peers }));
    const data = pseudoRandomBytes(5000, 8);
    const { cid } =
      await (await actor.receive({ type: "put", source: streamOf(data) }) as PutHandle)
        .done;
    assert.equal(await peers[0].hasChunk(cid), true);
    assert.equal(await peers[1].hasChunk(cid), true);
    await peers[1].store.delete(cid);
    const report = unwrapReply<StorageAnswers["repair"]>(await actor.receive({ type: "repair" }));
    assert.deepEqual(report.lost, []);
    assert.ok(report.checked >= 2, "the pinned file's manifest and chunks were checked");
    // Restored by the pass itself or by the read repair of its verified read.
    assert.equal(await peers[1].hasChunk(cid), true);
    assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), data);
  } finally {
    await actor.postStop(); // its read repairs and late reads land
    await removePeers(peers); // and the reads it cancelled end in the peers' stores
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CIDs of another codec, base or digest length, and non-strings, are invalid_cid: never pinned, never a crash", async () => {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({ dir });
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array([1, 2, 3]));
  const raw = CID.createV1(RAW_CODEC, Digest.create(SHA2_256_CODE, new Uint8Array(digest)));
  const accepted = raw.toString();
  const dagJson = CID.createV1(0x0129, raw.multihash).toString(); // raw, dag-pb, dag-cbor are ours
  const short = CID.createV1(
    RAW_CODEC,
    Digest.create(SHA2_256_CODE, new Uint8Array(digest).slice(0, 20)),
  ).toString();
  const base58 = raw.toString(base58btc);
  const upper = accepted.toUpperCase();
  for (const cid of [dagJson, short, base58, upper]) {
    const reply = await actor.receive({ type: "pin", cid }) as StorageReply<boolean>;
    assert.equal(!reply.ok && reply.error.code, "invalid_cid", cid);
  }
  for (const cid of [42, { toString: () => accepted }, null]) {
    for (const type of ["pin", "get_bytes", "has_chunk"] as const) {
      const reply = await actor.receive({ type, cid } as unknown as StorageMessage);
      assert.equal(!(reply as StorageReply<unknown>).ok, true, `${type} ${String(cid)}`);
      assert.equal((reply as { error: { code: string } }).error.code, "invalid_cid");
    }
  }
  // A well-formed CID of nothing is not pinned either: a pin GC cannot read would stop every GC.
  const absent = await actor.receive({ type: "pin", cid: accepted }) as StorageReply<boolean>;
  assert.equal(!absent.ok && absent.error.code, "chunk_not_found");
  const capacity = unwrapReply<ChunkStoreStats>(await actor.receive({ type: "capacity" }));
  assert.equal(capacity.pinCount, 0);
  unwrapReply(await actor.receive({ type: "put_bytes", bytes: new Uint8Array([1, 2, 3]) }));
  assert.equal(unwrapReply(await actor.receive({ type: "pin", cid: accepted })), true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an audit blames no holder for chunks written while it was down, until a repair gives them to it", async () => {
  const dir = await Deno.makeTempDir();
  const peerDirs = await Promise.all([1, 2, 3, 4].map(() => Deno.makeTempDir()));
  let down: string | null = null;
  const peers = await Promise.all(peerDirs.map(async (d) => {
    const inner = new LocalStoragePeer(await ChunkStore.open(d), Identity.generate().publicKey);
    const peer: StoragePeer & { inner: LocalStoragePeer } = {
      inner,
      id: inner.id,
      publicKey: inner.publicKey,
      putChunk: (c, b, o) =>
        down === inner.id ? Promise.reject(new Error("peer down")) : inner.putChunk(c, b, o),
      getChunk: (c, o) => inner.getChunk(c, o),
      hasChunk: (c) => inner.hasChunk(c),
      proveChunks: (n, c) => inner.proveChunks(n, c),
    };
    return peer;
  }));
  const verdicts: Verdict[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    peers,
    replication: { replicas: 3, writeQuorum: 2 },
    identity: Identity.generate(),
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  const victim = peers[0];
  down = victim.id; // offline during the upload: its copies go to the next-ranked peer
  const put = await actor.receive({ type: "put", source: streamOf(pseudoRandomBytes(16_384, 6)) });
  const { cid } = await (put as PutHandle).done;
  down = null;
  const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
  // Its chunks (the manifest was read since, so read repair has given it that already).
  const assigned = info.chunks.filter((c) => rankPeers(c, peers).slice(0, 3).includes(victim));
  assert.ok(assigned.length > 0);
  const audit = async (cids: string[]) =>
    unwrapReply<AuditResult>(await actor.receive({ type: "audit", holder: victim, cids }));

  const before = await audit(assigned);
  assert.equal(before.passed, true);
  assert.ok(before.unjudged.every((u) => u.reason === "never_given"));
  assert.equal(before.unjudged.length, before.sampled.length);
  assert.equal(verdicts.length, 0);

  unwrapReply(await actor.receive({ type: "repair" }));
  const after = await audit(assigned);
  assert.equal(after.passed, true);
  assert.deepEqual(after.unjudged, [], "given to it by the repair, so judged");
  // Given, then lost: that is its fault.
  await victim.inner.store.delete(assigned[0]);
  const lost = await audit([assigned[0]]);
  assert.equal(lost.passed, false);
  assert.equal(verdicts.length, 1);
  assert.equal(verdicts[0].reason, "missing_chunk");
  await actor.postStop(); // background replication and read repairs end before cleanup
  for (const d of [dir, ...peerDirs]) await Deno.remove(d, { recursive: true });
});

Deno.test("an audit blames no holder for chunks it was never given: after it flapped out and back, joined after the write, or the auditor restarted", async () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const d = await Deno.makeTempDir();
    dirs.push(d);
    return d;
  };
  let down: string | null = null;
  type Peer = StoragePeer & { inner: LocalStoragePeer };
  const makePeers = (n: number) =>
    Promise.all(Array.from({ length: n }, async () => {
      const inner = new LocalStoragePeer(
        await ChunkStore.open(await tempDir(), { durable: false }),
        Identity.generate().publicKey,
      );
      const peer: Peer = {
        inner,
        id: inner.id,
        publicKey: inner.publicKey,
        putChunk: (c, b, o) =>
          down === inner.id ? Promise.reject(new Error("peer down")) : inner.putChunk(c, b, o),
        getChunk: (c, o) => inner.getChunk(c, o),
        hasChunk: (c) => inner.hasChunk(c),
        proveChunks: (n, c) => inner.proveChunks(n, c),
      };
      return peer;
    }));
  const identity = Identity.generate();
  const verdicts: Verdict[] = [];
  const actors: StorageActor[] = [];
  const start = async (dir: string, peers: StoragePeer[]) => {
    const actor = new StorageActor({
      dir,
      chunkSize: 1024,
      peers,
      replication: { replicas: 3, writeQuorum: 2 },
      identity,
      onVerdict: (v) => {
        verdicts.push(v);
      },
    });
    await actor.preStart();
    actors.push(actor);
    return actor;
  };
  const put = async (actor: StorageActor, seed: number) => {
    const handle = await actor.receive({
      type: "put",
      source: streamOf(pseudoRandomBytes(16_384, seed)),
    });
    const { cid } = await (handle as PutHandle).done;
    return unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid })).chunks;
  };
  // The chunks `holder` is now a holder of but does not hold: each one sampled is a null answer.
  const lacking = async (holder: Peer, peers: StoragePeer[], chunks: string[]) => {
    const out: string[] = [];
    for (const c of chunks) {
      if (rankPeers(c, peers).slice(0, 3).includes(holder) && !await holder.inner.hasChunk(c)) {
        out.push(c);
      }
    }
    assert.ok(out.length > 0);
    return out;
  };
  const expectUnjudged = async (actor: StorageActor, holder: StoragePeer, cids: string[]) => {
    const r = unwrapReply<AuditResult>(await actor.receive({ type: "audit", holder, cids }));
    assert.equal(r.passed, true, JSON.stringify(r.failures));
    assert.deepEqual(r.failures, []);
    assert.equal(r.unjudged.length, r.sampled.length);
    assert.ok(r.unjudged.every((u) => u.reason === "never_given"));
    assert.equal(r.verdict, undefined);
  };

  // (A) Down during the write, then dropped from the peer set and re-added.
  {
    const peers = await makePeers(4);
    const actor = await start(await tempDir(), peers);
    down = peers[0].id;
    const chunks = await put(actor, 6);
    down = null;
    await actor.receive({ type: "set_peers", peers: peers.slice(1) });
    await actor.receive({ type: "set_peers", peers });
    await expectUnjudged(actor, peers[0], await lacking(peers[0], peers, chunks));
  }
  // (B) Joined after the write: joining moves no copies.
  {
    const peers = await makePeers(4);
    const actor = await start(await tempDir(), peers.slice(0, 3));
    const chunks = await put(actor, 7);
    await actor.receive({ type: "set_peers", peers });
    await expectUnjudged(actor, peers[3], await lacking(peers[3], peers, chunks));
  }
  // (C) Down during the write, then the auditing actor restarted.
  {
    const peers = await makePeers(4);
    const dir = await tempDir();
    const first = await start(dir, peers);
    down = peers[0].id;
    const chunks = await put(first, 8);
    down = null;
    await first.postStop();
    actors.splice(actors.indexOf(first), 1);
    const second = await start(dir, peers);
    await expectUnjudged(second, peers[0], await lacking(peers[0], peers, chunks));
  }
  assert.deepEqual(verdicts, []);
  for (const actor of actors) await actor.postStop();
  for (const d of dirs) await Deno.remove(d, { recursive: true });
});

/**
 * Four storage peers over their own stores, and a StorageActor factory over them; with
 * `holdHere` the node is one of its own holders, as a running node is.
 */
async function restartableNode(options?: { holdHere?: boolean }) {
  const dirs: string[] = [];
  const tempDir = async () => {
    const d = await Deno.makeTempDir();
    dirs.push(d);
    return d;
  };
  // Tracked: a read asks two holders and cancels the slower, which goes on in its store.
  const peers = await Promise.all(
    Array.from({ length: 4 }, async () =>
      new TrackedStoragePeer(
        await ChunkStore.open(await tempDir(), { durable: false }),
        Identity.generate().publicKey,
      )),
  );
  const dir = await tempDir();
  const identity = Identity.generate();
  const verdicts: Verdict[] = [];
  const start = async () => {
    const actor = new StorageActor({
      dir,
      chunkSize: 1024,
      peers,
      replication: { replicas: 3, writeQuorum: 2 },
      identity,
      holdHere: options?.holdHere,
      onVerdict: (v) => {
        verdicts.push(v);
      },
    });
    await actor.preStart();
    return actor;
  };
  const put = async (actor: StorageActor, data: Uint8Array) => {
    const { cid } =
      await (await actor.receive({ type: "put", source: streamOf(data) }) as PutHandle)
        .done;
    return {
      cid,
      chunks: unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid })).chunks,
    };
  };
  const audit = async (actor: StorageActor, holder: StoragePeer, cid: string) =>
    unwrapReply<AuditResult>(await actor.receive({ type: "audit", holder, cids: [cid] }));
  // With holdHere the node ranks among the holders too (its id is its key's hex).
  const ranked: { id: string }[] = options?.holdHere
    ? [{ id: toHex(identity.publicKey) }, ...peers]
    : peers;
  const isHolder = (peer: { id: string }, cid: string) =>
    rankPeers(cid, ranked).slice(0, 3).some((p) => p.id === peer.id);
  /** After the node's `postStop`: the calls it cancelled end in the peers, then all goes. */
  const cleanup = async () => {
    for (const peer of peers) await peer.settled();
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  };
  return {
    dir,
    selfId: toHex(identity.publicKey),
    peers,
    verdicts,
    start,
    put,
    audit,
    isHolder,
    cleanup,
  };
}

Deno.test("the record of chunks given to holders survives a restart: a holder that lost one is still blamed after the auditor reopened its store", async () => {
  const node = await restartableNode();
  const first = await node.start();
  const { chunks } = await node.put(first, pseudoRandomBytes(16_384, 31));
  await first.postStop();

  const second = await node.start();
  const holder = node.peers.find((p) => chunks.some((c) => node.isHolder(p, c)))!;
  const lost = chunks.find((c) => node.isHolder(holder, c))!;
  await holder.store.delete(lost);
  const result = await node.audit(second, holder, lost);
  assert.equal(result.passed, false);
  assert.deepEqual(result.failures, [{ cid: lost, reason: "missing_chunk" }]);
  assert.equal(node.verdicts.length, 1);
  assert.equal(node.verdicts[0].reason, "missing_chunk");
  await second.postStop();
  await node.cleanup();
});

/**
 * A file is unpinned, the node restarts, and a holder loses its copy of the chunk both files
 * share, of a chunk only the unpinned file has, and of one only the pinned file has: only the
 * unpinned file's own chunk is no longer judged.
 */
async function unpinForgetsGiven(holdHere: boolean): Promise<void> {
  const node = await restartableNode({ holdHere });
  const first = await node.start();
  const shared = pseudoRandomBytes(1024, 41); // one chunk both files begin with
  const concat = (tail: Uint8Array) => new Uint8Array([...shared, ...tail]);
  const dropped = await node.put(first, concat(pseudoRandomBytes(8192, 42)));
  const kept = await node.put(first, concat(pseudoRandomBytes(8192, 43)));
  const sharedCid = dropped.chunks[0];
  assert.equal(kept.chunks[0], sharedCid);
  assert.equal(unwrapReply(await first.receive({ type: "unpin", cid: dropped.cid })), true);
  await first.postStop();

  const second = await node.start();
  // A peer holding one of `cids` (not only the node itself), and that chunk, deleted from it.
  const lostBy = async (cids: string[]) => {
    for (const cid of cids) {
      const holder = node.peers.find((p) => node.isHolder(p, cid));
      if (!holder) continue;
      await holder.store.delete(cid);
      return { holder, cid };
    }
    throw new Error("no peer holds any of them");
  };
  const only = (file: { chunks: string[] }) => file.chunks.filter((c) => c !== sharedCid);
  const droppedOnly = await lostBy(only(dropped));
  const forgotten = await node.audit(second, droppedOnly.holder, droppedOnly.cid);
  assert.equal(forgotten.passed, true);
  assert.deepEqual(forgotten.unjudged, [{ cid: droppedOnly.cid, reason: "never_given" }]);
  for (const { holder, cid } of [await lostBy([sharedCid]), await lostBy(only(kept))]) {
    const result = await node.audit(second, holder, cid);
    assert.deepEqual(result.failures, [{ cid, reason: "missing_chunk" }], cid);
  }
  await second.postStop();
  await node.cleanup();
}

Deno.test("unpinning a file forgets the chunks given for it, also after a restart, but not a chunk a pinned file shares", async () => {
  await unpinForgetsGiven(false);
});

Deno.test("with holdHere, as every node runs, unpinning a file still forgets the chunks given for it, its own copies here included", async () => {
  await unpinForgetsGiven(true);
});

/** The node's answers to a peer about `cid`: has_chunk, get_chunk and a one-chunk prove. */
/**
 * What a peer sees of `cid` here. With `prove` false the chunk is not proven: a chunk proven to a
 * peer is kept as a replica from then on, which would change what the test looks at.
 */
async function peerView(actor: StorageActor, cid: string, prove = true) {
  const got = await actor.receive({ type: "get_chunk", cid }) as StorageReply<Uint8Array>;
  const view = {
    has: unwrapReply<boolean>(await actor.receive({ type: "has_chunk", cid })),
    get: got.ok,
  };
  if (!prove) return view;
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const [proof] = unwrapReply<(Uint8Array | null)[]>(
    await actor.receive({ type: "prove", nonce, cids: [cid] }),
  );
  return { ...view, prove: proof !== null };
}

const gone = { has: false, get: false, prove: false };
const served = { has: true, get: true, prove: true };
const servedUnproven = { has: true, get: true };

Deno.test("with holdHere, an unpinned file's own copies go at the next gc: peers are no longer served them and holder repair no longer copies them", async () => {
  const node = await restartableNode({ holdHere: true });
  const actor = await node.start();
  const self = { id: node.selfId };
  // A peer whose departure this node repairs: one ranked among the holders of a chunk whose first
  // other holder is this node.
  const repairedBy = (chunks: string[]) =>
    node.peers.find((p) =>
      chunks.some((c) => {
        const ranked = rankPeers(c, [self, ...node.peers]).slice(0, 3);
        return ranked.some((h) => h.id === p.id) &&
          ranked.find((h) => h.id !== p.id)?.id === self.id;
      })
    );
  // The keys are random, so which chunks this node ranks first or second for is too: with one
  // fixed file no chunk had a peer whose departure it repairs in ~0.03 % of runs (0.6^16). Pick
  // the file by its chunks (raw 1 KiB leaves) until one has.
  let data = pseudoRandomBytes(16 * 1024, 51);
  const leaves = (bytes: Uint8Array) =>
    Array.from({ length: 16 }, (_, i) => cidOf(bytes.subarray(i * 1024, (i + 1) * 1024)));
  for (let seed = 52; !repairedBy(leaves(data)); seed++) {
    assert.ok(seed < 1_000, "some file has a chunk whose holder's departure this node repairs");
    data = pseudoRandomBytes(16 * 1024, seed);
  }
  const { cid, chunks } = await node.put(actor, data);
  assert.deepEqual(chunks, leaves(data), "the file's chunks are its raw 1 KiB leaves");
  const mine = chunks.filter((c) => node.isHolder(self, c));
  assert.ok(mine.length > 0, "the node holds some of its own chunks");
  for (const c of mine) assert.deepEqual(await peerView(actor, c, false), servedUnproven, c);
  const before = unwrapReply<ChunkStoreStats>(await actor.receive({ type: "capacity" }));
  assert.equal(before.replicaCount, 0, "its own copies are not held for a peer");
  assert.equal(unwrapReply(await actor.receive({ type: "unpin", cid })), true);
  for (const c of mine) assert.deepEqual(await peerView(actor, c), gone, c);

  // A peer leaves whose chunks this node would be the one to repair: nothing of the unpinned
  // file is copied to the peers that take its place.
  const dropped = repairedBy(chunks);
  assert.ok(dropped, "a peer whose departure this node repairs");
  const objects = async () => {
    let n = 0;
    for (const p of node.peers) for await (const _ of p.store.list()) n++;
    return n;
  };
  const held = await objects();
  const rest = node.peers.filter((p) => p !== dropped);
  unwrapReply(await actor.receive({ type: "set_peers", peers: rest }));
  await actor.repairIdle();
  assert.equal(await objects(), held, "no copy of the unpinned file was made");

  const result = unwrapReply<GcResult>(await actor.receive({ type: "gc", graceMs: 0 }));
  assert.deepEqual(result.unreadableRoots, []);
  assert.equal(result.kept, 0);
  assert.ok(result.removed >= mine.length + 1, `removed ${result.removed}`);
  const after = unwrapReply<ChunkStoreStats>(await actor.receive({ type: "capacity" }));
  assert.equal(after.objectCount, 0, "the disk is freed");
  for (const c of mine) assert.deepEqual(await peerView(actor, c), gone, c);
  await actor.postStop();
  await node.cleanup();
});

Deno.test("with holdHere, a read repair that reaches this node before its own put's copy is written keeps that copy as the file's, not as a replica held for a peer", async () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const d = await Deno.makeTempDir();
    dirs.push(d);
    return d;
  };
  const data = pseudoRandomBytes(4 * 1024, 81);
  const chunkSize = 1024;
  // The file's root as the put will name it (the same bytes, chunked the same way).
  const scratch = await ChunkStore.open(await tempDir(), { durable: false });
  const rootKey = storageKey((await new FileStore(scratch, { chunkSize }).put(streamOf(data))).cid);
  // Once a peer has served the root, later reads of it wait: the put cannot go on to its pin
  // until this node's store has taken the read repair's write.
  const readRepaired = Promise.withResolvers<void>();
  let served = false;
  class HeldPeer extends LocalStoragePeer {
    override async getChunk(cid: string, options?: { signal?: AbortSignal }) {
      if (cid === rootKey && served) await readRepaired.promise;
      if (cid === rootKey) served = true;
      return await super.getChunk(cid, options);
    }
  }
  const peers = await Promise.all(
    Array.from({ length: 4 }, async () =>
      new HeldPeer(
        await ChunkStore.open(await tempDir(), { durable: false }),
        Identity.generate().publicKey,
      )),
  );
  // This node is the root's first holder, so the put's read of the root asks it at once.
  let identity = Identity.generate();
  const selfFirst = (id: Identity) =>
    rankPeers(rootKey, [{ id: toHex(id.publicKey) }, ...peers])[0].id === toHex(id.publicKey);
  while (!selfFirst(identity)) identity = Identity.generate();
  // This node's own write of the root fails (a full disk, for a moment), and so it lacks the
  // root when the put reads it back: the read repairs it here. Writes succeed again once the
  // repair's copy is queued.
  let rootWrites = 0;
  const dir = await tempDir();
  const options = {
    dir,
    chunkSize,
    peers,
    replication: { replicas: 3, writeQuorum: 2 },
    identity,
    holdHere: true,
  };
  const actor = new StorageActor({
    ...options,
    store: {
      durable: false,
      faults: {
        queued: (cid: string) => {
          if (cid === rootKey && ++rootWrites === 2) readRepaired.resolve();
        },
        beforeWrite: () => {
          if (rootWrites === 1) throw new Error("injected: no space left for a moment");
        },
      },
    },
  });
  await actor.preStart();
  const { cid } = await (await actor.receive({ type: "put", source: streamOf(data) }) as PutHandle)
    .done;
  assert.equal(storageKey(cid), rootKey);
  await actor.postStop(); // the read repairs have landed
  const store = await ChunkStore.open(dir, { durable: false });
  assert.equal(await store.has(rootKey), true, "the read repair wrote the root here");
  assert.equal(await store.isReplica(rootKey), false, "its own file's root is not held for a peer");

  // So unpinning the file frees it here.
  const again = new StorageActor({ ...options, store: { durable: false } });
  await again.preStart();
  assert.equal(unwrapReply(await again.receive({ type: "unpin", cid })), true);
  const gc = unwrapReply<GcResult>(await again.receive({ type: "gc", graceMs: 0 }));
  assert.equal(gc.kept, 0);
  const after = unwrapReply<ChunkStoreStats>(await again.receive({ type: "capacity" }));
  assert.equal(after.objectCount, 0, "the disk is freed");
  await again.postStop();
  for (const d of dirs) await Deno.remove(d, { recursive: true });
});

Deno.test("a put's copies beyond the write quorum are still written when the caller's signal aborts once the put is done, as an HTTP request's does when its response is sent", async () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const d = await Deno.makeTempDir();
    dirs.push(d);
    return d;
  };
  // One holder of every chunk (r = 3 of 3 peers) takes its copies only after the put is done.
  const late = Promise.withResolvers<void>();
  class LatePeer extends TrackedStoragePeer {
    override async putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions) {
      await late.promise;
      return await super.putChunk(cid, bytes, options);
    }
  }
  const open = async () => await ChunkStore.open(await tempDir(), { durable: false });
  // Tracked: the `stat` below asks two holders and cancels the slower, which goes on in its store.
  const peers = [
    new TrackedStoragePeer(await open(), Identity.generate().publicKey),
    new TrackedStoragePeer(await open(), Identity.generate().publicKey),
    new LatePeer(await open(), Identity.generate().publicKey),
  ];
  const actor = new StorageActor({
    dir: await tempDir(),
    chunkSize: 1024,
    peers,
    replication: { replicas: 3, writeQuorum: 2 },
  });
  await actor.preStart();
  const request = new AbortController();
  const handle = await actor.receive({
    type: "put",
    source: streamOf(pseudoRandomBytes(4 * 1024, 91)),
    signal: request.signal,
  }) as PutHandle;
  const { cid } = await handle.done;
  request.abort(); // the 201 is sent
  late.resolve();
  await actor.postStop(); // the writes beyond the quorum have finished
  const { chunks } = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
  for (const c of chunks) assert.equal(await peers[2].store.has(c), true, `third copy of ${c}`);
  await actor.postStop();
  for (const peer of peers) await peer.settled();
  for (const d of dirs) await Deno.remove(d, { recursive: true });
});

Deno.test("with holdHere, a chunk a peer's put gave this node stays through gc, also when an unpinned file of its own shares it", async () => {
  const node = await restartableNode({ holdHere: true });
  const actor = await node.start();
  const pieces = Array.from({ length: 16 }, (_, i) => pseudoRandomBytes(1024, 60 + i));
  const given = async (bytes: Uint8Array) => {
    const cid = cidOf(bytes);
    unwrapReply(await actor.receive({ type: "put_chunk", cid, bytes }));
    return cid;
  };
  // A peer gives one chunk before this node puts a file sharing it, one after, and one no file
  // of this node's has.
  const sharedBefore = await given(pieces[0]);
  const { cid, chunks } = await node.put(actor, new Uint8Array(pieces.flatMap((p) => [...p])));
  const sharedAfter = await given(pieces[5]);
  const peersOnly = await given(pseudoRandomBytes(1024, 99));
  assert.deepEqual([chunks[0], chunks[5]], [sharedBefore, sharedAfter]);
  assert.equal(unwrapReply(await actor.receive({ type: "unpin", cid })), true);
  const result = unwrapReply<GcResult>(await actor.receive({ type: "gc", graceMs: 0 }));
  assert.equal(result.kept, 3);
  for (const c of [sharedBefore, sharedAfter, peersOnly]) {
    assert.deepEqual(await peerView(actor, c), served, c);
  }
  const self = { id: node.selfId };
  for (const c of chunks.slice(1).filter((c) => c !== sharedAfter && node.isHolder(self, c))) {
    assert.deepEqual(await peerView(actor, c), gone, c);
  }
  await actor.postStop();
  await node.cleanup();
});

Deno.test("with holdHere, a copy a repair writes here is the node's own file's while it pins it (gone after unpin and gc) and held for the network when it is another node's chunk", async () => {
  const node = await restartableNode({ holdHere: true });
  const actor = await node.start();
  const self = { id: node.selfId };
  const { cid, chunks } = await node.put(actor, pseudoRandomBytes(16 * 1024, 71));
  const lost = chunks.find((c) => node.isHolder(self, c))!;
  // Another node's chunk this node is a holder of, on its other holders only (it was down).
  let foreign: { cid: string; bytes: Uint8Array } | undefined;
  for (let seed = 200; !foreign; seed++) {
    const bytes = pseudoRandomBytes(1024, seed);
    if (node.isHolder(self, cidOf(bytes))) foreign = { cid: cidOf(bytes), bytes };
  }
  for (const p of node.peers) {
    if (node.isHolder(p, foreign.cid)) await p.store.put(foreign.bytes, { replica: true });
  }
  const store = await ChunkStore.open(node.dir);
  assert.equal(await store.delete(lost), true);
  for (const c of [lost, foreign.cid]) assert.deepEqual(await peerView(actor, c), gone, c);

  const report = unwrapReply<StorageAnswers["repair"]>(
    await actor.receive({ type: "repair", cids: [lost, foreign.cid] }),
  );
  assert.deepEqual(report.lost, []);
  for (const c of [lost, foreign.cid]) {
    assert.deepEqual(await peerView(actor, c, false), servedUnproven, c);
  }
  assert.equal(await store.isReplica(lost), false, "its own file's pin keeps it");
  assert.equal(await store.isReplica(foreign.cid), true, "held for the other node");

  assert.equal(unwrapReply(await actor.receive({ type: "unpin", cid })), true);
  unwrapReply<GcResult>(await actor.receive({ type: "gc", graceMs: 0 }));
  assert.deepEqual(await peerView(actor, lost), gone);
  assert.equal(await store.has(lost), false);
  assert.deepEqual(await peerView(actor, foreign.cid), served);
  await actor.postStop();
  await node.cleanup();
});

Deno.test("a prove batch answers null for a CID this node cannot store and proves the rest", async () => {
  const dir = await Deno.makeTempDir();
  const identity = Identity.generate();
  const actor = new StorageActor({ dir, identity });
  await actor.preStart();
  const peer = new StorageActorPeer({ ask: (m) => actor.receive(m) as never }, identity.publicKey);
  const bytes = pseudoRandomBytes(2048, 100);
  const cid = cidOf(bytes);
  await peer.putChunk(cid, bytes);
  // A raw CID over a sha2-512 digest: well-formed, but no store here names it.
  const sha512Cid =
    "bafkrgqhhyivzstcz3hhswshfjgy6ertgmnqeleynhwt4dlfsthi4hn7zgh4uvlsb5xncykzapi3ocd4lzogukir6ksdy6wzrnz6ohnv4aglcs";
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const proofs = await peer.proveChunks(nonce, [cid, sha512Cid]);
  assert.equal(proofs.length, 2);
  assert.deepEqual(proofs[0], await possessionProof(nonce, identity.publicKey, bytes));
  assert.equal(proofs[1], null);
  await actor.postStop();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a manifest listing one chunk hundreds of times is never built in memory: get_bytes is file_too_large, get streams it", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const chunkSize = 256 * 1024;
  const chunk = await store.put(pseudoRandomBytes(chunkSize, 7));
  const repeats = 400; // 100 MiB claimed, one 256 KiB chunk stored
  const manifest = await store.put(encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "public",
    size: repeats * chunkSize,
    chunkSize,
    chunks: Array(repeats).fill(chunk),
  }));
  // A raw manifest is a file only as a store written before UnixFS records it: pinned, and the
  // record made afresh when the store is next opened (storage/legacy_manifests.ts).
  await store.pin(manifest);
  await Deno.remove(join(dir, LEGACY_MANIFESTS_DIR), { recursive: true });
  const actor = new StorageActor({ dir });
  const whole = await actor.receive({ type: "get_bytes", cid: manifest }) as StorageReply<unknown>;
  assert.equal(!whole.ok && whole.error.code, "file_too_large");
  assert.match(!whole.ok ? whole.error.message : "", /storage\.maxInMemoryBytes/);
  // A lower limit of its own: streaming is not limited by it, reading whole is.
  const small = new StorageActor({ dir, maxInMemoryBytes: 2 * chunkSize });
  const range = unwrapReply<ReadableStream<Uint8Array>>(
    await small.receive({ type: "get", cid: manifest, start: 0, end: 3 * chunkSize }),
  );
  assert.equal((await collect(range)).length, 3 * chunkSize, "streaming is not limited");
  const refused = await small.receive({ type: "get_bytes", cid: manifest });
  assert.equal(!(refused as StorageReply<unknown>).ok, true);
  const raw = unwrapReply<Uint8Array>(await small.receive({ type: "get_bytes", cid: chunk }));
  assert.equal(raw.length, chunkSize);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("on start the StorageActor asks the network for its peers without waiting for the answer (the network starts after it), and uses a late answer", async () => {
  const dir = await Deno.makeTempDir();
  const peerDir = await Deno.makeTempDir();
  const peer = new LocalStoragePeer(
    await ChunkStore.open(peerDir, { durable: false }),
    Identity.generate().publicKey,
  );
  const system = new ActorSystem({ name: "storage-start-test" });
  // The network, as on a node's first start: it answers only once storage has started (it
  // starts after storage). A storage start that waited for the answer would wait in vain.
  const storageStarted = Promise.withResolvers<void>();
  let asked = false;
  try {
    await system.spawn({
      name: "node/network",
      factory: () => ({
        receive: async (m: { type: string }) => {
          if (m.type !== "storage_peers") return undefined;
          asked = true;
          await storageStarted.promise;
          return [peer];
        },
      }),
    });
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: 1024,
          network: "node/network",
          replication: { replicas: 1, writeQuorum: 1 },
        }),
    });
    storageStarted.resolve();
    assert.equal(asked, true);
    // The late answer's peer now holds what is put.
    const data = pseudoRandomBytes(3000, 9);
    await eventually(async () => {
      const { cid } = await (await ref.ask<PutHandle>({ type: "put", source: streamOf(data) }))
        .done;
      return await peer.hasChunk(cid);
    }, "the network's peers in use");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(peerDir, { recursive: true });
  }
});

Deno.test("a file written before UnixFS (a raw manifest the store records) reads as its file with storage peers too, and its chunks are held for the network", async () => {
  const dir = await Deno.makeTempDir();
  const peerDir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const parts = [pseudoRandomBytes(1000, 11), pseudoRandomBytes(500, 12)];
  const chunks = [await store.put(parts[0]), await store.put(parts[1])];
  const manifest = await store.put(encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "public",
    size: 1500,
    chunkSize: 1000,
    chunks,
  }));
  await store.pin(manifest);
  // As a store from before the record: it is made when the store is next opened.
  await Deno.remove(join(dir, LEGACY_MANIFESTS_DIR), { recursive: true });
  const peer = new LocalStoragePeer(
    await ChunkStore.open(peerDir, { durable: false }),
    Identity.generate().publicKey,
  );
  const actor = new StorageActor({ dir, replication: { replicas: 1, writeQuorum: 1 } });
  try {
    // Its blocks were replicated to the peer, where a node with peers reads them.
    for (const cid of [manifest, ...chunks]) await peer.putChunk(cid, await store.get(cid));
    unwrapReply(await actor.receive({ type: "set_peers", peers: [peer] }));
    const bytes = unwrapReply<Uint8Array>(
      await actor.receive({ type: "get_bytes", cid: manifest }),
    );
    assert.deepEqual(
      bytes,
      new Uint8Array([...parts[0], ...parts[1]]),
      "the file, not the manifest",
    );
    // Its chunks are in the pin's scope, so a peer may read them.
    for (const chunk of chunks) {
      assert.equal(
        unwrapReply(await actor.receive({ type: "has_chunk", cid: chunk })),
        true,
        chunk,
      );
    }
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(peerDir, { recursive: true });
  }
});
