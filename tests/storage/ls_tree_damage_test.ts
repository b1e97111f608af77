/**
 * `cli.ts ls` of a damaged private file stored as a manifest tree (`storage/manifest_tree.ts`):
 * "of N chunks" counts the file's chunks (what its root's branches say), not the root's links
 * (its few branches); and a tree whose inner node is lost (what an older node's GC, which does
 * not know tree roots, would leave) is flagged, its GC refused, its read a clear error.
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import { decodeManifest, type PrivateManifest } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { runGc, runLs } from "../../storage/storage_commands.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

const CHUNK = 64;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(8));

/** A data directory whose store holds one pinned private tree file of 301 chunks. */
async function withTreeFile(
  run: (t: { node: string; store: ChunkStore; cid: string; blocks: string[] }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  try {
    const node = `${dir}/node`;
    const store = await ChunkStore.open(`${node}/store`, { durable: false });
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300 + 5, 21)), {
      key: OWNER,
    });
    await store.pin(cid);
    const root = decodeManifest(await store.get(cid)) as PrivateManifest;
    assert.ok(root.branches !== undefined && root.branches.length < 301, "a tree");
    await run({ node, store, cid, blocks: await files.blocks(cid) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ls of a tree file missing a chunk says how many chunks the file has, not how many branches its root has", async () => {
  await withTreeFile(async ({ node, store, cid, blocks }) => {
    const healthy = await capture(() => runLs(["--data", node]));
    assert.equal(healthy.code, 0, healthy.err);
    assert.doesNotMatch(healthy.out, /DAMAGED/);
    await store.delete(blocks.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC)[7]);
    const damaged = await capture(() => runLs(["--data", node]));
    assert.match(damaged.out, new RegExp(`${cid} .*DAMAGED: 1 missing of 301 chunks;`));
  });
});

Deno.test("a tree file whose inner node is lost (as an older node's GC leaves it) is flagged by ls, its GC refused, its read a clear chunk_not_found", async () => {
  await withTreeFile(async ({ node, store, cid, blocks }) => {
    const inner = blocks.find((c) => cidCodec(c) === DAG_CBOR_CODEC && c !== cid)!;
    await store.delete(inner);
    const ls = await capture(() => runLs(["--data", node]));
    assert.match(ls.out, new RegExp(`${cid} .*DAMAGED: 1 missing of 301 chunks;`));
    // GC cannot know what the lost node listed: it removes nothing, every other block stays.
    const gc = await capture(() => runGc(["--data", node, "--grace-ms", "0"]));
    assert.equal(gc.code, 1);
    assert.match(gc.err, new RegExp(`unreadable_root.*${cid} cannot be read here .*inner node`));
    for (const block of blocks) {
      if (block !== inner) assert.equal(await store.has(block), true, block);
    }
    await assert.rejects(
      new FileStore(store).bytes(cid, { key: OWNER }),
      (error: Error & { code?: string }) => error.code === "chunk_not_found",
    );
  });
});
