/**
 * A file its owner unpinned and collected stays off the owner's disk (review s82 repair, F2).
 * Before, the next departure brought it back for good: the survivors still list the copies the
 * owner's put gave them, rank the owner among a chunk's holders, find it without the chunk and send
 * it one, which `put_chunk` kept as a replica (never released). Now the owner refuses a peer's
 * repair copy of a block its unpin let go, under `replica_quota_exceeded`, and the copy goes to the
 * next peer; another owner's fresh write of the block is taken (review s82 vstore2, F1), and a
 * `put_chunk` reads no pins while nothing is let go (F2).
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PINS_DIR } from "../../storage/gc_roots.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { storageActors } from "../storage/_storage_actors.ts";

const REPLICAS = 3;

Deno.test("a file its owner unpinned and collected does not come back to the owner at the next departure", async () => {
  const net = await storageActors(5, { replicas: REPLICAS, writeQuorum: REPLICAS });
  const { dirs, actors, hexIds, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2, 3, 4]);
    const data = pseudoRandomBytes(48 * 1024, 33);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    const blocks = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid)).map(
      storageKey,
    );
    /** How many of the file's blocks node `i` holds. */
    const heldBy = async (i: number) => {
      const store = await ChunkStore.open(dirs[i]);
      let n = 0;
      for (const b of blocks) if (await store.has(b)) n++;
      return n;
    };
    assert.ok(await heldBy(0) > 0, "the owner holds its copies while the file is pinned");
    unwrapReply(await actors[0].receive({ type: "unpin", cid }));
    unwrapReply(await actors[0].receive({ type: "gc", graceMs: -1 }));
    for (const a of actors) await a.postStop();
    assert.equal(await heldBy(0), 0, "collected");

    await setPeers([0, 1, 2, 3]); // node 4 leaves
    for (const a of actors) await a.postStop();
    assert.equal(await heldBy(0), 0, "the departure's repair put nothing back on the owner");
    const owner = await ChunkStore.open(dirs[0]);
    assert.equal((await owner.stats()).replicaCount, 0, "and holds nothing for peers");

    // The copies the owner refused went to the next peer: every block node 4 held and the owner
    // now ranks for is on all three other survivors, and no survivor counts the owner as a copy
    // (an audit of it for the file is never_given, not missing_chunk).
    const live = [0, 1, 2, 3].map((i) => ({ id: hexIds[i] }));
    const all = [...live, { id: hexIds[4] }];
    let handedOn = 0;
    for (const b of blocks) {
      const before = rankPeers(b, all).slice(0, REPLICAS).map((p) => p.id);
      const after = rankPeers(b, live).slice(0, REPLICAS).map((p) => p.id);
      if (!before.includes(hexIds[4]) || !after.includes(hexIds[0])) continue;
      handedOn++;
      for (const i of [1, 2, 3]) {
        const store = await ChunkStore.open(dirs[i]);
        assert.ok(await store.has(b), `block ${b} handed on to node ${i}`);
      }
    }
    assert.ok(handedOn > 0, "the departure had blocks to hand on past the owner");
    for (const i of [1, 2, 3]) {
      const given = await GivenChunks.open(`${dirs[i]}/${GIVEN_CHUNKS_FILE}`);
      for (const b of blocks) assert.equal(given.has(hexIds[0], b), false, `node ${i}, ${b}`);
      await given.close();
    }
  } finally {
    await net.remove();
  }
});

/** A started node in a new directory, and the hex key of a peer that gives it copies. */
async function oneNode() {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    identity: Identity.fromSecretKey(new Uint8Array(32).fill(1)),
    store: { durable: false },
  });
  await actor.preStart();
  const giver = toHex(Identity.fromSecretKey(new Uint8Array(32).fill(9)).publicKey);
  return { dir, actor, giver };
}

