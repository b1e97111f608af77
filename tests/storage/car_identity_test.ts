/**
 * Identity CIDs in CARs (review s78 F4). The trustless gateway spec: "A Gateway MUST NOT include
 * virtual blocks identified by identity CIDs … in CAR responses", whether they are in the DAG or
 * the root (for the probe `bafkqaaa` the header names it and the block "MAY be skipped"). So
 * `exportCar` writes none, and `carLength` counts none. An import takes a CAR that carries one (other
 * writers', or this node's before stop 79) and ignores it after checking it against its CID, as
 * go-car's blockstore skips them: `car_import_test.ts` pins that side, and here the CARs the node
 * now writes import to the same roots.
 */
import assert from "node:assert/strict";
import { CarBlockIterator } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { carLength, exportCar, importCar } from "../../storage/car.ts";
import { collect } from "./_helpers.ts";
import { MemoryBlockStore } from "./_memory_block_store.ts";

/** A CAR's header roots and its blocks' CIDs, in order. */
async function contents(car: Uint8Array): Promise<{ roots: string[]; blocks: string[] }> {
  const reader = await CarBlockIterator.fromIterable(ReadableStream.from([car]));
  const roots = (await reader.getRoots()).map(String);
  const blocks: string[] = [];
  for await (const block of reader) blocks.push(block.cid.toString());
  return { roots, blocks };
}

const noStore = (cid: string): Promise<Uint8Array> => Promise.reject(new Error(`read ${cid}`));

Deno.test("exportCar of an identity root writes its header and no block, whatever the scope, and carLength counts exactly that", async () => {
  const hello = CID.createV1(
    RAW_CODEC,
    identity.digest(new TextEncoder().encode("hello identity")),
  );
  for (const root of [hello.toString(), "bafkqaaa"]) {
    for (const scope of ["all", "block"] as const) {
      const car = await collect(exportCar(root, noStore, { scope }));
      assert.deepEqual(await contents(car), { roots: [root], blocks: [] }, `${root} ${scope}`);
      assert.equal(await carLength(root, noStore, { scope }), car.length, `${root} ${scope}`);
    }
    // What the node now writes imports to the same root, storing nothing.
    const store = new MemoryBlockStore();
    const car = await collect(exportCar(root, noStore));
    const imported = await importCar(ReadableStream.from([car]), store);
    assert.deepEqual(imported, { roots: [root], blocks: 0, bytes: 0 });
    assert.equal(store.blocks.size, 0);
  }
});

Deno.test("exportCar writes no block of an identity CID met in a content path or in the DAG, only the stored ones", async () => {
  const store = new MemoryBlockStore();
  const text = new TextEncoder().encode("stored file");
  const file = cidOf(text, RAW_CODEC);
  await store.put(text);
  const inlineLeaf = CID.createV1(RAW_CODEC, identity.digest(new TextEncoder().encode("hi")));
  // A stored directory holding the stored file and an inlined one.
  const dirBytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [
      { Name: "a.txt", Hash: CID.parse(file), Tsize: text.length },
      { Name: "hi.txt", Hash: inlineLeaf, Tsize: 2 },
    ],
  }));
  const dir = cidOf(dirBytes, DAG_PB_CODEC);
  await store.put(dirBytes);
  // An inlined directory (`ipfs add --inline`) naming the stored one: the content path's first hop.
  const topBytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "sub", Hash: CID.parse(dir), Tsize: dirBytes.length }],
  }));
  const top = CID.createV1(DAG_PB_CODEC, identity.digest(topBytes)).toString();
  const read = (cid: string) => store.get(cid);

  const whole = await collect(exportCar(dir, read));
  assert.deepEqual(await contents(whole), { roots: [dir], blocks: [dir, file] });
  const viaPath = { roots: [top], path: [{ cid: top, bytes: topBytes }] };
  const pathed = await collect(exportCar(dir, read, viaPath));
  assert.deepEqual(await contents(pathed), { roots: [top], blocks: [dir, file] });
  assert.equal(await carLength(dir, read, viaPath), undefined, "a leaf: no length to tell");
  const block = await collect(exportCar(dir, read, { ...viaPath, scope: "block" }));
  assert.deepEqual(await contents(block), { roots: [top], blocks: [dir] });
  assert.equal(await carLength(dir, read, { ...viaPath, scope: "block" }), block.length);
});
