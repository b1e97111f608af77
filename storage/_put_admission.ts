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

/**
 * Most room one put holds promised ahead of what it has written (review s75 fix-admission): its
 * declared size is judged whole when it is admitted, but only this much of it is held, and the
 * hold is topped up as its writes draw on it. Held whole, an upload declaring all the free room
 * and sending at the minimum rate (1.6 KiB/s, `UPLOAD_MIN_RATE`) held it for its whole upload
 * (50 GB: about a year), and every other upload was refused `disk_full` meanwhile. 8 MiB is 32
 * chunks of the default 256 KiB, four 2 MiB uploads of a burst each held whole; at the minimum
 * rate a client needs 8 MiB / 1.6 KiB/s, about 85 minutes, to send it, so a trickling upload holds
 * no more than that beyond what is on the disk. Bigger uploads beside each other are judged chunk
 * by chunk beyond their holds, as every write is.
 */
export const ADMIT_AHEAD_BYTES = 8 * 1024 * 1024;

/** Room promised to one put: its writes draw on it until it is released. */
export class PutAdmission {
  #left: number;
  #rest: number;
  readonly #giveBack: (bytes: number) => void;

  /**
   * A promise of `bytes` of room (`ChunkStore.admitPut` makes them).
   * @param bytes The room promised.
   * @param giveBack Called with what was never drawn, once, when the put ends.
   * @param rest What the put declared beyond `bytes`, promised later by {@link extend}.
   */
  constructor(bytes: number, giveBack: (bytes: number) => void, rest = 0) {
    this.#left = bytes;
    this.#giveBack = giveBack;
    this.#rest = rest;
  }

  /** Room still promised and not yet drawn. */
  get left(): number {
    return this.#left;
  }

  /** Room the put may be promised more now: its declared rest, up to {@link ADMIT_AHEAD_BYTES}. */
  get wanted(): number {
    return Math.max(0, Math.min(this.#rest, ADMIT_AHEAD_BYTES - this.#left));
  }

  /** Promise `bytes` more of the declared rest (the store has counted them taken). */
  extend(bytes: number): void {
    this.#left += bytes;
    this.#rest -= bytes;
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
    this.#rest = 0; // ended: a stray write after it tops up nothing that would never be given back
    if (left > 0) this.#giveBack(left);
  }
}
