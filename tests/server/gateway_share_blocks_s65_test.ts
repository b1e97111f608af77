/**
 * Stop 65: `ShareBlockIndex` (`server/gateway_share_blocks.ts`), which tells a share route which
 * blocks belong to the shared file: every block of a manifest tree is found, no other file's,
 * requests that miss together read a node once, and the cache never holds more links than its
 * bound (past it, blocks are read again and answers stay right).
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareBlockIndex } from "../../server/gateway_share_blocks.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

const CHUNK = 64;
const LIMIT = 1024;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(4));

/** Two private tree files in a fresh store, and a reader that counts reads by storage key. */
async function withTwoTrees(
  run: (files: {
    mine: { cid: string; blocks: string[] };
    theirs: { cid: string; blocks: string[] };
    read: (cid: string) => Promise<Uint8Array>;
    reads: string[];
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const put = async (seed: number) => {
      const { cid } = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300, seed)), {
        key: OWNER,
      });
      return { cid, blocks: await files.blocks(cid) };
    };
    const reads: string[] = [];
    const read = (cid: string) => {
      reads.push(storageKey(cid));
      return store.get(storageKey(cid));
    };
    await run({ mine: await put(1), theirs: await put(2), read, reads });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every block of a tree file is reached from its root, none of another file's, whatever the cache's bound", async () => {
  await withTwoTrees(async ({ mine, theirs, read }) => {
    assert.ok(mine.blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 3);
    // Past the bound every answer walks the tree again: a sample of each file's blocks there.
    const sample = (blocks: string[]) => [0, 1, 2, blocks.length - 2, blocks.length - 1];
    for (const bound of [undefined, 100, 1]) {
      const index = new ShareBlockIndex(bound);
      const some = (blocks: string[]) =>
        bound === undefined ? blocks : sample(blocks).map((i) => blocks[i]);
      for (const cid of some(mine.blocks)) {
        assert.ok(await index.reaches(mine.cid, cid, read), cid);
      }
      for (const cid of some(theirs.blocks)) {
        assert.equal(await index.reaches(mine.cid, cid, read), false, cid);
      }
      if (bound !== undefined) assert.ok(index.heldLinks <= bound, `${index.heldLinks}`);
    }
  });
});

Deno.test("a share index reads each manifest block once while it fits, once for requests that miss together, and again only past its bound", async () => {
  await withTwoTrees(async ({ mine, read, reads }) => {
    const nodes = mine.blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).map(storageKey);
    const chunks = mine.blocks.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC);
    const index = new ShareBlockIndex();
    // Sixteen requests at once, as an opener's prefetch makes them.
    const found = await Promise.all(
      chunks.slice(-16).map((cid) => index.reaches(mine.cid, cid, read)),
    );
    assert.deepEqual(found, Array(16).fill(true));
    for (const cid of chunks) assert.ok(await index.reaches(mine.cid, cid, read));
    for (const key of nodes) {
      assert.equal(reads.filter((r) => r === key).length, 1, `${key} read once`);
    }
    // A bound under one node's links: nothing is kept, every answer still right.
    const tiny = new ShareBlockIndex(1);
    reads.length = 0;
    for (const cid of chunks.slice(0, 3)) assert.ok(await tiny.reaches(mine.cid, cid, read));
    assert.equal(tiny.heldLinks, 0);
    assert.ok(reads.length >= 3, "read again per request, not held");
  });
});
