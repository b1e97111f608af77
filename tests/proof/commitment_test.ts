/**
 * The proof data's commitment (`proof/commitment.ts`): token packing, chunk leaves and
 * openings a validator checks against the receipt's root; and the Merkle tree under it
 * (`proof/merkle.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assertOpens,
  chunkLeaves,
  CommitmentMismatchError,
  commitmentRoot,
  openChunks,
  packTokens,
  type ProofData,
  unpackTokens,
  verifyOpenings,
} from "../../proof/commitment.ts";
import { FINGERPRINT_SCHEME } from "../../proof/fingerprint.ts";
import { merklePath, merkleRoot, MerkleTree, rootFromPath } from "../../proof/merkle.ts";
import { sha256 } from "../../protocols/hash.ts";

function data(n: number, chunkSize = 32): ProofData {
  const tokens = Array.from({ length: n }, (_, i) => (i * 31) % 260);
  return {
    scheme: FINGERPRINT_SCHEME,
    chunkSize,
    tokenBytes: 2,
    tokens: packTokens(tokens, 2),
    fingerprints: Uint8Array.from({ length: n * 4 }, (_, i) => (i * 7) & 0xff),
  };
}

Deno.test("commitment: tokens pack and unpack at 2 and 4 bytes", () => {
  const t = [0, 1, 255, 256, 65535];
  assert.deepEqual(unpackTokens(packTokens(t, 2), 2), t);
  assert.deepEqual(unpackTokens(packTokens([70000, 3], 4), 4), [70000, 3]);
});

Deno.test("commitment: proof data opens its root; any changed byte or count does not", () => {
  const d = data(100);
  const root = { scheme: d.scheme, root: commitmentRoot(d), chunkSize: d.chunkSize, tokenBytes: 2 };
  assertOpens(d, root, 100);
  assert.throws(() => assertOpens(d, root, 99), CommitmentMismatchError);
  const f = d.fingerprints.slice();
  f[77] ^= 1;
  assert.throws(() => assertOpens({ ...d, fingerprints: f }, root, 100), CommitmentMismatchError);
  const t = d.tokens.slice();
  t[3] ^= 1;
  assert.throws(() => assertOpens({ ...d, tokens: t }, root, 100), CommitmentMismatchError);
  // The data opens the root, but the receipt declares another shape than the data has.
  assert.throws(() => assertOpens(d, { ...root, chunkSize: 16 }, 100), /chunkSize 32/);
  assert.throws(() => assertOpens(d, { ...root, tokenBytes: 4 }, 100), /tokenBytes 2/);
  assert.throws(() => assertOpens(d, { ...root, scheme: "vf-fp0" }, 100), /scheme/);
});

Deno.test("commitment: chunk openings verify, with fingerprints or only their hash", () => {
  const d = data(100);
  const root = commitmentRoot(d);
  const openings = openChunks(d, 3, new Set([1, 3]));
  assert.equal(openings.length, 4);
  assert.ok(openings[1].fingerprints && !openings[0].fingerprints && openings[0].fingerprintsHash);
  assert.equal(openings[3].tokens.length, 4 * 2, "last chunk is short");
  assert.ok(verifyOpenings(openings, root, 100, 32, 2));
  const bad = openings.map((o) => ({ ...o }));
  bad[1] = { ...bad[1], fingerprints: bad[1].fingerprints!.slice() };
  bad[1].fingerprints![0] ^= 1;
  assert.equal(verifyOpenings(bad, root, 100, 32, 2), false);
  assert.equal(verifyOpenings(openings, root, 101, 32, 2), false);
});

Deno.test("commitment: opening every chunk hashes the tree once; each path is the one merklePath gives", () => {
  // openChunks rebuilt the whole tree for each chunk's path: n² node hashes, 89 s for the 4,096
  // one-position chunks a worker may commit to. Read off one tree, the paths share its nodes:
  // at most the tree's 2n − 1 distinct hashes (a rebuilt tree per path gives ~n·log n).
  const n = 1024;
  const d = data(n, 1);
  const openings = openChunks(d, n - 1, new Set([5]));
  assert.equal(openings.length, n);
  assert.ok(verifyOpenings(openings, commitmentRoot(d), n, 1, 2));
  const nodes = new Set(openings.flatMap((o) => o.path));
  assert.ok(nodes.size <= 2 * n - 1, `${nodes.size} distinct path hashes for ${n} leaves`);
  const leaves = chunkLeaves(d);
  for (const c of [0, 1, 2, 511, 512, 1000, n - 1]) {
    assert.deepEqual(openings[c].path, merklePath(leaves, c), `chunk ${c}`);
  }
  // An odd number of chunks carries the last one up; a prefix opens only its chunks.
  const odd = data(100, 3);
  const prefix = openChunks(odd, 20, new Set());
  assert.equal(prefix.length, 21);
  assert.ok(verifyOpenings(prefix, commitmentRoot(odd), 100, 3, 2));
  prefix.forEach((o, c) => assert.deepEqual(o.path, merklePath(chunkLeaves(odd), c)));
});

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
