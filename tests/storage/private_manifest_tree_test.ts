/**
 * Private files of any size stored as manifest trees (`storage/manifest_tree.ts`): read whole and
 * by ranges, kept by GC, exported, read over the wire; hostile and damaged trees refused with a
 * clear error; every block surviving GC, repair and audits.
 */
import assert from "node:assert/strict";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { cidCodec, cidOf, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  decodeManifest,
  decodeManifestNode,
  encodeManifest,
  MANIFEST_NODE_TYPE,
  MANIFEST_TYPE,
  type ManifestBranch,
  MAX_MANIFEST_DEPTH,
  MAX_MANIFEST_NODE_BYTES,
  type PrivateManifest,
} from "../../protocols/manifest.ts";
import { MAX_WIRE_CHUNK_BYTES } from "../../protocols/storage_messages.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import type { BlockStoreCallOptions } from "../../storage/block_store.ts";
import { exportCar, importCar } from "../../storage/car.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import {
  buildPrivateManifest,
  DEFAULT_MAX_MANIFEST_BYTES,
  manifestChunks,
} from "../../storage/manifest_tree.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { runGc } from "../../cli/gc_command.ts";
import { runLs } from "../../cli/ls_command.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { type ServedNode, servedNode } from "./_tracked_peer.ts";

// ---- private files of any size ------------------------------------------------------------------
//
// Private files of any size: a private file whose flat manifest would pass the block limit is
// stored as a manifest tree (`storage/manifest_tree.ts`), read back whole and by byte ranges
// through only the nodes a range needs, kept by GC, exported in a CAR, read on another node over
// the wire, and a hostile tree is refused with a clear error.

const CHUNK = 64;
/** Small enough that a few hundred 64-byte chunks need a tree two levels deep. */
const LIMIT = 1024;
const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(3));

async function withStore<T>(run: (store: ChunkStore, dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await run(await ChunkStore.open(dir), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Levels of nodes below `root` (0: a flat manifest), read through `get`. */
async function depthOf(
  root: { chunks?: string[]; branches?: ManifestBranch[] },
  get: (cid: string) => Promise<Uint8Array>,
): Promise<number> {
  if (!root.branches) return 0;
  return 1 + await depthOf(decodeManifestNode(await get(root.branches[0].cid)), get);
}

Deno.test("a private file whose manifest would pass the block limit is stored as a tree of nodes each within the limit, and reads back whole and by every range", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 300 + 17, 5);
    const progress: number[] = [];
    const put = await files.put(streamOf(data, 999), {
      key: owner,
      name: "ckpt.bin",
      onProgress: (n) => progress.push(n),
    });
    assert.equal(put.chunkCount, 301);
    assert.equal(progress.at(-1), data.length);
    const root = decodeManifest(await store.get(put.cid)) as PrivateManifest;
    assert.deepEqual(root.chunks, []);
    assert.ok(root.branches && root.branches.length > 0, "the root lists branches");
    assert.ok(await depthOf(root, (c) => store.get(c)) >= 2, "two levels of nodes at least");
    // Every manifest block of the file is within the limit; every chunk is listed once.
    const blocks = await files.blocks(put.cid);
    const nodes = blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC);
    for (const cid of nodes) assert.ok((await store.get(cid)).length <= LIMIT, cid);
    assert.equal(blocks.length - nodes.length, 301);

    assert.deepEqual(await files.bytes(put.cid, { key: owner }), data);
    const info = await files.stat(put.cid, { key: owner });
    assert.equal(info.size, data.length);
    assert.equal(info.name, "ckpt.bin");
    for (const [start, end] of [[0, 1], [63, 65], [1000, 5000], [CHUNK * 300, data.length]]) {
      assert.deepEqual(
        await files.bytes(put.cid, { key: owner, start, end }),
        data.slice(start, end),
        `${start}-${end}`,
      );
    }
  });
});

Deno.test("a byte range of a tree-manifest file reads only the nodes on its path, not the whole chunk list", async () => {
  await withStore(async (store) => {
    const { cid } = await new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT })
      .put(streamOf(pseudoRandomBytes(CHUNK * 300, 6)), { key: owner });
    const nodes = (await new FileStore(store).blocks(cid))
      .filter((c) => cidCodec(c) === DAG_CBOR_CODEC).map(storageKey);
    const nodesRead: string[] = [];
    const counting = {
      put: store.put.bind(store),
      has: store.has.bind(store),
      get: (id: string, options?: { signal?: AbortSignal }) => {
        if (nodes.includes(storageKey(id))) nodesRead.push(id);
        return store.get(id, options);
      },
    };
    const files = new FileStore(counting);
    const total = nodes.length;
    const depth = await depthOf(decodeManifest(await store.get(cid)), (c) => store.get(c));
    await files.bytes(cid, { key: owner, start: CHUNK * 150, end: CHUNK * 150 + 10 });
    // The root (read by the open) and one node per level.
    assert.equal(nodesRead.length, 1 + depth, `${nodesRead.length} of ${total} manifest blocks`);
    assert.ok(total > 1 + depth + 5);
  });
});

