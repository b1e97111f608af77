/**
 * What a `ReplicatedStore` remembers of its peers, chunk by chunk: which chunks each was
 * given or proved ({@link GivenChunks}), which writes a holder missed, which peers answered a
 * read of a chunk without its bytes (read last until they serve it right), and which failed this
 * node's audit of a chunk (placed last for it), or audits in several recent rounds (placed last
 * for every chunk for a while). The store owns one {@link ReplicaRecords}: its puts, reads
 * (`_replica_reads.ts`) and repairs (`_replica_repair.ts`) record outcomes in it, the owner's
 * audits record their failures (`ReplicatedStore.failedAudit`), and `holders`, `missedWrite`,
 * `wasGiven` and `setPeers` read or prune it. Not part of the public API.
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

/**
 * Most (holder, chunk) pairs remembered as failed in an audit of this node's (see
 * {@link ReplicaRecords.failedAudit}); past it the oldest is forgotten and that holder is placed in
 * its rank again (the next audit of it judges it again). The bound of the unserved reads.
 */
const MAX_FAILED_AUDITS = DEFAULT_MAX_MISSED_WRITES;

/**
 * Audit rounds, out of the last {@link STRIKE_WINDOW_ROUNDS} of this node's, in which a holder
 * failed an audit before it is placed last for every chunk: three, so one audit an honest holder
 * missed (it was unreachable while its connection was still up: `no_response`) or one lost chunk
 * costs it the chunks it failed, not its standing; a holder that keeps little fails round after
 * round (one keeping a fraction k of its chunks passes a round's four with probability k⁴).
 */
export const DEMOTION_STRIKES = 3;

/** The recent rounds {@link DEMOTION_STRIKES} are counted in. */
export const STRIKE_WINDOW_ROUNDS = 8;

/**
 * Audit rounds a holder stays placed last for every chunk after its latest strike: a day at the
 * default round every 10 minutes (`storage.auditIntervalMs`). Rounds, not time, so a node that audits nobody (stopped, no peers) does not
 * forgive anyone meanwhile, and a test needs no clock. A holder placed last is still asked for
 * the copies it was given (a stand-in), so one that fails on keeps itself demoted.
 */
