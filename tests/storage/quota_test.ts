/**
 * The store's quota against what it really holds on disk: copies written again as an object ages,
 * what each object and pack costs beyond its bytes, and what quarantine keeps. Clocks are
 * injected: no test sleeps.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  ChunkStore,
  OBJECT_OVERHEAD_BYTES,
  PACK_OVERHEAD_BYTES,
} from "../../storage/chunk_store.ts";
import { CorruptChunkError, QuotaExceededError } from "../../storage/errors.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import {
  filesUnder,
  flipBit,
  flipObjectBit,
  objectLocation,
  packFilesUnder,
  pseudoRandomBytes,
} from "./_helpers.ts";

// ---- rewritten copies and per-object cost -------------------------------------------------------
//
// The quota against what a store really holds on disk: copies written again as an object ages, and
// what each object costs beyond its bytes. Clocks are injected: no test sleeps.

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

// ---- the overhead of tiny objects ---------------------------------------------------------------
//
// What each object and pack costs beyond its bytes is charged against the quota, so a peer's
// `put_chunk` of tiny objects cannot fill the disk many times over it (before: 1024 four-byte
// chunks under a 4096-byte quota took 1331 files and 1.3 MiB).

/** Disk blocks (4 KiB each) the pack files under `dir` take. */
async function packBlocks(dir: string): Promise<number> {
  let bytes = 0;
  for (const pack of await packFilesUnder(dir)) {
    bytes += Math.ceil((await Deno.stat(pack)).size / 4096) * 4096;
  }
  return bytes;
}

/** `n` distinct tiny chunks sent by a peer, 16 at a time; resolves with how many were taken. */
async function sendTiny(peer: LocalStoragePeer, n: number, size = 4): Promise<number> {
  let accepted = 0;
  for (let batch = 0; batch < n / 16; batch++) {
    await Promise.all(Array.from({ length: 16 }, async (_, j) => {
      const bytes = new Uint8Array(size);
      new DataView(bytes.buffer).setUint32(0, batch * 16 + j);
      try {
        await peer.putChunk(cidOf(bytes), bytes);
        accepted++;
      } catch (error) {
        if (!(error instanceof QuotaExceededError)) throw error;
      }
    }));
  }
  return accepted;
}