Deno.test("a private file that fits one manifest keeps the flat v1 manifest and its id, whatever the limit", async () => {
  await withStore(async (store) => {
    const data = pseudoRandomBytes(CHUNK * 5, 7);
    for (const maxManifestBytes of [undefined, LIMIT]) {
      const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes });
      const { cid } = await files.put(streamOf(data), { key: owner });
      const bytes = await store.get(cid);
      const manifest = decodeManifest(bytes) as PrivateManifest;
      assert.equal(manifest.branches, undefined);
      assert.equal(manifest.chunks.length, 5);
      assert.deepEqual(Object.keys(manifest).sort(), [
        "chunks",
        "salt",
        "sealed",
        "tier",
        "type",
        "v",
      ]);
      assert.equal(cid, cidOf(bytes, DAG_CBOR_CODEC));
      assert.deepEqual(await files.bytes(cid, { key: owner }), data);
    }
  });
});

Deno.test("GC keeps every node and chunk of a pinned tree-manifest file, and frees them all once unpinned", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 200, 8);
    const { cid } = await files.put(streamOf(data), { key: owner });
    const blocks = await files.blocks(cid);
    await store.pin(cid);
    const kept = await store.gc({ graceMs: 0 });
    assert.equal(kept.removed, 0);
    assert.deepEqual(await files.bytes(cid, { key: owner }), data);
    await store.unpin(cid);
    const freed = await store.gc({ graceMs: 0 });
    assert.equal(freed.removed, blocks.length);
  });
});

Deno.test("a tree-manifest file exports in a CAR with every node, and reads back from the store it is imported into", async () => {
  await withStore(async (store) => {
    const data = pseudoRandomBytes(CHUNK * 200 + 3, 9);
    const { cid } = await new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT })
      .put(streamOf(data), { key: owner });
    await withStore(async (other) => {
      await importCar(exportCar(cid, (c) => store.get(c)), other);
      assert.deepEqual(await new FileStore(other).bytes(cid, { key: owner }), data);
    });
  });
});

Deno.test("a tree-manifest private file put on one node reads back on another over the wire, whole and by range, its nodes and chunks audited and repaired", async () => {
  const nodes = await Promise.all([servedNode(), servedNode(), servedNode()]);
  try {
    const options = { replicas: 2, writeQuorum: 2, readParallelism: 1 };
    const writer = new FileStore(new ReplicatedStore(nodes.map((n) => n.remote), options), {
      chunkSize: CHUNK,
      maxManifestBytes: LIMIT,
    });
    const data = pseudoRandomBytes(CHUNK * 250 + 9, 10);
    const { cid } = await writer.put(streamOf(data), { key: owner });
    // Another node: its own replicated store over the same holders, nothing cached, the
    // default limit (reading does not depend on the writer's).
    const readerStore = new ReplicatedStore(nodes.map((n) => n.remote), options);
    const reader = new FileStore(readerStore);
    assert.deepEqual(await reader.bytes(cid, { key: owner }), data);
    assert.deepEqual(
      await reader.bytes(cid, { key: owner, start: CHUNK * 123 + 5, end: CHUNK * 200 }),
      data.slice(CHUNK * 123 + 5, CHUNK * 200),
    );
    // Every node of the tree is on its holders, as every chunk is.
    const blocks = await reader.blocks(cid);
    assert.ok(blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 2);
    for (const block of blocks) {
      const held = await Promise.all(nodes.map((n) => n.local.hasChunk(storageKey(block))));
      assert.equal(held.filter(Boolean).length, 2, block);
    }
    // An audit of a holder on every block of the file it holds (nodes too) passes.
    const holder = nodes[0];
    const mine = [];
    for (const block of blocks) {
      if (await holder.local.hasChunk(storageKey(block))) mine.push(storageKey(block));
    }
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (c, signal) => readerStore.get(c, { signal }),
      sampleSize: 64,
    });
    const audit = await auditor.audit(holder.remote, mine);
    assert.equal(audit.passed, true);
    // A holder that lost an inner node gets it back from a repair of the file's blocks.
    const node = blocks.find((c) => cidCodec(c) === DAG_CBOR_CODEC && c !== cid)!;
    const holding = await Promise.all(nodes.map((n) => n.store.has(storageKey(node))));
    const loser = nodes[holding.indexOf(true)];
    await loser.store.delete(storageKey(node));
    await readerStore.repair(blocks.map(storageKey));
    assert.equal(await loser.local.hasChunk(storageKey(node)), true);
  } finally {
    for (const node of nodes) await node.shutdown();
  }
});