export const DEMOTION_ROUNDS = 144;

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
  /**
   * `<peer id> <cid>` of each chunk a holder failed an audit of this node's on, until a write of it
   * to that holder succeeds (or it proves it in a repair), or it has been away for the departed
   * retention ({@link setPeers}); oldest first, at most {@link MAX_FAILED_AUDITS}. The pair is what
   * makes one loss one verdict: the holder is not asked for that chunk again while it stands.
   */
  readonly #failedAudits = new Set<string>();
  /** Per peer, the audit rounds ({@link #round}) it failed an audit in, the latest last. */
  readonly #strikes = new Map<string, number[]>();
  /** Per peer placed last for every chunk, the round after which it is placed in rank again. */
  readonly #demoted = new Map<string, number>();
  /**
   * Per peer out of the peer set that this node holds penalties against ({@link #failedAudits},
   * {@link #strikes}, {@link #demoted}), when it left, by the given record's clock: they are
   * forgotten once its departed-holder retention ran out ({@link setPeers}). At most one entry per
   * peer that failed an audit of this node's and left within that retention.
   */
  readonly #departed = new Map<string, number>();
  /** Audit rounds ended ({@link auditRoundEnded}): the clock of strikes and demotions. */
  #round = 0;
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
   * The peer set is now `ids`: forget the missed writes and unserved reads of peers outside it, and
   * tell {@link GivenChunks.setPeers}. What this node's own audits found against a peer (its
   * failed-audit marks, strikes and demotion) is kept while it is away, and forgotten only once it
   * has been away for the departed-holder retention of the given record
   * (`DEPARTED_HOLDER_RETENTION_MS`, a day), on that record's clock — also when this call is the
   * one that brings it back. Forgotten at the first departure, a demoted holder that stored nothing
   * was back in rank after one reconnect (which every dropped connection is: the network sends a
   * `set_peers`), and an honest holder that lost one chunk was asked for it again, and signed
   * against again, after each restart (review s75).
   */
  setPeers(ids: Set<string>): void {
    for (const pairs of [this.#missed, this.#unserved]) {
      for (const key of pairs) if (!ids.has(peerOf(key))) pairs.delete(key);
    }
    const now = this.#given.now();
    for (const id of this.#penalized()) {
      if (!ids.has(id) && !this.#departed.has(id)) this.#departed.set(id, now);
    }
    for (const [id, since] of this.#departed) {
      if (this.#given.retentionRanOut(since)) this.#forgetPenalties(id);
      else if (ids.has(id)) this.#departed.delete(id); // back in time: it keeps what it earned
    }
    this.#given.setPeers(ids);
  }

  /** The peers this node holds a failed audit, a strike or a demotion against. */
  #penalized(): Set<string> {
    const ids = new Set([...this.#strikes.keys(), ...this.#demoted.keys()]);
    for (const key of this.#failedAudits) ids.add(peerOf(key));
    return ids;
  }

  /** Forget what this node's audits found against `id` (see {@link setPeers}). */
  #forgetPenalties(id: string): void {
    for (const key of this.#failedAudits) if (peerOf(key) === id) this.#failedAudits.delete(key);
    this.#strikes.delete(id);
    this.#demoted.delete(id);
    this.#departed.delete(id);
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
      this.#failedAudits.delete(key); // it holds a good copy again
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
   * This node audited `peerId` and it failed on `cids` (this node's own signed verdict: what it
   * saw itself, not a peer's word). It is placed last for each of them ({@link placementOrder}),
   * and a strike counts against it for this round; with {@link DEMOTION_STRIKES} in the last
   * {@link STRIKE_WINDOW_ROUNDS} rounds it is placed last for every chunk for
   * {@link DEMOTION_ROUNDS} rounds.
   */
  failedAudit(peerId: string, cids: readonly string[]): void {
    for (const cid of cids) remember(this.#failedAudits, `${peerId} ${cid}`, MAX_FAILED_AUDITS);
    const strikes = (this.#strikes.get(peerId) ?? [])
      .filter((round) => round > this.#round - STRIKE_WINDOW_ROUNDS && round !== this.#round);
    strikes.push(this.#round);
    this.#strikes.set(peerId, strikes);
    if (strikes.length >= DEMOTION_STRIKES) {
      this.#demoted.set(peerId, this.#round + DEMOTION_ROUNDS);
    }
  }

  /**
   * `peerId`, a holder of `cid` that this node gave it, asked this node for that chunk: it said it
   * holds no copy (a holder keeping nothing answers audits by fetching the chunk from the very node
   * that audits it: review s71, finding 1). It is placed last for `cid` as for a failed audit, so
   * the repair that follows puts the copy on the next peer, until a write of it to that peer
   * succeeds again. No strike: an honest holder that lost a chunk to its disk asks for it the same
   * way, and a read of its own may ask here too (see `docs/STORAGE.md`); neither is a failed audit
   * of this node's.
   */
  admittedLoss(peerId: string, cid: string): void {
    remember(this.#failedAudits, `${peerId} ${cid}`, MAX_FAILED_AUDITS);
  }

  /** An audit round of this node's ended: strikes age, and demotions that ran out end. */
  auditRoundEnded(): void {
    this.#round++;
    for (const [id, until] of this.#demoted) if (until < this.#round) this.#demoted.delete(id);
    for (const [id, strikes] of this.#strikes) {
      if (strikes[strikes.length - 1] <= this.#round - STRIKE_WINDOW_ROUNDS) {
        this.#strikes.delete(id);
      }
    }
  }

  /** Whether `peerId` is placed last for every chunk (see {@link failedAudit}). */
  demoted(peerId: string): boolean {
    return this.#demoted.has(peerId);
  }

  /**
   * The peers to place `cid` on, in order: its rank order (`ranked`), except that a peer that
   * failed this node's audit of it, or is demoted for every chunk, comes after every other. Its
   * first r are the chunk's holders (writes, repairs, audits): kept in rank, a holder that kept
   * nothing was sent a fresh copy of each chunk it failed by every round's repair, which the
   * auditor paid, and its share of every put (review s62). Past the others it is still a fallback
   * when too few peers are left.
   */
  placementOrder(cid: string, ranked: StoragePeer[]): StoragePeer[] {
    if (this.#failedAudits.size === 0 && this.#demoted.size === 0) return ranked;
    const last = (peer: StoragePeer) =>
      this.#demoted.has(peer.id) || this.#failedAudits.has(`${peer.id} ${cid}`);
    return [...ranked.filter((p) => !last(p)), ...ranked.filter(last)];
  }

  /** Whether `peerId` failed this node's audit of `cid` (and holds no good copy of it since). */
  failedAuditOf(peerId: string, cid: string): boolean {
    return this.#failedAudits.has(`${peerId} ${cid}`);
  }

  /**
   * The peers to read `cid` from, in order: its placement order (`placed`, {@link placementOrder}),
   * except that a peer that answered a read of it without its bytes (bytes not matching
   * the CID, or `chunk_not_found`) comes after every other, until it serves it right.
   * Kept in rank, that peer was asked first on every read and sent a read-repair copy each time:
   * one that keeps the chunk for audits (its possession proofs are right) but answers reads with
   * a few bytes of garbage (a review found it at stop 56), or with `chunk_not_found` (review s62),
   * served nothing and had every reader upload the chunk to it again, read after read. An honest
   * holder that lost the chunk is sent its one read-repair copy and read after the others for it,
   * which costs nothing while they serve. Placement (writes, repairs, audits) keeps its order:
   * a read answered without bytes proves nothing to anyone, an audit failed is this node's verdict.
   */
  readOrder(cid: string, placed: StoragePeer[]): StoragePeer[] {
    if (this.#unserved.size === 0) return placed;
    const last = (peer: StoragePeer) => this.#unserved.has(`${peer.id} ${cid}`);
    return [...placed.filter((p) => !last(p)), ...placed.filter(last)];
  }
}

/** The peer id of a `<peer id> <cid>` pair. */
function peerOf(key: string): string {
  return key.slice(0, key.indexOf(" "));
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
