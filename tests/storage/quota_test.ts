/**
 * The quota against what a store really holds on disk: copies written again as an object ages,
 * and what each object costs beyond its bytes. Clocks are injected: no test sleeps.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  ChunkStore,
  OBJECT_OVERHEAD_BYTES,
  PACK_OVERHEAD_BYTES,
} from "../../storage/chunk_store.ts";
import { QuotaExceededError } from "../../storage/errors.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

const MINUTE = 60_000;

/**
 * What the packs under `dir` hold: copies, their bytes, what the quota charges for them (bytes,
 * and the overhead of each copy and pack), and the disk blocks the pack files take (4 KiB each).
 */
async function onDisk(
  dir: string,
): Promise<{ copies: number; objectBytes: number; charged: number; blockBytes: number }> {
  let copies = 0;
  let objectBytes = 0;
  let charged = 0;
  let blockBytes = 0;
  for (const pack of await packFilesUnder(dir)) {
    const entries = await readPackIndex(pack);
    copies += entries.length;
    charged += PACK_OVERHEAD_BYTES;
    for (const e of entries) {
      objectBytes += e.length;
      charged += e.length + OBJECT_OVERHEAD_BYTES;
    }
    blockBytes += Math.ceil((await Deno.stat(pack)).size / 4096) * 4096;
  }
  return { copies, objectBytes, charged, blockBytes };
}

Deno.test("a peer sending a chunk again after it aged writes no new copy: a recorded replica is rooted for good", async () => {
  const dir = await Deno.makeTempDir();
  let now = Date.UTC(2030, 0, 1);
  const store = await ChunkStore.open(dir, { durable: false, clock: () => now });
  try {
    const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
    const chunk = pseudoRandomBytes(64 * 1024, 31);
    const cid = cidOf(chunk);
    for (let i = 0; i < 20; i++) {
      await peer.putChunk(cid, chunk); // the same chunk, past half the grace period each time
      now += 6 * MINUTE;
    }
    assert.equal((await onDisk(dir)).copies, 1, "one copy on disk");
    assert.deepEqual(await store.get(cid), chunk);
    // A repair put still checks the copy in place, and replaces a bad one.
    await peer.putChunk(cid, chunk, { repair: true });
    assert.equal((await onDisk(dir)).copies, 1);
    // An object that is not a recorded replica still gets a fresh copy once its copy is old (a
    // GC could take the old one before the caller roots it), and that copy counts.
    const other = pseudoRandomBytes(64 * 1024, 32);
    await store.put(other);
    const one = (await store.stats()).usedBytes;
    now += 6 * MINUTE;
    await store.put(other);
    assert.equal((await onDisk(dir)).copies, 3);
    assert.equal(
      (await store.stats()).usedBytes,
      one + other.length + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("usage counts every copy on disk, so fresh copies over aged ones cannot grow a store past its quota; a GC gives the room back", async () => {
  const dir = await Deno.makeTempDir();
  let now = Date.UTC(2030, 0, 1);
  const object = pseudoRandomBytes(100_000, 33);
  const store = await ChunkStore.open(dir, {
    durable: false,
    clock: () => now,
    quotaBytes: 250_000, // two copies and their overhead fit, three do not
  });
  try {
    await store.put(object);
    now += 6 * MINUTE; // past half the grace period: a put writes a fresh copy
    await store.put(object);
    const disk = await onDisk(dir);
    assert.equal(disk.copies, 2);
    assert.equal((await store.stats()).usedBytes, disk.charged, "the usage is what is on disk");
    assert.equal((await store.stats()).objectCount, 1);
    now += 6 * MINUTE;
    await assert.rejects(store.put(object), QuotaExceededError, "a third copy does not fit");
    assert.equal((await onDisk(dir)).copies, 2);
    // A GC keeps one copy (the youngest: still inside the grace period) and frees the rest.
    const gc = await store.gc();
    assert.equal(gc.freedBytes, object.length);
    assert.equal((await store.stats()).usedBytes, (await onDisk(dir)).charged);
    assert.equal((await onDisk(dir)).copies, 1);
    // Another process's copy counts too, once this store has looked at the directory.
    const other = await ChunkStore.open(dir, { durable: false, clock: () => now });
    await other.put(object); // the other store's own fresh copy (its index saw an old one)
    assert.equal((await store.stats()).usedBytes, (await onDisk(dir)).charged);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
