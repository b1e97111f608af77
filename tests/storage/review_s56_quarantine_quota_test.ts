/**
 * Review s56: what quarantine keeps on disk counts against the store's quota. A disk that keeps
 * rotting a chunk (each bad copy set aside, each repair writing a fresh one) must not take the
 * store past the operator's quota unnoticed, and emptying `quarantine/` gives the room back.
 */
import assert from "node:assert/strict";
import { ChunkStore, PACK_OVERHEAD_BYTES } from "../../storage/chunk_store.ts";
import { CorruptChunkError, QuotaExceededError } from "../../storage/errors.ts";
import {
  filesUnder,
  flipBit,
  flipObjectBit,
  objectLocation,
  pseudoRandomBytes,
} from "./_helpers.ts";

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
