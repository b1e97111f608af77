/**
 * Holder repair when the peer set changed between a chunk's write and a departure: a peer that
 * joined after the write ranks among the chunk's holders without having it, so judging placement
 * under the set just before the departure alone leaves chunks below r copies. Five StorageActors
 * in one process, each the others' storage peer through its actor (as `serveStoragePeer` does),
 * plus the placement rule on its own.
 */
import assert from "node:assert/strict";
import type { StorageActor } from "../../actors/storage_actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

const R = 3;

Deno.test("a departure after a join restores r copies of every chunk, though the joiner never had them (StorageActors)", async () => {
  const net = await storageActors(5, { replicas: R, writeQuorum: R });
  const { hexIds, dirs, actors, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    // Node 4 is away while a file of 64 chunks is written over nodes 0–3.
    await setPeers([0, 1, 2, 3]);
    const data = pseudoRandomBytes(64 * 1024, 21);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    // Node 4 joins (no copies move), then node 3 leaves.
    await setPeers([0, 1, 2, 3, 4]);
    await setPeers([0, 1, 2, 4]);
    for (const a of actors) await a.postStop();
    const blocks = await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid);
    const live = [0, 1, 2, 4];
    const after = live.map((i) => ({ id: hexIds[i] }));
    const short: string[] = [];
    for (const block of blocks.map(storageKey)) {
      let copies = 0;
      for (const i of live) {
        if (unwrapReply<boolean>(await actors[i].receive({ type: "has_chunk", cid: block }))) {
          copies++;
        }
      }
      if (copies < R) short.push(block);
      // Every holder under the peer set now has it: the joiner got the copies it holds a place for.
      for (const holder of rankPeers(block, after).slice(0, R)) {
        const i = hexIds.indexOf(holder.id);
        assert.equal(
          unwrapReply<boolean>(await actors[i].receive({ type: "has_chunk", cid: block })),
          true,
          `holder ${i} of ${block}`,
        );
      }
    }
    assert.deepEqual(short, [], `${short.length} of ${blocks.length} blocks below r copies`);
    assert.deepEqual(await collectBytes(actors[4], cid), data, "read back through the joiner");
  } finally {
    await net.remove();
  }
});

async function collectBytes(actor: StorageActor, cid: string): Promise<Uint8Array> {
  return unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid }));
}
