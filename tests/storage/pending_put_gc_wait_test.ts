/**
 * A put waits for a GC pass only where the pass can hurt it, and only so long (review s75 vcrash
 * F1): before, every object of every upload took the store lock shared, with no limit and deaf
 * to its abort signal, so a GC pass held every upload for its whole length and a stopped
 * `cli.ts gc` hung them all. New bytes need no wait (the record written first protects them); a
 * reuse of a stored copy waits at most its bound, then writes a fresh copy; an aborted put stops
 * waiting. The pass is stood for by this test holding the store lock exclusively, as a GC does
 * for its whole pass, and never letting it go.
 *
 * A `lock()` (an unbounded wait: the old one per object, shared, or the commit's pin, exclusive)
 * fails the test at once instead of hanging it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { GC_REUSE_WAIT_MS, PendingPut } from "../../storage/pending_put.ts";
import { openStoreLock, STORE_LOCK } from "../../storage/_chunk_locks.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

/** Small chunks, so one file is several objects. */
const CHUNK_SIZE = 1024;

/** A bound far shorter than the default, so a test that runs it out is quick. */
const SHORT_WAIT_MS = 60;

/**
 * Run `body` with the store lock of `dir` held exclusively (a GC pass that never ends) and the
 * shared lock attempts counted: `tries()` is how often a put tried the lock, and `tried` resolves
 * on the first try.
 */
async function underStoppedGc(
  dir: string,
  body: (spy: { tries: () => number; tried: Promise<void> }) => Promise<void>,
): Promise<void> {
  const held = await openStoreLock(dir);
  await held.lock(true);
  const open = Deno.open;
  const lock = Deno.FsFile.prototype.lock;
  const tryLock = Deno.FsFile.prototype.tryLock;
  // The store lock's files (a put's record is locked too, by its own put).
  const storeLocks = new WeakSet<Deno.FsFile>();
  Deno.open = async (path, options) => {
    const file = await open(path, options);
    if (String(path).endsWith(STORE_LOCK)) storeLocks.add(file);
    return file;
  };
  let tries = 0;
  const tried = Promise.withResolvers<void>();
  Deno.FsFile.prototype.lock = function (this: Deno.FsFile, exclusive?: boolean) {
    // Either blocks until the pass ends: forever here.
    if (!storeLocks.has(this)) return lock.call(this, exclusive);
    return Promise.reject(new Error(`a put waited on the GC pass (lock(${exclusive}))`));
  };
  Deno.FsFile.prototype.tryLock = function (this: Deno.FsFile, exclusive?: boolean) {
    if (!exclusive && storeLocks.has(this)) {
      tries++;
      tried.resolve();
    }
    return tryLock.call(this, exclusive);
  };
  try {
    await body({ tries: () => tries, tried: tried.promise });
  } finally {
    Deno.open = open;
    Deno.FsFile.prototype.lock = lock;
    Deno.FsFile.prototype.tryLock = tryLock;
    held.close();
  }
}

Deno.test("a put of new bytes does not wait for a GC pass holding the store lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const data = pseudoRandomBytes(4 * CHUNK_SIZE + 5, 21);
    await underStoppedGc(dir, async (spy) => {
      const pending = await PendingPut.begin(store);
      try {
        const files = new FileStore(pending, { chunkSize: CHUNK_SIZE, concurrency: 1 });
        const { cid } = await files.put(streamOf(data, 999));
        assert.deepEqual(await new FileStore(store).bytes(cid), data);
      } finally {
        await pending.release();
      }
      assert.equal(spy.tries(), 0, "a put of new bytes tried the store lock");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an upload stores and commits (pins) its file while a GC pass holds the store lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const data = pseudoRandomBytes(3 * CHUNK_SIZE + 9, 25);
    let root = "";
    await underStoppedGc(dir, async () => {
      const pending = await PendingPut.begin(store);
      try {
        ({ cid: root } = await new FileStore(pending, { chunkSize: CHUNK_SIZE }).put(
          streamOf(data, 999),
        ));
        await pending.commit(root);
      } finally {
        await pending.release();
      }
    });
    assert.deepEqual(await store.pins(), [root]);
    // Pinned, with its record gone: a GC with no grace keeps the whole file.
    assert.equal((await store.gc({ graceMs: 0 })).removed, 0);
    assert.deepEqual(await new FileStore(store).bytes(root), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a put that would reuse a stored copy waits for a running GC pass at most its bound, then writes a fresh copy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const bytes = pseudoRandomBytes(CHUNK_SIZE, 22);
    const cid = await store.put(bytes); // a young, unrooted copy: one a put reuses
    const before = (await store.stats()).usedBytes;
    await underStoppedGc(dir, async (spy) => {
      const pending = await PendingPut.begin(store, { reuseWaitMs: SHORT_WAIT_MS });
      try {
        assert.equal(await pending.put(bytes), cid);
      } finally {
        await pending.release();
      }
      // It tried more than once (it waited), and gave up while the pass still held the lock.
      assert.ok(spy.tries() > 1, `tried the lock ${spy.tries()} times`);
    });
    // Not reused: a second copy, which the put's record protected while it was written.
    const after = await store.stats();
    assert.ok(after.usedBytes >= before + bytes.length, `${before} -> ${after.usedBytes}`);
    assert.equal(after.objectCount, 1);
    assert.deepEqual(await store.get(cid), bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a put that would reuse a stored copy reuses it without waiting when no GC pass runs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const bytes = pseudoRandomBytes(CHUNK_SIZE, 23);
    await store.put(bytes);
    const before = (await store.stats()).usedBytes;
    const pending = await PendingPut.begin(store);
    try {
      await pending.put(bytes);
    } finally {
      await pending.release();
    }
    assert.equal((await store.stats()).usedBytes, before, "the copy was written again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an aborted upload stops waiting for a GC pass, with its abort reason", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const bytes = pseudoRandomBytes(CHUNK_SIZE, 24);
    await store.put(bytes);
    await underStoppedGc(dir, async (spy) => {
      // A bound no test waits out: only the abort can end the wait.
      const pending = await PendingPut.begin(store, { reuseWaitMs: 100 * GC_REUSE_WAIT_MS });
      try {
        const client = new AbortController();
        const put = pending.put(bytes, { signal: client.signal });
        await spy.tried; // waiting for the pass
        const gone = new Error("the client went away");
        client.abort(gone);
        await assert.rejects(put, (error) => error === gone);
      } finally {
        await pending.release();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
