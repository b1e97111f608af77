/**
 * UnixFS (`storage/unixfs.ts`, `storage/unixfs_path.ts`): files and DAGs as `ipfs add` writes
 * them, content paths and byte ranges over them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import * as dagCbor from "@ipld/dag-cbor";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import {
  canonicalCid,
  cidDigest,
  cidFromDigest,
  cidOf,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  RAW_CODEC,
  storageKey,
} from "../../protocols/cid.ts";
import { encodeManifest, MANIFEST_TYPE, MANIFEST_VERSION } from "../../protocols/manifest.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import type { BlockStore } from "../../storage/block_store.ts";
import { exportCar, importCar } from "../../storage/car.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import {
  BlockTooLargeError,
  InvalidManifestError,
  MAX_DAG_BLOCK_BYTES,
  MAX_LINKS_PER_NODE,
} from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LEGACY_MANIFESTS_DIR } from "../../storage/legacy_manifests.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { decodeUnixfs, filePieces, fileRangeBlocks } from "../../storage/unixfs.ts";
import {
  encodeNameSegment,
  PathNotFoundError,
  resolveUnixfsPath,
} from "../../storage/unixfs_path.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { importerRoot } from "./_ipfs_reference.ts";

// ---- UnixFS files and DAGs ----------------------------------------------------------------------

const MiB = 1024 * 1024;

/** A {@link BlockStore} in memory, keyed like the chunk store (raw CID of the digest). */
class MemoryBlockStore implements BlockStore {
  readonly #blocks = new Map<string, Uint8Array>();
  async put(bytes: Uint8Array): Promise<string> {
    const cid = await cidOfAsync(bytes);
    this.#blocks.set(cid, bytes);
    return cid;
  }
  get(cid: string): Promise<Uint8Array> {
    const bytes = this.#blocks.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  }
  has(cid: string): Promise<boolean> {
    return Promise.resolve(this.#blocks.has(storageKey(cid)));
  }
}
const CHUNK = 262_144;
const COMMAND = new URL("./_run_storage_command.ts", import.meta.url).pathname;

async function cliPut(dataDir: string, path: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", COMMAND, "put", "--init", "--data", dataDir, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("cli put gives the npm importer's root CID (ipfs add --cid-version 1 --raw-leaves): empty, 1 byte, one chunk, 10 MiB, a directory", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "data");
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["one-byte", new Uint8Array([0x42])],
    ["one-chunk", pseudoRandomBytes(CHUNK, 2)],
    ["ten-mib", pseudoRandomBytes(10 * MiB, 3)],
  ];
  for (const [name, bytes] of cases) {
    const path = join(dir, name);
    await Deno.writeFile(path, bytes);
    const { root } = await importerRoot([{ content: bytes }]);
    assert.equal(await cliPut(data, path), root, name);
  }
  // A directory with a subdirectory, an empty file and a multi-chunk file.
  const tree = join(dir, "tree");
  await Deno.mkdir(join(tree, "sub", "deeper"), { recursive: true });
  const files: [string, Uint8Array][] = [
    ["a.txt", new TextEncoder().encode("hello\n")],
    ["b.bin", pseudoRandomBytes(3 * CHUNK + 17, 4)],
    ["empty", new Uint8Array(0)],
    ["sub/c.txt", new TextEncoder().encode("nested")],
    ["sub/deeper/d.bin", pseudoRandomBytes(CHUNK + 1, 5)],
  ];
  for (const [rel, bytes] of files) await Deno.writeFile(join(tree, rel), bytes);
  const { root } = await importerRoot(
    files.map(([rel, content]) => ({ path: `tree/${rel}`, content })),
  );
  assert.equal(await cliPut(data, tree), root, "directory");
  // The store holds what IPFS would: reading the 10 MiB file back by its UnixFS id.
  const store = await ChunkStore.open(join(data, "store"));
  const files2 = new FileStore(store);
  const tenMib = await importerRoot([{ content: cases[3][1] }]);
  assert.deepEqual(await files2.bytes(tenMib.root), cases[3][1]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("deeper balanced trees (over 174 and 174² leaves) match the importer block for block, and read back in ranges", async () => {
  const store = new MemoryBlockStore(); // 30,000 tiny chunks: no disk needed to test a layout
  for (const [chunkSize, count] of [[1024, 175], [16, 174 * 174 + 3]]) {
    const bytes = pseudoRandomBytes(chunkSize * count - 5, count);
    const files = new FileStore(store, { chunkSize });
    const put = await files.put(streamOf(bytes, 4099));
    const reference = await importerRoot([{ content: bytes }], { chunkSize });
    assert.equal(put.cid, reference.root, `${count} chunks of ${chunkSize}`);
    for (const [cid, block] of reference.blocks.blocks) {
      assert.deepEqual(await store.get(storageKey(cid)), block, cid);
    }
    assert.equal((await files.blocks(put.cid)).length, reference.blocks.blocks.size);
    for (
      const [start, end] of [[0, 1], [chunkSize - 1, chunkSize * 3 + 2], [
        bytes.length - 7,
        bytes.length,
      ]]
    ) {
      assert.deepEqual(await files.bytes(put.cid, { start, end }), bytes.subarray(start, end));
    }
    assert.deepEqual(await collect(await files.get(put.cid)), bytes);
  }
});

Deno.test("a UnixFS DAG written by the importer (any CID in it) is read by FileStore, and stat sees a directory", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const bytes = pseudoRandomBytes(2 * CHUNK + 3, 9);
  const reference = await importerRoot([{ path: "d/x.bin", content: bytes }]);
  for (const block of reference.blocks.blocks.values()) await store.put(block);
  const files = new FileStore(store);
  const info = await files.stat(reference.root);
  assert.equal(info.type, "directory");
  const [fileCid] = info.chunks;
  assert.equal((await files.stat(fileCid)).size, bytes.length);
  assert.deepEqual(await files.bytes(fileCid), bytes);
  await assert.rejects(files.bytes(reference.root), { code: "not_a_file" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a UnixFS file with dag-pb leaves (ipfs add without --raw-leaves) reads back whole and in ranges", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { durable: false });
  const files = new FileStore(store);
  // One leaf (the root is its own leaf), a few leaves, and over 174 (an inner level of nodes).
  for (const [chunkSize, count] of [[1024, 1], [1024, 3], [64, 180]]) {
    const bytes = pseudoRandomBytes(chunkSize * count - 5, count);
    const reference = await importerRoot([{ content: bytes }], { chunkSize, rawLeaves: false });
    for (const block of reference.blocks.blocks.values()) await store.put(block);
    await store.pin(reference.root);
    assert.equal((await files.stat(reference.root)).size, bytes.length);
    assert.deepEqual(await files.bytes(reference.root), bytes, `${count} leaves of ${chunkSize}`);
    const [start, end] = [Math.min(chunkSize - 1, 7), Math.min(bytes.length, chunkSize * 2 + 7)];
    assert.deepEqual(
      await files.bytes(reference.root, { start, end }),
      bytes.subarray(start, end),
    );
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("GC walks a pinned UnixFS DAG through its inner nodes; a missing inner node stops the GC", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 16 });
  const kept = await files.put(streamOf(pseudoRandomBytes(16 * 400, 11))); // 3 inner nodes + root
  const dropped = await files.put(streamOf(pseudoRandomBytes(16 * 200, 12)));
  await store.pin(kept.cid);
  const result = await store.gc({ graceMs: -1 });
  assert.deepEqual(result.unreadableRoots, []);
  assert.equal(result.removed, 200 + 3, "the unpinned file: 200 leaves, 2 inner nodes, a root");
  assert.equal((await files.bytes(kept.cid)).length, 16 * 400);
  assert.equal(await store.has(dropped.cid), false);
  const inner = (await files.stat(kept.cid)).chunks[1];
  await store.delete(inner);
  assert.deepEqual((await store.gc({ graceMs: -1 })).unreadableRoots, [kept.cid]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a private file's id is the dag-cbor CID of its manifest, whose bytes are valid DAG-CBOR", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(3));
  const bytes = pseudoRandomBytes(5000, 13);
  const put = await files.put(streamOf(bytes), { key, name: "s.txt" });
  assert.match(put.cid, /^bafyrei/);
  const block = await store.get(put.cid);
  assert.deepEqual(dagCbor.encode(dagCbor.decode(block)), block, "canonical DAG-CBOR");
  assert.deepEqual(await files.bytes(put.cid, { key }), bytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files stored before UnixFS (raw-labelled manifests) are still read under their old ids", async () => {
  const dir = await Deno.makeTempDir();
  let store = await ChunkStore.open(dir);
  const chunks = [await store.put(new Uint8Array([1, 2])), await store.put(new Uint8Array([3]))];
  const legacy = await store.put(encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "public",
    size: 3,
    chunkSize: 2,
    chunks,
    name: "old.bin",
  }));
  assert.match(legacy, /^bafkrei/);
  await store.pin(legacy);
  // A store written before the record of old manifests existed: its first open makes it.
  await Deno.remove(join(dir, LEGACY_MANIFESTS_DIR), { recursive: true });
  store = await ChunkStore.open(dir);
  assert.equal(await store.isLegacyManifest(legacy), true);
  const files = new FileStore(store);
  assert.deepEqual(await files.bytes(legacy), new Uint8Array([1, 2, 3]));
  assert.deepEqual(await files.content(legacy), new Uint8Array([1, 2, 3]));
  assert.equal((await files.stat(legacy)).name, "old.bin");
  assert.deepEqual(await files.blocks(legacy), [legacy, ...chunks]);
  assert.equal((await store.gc({ graceMs: -1 })).removed, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a one-chunk public file shaped like a manifest is its own bytes: never another file, never a type it names", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store);
  const victim = new TextEncoder().encode("<script>alert(1)</script> someone else's file");
  const { cid: victimCid } = await files.put(streamOf(victim));
  const forged = encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "public",
    size: victim.length,
    chunkSize: 262_144,
    chunks: [victimCid],
    mime: "text/html",
  });
  const privateShaped = encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "private",
    chunks: [victimCid],
    salt: new Uint8Array(16),
    sealed: new Uint8Array(40),
  });
  const tagOnly = new Uint8Array([
    0xa1,
    0x64,
    ...new TextEncoder().encode("type"),
    0x71,
    ...new TextEncoder().encode(MANIFEST_TYPE),
  ]);
  for (const bytes of [forged, privateShaped, tagOnly]) {
    const put = await files.put(streamOf(bytes));
    await store.pin(put.cid);
    assert.equal(put.cid, cidOf(bytes), "the raw CID of its own bytes");
    assert.deepEqual(await files.bytes(put.cid), bytes);
    assert.deepEqual(await collect(await files.get(put.cid)), bytes);
    assert.deepEqual(await files.content(put.cid), bytes);
    const info = await files.stat(put.cid);
    assert.equal(info.size, bytes.length);
    assert.equal(info.mime, undefined, "no type taken from a leaf's bytes");
    assert.deepEqual(info.chunks, [put.cid]);
    assert.deepEqual(await files.blocks(put.cid), [put.cid], "a leaf links nothing");
    const car = await collect(exportCar(put.cid, (c) => store.get(c), {
      isLegacyManifest: (c) => store.isLegacyManifest(c),
    }));
    assert.equal(car.length < bytes.length + 200, true, "the CAR holds the leaf alone");
  }
  // Reopened, such files are still leaves: the record of old manifests is not made again.
  const reopened = new FileStore(await ChunkStore.open(dir));
  assert.deepEqual(await reopened.bytes(cidOf(forged)), forged);
  // The same bytes under a dag-cbor label are not a public manifest either.
  await assert.rejects(
    () => files.bytes(cidFromDigest(cidDigest(cidOf(forged)), DAG_CBOR_CODEC)),
    InvalidManifestError,
  );
  // GC keeps nothing a leaf's bytes name: the victim, unpinned, is collected.
  assert.equal(await store.has(victimCid), true);
  await store.gc({ graceMs: -1 });
  assert.equal(await store.has(victimCid), false);
  await Deno.remove(dir, { recursive: true });
});

/** A chain of `depth` one-link dag-pb file nodes over one raw leaf; returns the top's CID. */
async function deepChain(store: BlockStore, leaf: Uint8Array, depth: number): Promise<string> {
  let child = await store.put(leaf);
  let tsize = leaf.length;
  for (let i = 0; i < depth; i++) {
    const unixfs = new UnixFS({ type: "file" });
    unixfs.addBlockSize(BigInt(leaf.length));
    const bytes = dagPb.encode(dagPb.prepare({
      Data: unixfs.marshal(),
      Links: [{ Name: "", Tsize: tsize, Hash: CID.parse(child) }],
    }));
    child = cidFromDigest(cidDigest(await store.put(bytes)), DAG_PB_CODEC);
    tsize += bytes.length;
  }
  return child;
}

Deno.test("a file DAG 5,000 levels deep is refused dag_too_deep by reads, whole and in ranges (review s78 F1), and listed whole (no stack overflow)", async () => {
  const store = new MemoryBlockStore();
  const leaf = new TextEncoder().encode("deep leaf!");
  const root = await deepChain(store, leaf, 5_000);
  const files = new FileStore(store);
  await assert.rejects(files.bytes(root), { code: "dag_too_deep" });
  await assert.rejects(files.bytes(root, { start: 2, end: 6 }), { code: "dag_too_deep" });
  assert.equal((await files.blocks(root)).length, 5_001);
});

/** A dag-pb file node with `links` links, all to `leaf` (10 bytes each). */
function wideNode(leaf: string, links: number): Uint8Array {
  const unixfs = new UnixFS({ type: "file" });
  for (let i = 0; i < links; i++) unixfs.addBlockSize(10n);
  const link = { Name: "", Tsize: 10, Hash: CID.parse(leaf) };
  return dagPb.encode({ Data: unixfs.marshal(), Links: Array(links).fill(link) });
}

Deno.test("DAG nodes over 2 MiB or 16,384 links are refused as block_too_large: on import, on a peer's put, on read and export", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const leaf = await store.put(new TextEncoder().encode("deep leaf!"));
  const huge = wideNode(leaf, 60_000); // ~2.4 MB
  assert.equal(huge.length > MAX_DAG_BLOCK_BYTES, true);
  const hugeCid = cidOf(huge, DAG_PB_CODEC);
  // A CAR carrying it stops at that block, before storing it.
  const { writer, out } = CarWriter.create([CID.parse(hugeCid)]);
  const parts: Uint8Array[] = [];
  const reading = (async () => {
    for await (const part of out) parts.push(part);
  })();
  await writer.put({ cid: CID.parse(hugeCid), bytes: huge });
  await writer.close();
  await reading;
  const rejected = await importCar(ReadableStream.from(parts), store).catch((e) => e);
  assert.equal(rejected instanceof BlockTooLargeError, true, String(rejected));
  assert.equal(await store.has(hugeCid), false);
  // A peer's put that names it dag-pb.
  await assert.rejects(() => store.put(huge, { cid: hugeCid }), BlockTooLargeError);
  // Stored anyway (a put without a claim, a store written before): never decoded or walked.
  await store.put(huge);
  const files = new FileStore(store);
  await assert.rejects(() => files.bytes(hugeCid), BlockTooLargeError);
  await assert.rejects(() => files.blocks(hugeCid), BlockTooLargeError);
  await assert.rejects(() => collect(exportCar(hugeCid, (c) => store.get(c))), BlockTooLargeError);
  // Under 2 MiB but too many links.
  const wide = wideNode(leaf, MAX_LINKS_PER_NODE + 1);
  const wideCid = cidFromDigest(cidDigest(await store.put(wide)), DAG_PB_CODEC);
  await assert.rejects(() => files.bytes(wideCid), BlockTooLargeError);
  await assert.rejects(() => files.blocks(wideCid), BlockTooLargeError);
  // At the limit, read as usual.
  const most = wideNode(leaf, MAX_LINKS_PER_NODE);
  const mostCid = cidFromDigest(cidDigest(await store.put(most)), DAG_PB_CODEC);
  assert.equal((await files.stat(mostCid)).size, MAX_LINKS_PER_NODE * 10);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a CAR made by ipfs add defaults (CIDv0 root and links) imports and reads back, its root as CIDv1", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { durable: false });
  const bytes = pseudoRandomBytes(600_000, 9);
  const reference = await importerRoot([{ content: bytes }], { rawLeaves: false, cidVersion: 0 });
  assert.match(reference.root, /^Qm/);
  const { writer, out } = CarWriter.create([CID.parse(reference.root)]);
  const parts: Uint8Array[] = [];
  const reading = (async () => {
    for await (const part of out) parts.push(part);
  })();
  for (const [cid, block] of reference.blocks.blocks) {
    await writer.put({ cid: CID.parse(cid), bytes: block });
  }
  await writer.close();
  await reading;
  const { roots } = await importCar(ReadableStream.from(parts), store);
  assert.deepEqual(roots, [CID.parse(reference.root).toV1().toString()]);
  assert.match(roots[0], /^bafybei/);
  const files = new FileStore(store);
  assert.deepEqual(await files.bytes(roots[0]), bytes);
  assert.deepEqual(
    await files.bytes(roots[0], { start: 300_000, end: 300_010 }),
    bytes.subarray(300_000, 300_010),
  );
  await Deno.remove(dir, { recursive: true });
});

