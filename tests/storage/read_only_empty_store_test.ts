/**
 * A chunk store first opened read-only on a folder that never held a store (a data directory on
 * a read-only mount, or one nobody may write): it opens as an empty read-only store — reads find
 * nothing, writes are refused `storage_unwritable`, nothing is made — where it used to throw (its
 * `replicas/` folder was read, or its folders required) and crash the StorageActor at every
 * restart until its supervisor gave up. The OS's refusal is injected (the store's
 * `refusesWrites` fault, or a read-only mount: `_read_only_mount.ts`), so this holds as root too,
 * where a mode bit stops no write.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { StorageError } from "../../storage/errors.ts";
import { readOnlyMount } from "./_read_only_mount.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

/** Asserts that `promise` rejects with a storage error of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StorageError, `not a typed storage error: ${String(error)}`);
    assert.equal(error.code, code, String(error));
    return true;
  });
}

/** Everything an empty read-only store answers: nothing found, every write refused. */
async function assertEmptyReadOnly(store: ChunkStore): Promise<void> {
  assert.equal(store.readOnly, true);
  const bytes = pseudoRandomBytes(1_000, 1);
  const cid = cidOf(bytes);
  await rejectsWith(store.get(cid), "chunk_not_found");
  assert.equal(await store.has(cid), false);
  assert.equal(await store.isReplica(cid), false);
  assert.equal(await store.pinLabel(cid), undefined);
  assert.deepEqual(await Array.fromAsync(store.list()), []);
  assert.deepEqual(await Array.fromAsync(store.replicas()), []);
  assert.deepEqual(await store.pins(), []);
  const stats = await store.stats();
  assert.equal(stats.objectCount, 0);
  assert.equal(stats.pinCount, 0);
  assert.equal(stats.replicaCount, 0);
  assert.equal(stats.usedBytes, 0);
  await rejectsWith(store.put(bytes), "storage_unwritable");
  await rejectsWith(store.put(bytes, { replica: true }), "storage_unwritable");
  await rejectsWith(store.pin(cid), "storage_unwritable");
  await rejectsWith(store.unpin(cid), "storage_unwritable");
  await rejectsWith(store.gc({ graceMs: 0 }), "storage_unwritable");
}

Deno.test("a store first opened read-only on an empty folder opens as an empty read-only store and makes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Failed before the fix: NotFound, reading `replicas/` at open.
    const store = await ChunkStore.open(dir, { faults: { refusesWrites: () => true } });
    await assertEmptyReadOnly(store);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "nothing made in the folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a store first opened read-only on a folder that does not exist opens empty and makes nothing", async () => {
  const parent = await Deno.makeTempDir();
  const dir = join(parent, "never-made");
  try {
    const store = await ChunkStore.open(dir, { faults: { refusesWrites: () => true } });
    await assertEmptyReadOnly(store);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(parent)), [], "the folder is not made");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a store whose folders a read-only filesystem refuses to make (EROFS) opens as an empty read-only store", async () => {
  const dir = await Deno.makeTempDir();
  const mount = readOnlyMount(dir);
  try {
    // Failed before the fix: storage_unwritable thrown from open (its folders were required).
    const store = await ChunkStore.open(dir);
    await assertEmptyReadOnly(store);
    assert.ok(mount.refused > 0, "the store never tried to make its folders");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "nothing made in the folder");
  } finally {
    mount.restore();
    await Deno.remove(dir, { recursive: true });
  }
});
