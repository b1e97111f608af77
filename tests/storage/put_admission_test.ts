/**
 * A file put that declares its size (an upload's `Content-Length`) is admitted against the
 * store's floor of free disk (`putMinFreeBytes`) for all of it before anything is written, with
 * the room promised to the puts under way counted taken (review s75 vcrash F2). Judged only chunk
 * by chunk, a burst of uploads that did not all fit interleaved its chunks, filled the room and
 * all failed, and their partial chunks then held the room for the GC grace period. The disk is
 * the store's `freeBytes` test hook: a small disk whose free space is what its files leave.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PENDING_DIR } from "../../storage/gc_roots.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { admissionCost } from "../../storage/_put_admission.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { CHUNK_SIZE, FLOOR, storeOnSmallDisk, upload } from "./_small_disk.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const UPLOAD = 2 * MiB;
const UPLOADS = 32;

Deno.test("a burst of uploads into room for 4 stores 4 and refuses the rest at once with disk_full (507), writing nothing for them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cost = admissionCost(UPLOAD, CHUNK_SIZE);
    // Room above the floor for 4 uploads and half of a fifth.
    const store = await storeOnSmallDisk(dir, FLOOR + 4 * cost + cost / 2);
    const results = await Promise.allSettled(
      Array.from({ length: UPLOADS }, (_, i) => upload(store, pseudoRandomBytes(UPLOAD, 100 + i))),
    );
    const stored = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    // Before: every chunk was judged alone, and the uploads failed together.
    assert.equal(stored.length, 4, `stored ${stored.length} of ${UPLOADS}`);
    for (const result of refused) {
      const error = (result as PromiseRejectedResult).reason;
      assert.ok(error instanceof DiskFullError, String(error));
      assert.equal(httpStatusOf(error), 507);
      assert.match(error.message, /storage\.putMinFreeBytes/);
    }
    // The refused wrote nothing: what the store holds is the 4 files, each read back whole.
    const stats = await store.stats();
    assert.equal(stats.pinCount, 4);
    const files = new FileStore(store);
    for (const result of stored) {
      const cid = (result as PromiseFulfilledResult<string>).value;
      assert.equal((await files.bytes(cid)).length, UPLOAD);
    }
    const perFile = Math.ceil(UPLOAD / CHUNK_SIZE) + 1; // its leaves and its root
    assert.equal(stats.objectCount, 4 * perFile);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dir, PENDING_DIR))), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an admitted put gives back the room it did not write when it ends, and a refused admission promises nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cost = admissionCost(UPLOAD, CHUNK_SIZE);
    let free = FLOOR + cost + cost / 2; // room for one upload, not two
    const store = await ChunkStore.open(dir, {
      durable: false,
      putMinFreeBytes: FLOOR,
      faults: { freeBytes: () => free },
    });
    const first = await PendingPut.begin(store, { declaredBytes: UPLOAD, chunkSize: CHUNK_SIZE });
    try {
      // The first holds its room: a second of the same size is refused before it writes.
      await assert.rejects(
        PendingPut.begin(store, { declaredBytes: UPLOAD, chunkSize: CHUNK_SIZE }),
        DiskFullError,
      );
      // It writes a little of what it declared (a client that went away), and ends.
      await first.put(pseudoRandomBytes(KiB, 1));
    } finally {
      await first.release();
    }
    free -= KiB; // what its one object took
    const second = await PendingPut.begin(store, { declaredBytes: UPLOAD, chunkSize: CHUNK_SIZE });
    await second.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an admitted put's own writes draw on its room: a file that fits exactly above the floor is stored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cost = admissionCost(UPLOAD, CHUNK_SIZE);
    const store = await ChunkStore.open(dir, {
      durable: false,
      putMinFreeBytes: FLOOR,
      // Free space as it was when the put was admitted: the put's writes are its own room.
      faults: { freeBytes: () => FLOOR + cost },
    });
    const data = pseudoRandomBytes(UPLOAD, 7);
    const cid = await upload(store, data);
    assert.deepEqual(await new FileStore(store).bytes(cid), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
