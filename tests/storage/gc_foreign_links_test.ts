/**
 * A pinned directory from a peer may link blocks no store here can hold: a valid CID of another
 * codec (dag-json), or a CID written with a padded varint that `@ipld/dag-pb` refuses. Before
 * review s74 verify2 either made every `gc` of the store fail with `invalid_cid` and cut a CAR
 * export off mid-body. GC and the CAR walk now pass over such a link (`dag_links.ts`
 * `storedLinks`, `_chunk_gc.ts`), and the dag-pb reader refuses the padded CID, as
 * `@ipld/dag-pb` does, so that directory is a leaf to both.
 */
import assert from "node:assert/strict";
import { CarReader } from "@ipld/car";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidDigest, cidFromDigest, DAG_PB_CODEC } from "../../protocols/cid.ts";
import { exportCar } from "../../storage/car.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { collect } from "./_helpers.ts";

/** dag-json's multicodec: a valid CIDv1 codec this store does not hold. */
const DAG_JSON_CODEC = 0x0129;

/** One protobuf length-delimited field (field numbers and lengths here stay under 128). */
function field(num: number, body: number[]): number[] {
  assert.ok(body.length < 128);
  return [num * 8 + 2, body.length, ...body];
}

/** A UnixFS directory node whose links are `hashes` (raw CID bytes), named a, b, …. */
function directory(hashes: number[][]): Uint8Array {
  const links = hashes.flatMap((hash, i) =>
    field(2, [...field(1, hash), ...field(2, [0x61 + i]), 0x18, 11])
  );
  return Uint8Array.from([...links, ...field(1, [...new UnixFS({ type: "directory" }).marshal()])]);
}

/** A store holding a leaf and an unpinned orphan, and a pinned directory built from the leaf. */
async function storeWith(links: (leaf: CID) => number[][]) {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const leaf = CID.parse(await store.put(new TextEncoder().encode("hello leaf\n")));
  const orphan = await store.put(new TextEncoder().encode("nobody links me"));
  const root = cidFromDigest(cidDigest(await store.put(directory(links(leaf)))), DAG_PB_CODEC);
  await store.pin(root);
  return { dir, store, leaf: leaf.toString(), orphan, root };
}

/** `run` with `console.warn` captured; its result and the lines warned. */
async function warned<T>(run: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const { warn } = console;
  console.warn = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    return { value: await run(), lines };
  } finally {
    console.warn = warn;
  }
}

async function carBlockCids(
  root: string,
  store: ChunkStore,
  onUnstorable?: (link: string) => void,
): Promise<string[]> {
  const car = await collect(exportCar(root, (cid) => store.get(cid), { onUnstorable }));
  const reader = await CarReader.fromBytes(car);
  const out: string[] = [];
  for await (const block of reader.blocks()) out.push(block.cid.toString());
  return out;
}

Deno.test("gc of a store pinning a directory that links a dag-json CID keeps the stored links, collects garbage, and says so once", async () => {
  const { dir, store, leaf, orphan, root } = await storeWith((leaf) => [
    [...CID.createV1(DAG_JSON_CODEC, leaf.multihash).bytes],
    [...CID.createV1(DAG_JSON_CODEC, leaf.multihash).bytes],
    [...leaf.bytes],
  ]);
  try {
    const { value: result, lines } = await warned(() => store.gc({ graceMs: -1 }));
    assert.equal(result.removed, 1, "the orphan is collected");
    assert.equal(await store.has(orphan), false);
    assert.equal(await store.has(leaf), true, "the directory's stored link is kept");
    assert.equal(await store.has(root), true);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /passed over 2 link\(s\).*baguqeera/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a CAR export of a directory that links a dag-json CID carries the directory and its stored links, and tells the link it passed over", async () => {
  const { dir, store, leaf, root } = await storeWith((leaf) => [
    [...CID.createV1(DAG_JSON_CODEC, leaf.multihash).bytes],
    [...leaf.bytes],
  ]);
  try {
    const passedOver: string[] = [];
    assert.deepEqual(await carBlockCids(root, store, (link) => passedOver.push(link)), [
      root,
      leaf,
    ]);
    assert.deepEqual(passedOver.map((link) => link.slice(0, 9)), ["baguqeera"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a directory that links a CID with a padded version varint is a leaf to gc and to a CAR export", async () => {
  const { dir, store, orphan, root } = await storeWith((leaf) => [
    [0x81, 0x00, ...leaf.bytes.subarray(1)], // version 1 written in two bytes
    [...leaf.bytes],
  ]);
  try {
    const result = await store.gc({ graceMs: -1 });
    assert.deepEqual(result.unreadableRoots, []);
    assert.equal(await store.has(orphan), false);
    assert.equal(await store.has(root), true);
    assert.deepEqual(await carBlockCids(root, store), [root]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
