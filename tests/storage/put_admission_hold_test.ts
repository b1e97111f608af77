/**
 * An admitted put holds only a bounded part of its declared size ahead of its writes (review s75
 * fix-admission): held whole, one upload declaring all the free room and sending at the minimum
 * rate (1.6 KiB/s) held that room for as long as it took to send (50 GB: about a year), and every
 * other upload was refused `disk_full` meanwhile. Its declared size is still judged whole when it
 * is admitted, and an honest upload larger than the hold that fits is stored. The disk is the
 * store's `freeBytes` test hook: a small disk whose free space is what the store's files leave.
 *
 * @module
 */
import assert from "node:assert/strict";
import { OBJECT_OVERHEAD_BYTES, PACK_OVERHEAD_BYTES } from "../../storage/_chunk_costs.ts";
import type { ChunkStore } from "../../storage/chunk_store.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { admissionCost, ADMIT_AHEAD_BYTES } from "../../storage/_put_admission.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { CHUNK_SIZE, FLOOR, storeOnSmallDisk, upload } from "./_small_disk.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Room above the floor: larger than the hold, so holding it whole is what refused the others. */
const ROOM = 40 * MiB;

/** A store on a disk with `ROOM` above the floor, less what the store's files take. */
async function storeWithRoom(dir: string): Promise<ChunkStore> {
  return await storeOnSmallDisk(dir, FLOOR + ROOM);
}

/** The largest size (to a KiB) whose admission cost is at most `room`. */
function largestFitting(room: number): number {
  let size = room;
  while (admissionCost(size, CHUNK_SIZE) > room) size -= KiB;
  return size;
}

Deno.test("an upload declaring all the free room and trickling does not hold it: another client's upload is admitted and stored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await storeWithRoom(dir);
    const slow = await PendingPut.begin(store, {
      declaredBytes: largestFitting(ROOM),
      chunkSize: CHUNK_SIZE,
    });
    try {
      // What one second at the minimum upload rate brings, then nothing more for now.
      await slow.put(pseudoRandomBytes(1640, 1));
      // Before: the slow upload held all its declared room, and this one was refused disk_full.
      const data = pseudoRandomBytes(2 * MiB, 2);
      const cid = await upload(store, data);
      assert.deepEqual(await new FileStore(store).bytes(cid), data);
    } finally {
      await slow.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a declared size is still judged whole when admitted: one that does not fit is refused at once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await storeWithRoom(dir);
    await assert.rejects(
      PendingPut.begin(store, { declaredBytes: ROOM + MiB, chunkSize: CHUNK_SIZE }),
      DiskFullError,
    );
    // Nothing was held by the refusal: the whole room is still admitted.
    const fits = await PendingPut.begin(store, {
      declaredBytes: largestFitting(ROOM),
      chunkSize: CHUNK_SIZE,
    });
    await fits.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an honest upload larger than its hold that fits the room is stored whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await storeWithRoom(dir);
    // Most of the room: several holds' worth, so its later chunks are promised as it writes.
    const data = pseudoRandomBytes(largestFitting(ROOM) - 2 * MiB, 3);
    const cid = await upload(store, data);
    assert.deepEqual(await new FileStore(store).bytes(cid), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a large put's hold moves ahead with its writes, never past ADMIT_AHEAD_BYTES nor its declared size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await storeWithRoom(dir);
    const size = 3 * ADMIT_AHEAD_BYTES;
    const admission = await store.admitPut(size, CHUNK_SIZE);
    try {
      assert.equal(admission.left, ADMIT_AHEAD_BYTES);
      // Every chunk it writes is promised again ahead of it while its declared rest lasts.
      for (let i = 0; i < 8; i++) {
        await store.put(pseudoRandomBytes(CHUNK_SIZE, 10 + i), { admission });
        assert.equal(admission.left, ADMIT_AHEAD_BYTES, `after chunk ${i}`);
      }
      // Written to its end, it is promised no more than it declared: nothing is left over.
      let drawn = 8;
      // Bounded: a hold promised past its declared size would otherwise never run out.
      const most = 2 * Math.ceil(size / CHUNK_SIZE);
      while ((admission.wanted > 0 || admission.left > 0) && drawn < most) {
        await store.put(pseudoRandomBytes(CHUNK_SIZE, 100 + drawn++), { admission });
      }
      // Each write drew what the store charges it: the promises added up to the declared cost.
      const perWrite = CHUNK_SIZE + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
      assert.equal(drawn, Math.ceil(admissionCost(size, CHUNK_SIZE) / perWrite));
    } finally {
      admission.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
