/**
 * Review s46 of the IPFS gateway and UnixFS/CAR: each test here failed on the code before its fix.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { decodeUnixfs, filePieces } from "../../storage/unixfs.ts";
import { blockMaker, readCar, startGatewayNode } from "./_gateway_node.ts";

/** Blocks in memory by CID, every read counted; a read past `limit` throws (a walk that runs away). */
function blocks(limit = 1_000) {
  const map = new Map<string, Uint8Array>();
  let reads = 0;
  return {
    put: (bytes: Uint8Array, codec: number) => {
      const cid = cidOf(bytes, codec as never);
      map.set(cid, bytes);
      return cid;
    },
    get: (cid: string) => {
      if (++reads > limit) return Promise.reject(new Error(`more than ${limit} block reads`));
      const bytes = map.get(cid);
      return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
    },
    get reads() {
      return reads;
    },
  };
}

/** A UnixFS file node over `children` (`size` file bytes each; repeats allowed). */
function fileNode(children: { cid: string; size: number }[]): Uint8Array {
  const unixfs = new UnixFS({ type: "file" });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  return dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: children.map((c) => ({ Hash: CID.parse(c.cid), Tsize: c.size })),
  }));
}

/**
 * A file of `aa` whose two leaves sandwich a zero-byte subtree `depth` levels deep, each level
 * linking the next 174 times: a few hundred bytes of DAG that hold no byte of the file.
 */
function emptyTower(
  put: (bytes: Uint8Array, codec: number) => string,
  depth: number,
): { root: string; leaf: string } {
  let empty = put(fileNode([]), DAG_PB_CODEC);
  for (let level = 0; level < depth; level++) {
    empty = put(
      fileNode(Array.from({ length: 174 }, () => ({ cid: empty, size: 0 }))),
      DAG_PB_CODEC,
    );
  }
  const leaf = put(new TextEncoder().encode("a"), RAW_CODEC);
  const root = put(
    fileNode([{ cid: leaf, size: 1 }, { cid: empty, size: 0 }, { cid: leaf, size: 1 }]),
    DAG_PB_CODEC,
  );
  return { root, leaf };
}

Deno.test("a file's byte walk does not descend into zero-byte subtrees: a tiny hostile DAG cannot make a read walk 174^depth nodes", async () => {
  const store = blocks();
  const { root, leaf } = emptyTower(store.put, 5); // 174^5 ≈ 1.6e11 nodes, none holding a byte
  const node = { ...decodeUnixfs(root, await store.get(root)), cid: root };
  const pieces = [];
  for await (const piece of filePieces(node, 0, 2, store.get)) pieces.push(piece);
  assert.deepEqual(pieces.map((p) => [p.cid, p.from, p.to]), [[leaf, 0, 1], [leaf, 0, 1]]);
  assert.ok(store.reads <= 2, `${store.reads} reads`);
});

Deno.test("a UnixFS file node holding data and links is read as its data, then its children's bytes, never a 200 whose body is cut", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const text = new TextEncoder();
  const leaf = await make.putRaw(text.encode("yy"));
  // The UnixFS spec's file: `Data` holds the first bytes, the links the rest (kubo reads them so).
  const withData = (data: string, children: { cid: string; size: number }[]) => {
    const unixfs = new UnixFS({ type: "file", data: text.encode(data) });
    for (const child of children) unixfs.addBlockSize(BigInt(child.size));
    return make.putPb({
      Data: unixfs.marshal(),
      Links: children.map((c) => ({ Name: "", Hash: CID.parse(c.cid), Tsize: c.size })),
    });
  };
  const inner = await withData("x", [{ cid: leaf, size: 2 }]); // "xyy"
  const file = await withData("ab", [{ cid: inner, size: 3 }, { cid: leaf, size: 2 }]); // "abxyyyy"
  const site = await make.directory([{ name: "f.txt", cid: file }, { name: "f", cid: file }]);
  const node = await startGatewayNode(dir);
  try {
    for (const name of ["f.txt", "f"]) {
      const whole = await node.get(`/ipfs/${site}/${name}`);
      assert.equal(whole.response.status, 200, name);
      assert.equal(new TextDecoder().decode(whole.body), "abxyyyy", name);
    }
    for (const [range, bytes] of [["1-3", "bxy"], ["2-2", "x"], ["-3", "yyy"]]) {
      const part = await node.get(`/ipfs/${site}/f.txt`, { headers: { range: `bytes=${range}` } });
      assert.equal(part.response.status, 206, range);
      assert.equal(new TextDecoder().decode(part.body), bytes, range);
    }
    // A verified CAR of a byte range carries the nodes whose data holds it.
    const car = await node.get(`/ipfs/${file}?format=car&entity-bytes=2:2`);
    assert.equal(car.response.status, 200);
    const { blocks: got } = await readCar(car.body);
    assert.deepEqual(got.map((b) => b.cid), [file, inner]);
  } finally {
    await node.close();
  }
});
