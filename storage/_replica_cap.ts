/**
 * The chunk store's cap on what it holds for other nodes: the objects under `replicas/` records
 * (peers' `put_chunk`s), each charged with its bytes and {@link REPLICA_OVERHEAD_BYTES} while it is
 * indexed, checked against `ChunkStoreOptions.replicaQuotaBytes`, and the disk's reserve
 * (`replicaMinFreeBytes`) that replica writes never take. `ChunkStore` owns one
 * {@link ReplicaCap}: it asks {@link ReplicaCap.room} before a replica write, holds a recorded
 * CID for peers, and tells it around every change of its index so the charge follows the copy
 * indexed. Past the cap as a whole, each chunk is charged to the peer that placed it (its giver),
 * and a giver's chunk must also fit that peer's share (`_replica_shares.ts`). Not part of the
 * public API.
 *
 * @module
 */
import { diskFreeBytes } from "./disk_free.ts";
import { PACK_OVERHEAD_BYTES, REPLICA_OVERHEAD_BYTES } from "./_chunk_costs.ts";
import { NO_GIVER, ReplicaShares } from "./_replica_shares.ts";
import { ReplicaQuotaExceededError } from "./errors.ts";
import type { ChunkStoreFaults } from "./chunk_store.ts";
import type { WrittenObject } from "./pack_writer.ts";

/** What a {@link ReplicaCap} is built from. */
export interface ReplicaCapOptions {
  /** The cap on the bytes held for peers (`Infinity`: none of its own). */
  quotaBytes: number;
  /** Free disk bytes replica writes never take (0: not checked). */
  minFreeBytes: number;
  /**
   * Free disk bytes the node's own puts never take (`ChunkStoreOptions.putMinFreeBytes`; default
   * 0): replica writes never take them either, whatever `minFreeBytes` says. One floor below which
   * nothing is written: a node read-only on a full disk (`node/disk_room.ts`, the same floor)
   * refuses peers' chunks too, where a `replicaMinFreeBytes` set below `putMinFreeBytes` let peers
   * fill the room it kept for its ledger.
   */
  putMinFreeBytes?: number;
  /** The store directory, whose filesystem's free space is asked. */
  dir: string;
  /** The store's index (`_pack_index.ts`), read for the length of each indexed copy. */
  index: Pick<ReadonlyMap<string, WrittenObject>, "get" | "has">;
  /** Bytes the store has reserved for writes in flight (every write, not only replicas). */
  reserved(): number;
  /** The store's test hooks: `freeBytes` answers instead of the OS. */
  faults: ChunkStoreFaults | undefined;
  /** The store's clock (ms): when each giver last asked for room. */
  clock: () => number;
}

/** The replica set and what it is charged against the replica cap and the disk's reserve. */
export class ReplicaCap {
  readonly #replicaQuota: number;
  readonly #replicaMinFree: number;
  readonly #dir: string;
  readonly #index: Pick<ReadonlyMap<string, WrittenObject>, "get" | "has">;
  readonly #reserved: () => number;
  readonly #faults: ChunkStoreFaults | undefined;
  /** Storage keys with a `replicas/` record, or with a replica write in flight. */
  readonly #replicaSet = new Set<string>();
  /** What `ChunkStoreStats.replicaBytes` reports: the indexed objects of `#replicaSet`. */
  #replicaBytes = 0;
  /**
   * Replica writes in flight, charged until they are indexed: each write's {@link room}, from its
   * {@link reserve} to its {@link release}, which the store calls in the turn the index takes the
   * copy (and so charges it).
   */
  #reservedBytes = 0;
  /** Each chunk's giver and what each giver is charged. */
  readonly #shares: ReplicaShares;

  /** A cap as `options` describe it, over an empty replica set. */
  constructor(options: ReplicaCapOptions) {
    this.#replicaQuota = options.quotaBytes;
    this.#replicaMinFree = Math.max(options.minFreeBytes, options.putMinFreeBytes ?? 0);
    this.#dir = options.dir;
    this.#index = options.index;
    this.#reserved = options.reserved;
    this.#faults = options.faults;
    this.#shares = new ReplicaShares(options.clock);
  }

  /** The cap on the bytes held for peers (`Infinity`: none of its own). */
  get quota(): number {
    return this.#replicaQuota;
  }

  /** Free disk bytes replica writes never take, the own puts' floor included (0: not checked). */
  get minFree(): number {
    return this.#replicaMinFree;
  }

  /** What the indexed objects held for peers take, each with its overhead. */
  get bytes(): number {
    return this.#replicaBytes;
  }

  /** True when `cid` is in the replica set (recorded, or its replica write in flight). */
  has(cid: string): boolean {
    return this.#replicaSet.has(cid);
  }

  /** Bytes charged to `giver`: its chunks held here and its writes in flight. */
  heldFor(giver: string): number {
    return this.#shares.heldFor(giver);
  }

