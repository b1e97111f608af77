/**
 * Red team (stop 66) of private files stored as manifest trees (`storage/manifest_tree.ts`): a
 * tree whose branch names another file's node or the same node twice, ranges at the exact chunk
 * and node boundaries, the smallest files and the one chunk past a flat manifest's limit, a branch
 * no holder has, and a GC while a tree file's put is writing its nodes. Every case is a clear
 * error or the right bytes; nothing hangs, nothing is lost.
 */
import assert from "node:assert/strict";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { cidCodec, cidOf, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import {
  decodeManifest,
  decodeManifestNode,
  MANIFEST_TYPE,
  type ManifestBranch,
  type PrivateManifest,
} from "../../protocols/manifest.ts";
import type { BlockStoreCallOptions } from "../../storage/block_store.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { servedNode } from "./_tracked_peer.ts";

const CHUNK = 64;
const LIMIT = 1024;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(15));

async function withStore(run: (store: ChunkStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await run(await ChunkStore.open(dir, { durable: false }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The root manifest of private file `cid`. */
async function rootOf(store: ChunkStore, cid: string): Promise<PrivateManifest> {
  return decodeManifest(await store.get(cid)) as PrivateManifest;
}

/** `root` with its branches replaced, stored: a tree its writer forged. */
async function forgedRoot(
  store: ChunkStore,
  root: PrivateManifest,
  branches: ManifestBranch[],
): Promise<string> {
  const forged = { ...root, type: MANIFEST_TYPE, branches };
  return cidOf(await store.get(await store.put(encodeCanonical(forged))), DAG_CBOR_CODEC);
}

const failsWith = (code: string) => (error: Error & { code?: string }) => {
  assert.equal(error.code, code, error.message);
  return true;
};

Deno.test("a tree whose branch names another file's node, or one node twice, is refused authentication_failed, never read as this file's bytes", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const mine = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300, 51)), { key: OWNER });
    const theirs = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300, 52)), { key: OWNER });
    const root = await rootOf(store, mine.cid);
    const other = await rootOf(store, theirs.cid);
    assert.equal(root.branches!.length, other.branches!.length, "trees of one shape");
    // The other file's first subtree in place of this one's: counts and shape all match.
    const swapped = await forgedRoot(store, root, [other.branches![0], ...root.branches!.slice(1)]);
    await assert.rejects(files.bytes(swapped, { key: OWNER }), failsWith("authentication_failed"));
    // This file's first subtree twice: its chunks' indexes (their nonces) do not match.
    const twice = await forgedRoot(store, root, [
      root.branches![0],
      ...root.branches!.slice(0, -1),
    ]);
    const counts = (b: ManifestBranch[]) => b.reduce((n, x) => n + x.chunks, 0);
    if (counts((await rootOf(store, twice)).branches!) === 300) {
      await assert.rejects(files.bytes(twice, { key: OWNER }), failsWith("authentication_failed"));
    } else {
      await assert.rejects(files.bytes(twice, { key: OWNER }), failsWith("invalid_manifest"));
    }
    // The first subtree alone still reads, past the forged one: the forgery is the file's only.
    const first = await files.bytes(mine.cid, { key: OWNER, start: 0, end: CHUNK });
    assert.equal(first.length, CHUNK);
  });
});

Deno.test("byte ranges of a tree file at the exact chunk and node boundaries read back right", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 300 + 9, 53);
    const { cid } = await files.put(streamOf(data), { key: OWNER });
    // Where the first bottom-level node ends, in chunks.
    let node = decodeManifestNode(await store.get((await rootOf(store, cid)).branches![0].cid));
    while (node.branches) node = decodeManifestNode(await store.get(node.branches[0].cid));
    const edge = node.chunks!.length * CHUNK;
    const size = data.length;
    const ranges = [
      [0, 0],
      [0, CHUNK],
      [CHUNK - 1, CHUNK + 1],
      [CHUNK, 2 * CHUNK],
      [edge - 1, edge],
      [edge, edge + 1],
      [edge - CHUNK, edge + CHUNK],
      [edge - 1, edge + 1],
      [size - 9, size],
      [size - 10, size - 9],
      [size - 1, size],
      [size, size],
    ];
    for (const [start, end] of ranges) {
      assert.deepEqual(
        await files.bytes(cid, { key: OWNER, start, end }),
        data.slice(start, end),
        `${start}-${end}`,
      );
    }
    await assert.rejects(
      files.bytes(cid, { key: OWNER, start: size, end: size + 1 }),
      failsWith("range_not_satisfiable"),
    );
  });
});

