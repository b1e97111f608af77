/**
 * What a `ReplicatedStore` remembers of its peers, chunk by chunk: which chunks each was
 * given or proved ({@link GivenChunks}), which writes a holder missed, and which peers answered a
 * read of a chunk without its bytes (read last until they serve it right). The store owns one
 * {@link ReplicaRecords}: its puts, reads (`_replica_reads.ts`) and repairs
 * (`_replica_repair.ts`) record outcomes in it, and `missedWrite`, `wasGiven` and `setPeers`
 * read or prune it. Not part of the public API.
 *
 * @module
 */
import type { GivenChunks } from "./given_chunks.ts";
import type { StoragePeer } from "./storage_peer.ts";

/**
 * Default of {@link ReplicatedStoreOptions.maxMissedWrites}: 65 536 pairs, a few MiB of memory.
 * A holder that stays in the peer set but refuses every write (full, or hostile) misses the write
 * of every chunk it ranks for, and unbounded that record grew with everything the node ever wrote
 * (a review found it at stop 56). Forgetting an old miss blames no one: an auditor holds a holder
 * to what {@link ReplicatedStore.wasGiven} records, and a missed write is never given.
 */
export const DEFAULT_MAX_MISSED_WRITES: number = 65_536;

/**
 * Most (holder, chunk) pairs remembered as having answered a read without the chunk's bytes (see
 * {@link ReplicaRecords.readOrder}); past it the oldest is forgotten, and that holder is asked in
 * its rank again. The bound of the missed writes, for the same reason: a few MiB however many
 * reads the node serves.
 */
const MAX_UNSERVED = DEFAULT_MAX_MISSED_WRITES;

/** A store's record of what its peers were given, missed, and served (see the module doc). */
export class ReplicaRecords {
  /**
   * `<peer id> <cid>` of each chunk whose write a holder missed, until a write to it succeeds;
   * oldest first, at most {@link #maxMissed}.
   */
  readonly #missed = new Set<string>();
  readonly #maxMissed: number;
  /**
   * `<peer id> <cid>` of each read answered without the chunk's bytes (`chunk_not_found`, or bytes
   * not matching the CID), until that peer serves the chunk right; oldest first, at most
   * {@link MAX_UNSERVED}.
   */
  readonly #unserved = new Set<string>();
  /** Chunks each peer was given or proved; kept across {@link setPeers}. */
  readonly #given: GivenChunks;
  /** The store's `holders`: the r peers that should hold a chunk. */
  readonly #holders: (cid: string) => StoragePeer[];

  /**
   * Records in `given`, remembering at most `maxMissed` missed writes; `holders` is the store's
   * placement, which says whether a failed write was a holder's.
   */
  constructor(
    given: GivenChunks,
    maxMissed: number,
    holders: (cid: string) => StoragePeer[],
  ) {
    this.#given = given;
    this.#maxMissed = maxMissed;
    this.#holders = holders;
  }

  /** Where the chunks each peer was given or proved are recorded. */
  get given(): GivenChunks {
    return this.#given;
  }

  /**
   * The peer set is now `ids`: forget the missed writes and unserved reads of peers outside it, and tell
   * {@link GivenChunks.setPeers}.
   */
  setPeers(ids: Set<string>): void {
    for (const pairs of [this.#missed, this.#unserved]) {
      for (const key of pairs) if (!ids.has(key.slice(0, key.indexOf(" ")))) pairs.delete(key);
    }
    this.#given.setPeers(ids);
  }

  /** `ReplicatedStore.missedWrite`. */
  missedWrite(peerId: string, cid: string): boolean {
    return this.#missed.has(`${peerId} ${cid}`);
  }

  /** Record the outcome of a write of `cid` to `peer` for `missedWrite` and `wasGiven`. */
  wrote(peer: StoragePeer, cid: string, ok: boolean): void {
    const key = `${peer.id} ${cid}`;
    if (ok) {
      this.#given.add(peer.id, cid);
      this.#missed.delete(key);
    } else if (this.#holders(cid).includes(peer)) {
      remember(this.#missed, key, this.#maxMissed);
    }
  }

  /**
   * `peer` answered a read of `cid` without its bytes: `chunk_not_found`, or bytes that do not
   * match it.
   */
  failedToServe(peer: StoragePeer, cid: string): void {
    remember(this.#unserved, `${peer.id} ${cid}`, MAX_UNSERVED);
  }

  /** `peer` answered a read of `cid` with its bytes. */
  servedRight(peer: StoragePeer, cid: string): void {
    this.#unserved.delete(`${peer.id} ${cid}`);
  }

  /**
   * The peers to read `cid` from, in order: its rank order (`ranked`), except that a peer that
   * answered a read of it without its bytes (bytes not matching the CID, or `chunk_not_found`)
   * comes after every other, until it serves it right.
   * Kept in rank, that peer was asked first on every read and sent a read-repair copy each time:
   * one that keeps the chunk for audits (its possession proofs are right) but answers reads with
   * a few bytes of garbage (a review found it at stop 56), or with `chunk_not_found` (review s62),
   * served nothing and had every reader upload the chunk to it again, read after read. An honest
   * holder that lost the chunk is sent its one read-repair copy and read after the others for it,
   * which costs nothing while they serve. Placement (writes, repairs, audits) keeps the rank.
   */
  readOrder(cid: string, ranked: StoragePeer[]): StoragePeer[] {
    if (this.#unserved.size === 0) return ranked;
    const last = (peer: StoragePeer) => this.#unserved.has(`${peer.id} ${cid}`);
    return [...ranked.filter((p) => !last(p)), ...ranked.filter(last)];
  }
}

/** Add `key` to `pairs` as its latest entry, forgetting the oldest past `max`. */
function remember(pairs: Set<string>, key: string, max: number): void {
  pairs.delete(key); // re-added as the latest
  pairs.add(key);
  for (const oldest of pairs) {
    if (pairs.size <= max) break;
    pairs.delete(oldest);
  }
}