Deno.test("a share link opens a tree-manifest private file, fetching its inner nodes from the node", async () => {
  await withStore(async (store, dir) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 100 + 1, 11);
    const { cid } = await files.put(streamOf(data), { key: owner });
    const { link } = await createShareLink({
      cid,
      owner,
      files,
      shares: new ShareStore(dir),
      baseUrl: "http://127.0.0.1:9", // never contacted: the fetch below answers
      expiresAt: null,
      now: 0,
    });
    const serve = async (input: string | URL | Request) =>
      new Response(await store.get(String(input).split("/").pop()!) as Uint8Array<ArrayBuffer>);
    const { info, stream } = await openShareLink(link, { fetch: serve as typeof fetch });
    assert.equal(info.size, data.length);
    assert.deepEqual(await collect(stream), data);
  });
});

Deno.test("at the default limit an 8 GiB private file's manifest tree is valid: one level of nodes, every block within a wire block, every chunk found in order", async () => {
  const count = (8 * 1024 ** 3) / (256 * 1024); // 32,768 chunks of 256 KiB
  const chunks = Array.from({ length: count }, (_, i) => cidOf(encodeCanonical(i)));
  const sealed = { salt: new Uint8Array(32).fill(1), sealed: new Uint8Array(40).fill(2) };
  const flat = { type: MANIFEST_TYPE, v: 1, tier: "private", chunks, ...sealed } as const;
  assert.ok(encodeManifest(flat).length > MAX_WIRE_CHUNK_BYTES, "flat, it would not replicate");
  const blocks = new Map<string, Uint8Array>();
  const root = await buildPrivateManifest(chunks, sealed, DEFAULT_MAX_MANIFEST_BYTES, (bytes) => {
    const key = cidOf(bytes);
    blocks.set(key, bytes);
    return Promise.resolve(key);
  });
  assert.ok(encodeManifest(root).length <= MAX_WIRE_CHUNK_BYTES);
  for (const bytes of blocks.values()) assert.ok(bytes.length <= MAX_WIRE_CHUNK_BYTES);
  const get = (cid: string) => Promise.resolve(blocks.get(storageKey(cid))!);
  assert.equal(await depthOf(root, get), 1);
  let next = 0;
  for await (const chunk of manifestChunks(root, 0, count - 1, get)) {
    assert.equal(chunk.index, next);
    assert.equal(chunk.cid, chunks[next++]);
  }
  assert.equal(next, count);
  // One chunk near the end: the root and one node.
  const read: string[] = [];
  const one = await Array.fromAsync(
    manifestChunks(root, count - 2, count - 2, (c) => (read.push(c), get(c))),
  );
  assert.deepEqual(one, [{ cid: chunks[count - 2], index: count - 2 }]);
  assert.equal(read.length, 1);
});

/** A private file of `n` 64-byte chunks put by hand under a crafted root: hostile trees. */
async function craftedFile(store: ChunkStore, n: number) {
  const cipher = await owner.newFile();
  const chunks: string[] = [];
  for (let i = 0; i < n; i++) {
    chunks.push(await store.put(await cipher.encryptChunk(i, pseudoRandomBytes(CHUNK, i + 1))));
  }
  const sealed = await cipher.sealInfo({ size: n * CHUNK, chunkSize: CHUNK });
  const putNode = async (node: object) =>
    cidOf(await store.put(encodeCanonical(node)).then((k) => store.get(k)), DAG_CBOR_CODEC);
  const putRoot = async (branches: ManifestBranch[]) => {
    const root = {
      type: MANIFEST_TYPE,
      v: 1,
      tier: "private",
      chunks: [],
      branches,
      salt: cipher.salt,
      sealed,
    };
    return cidOf(await store.get(await store.put(encodeCanonical(root))), DAG_CBOR_CODEC);
  };
  return { chunks, putNode, putRoot };
}

const invalid = (pattern: RegExp) => (error: Error & { code?: string }) => {
  assert.equal(error.code, "invalid_manifest", error.message);
  assert.match(error.message, pattern);
  return true;
};

