/**
 * Files put with `local: true` ("this node's store only, never on storage peers": a trainer's
 * private shard) stay on the node however they are read, and whatever happens to the peer set.
 * In-memory peers (a `ChunkStore` each) that count what they are asked.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer, storageGateway } from "../../actors/storage_actor_peer.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { chunksToRepair } from "../../storage/holder_repair.ts";
import type { FileInfo } from "../../storage/file_store.ts";
import type { PeerCallOptions, StoragePeer } from "../../storage/storage_peer.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { removePeers, trackedPeer, type TrackedStoragePeer } from "./_tracked_peer.ts";

/** A peer over its own store that counts every call made to it. */
class CountingPeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly calls = { put: 0, get: 0, has: 0, prove: 0 };
  constructor(readonly inner: TrackedStoragePeer) {
    this.id = inner.id;
    this.publicKey = inner.publicKey;
  }
  putChunk(cid: string, bytes: Uint8Array, o?: PeerCallOptions & { repair?: boolean }) {
    this.calls.put++;
    return this.inner.putChunk(cid, bytes, o);
  }
  getChunk(cid: string, o?: PeerCallOptions) {
    this.calls.get++;
    return this.inner.getChunk(cid, o);
  }
  hasChunk(cid: string) {
    this.calls.has++;
    return this.inner.hasChunk(cid);
  }
  proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    this.calls.prove++;
    return this.inner.proveChunks(nonce, cids);
  }
  async objects(): Promise<string[]> {
    return await Array.fromAsync(this.inner.store.list());
  }
  asked(): number {
    return this.calls.put + this.calls.get + this.calls.has + this.calls.prove;
  }
}

/**
 * `n` counting peers, each over a tracked store: a read asks two holders and cancels the slower,
 * which goes on in its store ({@link shutdown} waits for it).
 */
async function counting(n: number): Promise<{ peers: CountingPeer[] }> {
  const peers: CountingPeer[] = [];
  for (let i = 0; i < n; i++) peers.push(new CountingPeer(await trackedPeer()));
  return { peers };
}

/**
 * Stop the node (its background copies, read repairs and calls on its own copy end), wait out the
 * calls still running in the peers' stores, then remove every directory.
 */
async function shutdown(actor: StorageActor, dir: string, peers: CountingPeer[]): Promise<void> {
  await actor.postStop();
  await removePeers(peers.map((p) => p.inner));
  await Deno.remove(dir, { recursive: true });
}

/** A node that holds copies itself too (`holdHere`), as a running node does. */
async function node(
  peers: StoragePeer[],
  chunkSize = 1024,
): Promise<{ actor: StorageActor; dir: string; id: string }> {
  const dir = await Deno.makeTempDir();
  const identity = Identity.generate();
  const actor = new StorageActor({
    dir,
    chunkSize,
    identity,
    holdHere: true,
    peers,
    store: { durable: false },
    replication: { replicas: 3, writeQuorum: 2 },
  });
  await actor.preStart();
  return { actor, dir, id: toHex(identity.publicKey) };
}

async function put(
  actor: StorageActor,
  bytes: Uint8Array,
  options: { local?: boolean } = {},
): Promise<string> {
  const handle = await actor.receive({ type: "put", source: streamOf(bytes), ...options });
  return (await (handle as PutHandle).done).cid;
}

