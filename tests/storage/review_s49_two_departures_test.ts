/**
 * Review (stop 49) of holder repair (`storage/holder_repair.ts`, driven by the StorageActor's
 * `set_peers`) when two holders leave in the same change: every chunk the two held must be back
 * at r copies on its holders under the new peer set, counted on the nodes' stores (the network's
 * view), not on a report.
 *
 * @module
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
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

const R = 3;

Deno.test("two holders leaving in one change: every chunk is back at r copies on its holders under the new set", async () => {
  const ids = Array.from({ length: 6 }, () => Identity.generate());
  const dirs = await Promise.all(ids.map(() => Deno.makeTempDir({ prefix: "review_s49_" })));
  const actors = ids.map((identity, i) =>
    new StorageActor({
      dir: dirs[i],
      chunkSize: 1024,
      identity,
      holdHere: true,
      store: { durable: false },
      replication: { replicas: R, writeQuorum: R },
    })
  );
  try {
    for (const a of actors) await a.preStart();
    const peerOf = (i: number) =>
      new StorageActorPeer(
        { ask: (m: StorageMessage) => actors[i].receive(m) as never },
        ids[i].publicKey,
      );
    const hexIds = ids.map((identity) => toHex(identity.publicKey));
    const setPeers = async (live: number[]) => {
      for (const i of live) {
        const peers = live.filter((j) => j !== i).map(peerOf);
        unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
      }
      for (const i of live) await actors[i].repairIdle();
    };
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
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