  /**
   * Put `cid`, placed by `giver`, in the set without charging it (a record found on open, before
   * the index is read: indexing its object charges it).
   */
  add(cid: string, giver: string): void {
    this.#replicaSet.add(cid);
    this.#shares.assign(cid, giver);
  }

  /**
   * What a replica write of `length` bytes for `cid`, placed by `giver`, is charged against the
   * replica cap, after checking it fits there, in `giver`'s share of it and, with `free` bytes
   * free on the disk, outside the disk's reserve.
   *
   * @throws {ReplicaQuotaExceededError} it does not.
   */
  room(cid: string, length: number, free: number, giver: string): number {
    const cost = length + REPLICA_OVERHEAD_BYTES;
    // A copy replacing one already charged (a repair after quarantine is charged anew: the
    // quarantine released it) moves nothing into the cap.
    const charged = this.#replicaSet.has(cid) && this.#index.has(cid);
    const held = this.#replicaBytes + this.#reservedBytes;
    if (!charged && held + cost > this.#replicaQuota) {
      throw new ReplicaQuotaExceededError(
        cost,
        `the ${this.#replicaQuota} bytes it holds for peers (${held} held)`,
        REPLICA_OVERHEAD_BYTES,
      );
    }
    if (this.#replicaMinFree > 0) {
      // Writes in flight have not reached the disk yet: count them as taken.
      const left = free - this.#reserved() - cost - PACK_OVERHEAD_BYTES;
      if (left < this.#replicaMinFree) {
        throw new ReplicaQuotaExceededError(
          cost,
          `the ${this.#replicaMinFree} bytes of disk kept free (${free} free)`,
          REPLICA_OVERHEAD_BYTES,
        );
      }
    }
    if (charged) return 0;
    // The room peers may have: the cap, or what they hold and the disk can still give them.
    const diskRoom = this.#replicaMinFree > 0
      ? held + Math.max(0, free - this.#reserved() - PACK_OVERHEAD_BYTES - this.#replicaMinFree)
      : Infinity;
    const allowance = Math.min(this.#replicaQuota, diskRoom);
    if (!this.#shares.fits(giver, cost, held, allowance)) {
      throw new ReplicaQuotaExceededError(
        cost,
        `this peer's share of the ${allowance} bytes it holds for peers (` +
          `${this.#shares.heldFor(giver)} held for it, ${held} for all, ` +
          `${this.#shares.recentGivers} peers asking)`,
        REPLICA_OVERHEAD_BYTES,
      );
    }
    return cost;
  }

  /** Charge `cost` (a {@link room}) to `giver` while its write is in flight. */
  reserve(giver: string, cost: number): void {
    this.#reservedBytes += cost;
    this.#shares.charge(giver, cost);
  }

  /** Take off what {@link reserve} charged, once the write is done (or failed). */
  release(giver: string, cost: number): void {
    this.#reservedBytes -= cost;
    this.#shares.charge(giver, -cost);
  }

  /** Free bytes of the store's filesystem: the test hook's answer, else the OS's. */
  async diskFree(): Promise<number> {
    return await (this.#faults?.freeBytes?.() ?? diskFreeBytes(this.#dir));
  }

  /**
   * Record `cid` as held for other nodes, placed by `giver` (its write is under way, or its record
   * was written): charged while indexed. One already in the set keeps the giver it has.
   */
  holdForPeers(cid: string, giver: string = NO_GIVER): void {
    if (this.#replicaSet.has(cid)) return;
    this.#replicaSet.add(cid);
    this.#shares.assign(cid, giver);
    this.#chargeBy(cid, this.#replicaCharge(cid));
  }

  /** Take `cid` out of the set (its write or record failed): no longer charged. */
  leaveReplicaSet(cid: string): void {
    if (!this.#replicaSet.delete(cid)) return;
    this.#chargeBy(cid, -this.#replicaCharge(cid));
    this.#shares.unassign(cid);
  }

  /**
   * Take off what `cid` is charged for its indexed copy: called before that copy leaves the index
   * or is replaced there (then {@link charge} charges the new one).
   */
  uncharge(cid: string): void {
    if (this.#replicaSet.has(cid)) this.#chargeBy(cid, -this.#replicaCharge(cid));
  }

  /** Charge `cid` for its indexed copy: called after the index took a copy of it. */
  charge(cid: string): void {
    if (this.#replicaSet.has(cid)) this.#chargeBy(cid, this.#replicaCharge(cid));
  }

  /** Add `bytes` (negative: take them off) to what is held for peers, and to `cid`'s giver. */
  #chargeBy(cid: string, bytes: number): void {
    this.#replicaBytes += bytes;
    this.#shares.chargeChunk(cid, bytes);
  }

  /** What an object counts against the replica cap while indexed: its bytes and overhead. */
  #replicaCharge(cid: string): number {
    const location = this.#index.get(cid);
    return location === undefined ? 0 : location.length + REPLICA_OVERHEAD_BYTES;
  }
}