Deno.test("every object and pack is charged its overhead: tiny chunks from a peer cannot fill the disk many times over the quota", async () => {
  // A 4096-byte quota holds no object at all: one pack alone takes a 4 KiB block.
  const small = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(small, { durable: false, quotaBytes: 4096 });
    const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
    assert.equal(await sendTiny(peer, 1024), 0);
    assert.deepEqual(await filesUnder(`${small}/packs`), []);
    assert.deepEqual(await filesUnder(`${small}/replicas`), []);
  } finally {
    await Deno.remove(small, { recursive: true });
  }
  // Under 64 KiB: as many as their overhead allows, and the packs' blocks stay inside the quota.
  const dir = await Deno.makeTempDir();
  try {
    const quotaBytes = 64 * 1024;
    const store = await ChunkStore.open(dir, { durable: false, quotaBytes });
    const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
    const accepted = await sendTiny(peer, 1024);
    // Each costs hundreds of bytes (its index entry, its replica record), not 4.
    assert.ok(accepted > 0 && accepted <= quotaBytes / 256, `${accepted} accepted`);
    const { usedBytes } = await store.stats();
    assert.ok(usedBytes <= quotaBytes);
    const blocks = await packBlocks(dir);
    assert.ok(blocks <= usedBytes, `${blocks} B of pack blocks, ${usedBytes} B charged`);
    // A 256 KiB chunk costs its bytes and a few KiB more: about 2 % when alone in a pack.
    const chunk = pseudoRandomBytes(256 * 1024, 34);
    const roomy = await ChunkStore.open(await Deno.makeTempDir(), { durable: false });
    await roomy.put(chunk);
    const charged = (await roomy.stats()).usedBytes;
    assert.ok(
      charged >= (await packBlocks(roomy.dir)) && charged < chunk.length * 1.02,
      `${charged}`,
    );
    await Deno.remove(roomy.dir, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- quarantine counts against the quota --------------------------------------------------------
//
// What quarantine keeps on disk counts against the store's quota. A disk that keeps rotting a chunk
// (each bad copy set aside, each repair writing a fresh one) must not take the store past the
// operator's quota unnoticed, and emptying `quarantine/` gives the room back.

/** Bytes of every file under `dir` (what the store really takes on disk). */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const path of await filesUnder(dir)) total += (await Deno.stat(path)).size;
  return total;
}

Deno.test("chunks quarantined again and again cannot take the store past its quota", async () => {
  const dir = await Deno.makeTempDir();
  const quota = 64 * 1024;
  const store = await ChunkStore.open(dir, { quotaBytes: quota, durable: false });
  const bytes = pseudoRandomBytes(8000);
  let refused = false;
  for (let round = 0; round < 20; round++) {
    let cid: string;
    try {
      cid = await store.put(bytes); // the repair's fresh copy
    } catch (error) {
      assert.ok(error instanceof QuotaExceededError, String(error));
      refused = true;
      break;
    }
    await flipObjectBit(dir, cid, 100); // the disk rots it again
    await assert.rejects(store.get(cid), CorruptChunkError); // set aside in quarantine/
  }
  const packs = await bytesUnder(`${dir}/packs`);
  const quarantined = await bytesUnder(`${dir}/quarantine`);
  assert.ok(refused, `every repair was taken: ${packs + quarantined} bytes under a ${quota} quota`);
  assert.ok(packs + quarantined <= quota, `${packs} + ${quarantined} bytes on disk`);
  const stats = await store.stats();
  assert.ok(stats.usedBytes >= quarantined, "usage counts what quarantine holds");
  assert.ok(stats.quarantineBytes >= quarantined);
  // The operator empties quarantine/ (after looking at it): the room is back without a restart.
  for (const path of await filesUnder(`${dir}/quarantine`)) await Deno.remove(path);
  assert.equal((await store.stats()).quarantineBytes, 0);
  await store.put(bytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a damaged pack moved to quarantine on open is counted in the usage", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { durable: false });
  const lost = await store.put(pseudoRandomBytes(30_000, 1));
  const { path } = await objectLocation(dir, lost);
  await flipBit(path, 20); // inside the index, under the header checksum
  const again = await ChunkStore.open(dir, { durable: false });
  const quarantined = await bytesUnder(`${dir}/quarantine`);
  assert.ok(quarantined > 30_000);
  const stats = await again.stats();
  assert.equal(stats.objectCount, 0);
  assert.equal(stats.usedBytes, quarantined + PACK_OVERHEAD_BYTES);
  assert.equal(stats.quarantineBytes, quarantined + PACK_OVERHEAD_BYTES);
  // Another process on the directory sees it too.
  assert.equal((await (await ChunkStore.open(dir)).stats()).usedBytes, stats.usedBytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an operator removing quarantine/ whole neither breaks the store nor stops later quarantines", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { quotaBytes: 1 << 20, durable: false });
  const cid = await store.put(pseudoRandomBytes(5000));
  await flipObjectBit(dir, cid, 10);
  await assert.rejects(store.get(cid), CorruptChunkError);
  assert.ok((await store.stats()).quarantineBytes > 5000);
  await Deno.remove(`${dir}/quarantine`, { recursive: true });
  assert.equal((await store.stats()).quarantineBytes, 0);
  await store.put(pseudoRandomBytes(5000));
  await flipObjectBit(dir, cid, 10);
  await assert.rejects(store.get(cid), CorruptChunkError);
  assert.equal((await filesUnder(`${dir}/quarantine`)).length, 1);
  await Deno.remove(dir, { recursive: true });
});
