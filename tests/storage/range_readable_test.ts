/**
 * `assertRangeReadable` (`storage/unixfs.ts`), the check the file routes make before their `200`
 * (review s76 F3): a lost leaf of the range asked for is `chunk_not_found`; one outside it is not
 * looked at; and the check stops, passing, once its walk has read its budget of nodes, so a file
 * whose leaves are dag-pb nodes is not read twice. Its cost (review s76 vcar F1-F3, stop 77): one
 * leaf check per batch of leaves, not per leaf nor per node; a range of more leaves than its bound
 * is not walked; a storage that checks nothing (a node with storage peers) ends the walk after one
 * call.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import {
  assertRangeReadable,
  type LeafChecker,
  MAX_LEAVES_PER_CHECK,
} from "../../storage/unixfs.ts";

/** Blocks in memory by CID, and every CID read. */
function memory() {
  const blocks = new Map<string, Uint8Array>();
  const reads: string[] = [];
  const get = (cid: string) => {
    reads.push(cid);
    const bytes = blocks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  };
  /** Each call of the leaf check, with the leaves it carried. */
  const calls: (readonly string[])[] = [];
  const mayRead: LeafChecker = (cids) => {
    calls.push(cids);
    return Promise.resolve({ missing: cids.find((cid) => !blocks.has(cid)), checks: true });
  };
  return { blocks, reads, get, mayRead, calls };
}

/** `count` distinct raw leaves of `size` bytes, stored, with `seed` making them distinct. */
function rawLeaves(blocks: Map<string, Uint8Array>, count: number, size: number, seed: number) {
  return Array.from({ length: count }, (_, i) => {
    const bytes = new Uint8Array(size).fill(seed);
    new DataView(bytes.buffer).setUint32(0, i);
    const cid = cidOf(bytes, RAW_CODEC);
    blocks.set(cid, bytes);
    return { cid, size };
  });
}

/** A root over `nodes` inner nodes of `leaves` raw leaves of 10 bytes each; the root and leaves. */
function twoLevels(blocks: Map<string, Uint8Array>, nodes: number, leaves: number) {
  const inner = Array.from({ length: nodes }, (_, n) => {
    const children = rawLeaves(blocks, leaves, 10, n + 1);
    return { cid: fileNode(blocks, children), size: 10 * leaves, children };
  });
  return { root: fileNode(blocks, inner), inner };
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

Deno.test("the range's leaves go to the check in order: the first node's at once, the rest in one batch; a lost one is named", async () => {
  const { blocks, get, mayRead, calls } = memory();
  const { root, inner } = twoLevels(blocks, 3, 6);
  await assertRangeReadable(root, 0, 3 * 60, get, mayRead);
  const leavesOf = (nodes: typeof inner) => nodes.flatMap((n) => n.children.map((l) => l.cid));
  // One call per batch of leaves (up to MAX_LEAVES_PER_CHECK), not one per node (stop 77).
  assert.deepEqual(calls, [leavesOf(inner.slice(0, 1)), leavesOf(inner.slice(1))]);
  // The middle node's fourth leaf lost: the batch that carries it fails, naming it.
  const lost = inner[1].children[3].cid;
  blocks.delete(lost);
  calls.length = 0;
  const refused = await assertRangeReadable(root, 0, 3 * 60, get, mayRead).catch((e) => e);
  assert.equal(refused?.code, "chunk_not_found");
  assert.match(refused.message, new RegExp(lost));
  assert.equal(calls.length, 2);
});

Deno.test("a range of more leaves than maxSteps is not walked: judged from the first node of leaves, nothing checked", async () => {
  const { blocks, reads, get, mayRead, calls } = memory();
  const { root, inner } = twoLevels(blocks, 4, 6); // 24 leaves
  blocks.delete(inner[3].children[5].cid); // a hole the skipped check would have found
  // 24 leaves and 4 nodes of them: 28 steps.
  await assertRangeReadable(root, 0, 4 * 60, get, mayRead, { maxSteps: 27 });
  assert.equal(calls.length, 0);
  assert.deepEqual(reads, [root, inner[0].cid]); // the leftmost path only
  // A range within the bound (18 leaves, 3 nodes: 21 steps) is still checked whole.
  const refused = await assertRangeReadable(root, 60, 4 * 60, get, mayRead, { maxSteps: 21 })
    .catch((e) => e);
  assert.equal(refused?.code, "chunk_not_found");
});

Deno.test("a storage that checks nothing (checks: false, a node with storage peers) ends the walk after one call", async () => {
  const { blocks, reads, get, calls } = memory();
  const { root, inner } = twoLevels(blocks, 5, 6);
  const unchecking: LeafChecker = (cids) => {
    calls.push(cids);
    return Promise.resolve({ checks: false });
  };
  await assertRangeReadable(root, 0, 5 * 60, get, unchecking);
  assert.equal(calls.length, 1);
  // The root and the first node: its leaves are asked about before another node is read.
  assert.deepEqual(reads, [root, inner[0].cid]);
});

Deno.test("a node of more leaves than one call may carry is checked in bounded calls", async () => {
  const { blocks, get, mayRead, calls } = memory();
  const leaves = rawLeaves(blocks, MAX_LEAVES_PER_CHECK + 5, 10, 7);
  const root = fileNode(blocks, leaves);
  await assertRangeReadable(root, 0, leaves.length * 10, get, mayRead);
  assert.deepEqual(calls.map((c) => c.length), [MAX_LEAVES_PER_CHECK, 5]);
});

Deno.test("a walk stopped by its node budget still checks the leaves it gathered before the stop", async () => {
  const { blocks, get, mayRead, calls } = memory();
  const { root, inner } = twoLevels(blocks, 4, 6);
  // The second node's leaves are gathered, not yet sent (the first node's went at once), when the
  // third node's read finds the budget spent.
  const lost = inner[1].children[2].cid;
  blocks.delete(lost);
  const budget = [root, inner[0].cid, inner[1].cid].reduce(
    (sum, c) => sum + blocks.get(c)!.length,
    0,
  );
  const refused = await assertRangeReadable(root, 0, 4 * 60, get, mayRead, { maxNodeBytes: budget })
    .catch((e) => e);
  assert.equal(refused?.code, "chunk_not_found");
  assert.match(refused.message, new RegExp(lost));
  assert.equal(calls.length, 2);
  // A hole past where the budget stops the walk is not looked for: the check passes.
  blocks.set(lost, new Uint8Array(10));
  blocks.delete(inner[3].children[0].cid);
  calls.length = 0;
  await assertRangeReadable(root, 0, 4 * 60, get, mayRead, { maxNodeBytes: budget });
  assert.deepEqual(calls.map((c) => c.length), [6, 6]);
});
