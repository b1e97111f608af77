/**
 * A join's catch-up (`HolderRepair.catchUp` with the holders that joined, review s79 F5) checks
 * and copies to those holders only: a holder that was here all along, even one the given-chunks
 * log says lacks a chunk, is not asked again by every join of another. ReplicatedStores over
 * stores in one process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { GivenChunks } from "../../storage/given_chunks.ts";
import { type CatchUpProgress, HolderRepair } from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { removePeers, trackedPeer } from "./_tracked_peer.ts";

/** Chunks of this node's file, which no holder was given. */
const CHUNKS = 40;

Deno.test("a catch-up for the holders that joined copies to them only, and says how many blocks it walked", async () => {
  const self = await trackedPeer();
  const stayed = await trackedPeer();
  const joined = await trackedPeer();
  const cids: string[] = [];
  for (let i = 0; i < CHUNKS; i++) cids.push(await self.store.put(pseudoRandomBytes(512, 900 + i)));
  const given = await GivenChunks.open(join(self.store.dir, "given-chunks.log"), {
    durable: false,
  });
  const store = new ReplicatedStore([self, stayed, joined], { replicas: 3, given });
  const reports: CatchUpProgress[] = [];
  const repair = new HolderRepair({
    selfId: self.id,
    held: async function* () {},
    read: (cid) => self.store.get(cid),
    catchUp: {
      blocks: async function* () {
        yield* cids;
      },
      wasGiven: (peerId, cid) => given.has(peerId, cid),
    },
    onCatchUp: (progress) => reports.push(progress),
  });
  try {
    await repair.catchUp(store, null, "1 holder(s) joined", undefined, [joined.id]);
    let atJoined = 0;
    let atStayed = 0;
    for (const cid of cids) {
      if (await joined.store.has(cid)) atJoined++;
      if (await stayed.store.has(cid)) atStayed++;
    }
    assert.equal(atJoined, CHUNKS, "the holder that joined got every chunk");
    assert.equal(atStayed, 0, "the holder that stayed was not given any");
    const done = reports.at(-1)!;
    assert.deepEqual(
      { done: done.done, walked: done.walked, short: done.short, repaired: done.repaired },
      { done: true, walked: CHUNKS, short: CHUNKS, repaired: CHUNKS },
    );

    // Nothing short for it now: the catch-up still reports the blocks it walked.
    reports.length = 0;
    await repair.catchUp(store, null, "1 holder(s) came back", undefined, [joined.id]);
    assert.deepEqual(
      reports.map((r) => ({ done: r.done, walked: r.walked, short: r.short })),
      [{ done: true, walked: CHUNKS, short: 0 }],
    );
  } finally {
    repair.stop();
    await repair.idle();
    await store.flush();
    await given.close();
    await removePeers([self, stayed, joined]);
  }
});
