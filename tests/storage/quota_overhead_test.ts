/**
 * What each object and pack costs beyond its bytes is charged against the quota, so a peer's
 * `put_chunk` of tiny objects cannot fill the disk many times over it (before: 1024 four-byte
 * chunks under a 4096-byte quota took 1331 files and 1.3 MiB).
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { QuotaExceededError } from "../../storage/errors.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { filesUnder, packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

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