// ---- content paths and byte ranges --------------------------------------------------------------
//
// Content paths and byte ranges over UnixFS DAGs made by the reference importer (what `ipfs add`
// writes, raw leaves or not, CIDv1 or CIDv0): `resolveUnixfsPath` follows names and keeps the
// directory blocks on the way; `fileRangeBlocks` lists just the blocks of a byte range, parents
// before children, and they suffice to read it.

const text = (s: string) => new TextEncoder().encode(s);

/** A block reader over an import's blocks, by any CID form (CIDv0 links are read as CIDv1). */
function reader(blocks: Map<string, Uint8Array>) {
  const byV1 = new Map([...blocks].map(([cid, bytes]) => [canonicalCid(cid), bytes]));
  return (cid: string) => {
    const bytes = byV1.get(canonicalCid(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
  };
}

Deno.test("resolveUnixfsPath follows names through the importer's directories (CIDv1 and plain `ipfs add` CIDv0), keeping the directory blocks in order", async () => {
  for (const cidVersion of [1, 0] as const) {
    const { root, blocks } = await importerRoot([
      { path: "site/docs/a.txt", content: text("a") },
      { path: "site/docs/b.txt", content: text("b") },
      { path: "site/index.html", content: text("<p>") },
    ], { cidVersion, rawLeaves: cidVersion === 1 });
    const get = reader(blocks.blocks);
    const top = canonicalCid(root);
    const resolved = await resolveUnixfsPath(top, ["docs", "b.txt"], get);
    const file = decodeUnixfs(resolved.cid, await get(resolved.cid));
    assert.equal(new TextDecoder().decode(file.data), "b");
    assert.equal(resolved.roots.length, 3);
    assert.equal(resolved.roots[0], top);
    assert.equal(resolved.roots[2], resolved.cid);
    assert.deepEqual(resolved.blocks.map((b) => b.cid), resolved.roots.slice(0, 2));
    // Each directory block links the next root by the name followed.
    for (const [i, name] of ["docs", "b.txt"].entries()) {
      const link = dagPb.decode(resolved.blocks[i].bytes).Links.find((l) => l.Name === name);
      assert.equal(link?.Hash.toV1().toString(), resolved.roots[i + 1]);
    }
    assert.deepEqual(await resolveUnixfsPath(top, [], get), { cid: top, blocks: [], roots: [top] });

    const missing = await resolveUnixfsPath(top, ["docs", "c.txt"], get).catch((e) => e);
    assert.ok(missing instanceof PathNotFoundError);
    assert.equal(missing.code, "path_not_found");
    assert.equal(missing.segment, "c.txt");
    assert.equal(missing.at, `/ipfs/${top}/docs`);
    await assert.rejects(resolveUnixfsPath(top, ["index.html", "x"], get), {
      code: "path_not_found",
      message: new RegExp(`/ipfs/${top}/index.html is a file`),
    });
  }
});

Deno.test("fileRangeBlocks lists the root, then each inner node and leaf that holds the range, parents first, and those blocks alone read it", async () => {
  // 200 dag-pb leaves of 100 bytes: a root over two inner nodes (174 leaves, then 26).
  const bytes = pseudoRandomBytes(20_000, 61);
  const { root, blocks } = await importerRoot([{ content: bytes }], {
    chunkSize: 100,
    rawLeaves: false,
  });
  const get = reader(blocks.blocks);
  const linksOf = async (cid: string) =>
    dagPb.decode(await get(cid)).Links.map((l) => l.Hash.toV1().toString());
  const [inner0, inner1] = await linksOf(root);
  const leaf173 = (await linksOf(inner0))[173];
  const leaf174 = (await linksOf(inner1))[0];

  const listed = async (start: number, end: number) => {
    const out: { cid: string; bytes?: Uint8Array }[] = [];
    for await (const block of fileRangeBlocks(root, start, end, get)) out.push(block);
    return out;
  };
  // Bytes 17,350–17,449 straddle leaf 173 (under the first inner node) and leaf 174 (the second).
  const straddle = await listed(17_350, 17_450);
  assert.deepEqual(straddle.map((b) => CID.parse(b.cid).toV1().toString()), [
    canonicalCid(root),
    inner0,
    leaf173,
    inner1,
    leaf174,
  ]);
  assert.ok(straddle.every((b) => b.bytes !== undefined), "dag-pb leaves are nodes: read");

  for (const [start, end] of [[0, 1], [250, 1_050], [17_350, 17_450], [19_990, 20_000]]) {
    const only = new Map<string, Uint8Array>();
    for (const block of await listed(start, end)) {
      only.set(canonicalCid(block.cid), block.bytes ?? await get(block.cid));
    }
    assert.equal(only.size, (await listed(start, end)).length, "no block twice");
    assert.ok(only.size < blocks.blocks.size, "not the whole file");
    // Reading the range from those blocks alone gives its bytes.
    const strict = reader(only);
    const node = { ...decodeUnixfs(canonicalCid(root), await strict(root)), cid: root };
    const parts: Uint8Array[] = [];
    for await (const piece of filePieces(node, start, end, strict)) {
      const data = piece.data ?? await strict(piece.cid);
      parts.push(data.subarray(piece.from, piece.to));
    }
    assert.deepEqual(new Uint8Array(parts.flatMap((p) => [...p])), bytes.subarray(start, end));
  }
});

/** A block reader over hand-made blocks, counting the reads of each CID. */
function countingReader() {
  const blocks = new Map<string, Uint8Array>();
  const reads = new Map<string, number>();
  return {
    reads,
    put: (bytes: Uint8Array, codec: typeof RAW_CODEC | typeof DAG_PB_CODEC) => {
      const cid = cidOf(bytes, codec);
      blocks.set(cid, bytes);
      return cid;
    },
    get: (cid: string) => {
      reads.set(cid, (reads.get(cid) ?? 0) + 1);
      const bytes = blocks.get(cid);
      return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
    },
  };
}

Deno.test("fileRangeBlocks reads a node its parent links 174 times once (twice where the range cuts it), lists it once, and refuses a walk past maxSteps", async () => {
  const store = countingReader();
  // Two levels over one 1-byte leaf, each node linking the level below 174 times.
  let child = { cid: store.put(new Uint8Array([0x41]), RAW_CODEC), size: 1 };
  const nodes = [child.cid];
  for (let level = 0; level < 2; level++) {
    const unixfs = new UnixFS({ type: "file" });
    for (let i = 0; i < 174; i++) unixfs.addBlockSize(BigInt(child.size));
    const links = Array.from({ length: 174 }, () => ({
      Hash: CID.parse(child.cid),
      Tsize: child.size,
    }));
    const bytes = dagPb.encode(dagPb.prepare({ Data: unixfs.marshal(), Links: links }));
    child = { cid: store.put(bytes, DAG_PB_CODEC), size: child.size * 174 };
    nodes.unshift(child.cid);
  }
  const listed: string[] = [];
  for await (const block of fileRangeBlocks(child.cid, 1, child.size, store.get)) {
    listed.push(block.cid);
  }
  assert.deepEqual(listed, nodes, "the root, the inner node, the leaf: each once");
  for (const inner of nodes.slice(1, -1)) {
    assert.ok(store.reads.get(inner)! <= 2, `${inner} read ${store.reads.get(inner)} times`);
  }
  assert.equal(store.reads.get(nodes.at(-1)!), undefined, "a raw leaf is listed, not read");

  const walk = async (maxSteps: number) => {
    for await (const _ of fileRangeBlocks(child.cid, 0, child.size, store.get, { maxSteps })) {
      // drained
    }
  };
  await walk(174 * 2); // each level: 174 links, one read and 173 skipped as listed
  await assert.rejects(walk(100), (error: Error & { code?: string }) => {
    assert.equal(error.code, "range_too_large");
    assert.match(error.message, /more than 100 blocks walked/);
    return true;
  });
});

Deno.test("resolveUnixfsPath compares names as bytes: two names that are not UTF-8 (0xFE, 0xFF) are two entries, found by their bytes, and their U+FFFD reading finds neither", async () => {
  const store = countingReader();
  const a = store.put(text("a"), RAW_CODEC);
  const b = store.put(text("b"), RAW_CODEC);
  const bytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "Q", Hash: CID.parse(a), Tsize: 1 }, {
      Name: "R",
      Hash: CID.parse(b),
      Tsize: 1,
    }],
  }));
  // The names `Q` and `R` (field 2, length 1) made 0xFE and 0xFF.
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0x12 && bytes[i + 1] === 1 && [0x51, 0x52].includes(bytes[i + 2])) {
      bytes[i + 2] += 0xfe - 0x51;
    }
  }
  const root = store.put(bytes, DAG_PB_CODEC);
  const node = decodeUnixfs(root, bytes);
  assert.deepEqual(node.links.map((l) => [...l.nameBytes]), [[0xfe], [0xff]]);
  assert.deepEqual(node.links.map((l) => l.name), ["\ufffd", "\ufffd"], "read as text, alike");
  assert.equal((await resolveUnixfsPath(root, [new Uint8Array([0xfe])], store.get)).cid, a);
  assert.equal((await resolveUnixfsPath(root, [new Uint8Array([0xff])], store.get)).cid, b);
  await assert.rejects(resolveUnixfsPath(root, ["\ufffd"], store.get), PathNotFoundError);
  const missing = await resolveUnixfsPath(root, [new Uint8Array([0xfe]), "x"], store.get)
    .catch((e) => e);
  assert.match(missing.message, new RegExp(`/ipfs/${root}/%FE is a file`));
  assert.equal(encodeNameSegment(new Uint8Array([0x61, 0xfe, 0x2f])), "a%FE%2F");
});
