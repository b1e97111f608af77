/**
 * Review (stop 49) of holder repair (`storage/holder_repair.ts`, driven by the StorageActor's
 * `set_peers`) when two holders leave in the same change: every chunk the two held must be back
 * at r copies on its holders under the new peer set, counted on the nodes' stores (the network's
 * view), not on a report.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

const R = 3;

Deno.test("two holders leaving in one change: every chunk is back at r copies on its holders under the new set", async () => {
  const net = await storageActors(6, { replicas: R, writeQuorum: R });
  const { ids, hexIds, dirs, actors, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2, 3, 4, 5]);
    const data = pseudoRandomBytes(64 * 1024, 49);
    const handle = await actors[1].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    const blocks = (await new FileStore(await ChunkStore.open(dirs[1])).blocks(cid)).map(
      storageKey,
    );
    const all = ids.map((_, i) => ({ id: hexIds[i] }));
    // Nodes 4 and 5 leave together; the two held some chunks both (r = 3 of 6).
    const both = blocks.filter((b) => {
      const holders = rankPeers(b, all).slice(0, R).map((p) => p.id);
      return holders.includes(hexIds[4]) && holders.includes(hexIds[5]);
    });
    assert.ok(both.length > 0, "some chunks were held by both leavers");
    const live = [0, 1, 2, 3];
    await setPeers(live);
    for (const a of actors) await a.postStop();
    const after = live.map((i) => ({ id: hexIds[i] }));
    const short: string[] = [];
    for (const block of blocks) {
      for (const holder of rankPeers(block, after).slice(0, R)) {
        const i = hexIds.indexOf(holder.id);
        const held = unwrapReply<boolean>(
          await actors[i].receive({ type: "prove", nonce: new Uint8Array(32), cids: [block] }),
        );
        if (!(held as unknown as (Uint8Array | null)[])[0]) short.push(`${block}@${i}`);
      }
    }
    assert.deepEqual(
      short,
      [],
      `${short.length} holder copies missing (${both.length} chunks both left held)`,
    );
  } finally {
    await net.remove();
  }
});