Deno.test("a peer's copy of a block the owner's unpin let go is refused until the owner puts it again; one held for a peer is kept", async () => {
  const { dir, actor, giver } = await oneNode();
  const data = pseudoRandomBytes(8 * 1024, 7);
  const putFile = async () => {
    const handle = await actor.receive({ type: "put", source: ReadableStream.from([data]) });
    return (await (handle as PutHandle).done).cid;
  };
  try {
    const cid = await putFile();
    const store = await ChunkStore.open(dir);
    const [first, shared] = (await new FileStore(store).blocks(cid)).slice(1);
    const bytesOf = async (c: string) => await store.get(c);
    const firstBytes = await bytesOf(first), sharedBytes = await bytesOf(shared);
    // A peer gave this node `shared` before the unpin: it is held for that peer.
    unwrapReply(
      await actor.receive({ type: "put_chunk", cid: shared, bytes: sharedBytes, from: giver }),
    );
    unwrapReply(await actor.receive({ type: "unpin", cid }));
    unwrapReply(await actor.receive({ type: "gc", graceMs: -1 }));

    const refused = await actor.receive({
      type: "put_chunk",
      cid: first,
      bytes: firstBytes,
      repair: true,
      from: giver,
    });
    // The code every writer and repairer hands on to the next peer for.
    assert.throws(() => unwrapReply(refused), { code: "replica_quota_exceeded" });
    const after = await ChunkStore.open(dir);
    assert.equal(await after.has(first), false, "nothing written");
    assert.equal(await after.isReplica(first), false);
    assert.equal(after.heldFor(giver) > 0, true, "the peer's own copy is still held for it");
    unwrapReply(
      await actor.receive({ type: "put_chunk", cid: shared, bytes: sharedBytes, from: giver }),
    );
    assert.equal(await after.has(shared), true, "the peer's copy stays");

    assert.equal(await putFile(), cid, "the owner puts the file again");
    unwrapReply(
      await actor.receive({ type: "put_chunk", cid: first, bytes: firstBytes, from: giver }),
    );
    assert.equal(await (await ChunkStore.open(dir)).isReplica(first), true, "taken as before");
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a pin another process deleted lets its blocks go as the node's own unpin does", async () => {
  const { dir, actor, giver } = await oneNode();
  try {
    const source = ReadableStream.from([pseudoRandomBytes(8 * 1024, 8)]);
    const { cid } = await (await actor.receive({ type: "put", source }) as PutHandle).done;
    const other = await ChunkStore.open(dir); // another process's view of the store
    const leaf = (await new FileStore(other).blocks(cid)).at(-1)!;
    const bytes = await other.get(leaf);
    assert.equal(unwrapReply(await actor.receive({ type: "has_chunk", cid: leaf })), true);
    assert.equal(await other.unpin(cid), true); // `rm store/pins/<cid>`, or `cli.ts` beside the node
    // Its own stamp, whatever the clock's grain: the node sees the pins directory changed.
    const pins = `${dir}/${PINS_DIR}`;
    await Deno.utime(pins, new Date(), new Date(Date.now() + 60_000));
    // Noticed at the next read of the pins (a `put_chunk` reads none while nothing is let go).
    assert.equal(unwrapReply(await actor.receive({ type: "has_chunk", cid: leaf })), false);
    await assert.rejects(
      async () =>
        unwrapReply(
          await actor.receive({ type: "put_chunk", cid: leaf, bytes, repair: true, from: giver }),
        ),
      { code: "replica_quota_exceeded" },
    );
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("another owner's fresh write of blocks shared with a file unpinned here is taken: r copies with no next peer", async () => {
  // Exactly r nodes: a refused copy has no next peer to go to (review s82 vstore2, F1).
  const net = await storageActors(3, { replicas: REPLICAS, writeQuorum: 2 });
  const { dirs, actors, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]);
    const put = async (i: number, bytes: Uint8Array) => {
      const handle = await actors[i].receive({ type: "put", source: ReadableStream.from([bytes]) });
      return (await (handle as PutHandle).done).cid;
    };
    const a = pseudoRandomBytes(8 * 1024, 41);
    const cidA = await put(0, a);
    for (const x of actors) await x.postStop();
    unwrapReply(await actors[0].receive({ type: "unpin", cid: cidA }));
    unwrapReply(await actors[0].receive({ type: "gc", graceMs: -1 }));
    // Node 1's own file B starts with A's bytes: its first leaves are A's (a fresh put).
    const b = new Uint8Array(12 * 1024);
    b.set(a);
    b.set(pseudoRandomBytes(4 * 1024, 42), 8 * 1024);
    const cidB = await put(1, b);
    for (const x of actors) await x.postStop();
    const blocksA = new Set(
      (await new FileStore(await ChunkStore.open(dirs[1])).blocks(cidA)).map(storageKey),
    );
    const blocksB = (await new FileStore(await ChunkStore.open(dirs[1])).blocks(cidB)).map(
      storageKey,
    );
    const shared = blocksB.filter((key) => blocksA.has(key));
    assert.ok(shared.length > 0, "B shares blocks with A");
    const owner = await ChunkStore.open(dirs[0]);
    for (const key of blocksB) {
      let copies = 0;
      for (const d of dirs) if (await (await ChunkStore.open(d)).has(key)) copies++;
      assert.equal(copies, REPLICAS, `block ${key} of B`);
    }
    for (const key of shared) {
      assert.equal(await owner.isReplica(key), true, `node 0 holds ${key} for node 1`);
    }
    // Node 1's repair finds nothing short.
    const report = unwrapReply(await actors[1].receive({ type: "repair" })) as {
      failedChecks: number;
    };
    assert.equal(report.failedChecks, 0);
  } finally {
    await net.remove();
  }
});

Deno.test("a peer's put_chunk reads no pins while nothing was let go here", async () => {
  const { dir, actor, giver } = await oneNode();
  const proto = ChunkStore.prototype;
  const { pinsStamp, pins } = proto;
  const counts = { stamp: 0, pins: 0 };
  try {
    const source = ReadableStream.from([pseudoRandomBytes(8 * 1024, 9)]);
    const { cid } = await (await actor.receive({ type: "put", source }) as PutHandle).done;
    unwrapReply(await actor.receive({ type: "has_chunk", cid })); // the pins read once
    const data = pseudoRandomBytes(20 * 1024, 10);
    const chunks = [];
    for (let i = 0; i < 20; i++) {
      const bytes = data.slice(i * 1024, (i + 1) * 1024);
      chunks.push({ cid: await cidOf(bytes), bytes });
    }
    proto.pinsStamp = function (this: ChunkStore) {
      counts.stamp++;
      return pinsStamp.call(this);
    };
    proto.pins = function (this: ChunkStore) {
      counts.pins++;
      return pins.call(this);
    };
    for (const [i, chunk] of chunks.entries()) {
      // Another process writes the pins directory now and then (`cli.ts put` beside the node).
      if (i % 5 === 0) {
        await Deno.utime(`${dir}/${PINS_DIR}`, new Date(), new Date(Date.now() + 60_000 + i));
      }
      unwrapReply(
        await actor.receive({ type: "put_chunk", ...chunk, repair: i % 2 === 0, from: giver }),
      );
    }
    assert.deepEqual(counts, { stamp: 0, pins: 0 });
    const after = await ChunkStore.open(dir);
    for (const chunk of chunks) assert.equal(await after.isReplica(chunk.cid), true, "taken");
  } finally {
    proto.pinsStamp = pinsStamp;
    proto.pins = pins;
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});
