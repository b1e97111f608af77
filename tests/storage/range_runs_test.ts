/**
 * `fileRangeRuns` (`storage/unixfs.ts`): a byte range's walk in runs, each node read and the raw
 * leaves between two nodes in one array (stop 77: a generator step and an object per leaf were most
 * of the range check's CPU). It lists what `fileRangeBlocks` lists, in the same order; a caller
 * that only checks leaves may have a leaf linked again listed again (no set of every leaf).
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { fileRangeBlocks, fileRangeRuns, type RangeRun } from "../../storage/unixfs.ts";

/** Blocks in memory, and a read of them. */
function memory() {
  const blocks = new Map<string, Uint8Array>();
  const get = (cid: string) => {
    const bytes = blocks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  };
  const leaf = (text: string) => {
    const bytes = new TextEncoder().encode(text);
    const cid = cidOf(bytes, RAW_CODEC);
    blocks.set(cid, bytes);
    return { cid, size: bytes.length };
  };
  const node = (children: { cid: string; size: number }[]) => {
    const unixfs = new UnixFS({ type: "file" });
    for (const child of children) unixfs.addBlockSize(BigInt(child.size));
    const bytes = dagPb.encode(dagPb.prepare({
      Data: unixfs.marshal(),
      Links: children.map((c) => ({ Hash: CID.parse(c.cid), Tsize: c.size })),
    }));
    const cid = cidOf(bytes, DAG_PB_CODEC);
    blocks.set(cid, bytes);
    return { cid, size: children.reduce((sum, c) => sum + c.size, 0) };
  };
  return { get, leaf, node };
}

/** A run as CIDs: a node's own, or its leaves'. */
const shape = (run: RangeRun) => run.leaves ?? run.cid;

Deno.test("fileRangeRuns lists what fileRangeBlocks lists, in order: each node read, and the leaves between two nodes in one run", async () => {
  const { get, leaf, node } = memory();
  // Leaves and a node side by side, as a trickle DAG links them: a, b, [c, d], e.
  const [a, b, c, d, e] = ["aa", "bb", "cc", "dd", "ee"].map(leaf);
  const inner = node([c, d]);
  const root = node([a, b, inner, e]);
  for (const [start, end] of [[0, 10], [2, 7], [4, 6], [9, 10]]) {
    const runs: RangeRun[] = [];
    for await (const run of fileRangeRuns(root.cid, start, end, get)) runs.push(run);
    const blocks: string[] = [];
    for await (const block of fileRangeBlocks(root.cid, start, end, get)) blocks.push(block.cid);
    assert.deepEqual(runs.flatMap((run) => run.leaves ?? [run.cid]), blocks, `${start}-${end}`);
    // No two runs of leaves in a row: a run ends only at a node.
    runs.forEach((run, i) => assert.ok(!(run.leaves && runs[i + 1]?.leaves), `${start}-${end}`));
    // Each node comes decoded: the walk read it once, and its reader need not decode it again.
    for (const run of runs) {
      if (!run.leaves) assert.equal(run.node.fileSize, run.cid === root.cid ? 10 : 4);
    }
  }
  const whole: RangeRun[] = [];
  for await (const run of fileRangeRuns(root.cid, 0, 10, get)) whole.push(run);
  assert.deepEqual(whole.map(shape), [root.cid, [a.cid, b.cid], inner.cid, [c.cid, d.cid, e.cid]]);
});

Deno.test("fileRangeRuns lists a leaf linked again once, or again with leavesOnce: false; a node linked again is read once either way", async () => {
  const { get, leaf, node } = memory();
  const a = leaf("aa");
  const inner = node([a, a]);
  const root = node([inner, inner, a]);
  const reads: string[] = [];
  const counted = (cid: string) => {
    reads.push(cid);
    return get(cid);
  };
  const walk = async (leavesOnce?: boolean) => {
    reads.length = 0;
    const runs: RangeRun[] = [];
    for await (const run of fileRangeRuns(root.cid, 0, 10, counted, { leavesOnce })) runs.push(run);
    return runs.map(shape);
  };
  assert.deepEqual(await walk(), [root.cid, inner.cid, [a.cid]]);
  assert.deepEqual(reads, [root.cid, inner.cid]);
  // The second link to `inner` is skipped (every block under it was walked), not read again.
  assert.deepEqual(await walk(false), [root.cid, inner.cid, [a.cid, a.cid, a.cid]]);
  assert.deepEqual(reads, [root.cid, inner.cid]);
});
