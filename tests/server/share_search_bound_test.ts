/**
 * `ShareBlockIndex` (`server/gateway_share_blocks.ts`) past its cache's bound: the work of one
 * request is bounded. A probe for a block that is not the shared file's (a hostile client's, over
 * and over) reads at most {@link MAX_SHARE_SEARCH_READS} manifest blocks and is refused
 * `chunk_not_found`, never a walk of the whole tree; a reader that descends the tree (a node
 * before the blocks it links, as a share link's opener does) is served in a few reads per
 * block at most, most within none, several readers at once at different offsets.
 */
import assert from "node:assert/strict";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { cidCodec, cidOf, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { decodeManifest, type PrivateManifest } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { manifestChunks } from "../../storage/manifest_tree.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { MAX_SHARE_SEARCH_READS, ShareBlockIndex } from "../../server/gateway_share_blocks.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { startGatewayNode } from "./_gateway_node.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(12));
/** Room for a few nodes' links, far from the whole tree's. */
const BOUND = 100;
const CHUNKS = 1500;

/** A store with a shared tree file of 1,500 chunks (over 100 nodes) and another file. */
async function withBigTree(
  run: (t: { store: ChunkStore; cid: string; root: PrivateManifest; other: string[] }) => Promise<
    void
  >,
) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * CHUNKS, 31)), { key: OWNER });
    const nodes = (await files.blocks(cid)).filter((c) => cidCodec(c) === DAG_CBOR_CODEC);
    assert.ok(nodes.length > 3 * MAX_SHARE_SEARCH_READS, `${nodes.length} nodes`);
    const other = await files.put(streamOf(pseudoRandomBytes(64 * 40, 32)), { key: OWNER });
    const root = decodeManifest(await store.get(cid)) as PrivateManifest;
    await run({ store, cid, root, other: await files.blocks(other.cid) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a probe for a block outside a shared tree past the index's bound reads a bounded number of manifest blocks and is refused chunk_not_found", async () => {
  await withBigTree(async ({ store, cid, other }) => {
    const index = new ShareBlockIndex(BOUND);
    const probes = [
      ...other.slice(0, 3),
      cidOf(encodeCanonical({ made: "up" }), DAG_CBOR_CODEC),
      cidOf(new Uint8Array([1, 2, 3])),
    ];
    for (let round = 0; round < 2; round++) {
      for (const probe of probes) {
        let reads = 0;
        const read = (block: string) => {
          reads++;
          return store.get(storageKey(block));
        };
        const answer = await index.reaches(cid, probe, read).catch((error) => error);
        assert.ok(
          answer === false || answer?.code === "chunk_not_found",
          `${probe}: ${answer?.message ?? answer}`,
        );
        assert.ok(reads <= MAX_SHARE_SEARCH_READS, `${reads} reads for one probe`);
      }
    }
    assert.ok(index.heldLinks <= BOUND);
  });
});

Deno.test("readers descending a shared tree past the index's bound, four at once at different offsets, are each served within a few reads, most blocks within none", async () => {
  await withBigTree(async ({ store, cid, root }) => {
    const index = new ShareBlockIndex(BOUND);
    const most: number[] = [];
    /** Asks the index for `block` as the share route does, counting its reads. */
    const ask = async (block: string) => {
      let reads = 0;
      const read = (c: string) => {
        reads++;
        return store.get(storageKey(c));
      };
      assert.equal(await index.reaches(cid, block, read), true, block);
      most.push(reads);
    };
    /**
     * What a reader of chunks `first` to `last` asks for, in order: the root, each node on the
     * way (by its storage key, a raw CID, as a share link's opener, a FileStore, asks), then the
     * chunks below it.
     */
    const asks = async (first: number, last: number) => {
      const out = [cid];
      const get = (node: string) => {
        out.push(storageKey(node));
        return store.get(storageKey(node));
      };
      let chunks = 0;
      for await (const chunk of manifestChunks(root, first, last, get)) {
        out.push(chunk.cid);
        chunks++;
      }
      assert.equal(chunks, last - first + 1);
      return out;
    };
    const readers = await Promise.all(
      [[0, 399], [1100, 1499], [700, 1000], [350, 800]].map(([a, b]) => asks(a, b)),
    );
    // Four readers at once, each asking for its next block in turn.
    for (let step = 0; readers.some((r) => step < r.length); step++) {
      for (const reader of readers) if (step < reader.length) await ask(reader[step]);
    }
    // A block's parent is on one of the file's recent paths, far fewer than 32 here: a read per
    // node on them at most, and most blocks none (their parent is cached), never a walk of the
    // tree (before: up to 102 reads for one block).
    const total = most.reduce((a, b) => a + b, 0);
    assert.ok(Math.max(...most) <= 16, `at most ${Math.max(...most)} reads for one block`);
    assert.ok(total <= most.length / 2, `${total} reads for ${most.length} blocks`);
  });
});

Deno.test("over HTTP, a share link's opener reads a tree file past the index's bound whole, and a probe past the reads is a 404 chunk_not_found that says why", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
  const data = pseudoRandomBytes(64 * CHUNKS, 33);
  const shared = await files.put(streamOf(data, 4096), { key: OWNER });
  const other = await files.put(streamOf(pseudoRandomBytes(64 * 40, 34)), { key: OWNER });
  const node = await startGatewayNode(dir, {
    ownerKey: OWNER,
    routes: { shareIndexLinks: BOUND },
  });
  try {
    const { link, record } = await createShareLink({
      cid: shared.cid,
      owner: OWNER,
      files,
      shares: new ShareStore(dir),
      baseUrl: node.url,
      expiresAt: null,
      now: 0,
    });
    const opened = await openShareLink(link);
    assert.deepEqual(await collect(opened.stream), data);
    // A block of no file, then another file's: each costs the node its bounded search only.
    const made = cidOf(encodeCanonical({ made: "up" }), DAG_CBOR_CODEC);
    const theirs = (await files.blocks(other.cid)).at(-1)!;
    for (const probe of [made, theirs]) {
      const { response, body } = await node.get(`/share/${record.id}/${probe}`);
      assert.equal(response.status, 404, probe);
      const error = JSON.parse(new TextDecoder().decode(body)).error;
      assert.equal(error.code, "chunk_not_found");
      assert.match(error.message, /within 32 manifest reads|is not part of share/);
    }
  } finally {
    await node.close();
  }
});
