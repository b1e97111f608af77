/**
 * A file put admitted against the store's floor of free disk (`putMinFreeBytes`) by the size it
 * declares, before a byte of it is read (review s75 vcrash F2). Admission per object alone let a
 * burst of uploads interleave their chunks, fill the room between them and all fail, leaving
 * their partial chunks to hold the room for the GC grace period (10 minutes) with nothing
 * stored; admitted whole, as many as fit are promised their room and the rest are refused at
 * once, having written nothing. `ChunkStore.admitPut` makes one; the store's writes of that put
 * draw on it ({@link PutAdmission.draw}) instead of being judged again. Not part of the public
 * API.
 *
 * @module
 */
import { OBJECT_OVERHEAD_BYTES, PACK_OVERHEAD_BYTES } from "./_chunk_costs.ts";
import { MAX_CHILDREN_PER_NODE } from "./unixfs.ts";

/**
 * What a dag-pb link to one child adds to its parent at most: a CIDv1 of sha2-256 (36 bytes),
 * the child's sizes as varints and the protobuf framing, rounded up.
 */
const LINK_BYTES = 64;

/**
 * What the store charges for a file of `size` bytes cut into `chunkSize` chunks: each leaf as it
 * charges a write (its bytes, {@link OBJECT_OVERHEAD_BYTES}, a pack of its own), and the inner
 * nodes that link them ({@link MAX_CHILDREN_PER_NODE} to a node, one more level per 174).
 */
export function admissionCost(size: number, chunkSize: number): number {
  const leaves = Math.max(1, Math.ceil(size / chunkSize));
  let nodes = 0;
  for (let level = leaves; level > 1; level = Math.ceil(level / MAX_CHILDREN_PER_NODE)) {
    nodes += Math.ceil(level / MAX_CHILDREN_PER_NODE);
  }
  const perObject = OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
  return size + (leaves + nodes) * perObject + leaves * LINK_BYTES;
}

/** Room promised to one put: its writes draw on it until it is released. */
export class PutAdmission {
  #left: number;
  readonly #giveBack: (bytes: number) => void;

  /**
   * A promise of `bytes` of room (`ChunkStore.admitPut` makes them).
   * @param bytes The room promised.
   * @param giveBack Called with what was never drawn, once, when the put ends.
   */
  constructor(bytes: number, giveBack: (bytes: number) => void) {
    this.#left = bytes;
    this.#giveBack = giveBack;
  }

  /** Room still promised and not yet drawn. */
  get left(): number {
    return this.#left;
  }

  /** Take up to `cost` of the room left; returns what was taken (the rest is judged afresh). */
  draw(cost: number): number {
    const drawn = Math.min(cost, this.#left);
    this.#left -= drawn;
    return drawn;
  }

  /** Give back what was never drawn. Idempotent: call it when the put ends, whichever way. */
  release(): void {
    const left = this.#left;
    this.#left = 0;
    if (left > 0) this.#giveBack(left);
  }
}
