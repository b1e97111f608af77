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
  return new MerkleTree(leaves).root();
}

/**
 * A tree built once: its root and the path of any leaf, each path read off the stored levels
 * (O(log n) per path). Opening many leaves of one tree goes through this, not
 * {@link merklePath}, which rebuilds the tree for every call: opening all n chunks of a proof
 * that way hashed n² nodes (89 s for 4,096 chunks of one position each).
 *
 * @example
 * ```ts
 * import { MerkleTree, merkleRoot, rootFromPath } from "./merkle.ts";
 * import { sha256 } from "../protocols/hash.ts";
 * const leaves = [1, 2, 3].map((i) => sha256(new Uint8Array([i])));
 * const tree = new MerkleTree(leaves);
 * rootFromPath(leaves[2], 2, 3, tree.path(2)); // equals merkleRoot(leaves)
 * ```
 */
export class MerkleTree {
  readonly #levels: Uint8Array[][];

  /** Hash the tree over already-hashed `leaves` (each node once). */
  constructor(leaves: readonly Uint8Array[]) {
    this.#levels = levels(leaves);
  }

  /** Number of leaves. */
  get leafCount(): number {
    return this.#levels[0].length;
  }

  /** The root; 32 zero bytes for no leaves. */
  root(): Uint8Array {
    const top = this.#levels[this.#levels.length - 1];
    return top.length === 0 ? new Uint8Array(DIGEST_BYTES) : top[0];
  }

  /**
   * The sibling hashes from leaf `index` up to the root (levels where the node has no sibling
   * are skipped, mirroring the carry-up rule). The hashes are the tree's own: do not modify.
   */
  path(index: number): Uint8Array[] {
    const all = this.#levels;
    if (!Number.isInteger(index) || index < 0 || index >= all[0].length) {
      throw new RangeError(`leaf index ${index} out of range 0..${all[0].length - 1}`);
    }
    const path: Uint8Array[] = [];
    let i = index;
    for (let l = 0; l < all.length - 1; l++) {
      const level = all[l];
      const sibling = i ^ 1;
      if (sibling < level.length) path.push(level[sibling]);
      i >>= 1;
    }
    return path;
  }
}

/**
 * The sibling hashes from leaf `index` up to the root (levels where the node has no sibling
 * are skipped, mirroring the carry-up rule). Builds the whole tree: for more than one leaf of
 * the same tree use {@link MerkleTree}.
 */
export function merklePath(leaves: readonly Uint8Array[], index: number): Uint8Array[] {
  return new MerkleTree(leaves).path(index);
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