Deno.test("a local file is read from this node's store only: get, stat, get_bytes, get_block, export_car and the gateway neither ask the peers nor copy it to them", async () => {
  const { peers } = await counting(2);
  const { actor, dir } = await node(peers);
  try {
    const secret = pseudoRandomBytes(8 * 1024, 11);
    const cid = await put(actor, secret, { local: true });
    for (const p of peers) assert.deepEqual(await p.objects(), [], "the put stayed here");
    const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
    assert.equal(info.size, secret.length);
    const stream = unwrapReply<ReadableStream<Uint8Array>>(
      await actor.receive({ type: "get", cid }),
    );
    assert.deepEqual(await collect(stream), secret);
    const range = unwrapReply<ReadableStream<Uint8Array>>(
      await actor.receive({ type: "get", cid, start: 1000, end: 5000 }),
    );
    assert.deepEqual(await collect(range), secret.slice(1000, 5000));
    assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), secret);
    const chunk = info.chunks[3];
    const block = unwrapReply<Uint8Array>(await actor.receive({ type: "get_block", cid: chunk }));
    assert.deepEqual(block, secret.slice(3 * 1024, 4 * 1024));
    const car = unwrapReply<ReadableStream<Uint8Array>>(
      await actor.receive({ type: "export_car", cid }),
    );
    assert.ok((await collect(car)).length > secret.length);
    // The HTTP gateway's port goes through the same messages.
    const gateway = storageGateway({ ask: (m) => actor.receive(m) as never });
    assert.deepEqual(
      await collect(await gateway.read(cid, { start: 0, end: secret.length })),
      secret,
    );
    assert.equal((await gateway.stat(cid)).size, secret.length);
    assert.deepEqual(await gateway.block(chunk), block);
    // Audits and explicit repairs take their reference copies the same way.
    unwrapReply(await actor.receive({ type: "repair", cids: [cid, ...info.chunks] }));
    await actor.postStop(); // every background write (read repair) has landed
    for (const p of peers) {
      assert.deepEqual(await p.objects(), [], "no copy of the local file reached a peer");
      assert.equal(p.asked(), 0, "no peer was even asked for it");
    }
  } finally {
    await shutdown(actor, dir, peers);
  }
});

Deno.test("pinning a local file again, and a gc beside peers, keep it local (a UnixFS file with inner nodes)", async () => {
  const { peers } = await counting(2);
  const { actor, dir } = await node(peers, 256);
  try {
    const secret = pseudoRandomBytes(180 * 256, 12); // 180 leaves: the root links inner nodes
    const cid = await put(actor, secret, { local: true });
    unwrapReply(await actor.receive({ type: "pin", cid }));
    unwrapReply(await actor.receive({ type: "gc" }));
    const [info] = unwrapReply<FileInfo[]>(await actor.receive({ type: "list" }));
    assert.equal(info.cid, cid);
    assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), secret);
    await actor.postStop();
    for (const p of peers) {
      assert.deepEqual(await p.objects(), []);
      assert.equal(p.asked(), 0);
    }
    // A repair of every pin leaves it out too, as before.
    unwrapReply(await actor.receive({ type: "repair" }));
    for (const p of peers) assert.deepEqual(await p.objects(), []);
  } finally {
    await shutdown(actor, dir, peers);
  }
});

Deno.test("a file put for the network is still read through the peers, with read repair", async () => {
  const { peers } = await counting(2);
  const { actor, dir } = await node(peers);
  try {
    const bytes = pseudoRandomBytes(4 * 1024, 13);
    const cid = await put(actor, bytes);
    await actor.postStop();
    const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
    // Both peers lose a chunk; a read through the node asks them and gives it back to those it
    // asked (read repair): the peers are used as before.
    const chunk = storageKey(info.chunks[0]);
    for (const p of peers) assert.ok(await p.inner.store.delete(chunk));
    const asked = peers.map((p) => p.calls.get);
    assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), bytes);
    await actor.postStop();
    assert.ok(peers.some((p, i) => p.calls.get > asked[i]), "the peers were read");
    const back = await Promise.all(peers.map((p) => p.inner.store.has(chunk)));
    assert.ok(back.includes(true), "a peer that answered chunk_not_found got the chunk back");
  } finally {
    await shutdown(actor, dir, peers);
  }
});

Deno.test("when a storage peer leaves, holder repair restores the network's files and never sends a local file out", async () => {
  const { peers } = await counting(3);
  const { actor, dir, id } = await node(peers);
  try {
    // 64 chunks each: this node is the best surviving holder of about a quarter of them.
    const shared = pseudoRandomBytes(64 * 1024, 14);
    const sharedCid = await put(actor, shared);
    const secret = pseudoRandomBytes(64 * 1024, 15);
    const secretCid = await put(actor, secret, { local: true });
    await actor.postStop();
    const secretBlocks = unwrapReply<FileInfo>(
      await actor.receive({ type: "stat", cid: secretCid }),
    )
      .chunks.map(storageKey).concat(storageKey(secretCid));
    for (const p of peers) {
      for (const key of await p.objects()) assert.ok(!secretBlocks.includes(key));
    }
    // An unrelated storage peer leaves: the copies it held of the network's file, of which this
    // node is the best-ranked surviving holder, are made again (the peers here repair nothing).
    const staying = peers.slice(0, 2);
    unwrapReply(await actor.receive({ type: "set_peers", peers: staying }));
    await actor.repairIdle();
    await actor.postStop();
    const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid: sharedCid }));
    const before = [{ id }, ...peers];
    const after = [{ id }, ...staying];
    const mine = chunksToRepair([sharedCid, ...info.chunks].map(storageKey), before, after, id, 3);
    assert.ok(mine.length > 0, "this node repairs some of the network's file");
    for (const block of mine) {
      for (const p of staying) assert.ok(await p.inner.store.has(block), "r copies again");
    }
    for (const p of staying) {
      for (const key of await p.objects()) {
        assert.ok(!secretBlocks.includes(key), "a block of the local file reached a peer");
      }
    }
    assert.deepEqual(
      unwrapReply(await actor.receive({ type: "get_bytes", cid: secretCid })),
      secret,
    );
  } finally {
    await shutdown(actor, dir, peers);
  }
});

