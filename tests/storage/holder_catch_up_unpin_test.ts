/**
 * A catch-up copying a file that is unpinned meanwhile (review s79 F6): the unpin makes it scan
 * again before its next slice, and the scan, which skips a root no longer pinned, leaves the rest
 * of that file uncopied. ReplicatedStores over stores in one process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { GivenChunks } from "../../storage/given_chunks.ts";
import { type CatchUpProgress, HolderRepair } from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { removePeers, trackedPeer } from "./_tracked_peer.ts";

/** Chunks of the file: several of the catch-up's slices. */
const CHUNKS = 1200;

Deno.test("a file unpinned while its catch-up copies it is not copied past the slice under way", async () => {
  const self = await trackedPeer();
  const holder = await trackedPeer();
  const cids: string[] = [];
  for (let i = 0; i < CHUNKS; i++) cids.push(await self.store.put(pseudoRandomBytes(64, 1300 + i)));
  const given = await GivenChunks.open(join(self.store.dir, "given-chunks.log"), {
    durable: false,
  });
  let unpins = 0;
  let copies = 0;
  // The file is unpinned as its first copy lands.
  const link: StoragePeer = {
    id: holder.id,
    publicKey: holder.publicKey,
    putChunk: async (cid, bytes, options) => {
      if (copies++ === 0) unpins++;
      await holder.putChunk(cid, bytes, options);
    },
    getChunk: (cid, options) => holder.getChunk(cid, options),
    hasChunk: (cid) => holder.hasChunk(cid),
    proveChunks: (nonce, keys) => holder.proveChunks(nonce, keys),
  };
  const store = new ReplicatedStore([self, link], { replicas: 2, given });
  const reports: CatchUpProgress[] = [];
  const repair = new HolderRepair({
    selfId: self.id,
    held: async function* () {},
    read: (cid) => self.store.get(cid),
    catchUp: {
      // The file's blocks while it is pinned, none after (as `_storage_catch_up.ts` skips it).
      blocks: async function* () {
        if (unpins === 0) yield* cids;
      },
      wasGiven: (peerId, cid) => given.has(peerId, cid),
      unpins: () => unpins,
    },
    onCatchUp: (progress) => reports.push(progress),
  });
  try {
    await repair.catchUp(store, ["a-root"], "1 file(s) pinned here by another process");
    let held = 0;
    for (const cid of cids) if (await holder.store.has(cid)) held++;
    assert.ok(held > 0, "the slice under way at the unpin was copied");
    assert.ok(held < CHUNKS / 2, `the rest was not copied (${held} of ${CHUNKS})`);
    assert.equal(held, copies, "every copy made is one the holder kept");
    const done = reports.at(-1)!;
    assert.deepEqual({ done: done.done, walked: done.walked }, { done: true, walked: CHUNKS });
    assert.equal(repair.short, 0, "nothing counted short after it");
  } finally {
    repair.stop();
    await repair.idle();
    await store.flush();
    await given.close();
    await removePeers([self, holder]);
  }
});
