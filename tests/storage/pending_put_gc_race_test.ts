/**
 * A put records each object in its `pending/<id>` file before it writes it (review s75 F2), so a
 * GC with `--grace-ms 0` in another process never takes a chunk of an upload in flight. The race
 * is driven, not hoped for: the store's `put` is wrapped so that a collector on a second store of
 * the same directory (another process's view) runs right after each object is written, the
 * moment the old order left it unrecorded.
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
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

/** Small chunks, so one file is several leaves and a root: every kind of object races. */
const CHUNK_SIZE = 1024;

Deno.test("gc with grace 0 in another process, run as each chunk lands, loses nothing of an acknowledged file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const collector = await ChunkStore.open(dir, { durable: false });
    const put = store.put.bind(store);
    let passes = 0;
    store.put = async (bytes, options) => {
      const cid = await put(bytes, options);
      await collector.gc({ graceMs: 0 }); // `cli.ts gc --grace-ms 0`, between write and return
      passes++;
      return cid;
    };
    const data = pseudoRandomBytes(5 * CHUNK_SIZE + 17, 7);
    const pending = await PendingPut.begin(store);
    let root: string;
    try {
      const files = new FileStore(pending, { chunkSize: CHUNK_SIZE, concurrency: 1 });
      // Before the fix the root was taken here too, and the pin failed chunk_not_found.
      ({ cid: root } = await files.put(streamOf(data, 999)));
      await pending.commit(root);
    } finally {
      await pending.release();
    }
    assert.ok(passes >= 7, `the collector ran ${passes} times, once per object`);
    // Acknowledged: every leaf must still be there (before the fix: chunk_not_found).
    const reader = await ChunkStore.open(dir, { durable: false });
    assert.deepEqual(await new FileStore(reader).bytes(root), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a put reusing an old copy waits out a GC pass in another process that already read its roots", async () => {
  const dir = await Deno.makeTempDir();
  const lock = Deno.FsFile.prototype.lock;
  const tryLock = Deno.FsFile.prototype.tryLock;
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const collector = await ChunkStore.open(dir, { durable: false });
    const data = pseudoRandomBytes(3 * CHUNK_SIZE, 11);
    // An unrooted copy of the file's first leaf, young enough that the put reuses it, old enough
    // for a pass with grace 0 (`gc --grace-ms 0`) to take it.
    const reused = await store.put(data.subarray(0, CHUNK_SIZE));
    // A pinned file, so the pass calls `isLegacyManifest` between reading roots and removing.
    const other = await collector.put(pseudoRandomBytes(100, 12));
    await collector.pin(other);
    const rootsRead = Promise.withResolvers<void>();
    const resume = Promise.withResolvers<void>();
    const isLegacyManifest = collector.isLegacyManifest.bind(collector);
    collector.isLegacyManifest = async (cid, bytes) => {
      rootsRead.resolve();
      await resume.promise;
      return await isLegacyManifest(cid, bytes);
    };
    const gc = collector.gc({ graceMs: 0 });
    await rootsRead.promise; // the pass holds the store lock and has read the roots
    // The put waits for the lock (the fix) or is stored meanwhile (before it): either ends the
    // pause.
    const waiting = Promise.withResolvers<void>();
    Deno.FsFile.prototype.lock = function (this: Deno.FsFile, exclusive?: boolean) {
      if (!exclusive) waiting.resolve();
      return lock.call(this, exclusive);
    };
    // The bounded wait tries the lock instead (review s75 vcrash F1): a refusal is a wait.
    Deno.FsFile.prototype.tryLock = async function (this: Deno.FsFile, exclusive?: boolean) {
      const free = await tryLock.call(this, exclusive);
      if (!exclusive && !free) waiting.resolve();
      return free;
    };
    const pending = await PendingPut.begin(store);
    let root: string;
    try {
      const files = new FileStore(pending, { chunkSize: CHUNK_SIZE, concurrency: 1 });
      const stored = files.put(streamOf(data, 999));
      await Promise.race([waiting.promise, stored]);
      resume.resolve();
      await gc;
      ({ cid: root } = await stored);
      await pending.commit(root); // after the pass, in either case
    } finally {
      await pending.release();
    }
    Deno.FsFile.prototype.lock = lock;
    Deno.FsFile.prototype.tryLock = tryLock;
    const reader = await ChunkStore.open(dir, { durable: false });
    // Before the fix the reused leaf went with the pass: chunk_not_found on an acknowledged file.
    assert.ok(await reader.has(reused), "the reused leaf is gone");
    assert.deepEqual(await new FileStore(reader).bytes(root), data);
  } finally {
    Deno.FsFile.prototype.lock = lock;
    Deno.FsFile.prototype.tryLock = tryLock;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a recorded CID whose write failed roots nothing and stops no GC", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const collector = await ChunkStore.open(dir, { durable: false });
    const garbage = await collector.put(pseudoRandomBytes(300, 3)); // unrooted: GC takes it
    store.put = () => Promise.reject(new DiskFullError());
    const pending = await PendingPut.begin(store);
    try {
      await assert.rejects(pending.put(pseudoRandomBytes(200, 4)), DiskFullError);
      // The record names the object, which was never written.
      const [record] = await Array.fromAsync(Deno.readDir(join(dir, PENDING_DIR)));
      const text = await Deno.readTextFile(join(dir, PENDING_DIR, record.name));
      assert.equal(text.split("\n").filter(Boolean).length, 1);
      assert.deepEqual(pending.stored, { objects: 0, bytes: 0 });
      const result = await collector.gc({ graceMs: 0 });
      assert.deepEqual(result.unreadableRoots, []);
      assert.equal(result.removed, 1);
      assert.equal(await collector.has(garbage), false);
    } finally {
      await pending.release();
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dir, PENDING_DIR))), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