Deno.test("a peer is never served a local file: get_chunk is chunk_not_found, has_chunk false, prove null; what the node holds for the network is served as before", async () => {
  const { peers } = await counting(2);
  const { actor, dir } = await node(peers);
  try {
    const secret = pseudoRandomBytes(3 * 1024, 16);
    const secretCid = await put(actor, secret, { local: true });
    const shared = pseudoRandomBytes(3 * 1024, 17);
    const sharedCid = await put(actor, shared);
    await actor.postStop();
    // What `serveStoragePeer` hands a remote peer's messages to.
    const asPeer = new StorageActorPeer(
      { ask: (m) => actor.receive(m) as never },
      Identity.generate().publicKey,
    );
    const secretInfo = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid: secretCid }));
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    for (const block of [secretCid, ...secretInfo.chunks]) {
      await assert.rejects(
        asPeer.getChunk(block),
        (e: { code: string }) => e.code === "chunk_not_found",
      );
      assert.equal(await asPeer.hasChunk(block), false);
      assert.deepEqual(await asPeer.proveChunks(nonce, [block]), [null]);
    }
    // The node's own reads still find it.
    assert.deepEqual(
      unwrapReply(await actor.receive({ type: "get_bytes", cid: secretCid })),
      secret,
    );
    // The file it put for the network is served: its pinned root and inner data, and the
    // chunks it holds as one of their holders.
    const sharedInfo = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid: sharedCid }));
    assert.deepEqual(
      await asPeer.getChunk(sharedCid),
      await actor.receive({
        type: "get_block",
        cid: sharedCid,
      }).then(unwrapReply),
    );
    const held = [];
    for (const c of sharedInfo.chunks) if (await asPeer.hasChunk(c)) held.push(c);
    assert.ok(held.length > 0);
    const proofs = await asPeer.proveChunks(nonce, [held[0], secretInfo.chunks[0]]);
    assert.ok(proofs[0] !== null && proofs[1] === null, "one proof each, in order");
    // A chunk a peer gives the node is the network's, even if a local file has it too.
    const same = secret.slice(0, 1024);
    await asPeer.putChunk(secretInfo.chunks[0], same);
    assert.equal(await asPeer.hasChunk(secretInfo.chunks[0]), true);
    assert.deepEqual(await asPeer.getChunk(secretInfo.chunks[0]), same);
  } finally {
    await shutdown(actor, dir, peers);
  }
});

Deno.test("a local pin's label is written whole or not at all, one that does not parse is taken as local, and a label's leftover temporary file is not a pin", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const cid = await store.put(pseudoRandomBytes(2000, 77));
    await store.pin(cid, { local: true });
    assert.deepEqual(await store.pinLabel(cid), { local: true });
    const pinsDir = `${dir}/pins`;
    // The label went through a temporary file renamed into place: nothing else is left there.
    assert.deepEqual([...Deno.readDirSync(pinsDir)].map((e) => e.name), [cid]);
    // A damaged label (what a crash mid-write left before) may have said local: kept local.
    Deno.writeTextFileSync(`${pinsDir}/${cid}`, '{"local":tr');
    assert.deepEqual(await store.pinLabel(cid), { local: true });
    // A temporary file a crash left behind is not a pin (GC would take it for an unreadable
    // root and remove nothing).
    Deno.writeTextFileSync(`${pinsDir}/${cid}.0000.tmp`, '{"local":true}');
    assert.deepEqual(await store.pins(), [cid]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
