/**
 * Review (stop 45) of replication and repair across peers: each test here failed on the code
 * before its fix.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { LocalStoragePeer, proveFromStore } from "../../storage/storage_peer.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import { flipObjectBit, pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

const R = 3;

Deno.test("a holder that missed a chunk's write is its best survivor after a departure: the chunk still gets back to r copies", async () => {
  const net = await storageActors(5, { replicas: R, writeQuorum: 2 });
  const { ids, hexIds, dirs, actors } = net;
  // Node 1 refuses every chunk while the file is written (full, or slow past the timeout): its
  // place goes to the next-ranked peer, as a put does.
  let refusing = true;
  try {
    for (const a of actors) await a.preStart();
    const peerOf = (i: number) =>
      new StorageActorPeer(
        {
          ask: <R>(m: StorageMessage) => {
            if (i === 1 && refusing && m.type === "put_chunk") {
              return Promise.reject(new Error("node 1 is unreachable"));
            }
            return net.askerOf(i).ask<R>(m);
          },
        },
        ids[i].publicKey,
      );
    const setPeers = (live: number[]) => net.setPeers(live, peerOf);
    await setPeers([0, 1, 2, 3, 4]);
    const data = pseudoRandomBytes(128 * 1024, 45);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    await actors[0].postStop(); // the copies past the quorum land
    refusing = false;
    const blocks = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid)).map(
      storageKey,
    );
    // Node 3 leaves; nodes 0, 1, 2, 4 stay.
    const live = [0, 1, 2, 4];
    const all = [0, 1, 2, 3, 4].map((i) => ({ id: hexIds[i] }));
    const exposed = blocks.filter((block) => {
      const holders = rankPeers(block, all).slice(0, R).map((p) => p.id);
      const survivors = holders.filter((id) => id !== hexIds[3]);
      return holders.includes(hexIds[3]) && survivors[0] === hexIds[1];
    });
    assert.ok(exposed.length > 0, "some block has node 1 as its best survivor");
    await setPeers(live);
    for (const i of live) await actors[i].postStop();
    const short: string[] = [];
    for (const block of blocks) {
      let copies = 0;
      for (const i of live) {
        if (unwrapReply<boolean>(await actors[i].receive({ type: "has_chunk", cid: block }))) {
          copies++;
        }
      }
      if (copies < R) short.push(block);
    }
    assert.deepEqual(
      short,
      [],
      `${short.length} of ${blocks.length} blocks below r copies (${exposed.length} had node 1, ` +
        `which missed their write, as their best survivor)`,
    );
  } finally {
    await net.remove();
  }
});

Deno.test("a put is acknowledged by a holder only once it holds verified bytes: a rotten copy already there is replaced, not counted", async () => {
  const dirs = await Promise.all([0, 1, 2].map(() => Deno.makeTempDir()));
  try {
    const peers = await Promise.all(dirs.map(async (dir) =>
      new LocalStoragePeer(
        await ChunkStore.open(dir, { durable: false }),
        Identity.generate().publicKey,
      )
    ));
    const bytes = pseudoRandomBytes(4096, 46);
    const cid = await new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 }).put(bytes);
    // Holder 0's copy rots on disk; the file is put again (a re-upload, another file sharing it).
    await flipObjectBit(dirs[0], cid, 100);
    const again = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 3 });
    assert.equal(await again.put(bytes), cid);
    await again.flush();
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    for (const [i, peer] of peers.entries()) {
      const [proof] = await proveFromStore(peer.store, peer.publicKey, nonce, [cid]);
      assert.ok(proof !== null, `holder ${i} acknowledged the put: it holds a verified copy`);
    }
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("a StorageActor answers a peer's put_chunk only once a verified copy is here: a rotten replica is replaced", async () => {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({ dir, identity: Identity.generate(), store: { durable: false } });
  try {
    await actor.preStart();
    const bytes = pseudoRandomBytes(4096, 47);
    const key = await cidOfAsync(bytes);
    unwrapReply(await actor.receive({ type: "put_chunk", cid: key, bytes }));
    await actor.postStop();
    await flipObjectBit(dir, key, 7);
    const reopened = new StorageActor({
      dir,
      identity: Identity.generate(),
      store: { durable: false },
    });
    await reopened.preStart();
    unwrapReply(await reopened.receive({ type: "put_chunk", cid: key, bytes }));
    assert.deepEqual(
      unwrapReply<Uint8Array>(await reopened.receive({ type: "get_chunk", cid: key })),
      bytes,
      "the acknowledged copy reads back",
    );
    await reopened.postStop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
