/**
 * Review (stop 65, helper V): `ShareBlockIndex` walks every node of a level to find the one that
 * links a block. A node of the shared file that its store lost must not hide the blocks under
 * its siblings: the walk goes on past it, and the block asked for is served when another path
 * reaches it (the lost node's own blocks still fail, as a reader of that range fails).
 */
import assert from "node:assert/strict";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { decodeManifest, decodeManifestNode } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareBlockIndex } from "../../server/gateway_share_blocks.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(6));

Deno.test("a shared tree file's lost inner node does not hide the chunks under its siblings; its own chunks stay refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * 300, 9)), { key: OWNER });
    const root = decodeManifest(await store.get(cid));
    assert.ok(root.tier === "private" && root.branches !== undefined && root.branches.length > 1);
    const lost = root.branches[0].cid;
    const read = (block: string) =>
      storageKey(block) === storageKey(lost)
        ? Promise.reject(new ChunkNotFoundError(block, "the test's store"))
        : store.get(storageKey(block));
    // A chunk under the last branch, found through the nodes below it.
    let node = decodeManifestNode(await store.get(root.branches.at(-1)!.cid));
    while (node.branches) node = decodeManifestNode(await store.get(node.branches.at(-1)!.cid));
    const chunk = node.chunks!.at(-1)!;
    const index = new ShareBlockIndex();
    assert.equal(await index.reaches(cid, chunk, read), true);
    // Under the lost node: not known to be part of the file, so the lost node's error.
    let first = decodeManifestNode(await store.get(lost));
    while (first.branches) first = decodeManifestNode(await store.get(first.branches[0].cid));
    await assert.rejects(index.reaches(cid, first.chunks![0], read), ChunkNotFoundError);
    // Another file's block is still refused, not an error.
    const other = await files.put(streamOf(pseudoRandomBytes(64, 10)), { key: OWNER });
    const otherRoot = decodeManifest(await store.get(other.cid));
    await assert.rejects(index.reaches(cid, otherRoot.chunks[0], read), ChunkNotFoundError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a shared tree file larger than the share index's bound is served in file order without a walk of the whole tree per chunk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * 1500, 11)), { key: OWNER });
    const blocks = await files.blocks(cid);
    const nodes = blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC && c !== cid);
    const chunks = blocks.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC);
    let reads = 0;
    const read = (block: string) => {
      reads++;
      return store.get(storageKey(block));
    };
    // Room for a few nodes' links, far from the whole tree's.
    const index = new ShareBlockIndex(100);
    for (const chunk of chunks) assert.ok(await index.reaches(cid, chunk, read), chunk);
    // A walk of the tree per chunk read every node for each: here, a few reads per chunk at most.
    assert.ok(nodes.length > 50, `${nodes.length} nodes`);
    assert.ok(reads <= 4 * chunks.length, `${reads} reads for ${chunks.length} chunks`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