Deno.test("a hostile manifest tree is refused with invalid_manifest: a subtree size that lies, a chain past the depth bound, a node too big, a node asked for as a file", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK });
    const { chunks, putNode, putRoot } = await craftedFile(store, 4);
    const node = (list: string[]) => ({ type: MANIFEST_NODE_TYPE, v: 1, chunks: list });

    // An honest crafted tree reads.
    const a = await putNode(node(chunks.slice(0, 2)));
    const b = await putNode(node(chunks.slice(2)));
    const honest = await putRoot([{ cid: a, chunks: 2 }, { cid: b, chunks: 2 }]);
    assert.equal((await files.bytes(honest, { key: owner })).length, 4 * CHUNK);

    // A subtree that holds other than its parent says.
    const three = await putNode(node(chunks.slice(0, 3)));
    const lying = await putRoot([{ cid: three, chunks: 2 }, { cid: b, chunks: 2 }]);
    await assert.rejects(
      files.bytes(lying, { key: owner }),
      invalid(/holds 3 chunks, its parent says 2/),
    );

    // A total that does not match the sealed size.
    const short = await putRoot([{ cid: a, chunks: 2 }]);
    await assert.rejects(files.bytes(short, { key: owner }), invalid(/sealed size/));

    // A chain deeper than the bound.
    let link = await putNode(node(chunks));
    for (let i = 0; i < MAX_MANIFEST_DEPTH; i++) {
      link = await putNode({
        type: MANIFEST_NODE_TYPE,
        v: 1,
        branches: [{ cid: link, chunks: 4 }],
      });
    }
    const deep = await putRoot([{ cid: link, chunks: 4 }]);
    await assert.rejects(files.bytes(deep, { key: owner }), invalid(/deeper than 8 levels/));

    // A node over the bound is refused before it is decoded.
    const padding = Array.from({ length: MAX_MANIFEST_NODE_BYTES / 60 + 10 }, () => chunks[0]);
    const big = await putNode(node(padding));
    const bigRoot = await putRoot([{ cid: big, chunks: 4 }]);
    await assert.rejects(files.bytes(bigRoot, { key: owner }), invalid(/limit 2097152/));
    // A root claiming more chunks than 2^53 is no manifest.
    const huge = Number.MAX_SAFE_INTEGER;
    await assert.rejects(
      putRoot([{ cid: a, chunks: huge }, { cid: b, chunks: huge }]).then((c) => files.stat(c)),
      invalid(/past 2\^53/),
    );

    // A node is part of a file, not a file.
    await assert.rejects(files.bytes(a, { key: owner }), invalid(/manifest tree, not a file/));
  });
});

Deno.test("a private put whose root cannot fit the manifest limit fails with manifest_too_large, before any node is written", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const before = (await store.stats()).objectCount;
    await assert.rejects(
      files.put(streamOf(pseudoRandomBytes(CHUNK * 40, 12)), {
        key: owner,
        name: "n".repeat(LIMIT),
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "manifest_too_large", error.message);
        assert.match(error.message, /root's own fields/);
        return true;
      },
    );
    assert.equal((await store.stats()).objectCount, before + 40, "the chunks only");
  });
});

Deno.test("at the default limit a put of 9,000 chunks (a flat manifest past 512 KiB) writes a tree and reads back", async () => {
  await withStore(async (store) => {
    const files = new FileStore(store, { chunkSize: 16 });
    const data = pseudoRandomBytes(16 * 9000, 13);
    const { cid } = await files.put(streamOf(data, 65536), { key: owner });
    const root = decodeManifest(await store.get(cid)) as PrivateManifest;
    assert.equal(root.branches?.length, 2);
    for (const branch of root.branches!) {
      assert.ok((await store.get(branch.cid)).length <= DEFAULT_MAX_MANIFEST_BYTES);
    }
    assert.deepEqual(await files.bytes(cid, { key: owner }), data);
  });
});

// ---- hostile trees and boundaries ---------------------------------------------------------------
//
// Private files stored as manifest trees (`storage/manifest_tree.ts`): a tree whose branch names
// another file's node or the same node twice, ranges at the exact chunk and node boundaries, the
// smallest files and the one chunk past a flat manifest's limit, a branch no holder has, and a GC
// while a tree file's put is writing its nodes. Every case is a clear error or the right bytes;
// nothing hangs, nothing is lost.

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(15));