Deno.test("a 0-byte private file, one that fills a flat manifest, and one a chunk past it read back; only the last is a tree", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const empty = await files.put(streamOf(new Uint8Array(0)), { key: OWNER });
    assert.equal(empty.chunkCount, 0);
    assert.equal((await rootOf(store, empty.cid)).branches, undefined);
    assert.equal((await files.bytes(empty.cid, { key: OWNER })).length, 0);
    // The most chunks a flat manifest under the limit holds, found by growing the file.
    let flat = 1;
    for (;; flat++) {
      const { cid } = await files.put(streamOf(pseudoRandomBytes(CHUNK * (flat + 1), 54)), {
        key: OWNER,
      });
      if ((await rootOf(store, cid)).branches !== undefined) break;
    }
    const full = pseudoRandomBytes(CHUNK * flat, 55);
    const past = pseudoRandomBytes(CHUNK * flat + 1, 56);
    const a = await files.put(streamOf(full), { key: OWNER });
    const b = await files.put(streamOf(past), { key: OWNER });
    assert.equal((await rootOf(store, a.cid)).branches, undefined, `${flat} chunks flat`);
    assert.ok((await rootOf(store, a.cid)).chunks.length === flat);
    assert.ok((await store.get(a.cid)).length <= LIMIT);
    assert.notEqual((await rootOf(store, b.cid)).branches, undefined, `${flat + 1} chunks: a tree`);
    assert.deepEqual(await files.bytes(a.cid, { key: OWNER }), full);
    assert.deepEqual(await files.bytes(b.cid, { key: OWNER }), past);
    assert.deepEqual(
      await files.bytes(b.cid, { key: OWNER, start: CHUNK * flat, end: past.length }),
      past.slice(CHUNK * flat),
    );
  });
});

Deno.test("a tree whose node no holder has fails its read with chunk_not_found, the rest of the file still read", async () => {
  const nodes = await Promise.all([0, 1, 2].map(() => servedNode()));
  try {
    const options = { replicas: 2, writeQuorum: 2, readParallelism: 1 };
    const store = new ReplicatedStore(nodes.map((n) => n.remote), options);
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 300, 57);
    const { cid } = await files.put(streamOf(data), { key: OWNER });
    const root = decodeManifest(await store.get(cid)) as PrivateManifest;
    const lost = root.branches!.at(-1)!;
    for (const node of nodes) await node.store.delete(storageKey(lost.cid));
    // A fresh reader over the same holders: nothing of the lost node cached.
    const reader = new FileStore(new ReplicatedStore(nodes.map((n) => n.remote), options));
    await assert.rejects(reader.bytes(cid, { key: OWNER }), failsWith("chunk_not_found"));
    const before = (300 - lost.chunks) * CHUNK;
    assert.deepEqual(
      await reader.bytes(cid, { key: OWNER, start: 0, end: before }),
      data.slice(0, before),
    );
    await assert.rejects(
      reader.bytes(cid, { key: OWNER, start: before, end: before + 1 }),
      failsWith("chunk_not_found"),
    );
  } finally {
    for (const node of nodes) await node.shutdown();
  }
});

Deno.test("a GC run while a tree file's put is writing its nodes takes nothing of it", async () => {
  await withStore(async (store) => {
    const pending = await PendingPut.begin(store);
    let collections = 0;
    // A GC (with no grace period) right after each manifest node is stored, and after each
    // 50th chunk: the moments a put's objects are rooted by its pending record only.
    let stored = 0;
    const racing = {
      put: async (bytes: Uint8Array, options?: BlockStoreCallOptions) => {
        const key = await pending.put(bytes, options);
        const isNode = bytes[0] !== undefined && (bytes[0] & 0xe0) === 0xa0 &&
          decodeManifestNodeOrNull(bytes);
        if (isNode || ++stored % 50 === 0) {
          await store.gc({ graceMs: 0 });
          collections++;
        }
        return key;
      },
      has: (cid: string) => pending.has(cid),
      get: (cid: string, options?: BlockStoreCallOptions) => pending.get(cid, options),
    };
    const data = pseudoRandomBytes(CHUNK * 300 + 3, 58);
    try {
      // One block in flight: each GC runs between two writes, when all the put stored so far is
      // in its pending record. (With several in flight, a GC with no grace period can take a
      // block written but not yet recorded: `PendingPut` records after the write, and the grace
      // period covers that instant, docs/STORAGE.md "GC".)
      const files = new FileStore(racing, {
        chunkSize: CHUNK,
        maxManifestBytes: LIMIT,
        concurrency: 1,
      });
      const { cid } = await files.put(streamOf(data), { key: OWNER });
      await pending.commit(cid);
      assert.ok(collections > 10, `${collections} collections during the put`);
      await store.gc({ graceMs: 0 });
      const blocks = await new FileStore(store).blocks(cid);
      assert.ok(blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 3);
      for (const block of blocks) assert.equal(await store.has(block), true, block);
      assert.deepEqual(await new FileStore(store).bytes(cid, { key: OWNER }), data);
    } finally {
      await pending.release();
    }
  });
});

/** True when `bytes` are a manifest tree's node. */
function decodeManifestNodeOrNull(bytes: Uint8Array): boolean {
  try {
    decodeManifestNode(bytes);
    return true;
  } catch {
    return false;
  }
}
