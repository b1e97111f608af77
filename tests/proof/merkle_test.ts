import assert from "node:assert/strict";
import { sha256 } from "../../protocols/hash.ts";
import { merklePath, merkleRoot, MerkleTree, rootFromPath } from "../../proof/merkle.ts";

const leaves = (n: number) => Array.from({ length: n }, (_, i) => sha256(new Uint8Array([i])));

Deno.test("merkle: every leaf's path leads to the root for 1..17 leaves", () => {
  for (let n = 1; n <= 17; n++) {
    const ls = leaves(n);
    const root = merkleRoot(ls);
    for (let i = 0; i < n; i++) {
      assert.deepEqual(rootFromPath(ls[i], i, n, merklePath(ls, i)), root, `n=${n} i=${i}`);
    }
  }
});

Deno.test("merkle: a wrong leaf, index, count or truncated path does not reach the root", () => {
  const ls = leaves(9);
  const root = merkleRoot(ls);
  const path = merklePath(ls, 4);
  assert.notDeepEqual(rootFromPath(ls[5], 4, 9, path), root);
  assert.notDeepEqual(rootFromPath(ls[4], 5, 9, path), root);
  // (The leaf count itself is bound by the commitment root, see commitment_test.ts.)
  assert.equal(rootFromPath(ls[4], 4, 8, path), null);
  assert.equal(rootFromPath(ls[4], 4, 9, path.slice(1)), null);
  assert.equal(rootFromPath(ls[4], 9, 9, path), null);
});

Deno.test("merkle: n leaves and n leaves plus a copy of the last have different roots", () => {
  const ls = leaves(5);
  assert.notDeepEqual(merkleRoot(ls), merkleRoot([...ls, ls[4]]));
  assert.deepEqual(merkleRoot([]), new Uint8Array(32));
});

Deno.test("merkle: a tree built once gives every leaf's path and the root, as merklePath and merkleRoot do", () => {
  for (let n = 0; n <= 33; n++) {
    const ls = leaves(n);
    const tree = new MerkleTree(ls);
    assert.equal(tree.leafCount, n);
    assert.deepEqual(tree.root(), merkleRoot(ls));
    for (let i = 0; i < n; i++) assert.deepEqual(tree.path(i), merklePath(ls, i), `n=${n} i=${i}`);
    assert.throws(() => tree.path(n), RangeError);
  }
});
