/**
 * Review s78 F1, F2: walks of a file DAG bounded by its depth (`MAX_UNIXFS_DEPTH`, `dag_links.ts`
 * `MAX_DAG_DEPTH`) and a plain read's by the work its bytes pay for (`readStepBudget`), while a
 * real file's walks go through.
 */
import assert from "node:assert/strict";
import {
  assertRangeReadable,
  decodeUnixfs,
  filePieces,
  fileRangeBlocks,
  FREE_READ_STEPS,
  MAX_UNIXFS_DEPTH,
  readStepBudget,
} from "../../storage/unixfs.ts";
import { dagBlocks, MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import {
  bombDag,
  chainDag,
  dirsOverChainDag,
  manyLeavesDag,
  type MemoryDag,
} from "./_hostile_dags.ts";

/** Every leaf can be read: the check asks for nothing more. */
const allReadable = () => Promise.resolve({ checks: true });

async function pieces(dag: MemoryDag, start = 0, end = dag.size) {
  const root = { cid: dag.root, ...decodeUnixfs(dag.root, await dag.get(dag.root)) };
  const out = [];
  for await (const piece of filePieces(root, start, end, dag.get)) out.push(piece);
  return out;
}

async function drain<T>(walk: AsyncIterable<T>): Promise<number> {
  let count = 0;
  for await (const _ of walk) count++;
  return count;
}

Deno.test("s78 F1: a file whose leaf is MAX_UNIXFS_DEPTH links deep is read; one level more is dag_too_deep for every file walk", async () => {
  const deepest = await chainDag(MAX_UNIXFS_DEPTH);
  assert.equal((await pieces(deepest)).length, 1);
  await assertRangeReadable(deepest.root, 0, 8, deepest.get, allReadable);
  assert.equal(await drain(fileRangeBlocks(deepest.root, 0, 8, deepest.get)), MAX_UNIXFS_DEPTH + 1);

  const tooDeep = await chainDag(MAX_UNIXFS_DEPTH + 1);
  const deep = { code: "dag_too_deep" };
  await assert.rejects(pieces(tooDeep), deep);
  await assert.rejects(assertRangeReadable(tooDeep.root, 0, 8, tooDeep.get, allReadable), deep);
  await assert.rejects(drain(fileRangeBlocks(tooDeep.root, 2, 3, tooDeep.get)), deep);
});

Deno.test("s78 F1: the walk stops at the depth limit: a chain far deeper costs no more reads", async () => {
  const chain = await chainDag(MAX_UNIXFS_DEPTH * 4);
  let reads = 0;
  const counted = (cid: string) => {
    reads++;
    return chain.get(cid);
  };
  const root = { cid: chain.root, ...decodeUnixfs(chain.root, await chain.get(chain.root)) };
  await assert.rejects(drain(filePieces(root, 0, 8, counted)), { code: "dag_too_deep" });
  assert.equal(reads, MAX_UNIXFS_DEPTH, "the nodes down to the limit, then no more");
});

Deno.test("s78 F1: dagBlocks with maxDepth refuses a DAG deeper than MAX_DAG_DEPTH, and a file in it deeper than MAX_UNIXFS_DEPTH; without it (GC) it walks any depth", async () => {
  // Directories above a file at MAX_UNIXFS_DEPTH: MAX_DAG_DEPTH links in all.
  const dirs = MAX_DAG_DEPTH - MAX_UNIXFS_DEPTH;
  const fits = await dirsOverChainDag(dirs, MAX_UNIXFS_DEPTH);
  assert.equal(
    await drain(dagBlocks(fits.root, fits.get, { maxDepth: MAX_DAG_DEPTH })),
    MAX_DAG_DEPTH + 1,
  );
  const deeper = await dirsOverChainDag(dirs + 1, MAX_UNIXFS_DEPTH);
  await assert.rejects(
    drain(dagBlocks(deeper.root, deeper.get, { maxDepth: MAX_DAG_DEPTH })),
    { code: "dag_too_deep" },
  );
  assert.equal(await drain(dagBlocks(deeper.root, deeper.get)), MAX_DAG_DEPTH + 2);
  // A file one level deeper than its plain reads take, far inside MAX_DAG_DEPTH: refused by name.
  const file = await chainDag(MAX_UNIXFS_DEPTH + 1);
  const deepFile = await dirsOverChainDag(1, MAX_UNIXFS_DEPTH + 1);
  await assert.rejects(
    drain(dagBlocks(deepFile.root, deepFile.get, { maxDepth: MAX_DAG_DEPTH })),
    (error: Error & { code?: string }) =>
      error.code === "dag_too_deep" && error.message.startsWith(`${file.root} links blocks`),
  );
  assert.equal(await drain(dagBlocks(deepFile.root, deepFile.get)), MAX_UNIXFS_DEPTH + 3);
});

Deno.test("s78 F2: a read of a DAG bomb of 1-byte leaves is read_too_costly: before the status by the check, and in the read's own walk", async () => {
  // 3 blocks over a leaf: 174^3 = 5,268,024 one-byte leaves declared.
  const bomb = await bombDag(3);
  assert.ok(bomb.size > FREE_READ_STEPS * 50);
  const costly = { code: "read_too_costly" };
  await assert.rejects(assertRangeReadable(bomb.root, 0, bomb.size, bomb.get, allReadable), costly);
  await assert.rejects(pieces(bomb), costly);
  // A range of it its bytes pay for is read, piece by piece.
  assert.equal((await pieces(bomb, 1000, 1010)).length, 10);
  await assertRangeReadable(bomb.root, 1000, 1010, bomb.get, allReadable);
});

Deno.test("s78 F2: real files stay readable: 10,000 leaves of 64 bytes, and the budget of a file of 256 KiB leaves", async () => {
  const file = await manyLeavesDag(10_000);
  await assertRangeReadable(file.root, 0, file.size, file.get, allReadable);
  assert.equal((await pieces(file)).length, 10_000);
  // A 1 TiB file of 256 KiB leaves walks ~4.2 M leaves plus a node per 174 of them.
  const tib = 2 ** 40;
  const leaves = tib / 2 ** 18;
  assert.ok(leaves + Math.ceil(leaves / 174) < readStepBudget(tib));
});
