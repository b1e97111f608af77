/**
 * A binary Merkle tree over SHA-256, with domain-separated leaf and node hashes and
 * inclusion paths.
 *
 * The prover commits to tokens and fingerprints in chunks; each chunk is one leaf. A fraud
 * proof then carries only the chunks it cites plus their paths, so any node can check that the
 * cited values are exactly what the worker signed without seeing the rest of the proof data.
 *
 * Layout: leaves are hashed by the caller (see `proof/commitment.ts`); an internal node is
 * `H(0x01 ‖ left ‖ right)`; at a level with an odd number of nodes the last one is carried up
 * unchanged (no duplication, so a tree of n leaves cannot collide with one of n+1 leaves that
 * repeats the last). The empty tree's root is 32 zero bytes.
 *
 * @module
 */
import { sha256 } from "../protocols/hash.ts";

/** Domain byte of an internal node (leaves use 0x00, see `proof/commitment.ts`). */
const NODE_DOMAIN = 0x01;
/** Length of a SHA-256 digest. */
export const DIGEST_BYTES = 32;

function hashNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + 2 * DIGEST_BYTES);
  buf[0] = NODE_DOMAIN;
  buf.set(left, 1);
  buf.set(right, 1 + DIGEST_BYTES);
  return sha256(buf);
}

/** All levels of the tree, leaves first, root last. */
function levels(leaves: readonly Uint8Array[]): Uint8Array[][] {
  const out: Uint8Array[][] = [leaves.slice()];
  let level = out[0];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? hashNode(level[i], level[i + 1]) : level[i]);
    }
    out.push(next);
    level = next;
  }
  return out;
}

/**
 * The Merkle root of already-hashed leaves.
 *
 * @example
 * ```ts
 * import { merkleRoot } from "./merkle.ts";
 * merkleRoot([]); // 32 zero bytes
 * ```
 */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return new Uint8Array(DIGEST_BYTES);
  const all = levels(leaves);
  return all[all.length - 1][0];
}

/**
 * The sibling hashes from leaf `index` up to the root (levels where the node has no sibling
 * are skipped, mirroring the carry-up rule).
 */
export function merklePath(leaves: readonly Uint8Array[], index: number): Uint8Array[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`leaf index ${index} out of range 0..${leaves.length - 1}`);
  }
  const path: Uint8Array[] = [];
  const all = levels(leaves);
  let i = index;
  for (let l = 0; l < all.length - 1; l++) {
    const level = all[l];
    const sibling = i ^ 1;
    if (sibling < level.length) path.push(level[sibling]);
    i >>= 1;
  }
  return path;
}

/**
 * Recompute the root from a leaf hash, its index, the number of leaves and its path.
 * Returns null when the path has the wrong length for that position (a malformed proof).
 */
export function rootFromPath(
  leaf: Uint8Array,
  index: number,
  leafCount: number,
  path: readonly Uint8Array[],
): Uint8Array | null {
  if (!Number.isInteger(index) || index < 0 || index >= leafCount) return null;
  let node = leaf;
  let i = index;
  let width = leafCount;
  let used = 0;
  while (width > 1) {
    const sibling = i ^ 1;
    if (sibling < width) {
      const s = path[used++];
      if (!(s instanceof Uint8Array) || s.length !== DIGEST_BYTES) return null;
      node = (i & 1) === 0 ? hashNode(node, s) : hashNode(s, node);
    }
    i >>= 1;
    width = Math.ceil(width / 2);
  }
  return used === path.length ? node : null;
}
