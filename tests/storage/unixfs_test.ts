import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import * as dagCbor from "@ipld/dag-cbor";
import {
  cidDigest,
  cidFromDigest,
  cidOf,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  storageKey,
} from "../../protocols/cid.ts";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { encodeManifest, MANIFEST_TYPE, MANIFEST_VERSION } from "../../protocols/manifest.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import type { BlockStore } from "../../storage/block_store.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { importerRoot } from "./_ipfs_reference.ts";
import { LEGACY_MANIFESTS_DIR } from "../../storage/legacy_manifests.ts";
import { exportCar, importCar } from "../../storage/car.ts";
import {
  BlockTooLargeError,
  InvalidManifestError,
  MAX_DAG_BLOCK_BYTES,
  MAX_LINKS_PER_NODE,
} from "../../storage/errors.ts";
import { CarWriter } from "@ipld/car";

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
    args: ["run", "-A", COMMAND, "put", "--data", dataDir, path],
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

Deno.test("a file DAG 5,000 levels deep reads back whole and in ranges (no stack overflow)", async () => {
  const store = new MemoryBlockStore();
  const leaf = new TextEncoder().encode("deep leaf!");
  const root = await deepChain(store, leaf, 5_000);
  const files = new FileStore(store);
  assert.deepEqual(await files.bytes(root), leaf);
  assert.deepEqual(await files.bytes(root, { start: 2, end: 6 }), leaf.subarray(2, 6));
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