async function withRedTeamStore(run: (store: ChunkStore) => Promise<void>): Promise<void> {
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
  await withRedTeamStore(async (store) => {
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
  await withRedTeamStore(async (store) => {
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
  await withRedTeamStore(async (store) => {
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
  await withRedTeamStore(async (store) => {
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

// ---- every block survives GC, repair and audits -------------------------------------------------
//
// Every block of a private file stored as a manifest tree (`storage/manifest_tree.ts`) survives
// what the current node does to blocks: GC of the store that pins it, GC of the holders that keep
// it for the writer, a repair after a holder leaves, and an audit of every holder left. (An older
// node, which does not know tree roots, would collect a pinned tree's inner nodes: see
// docs/STORAGE.md, "Manifest trees and older nodes"; the `cli.ts ls` section below shows what the
// current node does with a tree left so.)

/** Chunks one audit round samples (a round's proofs travel in one message). */
const SAMPLE = 64;
const SURVIVING_OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(14));

Deno.test("GC of the store that pins a tree-manifest file keeps every node and chunk of it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 300 + 1, 41);
    const { cid } = await files.put(streamOf(data), { key: SURVIVING_OWNER });
    await store.pin(cid);
    // An unpinned file's blocks go: the GC did run.
    const loose = await files.put(streamOf(pseudoRandomBytes(CHUNK * 3, 42)), {
      key: SURVIVING_OWNER,
    });
    const blocks = await files.blocks(cid);
    assert.ok(blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 3);
    const result = await store.gc({ graceMs: 0 });
    assert.equal(result.removed, 4, "the loose file's root and 3 chunks");
    assert.equal(await store.has(loose.cid), false);
    for (const block of blocks) assert.equal(await store.has(block), true, block);
    assert.deepEqual(await files.bytes(cid, { key: SURVIVING_OWNER }), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tree-manifest file's every block stays on two holders through their GC, a holder leaving, a repair, and audits of every holder left", async () => {
  const nodes: ServedNode[] = await Promise.all([0, 1, 2, 3].map(() => servedNode()));
  const live = new Set(nodes);
  try {
    const options = { replicas: 2, writeQuorum: 2, readParallelism: 1 };
    const replicated = new ReplicatedStore(nodes.map((n) => n.remote), options);
    const files = new FileStore(replicated, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 250 + 7, 43);
    const { cid } = await files.put(streamOf(data), { key: SURVIVING_OWNER });
    const walked = await files.blocks(cid);
    const blocks = walked.map(storageKey);
    const nodeKeys = new Set(walked.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).map(storageKey));
    assert.ok(blocks.length > 260, `${blocks.length} blocks: chunks and nodes`);
    const holdersOf = async (block: string) => {
      const held = await Promise.all([...live].map((n) => n.local.hasChunk(block)));
      return held.filter(Boolean).length;
    };
    const gcEveryHolder = async () => {
      for (const node of live) assert.equal((await node.store.gc({ graceMs: 0 })).removed, 0);
    };

    await gcEveryHolder();
    for (const block of blocks) assert.equal(await holdersOf(block), 2, block);

    // A holder leaves, with its copies; a repair over those left restores two of each.
    const gone = nodes[0];
    live.delete(gone);
    await gone.shutdown();
    replicated.setPeers([...live].map((n) => n.remote));
    await replicated.repair(blocks);
    await gcEveryHolder();
    for (const block of blocks) assert.equal(await holdersOf(block), 2, block);

    // Every holder left proves every block of the file it holds, inner nodes and chunks.
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (c, signal) => replicated.get(c, { signal }),
      sampleSize: SAMPLE,
    });
    for (const node of live) {
      const mine: string[] = [];
      for (const block of blocks) if (await node.local.hasChunk(block)) mine.push(block);
      assert.ok(mine.some((c) => nodeKeys.has(c)), "it holds nodes");
      // In rounds of a sample's size, so every block is sampled once.
      for (let i = 0; i < mine.length; i += SAMPLE) {
        const round = mine.slice(i, i + SAMPLE);
        const audit = await auditor.audit(node.remote, round);
        assert.deepEqual(audit.failures, []);
        assert.equal(audit.sampled.length, round.length);
        assert.equal(audit.passed, true);
      }
    }
    assert.deepEqual(await files.bytes(cid, { key: SURVIVING_OWNER }), data);
  } finally {
    for (const node of live) await node.shutdown();
  }
});

// ---- `cli.ts ls` of a damaged tree --------------------------------------------------------------
//
// `cli.ts ls` of a damaged private file stored as a manifest tree (`storage/manifest_tree.ts`): "of
// N chunks" counts the file's chunks (what its root's branches say), not the root's links (its few
// branches); and a tree whose inner node is lost (what an older node's GC, which does not know tree
// roots, would leave) is flagged, its GC refused, its read a clear error.

const DAMAGED_OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(8));

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
      key: DAMAGED_OWNER,
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
      new FileStore(store).bytes(cid, { key: DAMAGED_OWNER }),
      (error: Error & { code?: string }) => error.code === "chunk_not_found",
    );
  });
});
