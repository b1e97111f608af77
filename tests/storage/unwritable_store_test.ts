/**
 * A chunk store whose disk refuses writes (review s70, findings 3 and 4): a filesystem turned
 * read-only (`EROFS`), no permission (`EACCES`), a failing device (`EIO`) or a full disk
 * (`ENOSPC`) outside a pack write. Every such failure is a typed error, a failed put keeps nothing,
 * and a store opened on a directory it cannot write opens read-only and serves reads. The OS
 * errors are injected through the store's fault hooks, so the tests hold as root too (CI), where
 * a read-only mode bit stops no write.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { StorageError, StorageUnwritableError } from "../../storage/errors.ts";
import { PINS_DIR, REPLICAS_DIR } from "../../storage/gc_roots.ts";
import { filesUnder, flipObjectBit, pseudoRandomBytes } from "./_helpers.ts";

/** An OS error as Deno throws it (`code` and the OS's message). */
function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const EROFS = () => osError("EROFS", "Read-only file system (os error 30)");
const ENOSPC = () => osError("ENOSPC", "No space left on device (os error 28)");

/** Asserts that `promise` rejects with a storage error of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StorageError, `not a typed storage error: ${String(error)}`);
    assert.equal(error.code, code, String(error));
    return true;
  });
}

Deno.test("a pack write the filesystem refuses (EROFS, EACCES, EIO) is storage_unwritable, and what is stored is still read", async () => {
  const dir = await Deno.makeTempDir();
  let refuse: (() => Error) | null = null;
  const store = await ChunkStore.open(dir, {
    durable: false,
    faults: {
      beforeWrite: () => {
        if (refuse) throw refuse();
      },
    },
  });
  const old = pseudoRandomBytes(1000, 1);
  const cid = await store.put(old);
  for (
    const error of [
      EROFS,
      () => osError("EACCES", "Permission denied (os error 13)"),
      () => osError("EIO", "Input/output error (os error 5)"),
    ]
  ) {
    refuse = error;
    await rejectsWith(store.put(pseudoRandomBytes(1000, 2)), "storage_unwritable");
    await rejectsWith(
      store.put(pseudoRandomBytes(1000, 3), { replica: true, giver: "ab".repeat(32) }),
      "storage_unwritable",
    );
  }
  assert.deepEqual(await store.get(cid), old);
  assert.equal((await store.stats()).objectCount, 1, "nothing of the refused puts is stored");
  assert.equal((await store.stats()).replicaBytes, 0, "nor charged to the peer");
  // The gateway answers it as the node's trouble, not the client's: 503, another node may serve.
  assert.equal(httpStatusOf(new StorageUnwritableError(dir, EROFS())), 503);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a pin with a label on a full disk is disk_full, and a pin on a read-only one storage_unwritable", async () => {
  const dir = await Deno.makeTempDir();
  let refuse: (() => Error) | null = null;
  const store = await ChunkStore.open(dir, {
    faults: {
      beforeRecordWrite: () => {
        if (refuse) throw refuse();
      },
    },
  });
  const cid = await store.put(pseudoRandomBytes(100, 8));
  refuse = ENOSPC;
  await rejectsWith(store.pin(cid, { name: "a.txt" }), "disk_full");
  await rejectsWith(store.pin(cid), "disk_full");
  refuse = EROFS;
  await rejectsWith(store.pin(cid, { name: "a.txt" }), "storage_unwritable");
  assert.deepEqual(await store.pins(), []);
  refuse = null;
  await store.pin(cid, { name: "a.txt" });
  assert.deepEqual(await store.pinLabel(cid), { name: "a.txt" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a replica put whose pack lands but whose record hits ENOSPC is disk_full and keeps nothing: no record, no charge, collected by the next GC", async () => {
  const dir = await Deno.makeTempDir();
  const giver = "ab".repeat(32);
  let refuse = true;
  const store = await ChunkStore.open(dir, {
    faults: {
      async beforeRecordWrite(path) {
        if (!refuse) return;
        // The record's entry made, its content not: as a real ENOSPC after the create leaves it.
        await Deno.writeFile(path, new Uint8Array());
        throw ENOSPC();
      },
    },
  });
  const bytes = pseudoRandomBytes(100, 7);
  await rejectsWith(store.put(bytes, { replica: true, giver }), "disk_full");
  const [cid] = await Array.fromAsync(store.list());
  assert.ok(cid !== undefined, "its pack landed before the record failed");
  assert.equal(await store.isReplica(cid), false, "the partial record is removed");
  assert.deepEqual(await filesUnder(join(dir, REPLICAS_DIR)), []);
  const stats = await store.stats();
  assert.equal(stats.replicaCount, 0);
  assert.equal(stats.replicaBytes, 0, "not held for peers");
  assert.equal(store.heldFor(giver), 0, "nor charged to the giver");
  const gc = await store.gc({ graceMs: 0 });
  assert.equal(gc.removed, 1, "nothing roots the chunk of the failed put");
  assert.equal(await store.has(cid), false);

  // Once there is room, the peer's retry is recorded as its own.
  refuse = false;
  await store.put(bytes, { replica: true, giver });
  assert.equal(await store.isReplica(cid), true);
  assert.ok(store.heldFor(giver) > 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a store opened on a directory it cannot write opens read-only: reads served, writes refused as storage_unwritable, nothing swept", async () => {
  const dir = await Deno.makeTempDir();
  const first = await ChunkStore.open(dir);
  const bytes = pseudoRandomBytes(3000, 4);
  const cid = await first.put(bytes);
  await first.pin(cid, { name: "kept.bin" });
  const replica = await first.put(pseudoRandomBytes(500, 5), { replica: true });
  assert.equal(first.readOnly, false);
  // A crashed writer's leftovers, which a writable open sweeps.
  const packTemp = join(dir, "packs", ".leftover.pack.tmp");
  const pinTemp = join(dir, PINS_DIR, `${cid}.${crypto.randomUUID()}.tmp`);
  await Deno.writeFile(packTemp, new Uint8Array(10));
  await Deno.writeFile(pinTemp, new Uint8Array(10));
  const before = (await filesUnder(dir)).sort();

  const store = await ChunkStore.open(dir, {
    faults: {
      refusesWrites: () => true,
      beforeWrite: () => assert.fail("a read-only store wrote a pack"),
      beforeRecordWrite: () => assert.fail("a read-only store wrote a record"),
    },
  });
  assert.equal(store.readOnly, true);
  assert.deepEqual(await store.get(cid), bytes);
  assert.equal(await store.isReplica(replica), true);
  assert.deepEqual(await store.pins(), [cid]);
  assert.deepEqual(await store.pinLabel(cid), { name: "kept.bin" });
  assert.equal((await store.stats()).objectCount, 2);
  await rejectsWith(store.put(pseudoRandomBytes(100, 6)), "storage_unwritable");
  await rejectsWith(store.put(bytes), "storage_unwritable"); // even one it holds: a put writes
  await rejectsWith(store.put(pseudoRandomBytes(100, 6), { replica: true }), "storage_unwritable");
  await rejectsWith(store.pin(cid), "storage_unwritable");
  await rejectsWith(store.unpin(cid), "storage_unwritable");
  await rejectsWith(store.delete(cid), "storage_unwritable");
  await rejectsWith(store.gc({ graceMs: 0 }), "storage_unwritable");
  assert.deepEqual((await filesUnder(dir)).sort(), before, "nothing written, swept or removed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a read-only store answers a corrupt copy as corrupt_chunk and leaves it in place", async () => {
  const dir = await Deno.makeTempDir();
  const first = await ChunkStore.open(dir);
  const cid = await first.put(pseudoRandomBytes(2000, 9));
  await flipObjectBit(dir, cid, 10);
  const before = (await filesUnder(dir)).sort();
  const store = await ChunkStore.open(dir, { faults: { refusesWrites: () => true } });
  await rejectsWith(store.get(cid), "corrupt_chunk");
  assert.deepEqual((await filesUnder(dir)).sort(), before, "not quarantined: nothing is written");
  await Deno.remove(dir, { recursive: true });
});
