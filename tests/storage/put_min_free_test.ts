/**
 * The node's own puts (API uploads) keep a floor of free disk (`putMinFreeBytes`) so the ledger
 * and the proof store always have room (review s75 F1: uploads filled a disk to the last byte,
 * then receipts failed and the node refused to restart). The disk's free space is the store's
 * `freeBytes` test hook, so no disk is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { nodeConfigSchema } from "../../node/_config_schema.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

const MiB = 1024 ** 2;

Deno.test("a client put that would leave less free disk than putMinFreeBytes is disk_full (507) naming the floor, and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let free = 10 * MiB;
    const store = await ChunkStore.open(dir, {
      durable: false,
      putMinFreeBytes: 4 * MiB,
      faults: { freeBytes: () => free },
    });
    // Room above the floor: stored.
    const small = await store.put(pseudoRandomBytes(1024, 1));
    assert.ok(await store.has(small));
    // Would cross the floor: refused before a byte is written.
    free = 4 * MiB + 512;
    const bytes = pseudoRandomBytes(64 * 1024, 2);
    await assert.rejects(store.put(bytes), (error: unknown) => {
      assert.ok(error instanceof DiskFullError, String(error));
      assert.equal(error.code, "disk_full");
      assert.equal(httpStatusOf(error), 507);
      assert.match(error.message, /storage\.putMinFreeBytes/);
      assert.match(error.message, new RegExp(`keeps ${4 * MiB}`));
      return true;
    });
    assert.equal((await store.stats()).objectCount, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the node's config keeps 256 MiB free under its own puts by default, below the peers' 1 GiB", () => {
  const storage = nodeConfigSchema.parse({}).storage;
  assert.equal(storage.putMinFreeBytes, 256 * MiB);
  assert.ok(storage.putMinFreeBytes < storage.replicaMinFreeBytes);
});
