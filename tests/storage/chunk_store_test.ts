import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import {
  ChunkNotFoundError,
  CorruptChunkError,
  type DiskFullError,
  QuotaExceededError,
} from "../../storage/errors.ts";
import {
  chunkPath,
  filesUnder,
  flipBit,
  pseudoRandomBytes,
  streamOf,
  tempFilesUnder,
} from "./_helpers.ts";

Deno.test("chunk store names objects by their CIDv1 and returns the same bytes", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const bytes = pseudoRandomBytes(1000);
  const cid = await store.put(bytes);
  assert.equal(cid, cidOf(bytes));
  assert.match(cid, /^bafkrei/);
  assert.deepEqual(await store.get(cid), bytes);
  assert.equal(await store.has(cid), true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a bit flip on disk is a typed corrupt_chunk error, never data, and is quarantined", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const cid = await store.put(pseudoRandomBytes(5000));
  await flipBit(chunkPath(dir, cid), 1234);
  await assert.rejects(store.get(cid), (e: CorruptChunkError) => e.code === "corrupt_chunk");
  // Moved aside, so the next read says "not found" and a repair can write a good copy.
  await assert.rejects(store.get(cid), ChunkNotFoundError);
  assert.equal((await filesUnder(`${dir}/quarantine`)).length, 1);
  await store.put(pseudoRandomBytes(5000));
  assert.equal((await store.get(cid)).length, 5000);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a truncated chunk is detected as corrupt", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const cid = await store.put(pseudoRandomBytes(5000));
  await Deno.truncate(chunkPath(dir, cid), 100);
  await assert.rejects(store.get(cid), CorruptChunkError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("unknown and malformed CIDs fail with typed errors", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  await assert.rejects(store.get(cidOf(new Uint8Array([9]))), ChunkNotFoundError);
  await assert.rejects(store.get("not-a-cid"), (e: { code: string }) => e.code === "invalid_cid");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a put claiming the wrong CID is refused as corrupt", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const claimed = cidOf(new Uint8Array([1]));
  await assert.rejects(store.put(new Uint8Array([2]), { cid: claimed }), CorruptChunkError);
  assert.equal(await store.has(claimed), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("quota: a write past the quota is quota_exceeded and nothing is written", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { quotaBytes: 10_000 });
  await store.put(pseudoRandomBytes(6000, 1));
  const same = await store.put(pseudoRandomBytes(6000, 1)); // dedup: costs nothing
  assert.equal((await store.stats()).usedBytes, 6000);
  await assert.rejects(
    store.put(pseudoRandomBytes(6000, 2)),
    (e: QuotaExceededError) => e.code === "quota_exceeded",
  );
  assert.equal((await store.stats()).objectCount, 1);
  assert.equal((await tempFilesUnder(dir)).length, 0);
  assert.ok(await store.has(same));
  // A file put through the quota fails as a whole with the same typed error.
  const files = new FileStore(store, { chunkSize: 1024 });
  await assert.rejects(files.put(streamOf(pseudoRandomBytes(20_000, 3))), QuotaExceededError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("disk full (ENOSPC injected by the write hook) is disk_full with no partial chunk", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, {
    faults: {
      async beforeWrite(_cid, tempPath) {
        // Write half the bytes, as a real short write before ENOSPC would, then fail.
        await Deno.writeFile(tempPath, new Uint8Array(100));
        throw Object.assign(new Error("No space left on device (os error 28)"), {
          code: "ENOSPC",
        });
      },
    },
  });
  const bytes = pseudoRandomBytes(4000);
  await assert.rejects(store.put(bytes), (e: DiskFullError) => e.code === "disk_full");
  assert.equal(await store.has(cidOf(bytes)), false);
  assert.deepEqual(await filesUnder(`${dir}/chunks`), []);
  assert.deepEqual(await tempFilesUnder(dir), []);
  assert.equal((await store.stats()).usedBytes, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("concurrent writers of the same chunk leave one valid copy, counted once", async () => {
  const dir = await Deno.makeTempDir();
  const a = await ChunkStore.open(dir);
  const b = await ChunkStore.open(dir); // a second store on the same directory (another process)
  const bytes = pseudoRandomBytes(200_000);
  const cids = await Promise.all([
    a.put(bytes),
    a.put(bytes),
    b.put(bytes),
    a.put(bytes),
    b.put(bytes),
  ]);
  assert.equal(new Set(cids).size, 1);
  assert.deepEqual(await a.get(cids[0]), bytes);
  assert.equal((await a.stats()).usedBytes, bytes.length);
  assert.equal((await filesUnder(`${dir}/chunks`)).length, 1);
  assert.equal((await tempFilesUnder(dir)).length, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("GC removes unpinned objects and keeps pinned files with their chunks", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const kept = await files.put(streamOf(pseudoRandomBytes(5000, 1)));
  const dropped = await files.put(streamOf(pseudoRandomBytes(3000, 2)));
  await store.pin(kept.cid);
  const young = await store.gc(); // default grace: recent writes are never collected
  assert.equal(young.removed, 0);
  const result = await store.gc({ graceMs: -1 });
  assert.equal(result.removed, dropped.chunkCount + 1);
  assert.equal(result.kept, kept.chunkCount + 1);
  assert.deepEqual(await files.bytes(kept.cid), pseudoRandomBytes(5000, 1));
  await assert.rejects(files.bytes(dropped.cid), ChunkNotFoundError);
  assert.equal((await store.stats()).objectCount, kept.chunkCount + 1);
  assert.equal(await store.unpin(kept.cid), true);
  assert.equal((await store.gc({ graceMs: -1 })).removed, kept.chunkCount + 1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("GC deletes nothing while a pinned manifest is unreadable", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const { cid } = await files.put(streamOf(pseudoRandomBytes(5000, 1)));
  await store.pin(cid);
  await flipBit(chunkPath(dir, cid));
  const result = await store.gc({ graceMs: -1 });
  assert.deepEqual(result.unreadableRoots, [cid]);
  assert.equal(result.removed, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("reopening a store recounts its usage and drops leftover temp files", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  await store.put(pseudoRandomBytes(3000));
  await Deno.mkdir(`${dir}/chunks/zz`, { recursive: true });
  await Deno.writeFile(`${dir}/chunks/zz/.leftover.tmp`, new Uint8Array(10));
  const again = await ChunkStore.open(dir);
  assert.deepEqual(await again.stats(), {
    usedBytes: 3000,
    quotaBytes: null,
    objectCount: 1,
    pinCount: 0,
  });
  assert.deepEqual(await tempFilesUnder(dir), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a read that saw a bad copy does not quarantine the good copy a repair wrote meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const gate = Promise.withResolvers<void>();
  const readerHasBytes = Promise.withResolvers<void>();
  let holdNextRead = false;
  const store = await ChunkStore.open(dir, {
    faults: {
      async afterRead() {
        if (!holdNextRead) return;
        holdNextRead = false;
        readerHasBytes.resolve();
        await gate.promise;
      },
    },
  });
  const bytes = pseudoRandomBytes(100_000, 21);
  const cid = await store.put(bytes);
  await flipBit(chunkPath(dir, cid), 5);
  holdNextRead = true;
  const slowReader = store.get(cid); // reads the corrupt bytes, then waits at the gate
  await readerHasBytes.promise;
  // Meanwhile a repair replaces the bad copy with a good one.
  await assert.rejects(store.get(cid), CorruptChunkError); // quarantines the bad file
  await store.put(bytes, { verifyExisting: true });
  gate.resolve();
  // The slow reader finds the repaired copy instead of moving it to quarantine.
  assert.deepEqual(await slowReader, bytes);
  assert.deepEqual(await store.get(cid), bytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an empty object round-trips and is verified like any other", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const cid = await store.put(new Uint8Array());
  assert.equal(cid, cidOf(new Uint8Array()));
  assert.deepEqual(await store.get(cid), new Uint8Array());
  // A byte appended to the empty object makes it corrupt, not silently truncated back.
  await Deno.writeFile(chunkPath(dir, cid), new Uint8Array([0]));
  await assert.rejects(store.get(cid), CorruptChunkError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bytes appended to a stored chunk are read and rejected as corrupt", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const bytes = pseudoRandomBytes(300_000, 7);
  const cid = await store.put(bytes);
  const file = await Deno.open(chunkPath(dir, cid), { append: true });
  await file.write(new Uint8Array([1, 2, 3]));
  file.close();
  await assert.rejects(store.get(cid), CorruptChunkError);
  await Deno.remove(dir, { recursive: true });
});
