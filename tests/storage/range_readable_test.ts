/**
 * `assertRangeReadable` (`storage/unixfs.ts`), the check the file routes make before their `200`
 * (review s76 F3): a lost leaf of the range asked for is `chunk_not_found`; one outside it is not
 * looked at; and the check stops, passing, once its walk has read its budget of nodes, so a file
 * whose leaves are dag-pb nodes is not read twice.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { assertRangeReadable } from "../../storage/unixfs.ts";

/** Blocks in memory by CID, and every CID read. */
function memory() {
  const blocks = new Map<string, Uint8Array>();
  const reads: string[] = [];
  const get = (cid: string) => {
    reads.push(cid);
    const bytes = blocks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  };
  const mayRead = (cid: string) => Promise.resolve(blocks.has(cid));
  return { blocks, reads, get, mayRead };
}

/** A UnixFS file node over `children` of `size` bytes each, stored in `blocks`; its CID. */
function fileNode(
  blocks: Map<string, Uint8Array>,
  children: { cid: string; size: number }[],
  data?: Uint8Array,
): string {
  const unixfs = new UnixFS({ type: "file", data });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  const bytes = dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: children.map((c) => ({ Hash: CID.parse(c.cid), Tsize: c.size })),
  }));
  const cid = cidOf(bytes, DAG_PB_CODEC);
  blocks.set(cid, bytes);
  return cid;
}

Deno.test("a lost raw leaf inside the range is chunk_not_found, naming it; a range short of it passes", async () => {
  const { blocks, get, mayRead } = memory();
  const held = new Uint8Array(10).fill(1);
  const lost = new Uint8Array(10).fill(2);
  blocks.set(cidOf(held, RAW_CODEC), held);
  const root = fileNode(blocks, [
    { cid: cidOf(held, RAW_CODEC), size: 10 },
    { cid: cidOf(lost, RAW_CODEC), size: 10 },
  ]);
  const refused = await assertRangeReadable(root, 0, 20, get, mayRead).catch((e) => e);
  assert.ok(refused instanceof VeriflowError, String(refused));
  assert.equal(refused.code, "chunk_not_found");
  assert.match(refused.message, new RegExp(cidOf(lost, RAW_CODEC)));
  await assertRangeReadable(root, 0, 10, get, mayRead); // the hole is past the range
});

Deno.test("the check stops, passing, once it has read its budget of nodes: dag-pb leaves are not all read", async () => {
  const { blocks, reads, get, mayRead } = memory();
  // Ten dag-pb leaves of 1 KiB each (as `ipfs add` without --raw-leaves writes), then a lost raw one.
  const leaves = Array.from({ length: 10 }, (_, i) => ({
    cid: fileNode(blocks, [], new Uint8Array(1024).fill(i)),
    size: 1024,
  }));
  const lost = cidOf(new Uint8Array(5).fill(9), RAW_CODEC);
  const root = fileNode(blocks, [...leaves, { cid: lost, size: 5 }]);
  // With room for every node, the walk reaches the lost leaf.
  const refused = await assertRangeReadable(root, 0, 10 * 1024 + 5, get, mayRead).catch((e) => e);
  assert.equal(refused?.code, "chunk_not_found");
  reads.length = 0;
  // With room for ~3 KiB of nodes it stops after a few, and passes.
  await assertRangeReadable(root, 0, 10 * 1024 + 5, get, mayRead, { maxNodeBytes: 3 * 1024 });
  assert.ok(reads.length <= 5, `read ${reads.length} blocks with a 3 KiB budget`);
});
