/**
 * Content paths and byte ranges over UnixFS DAGs made by the reference importer (what `ipfs add`
 * writes, raw leaves or not, CIDv1 or CIDv0): `resolveUnixfsPath` follows names and keeps the
 * directory blocks on the way; `fileRangeBlocks` lists just the blocks of a byte range, parents
 * before children, and they suffice to read it.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { CID } from "multiformats/cid";
import { UnixFS } from "ipfs-unixfs";
import { canonicalCid, cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { decodeUnixfs, filePieces, fileRangeBlocks } from "../../storage/unixfs.ts";
import {
  encodeNameSegment,
  PathNotFoundError,
  resolveUnixfsPath,
} from "../../storage/unixfs_path.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { importerRoot } from "./_ipfs_reference.ts";

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
