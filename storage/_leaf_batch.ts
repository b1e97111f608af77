/**
 * The leaves of a walk sent to a storage's presence check ({@link LeafChecker}) in batches: what a
 * file route's range check (`unixfs.ts` `assertRangeReadable`) and a CAR's length (`car.ts`
 * `carLength`) both do before their status, so that a lost leaf is answered as a missing block is,
 * not with a length and then a cut body (review s76 F3). One ask per batch of leaves, not per leaf
 * nor per node: the asks were cheap, but a CAR's `HEAD` asked once per leaf (16,384 asks for
 * 4 GiB). Not part of the public API.
 *
 * @module
 */
import { identityBlock } from "../protocols/cid.ts";
import { ChunkNotFoundError } from "./errors.ts";
import type { LeafChecker } from "./unixfs.ts";

/**
 * Most leaves one {@link LeafChecker} call carries. The storage actor answers a call in one turn
 * of its mailbox by index lookups, no read (~0.5 µs a leaf measured, over half of it hashing a CID
 * string the walk made fresh): 4,096 keep that turn near 2 ms, so a walk of many leaves cannot
 * hold the mailbox for one long turn, and a 4 GiB file of 256 KiB leaves is 5 calls, not 95 (one
 * per node).
 */
export const MAX_LEAVES_PER_CHECK = 4096;

/**
 * How every raw sha2-256 CIDv1 in base32 begins (`bafkrei`): each leaf Veriflow or `ipfs add
 * --raw-leaves` links. A valid CID so named is a raw block stored under that CID and no identity
 * CID, told without parsing it (parsing was most of the cost per leaf: review s76 vcar F1).
 */
export const RAW_SHA256_PREFIX = "bafkrei";

/**
 * Leaves gathered for a {@link LeafChecker}, sent when {@link MAX_LEAVES_PER_CHECK} are gathered
 * or when the walk says ({@link flush}). An identity leaf (its bytes are in its CID) is never sent:
 * no store holds it, and every read has it.
 */
export class LeafBatch {
  readonly #check: LeafChecker;
  readonly #max: number;
  #leaves: string[] = [];
  #asked = false;
  #checks = true;

  /**
   * @param check The storage's presence check.
   * @param max Leaves per call (default {@link MAX_LEAVES_PER_CHECK}).
   */
  constructor(check: LeafChecker, max: number = MAX_LEAVES_PER_CHECK) {
    this.#check = check;
    this.#max = max;
  }

  /** True once a call was made: a walk sends its first node's leaves at once ({@link flush}). */
  get asked(): boolean {
    return this.#asked;
  }

  /**
   * Gathers `leaves`, in order, calling the check each time a batch is full.
   *
   * @returns False once the storage said it checks nothing (`LeafCheck.checks`): the walk stops.
   * @throws {ChunkNotFoundError} a leaf the storage says no read can get.
   */
  async add(leaves: readonly string[]): Promise<boolean> {
    for (const leaf of leaves) {
      if (!leaf.startsWith(RAW_SHA256_PREFIX) && identityBlock(leaf) !== undefined) continue;
      this.#leaves.push(leaf);
      if (this.#leaves.length >= this.#max && !await this.flush()) return false;
    }
    return this.#checks;
  }

  /**
   * Sends what is gathered. A walk calls it at its end, and after its first node's leaves: a
   * storage that checks nothing (a node with storage peers) says so before more nodes are read.
   *
   * @returns False once the storage said it checks nothing.
   * @throws {ChunkNotFoundError} a leaf the storage says no read can get.
   */
  async flush(): Promise<boolean> {
    if (this.#leaves.length === 0 || !this.#checks) return this.#checks;
    const leaves = this.#leaves;
    this.#leaves = [];
    this.#asked = true;
    const answer = await this.#check(leaves);
    if (answer.missing !== undefined) throw new ChunkNotFoundError(answer.missing);
    this.#checks = answer.checks;
    return this.#checks;
  }
}
