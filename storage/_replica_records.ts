/**
 * What a `ReplicatedStore` remembers of its peers, chunk by chunk: which chunks each was
 * given or proved ({@link GivenChunks}), which writes a holder missed, which peers answered a
 * read of a chunk without its bytes (read last until they serve it right), and which failed this
 * node's audit of a chunk (placed last for it), or audits in several recent rounds (placed last
 * for every chunk for a while, with every other key of the address group it was last seen in).
 * The store owns one {@link ReplicaRecords}: its puts, reads (`_replica_reads.ts`) and repairs
 * (`_replica_repair.ts`) record outcomes in it, the owner's audits record their failures
 * (`ReplicatedStore.failedAudit`), and `holders`, `missedWrite`, `wasGiven` and `setPeers` read or
 * prune it. What the audits found ({@link AuditPenalties}: failed
 * pairs, strikes, demotions) is kept in a record the store is given, which the StorageActor keeps
 * in a file, so a restart does not forget it. Not part of the public API.
 *
 * @module
 */
import { AuditPenalties } from "./audit_penalties.ts";
import type { GivenChunks } from "./given_chunks.ts";
import type { RankedPeer } from "./rendezvous.ts";
import type { StoragePeer } from "./storage_peer.ts";

export { DEMOTION_ROUNDS, DEMOTION_STRIKES, STRIKE_WINDOW_ROUNDS } from "./audit_penalties.ts";

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
 * A placement group that names an address (`rendezvous.ts`): an IPv4 address, or an IPv6 block or
 * link-local address. Only such a group holds one key's demotion against the others in it; a
 * group that names none (the one every relayed peer shares, `(unaddressed)`) is hosts that have
 * nothing else in common, and one liar among them would rank every honest relayed peer last.
 */
const ADDRESS_GROUP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:]*(\/\d{1,3})?(%\S+)?)$/i;

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
  /** What this node's audits found against its peers; kept across {@link setPeers}. */
  readonly #penalties: AuditPenalties;
  /** Chunks each peer was given or proved; kept across {@link setPeers}. */
  readonly #given: GivenChunks;
  /** The address group ({@link ADDRESS_GROUP}) of each peer of the set that is in one. */
  #groupOf = new Map<string, string>();
  /**
   * Per demoted peer, the address group it was last seen in. In memory only, never in the
   * penalties file: a group is this node's view of an address at one time (a DHCP lease, a
   * carrier's NAT, a relay), not an identity, and the file would become a record of peers' IP
   * addresses; after a restart a demoted key is tied to its group again once it connects.
   */
  readonly #demotedIn = new Map<string, string>();
  /** The groups of {@link #demotedIn}: every peer in one is placed last (review s76 F5). */
  #heldGroups = new Set<string>();
  /** The store's `holders`: the r peers that should hold a chunk. */
  readonly #holders: (cid: string) => StoragePeer[];

  /**
   * Records in `given` and `penalties`, remembering at most `maxMissed` missed writes; `holders`
   * is the store's placement, which says whether a failed write was a holder's.
   */
  constructor(
    given: GivenChunks,
    maxMissed: number,
    holders: (cid: string) => StoragePeer[],
    penalties: AuditPenalties = new AuditPenalties(),
  ) {
    this.#given = given;
    this.#penalties = penalties;
    this.#maxMissed = maxMissed;
    this.#holders = holders;
  }

  /** Where the chunks each peer was given or proved are recorded. */
  get given(): GivenChunks {
    return this.#given;
  }

  /** Where what this node's audits found against its peers is recorded. */
  get penalties(): AuditPenalties {
    return this.#penalties;
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
    this.#penalties.setPeers(ids, this.#given);
    this.#given.setPeers(ids);
    this.#holdGroups(); // a demotion forgotten with a peer away past the retention
  }

  /**
   * The peer set (its constructor's, or each `setPeers`'): the address group each peer is in now,
   * as this node sees it ({@link RankedPeer.group}). A demoted peer's group is held against every
   * peer in it ({@link placementOrder}).
   */
  seeGroups(peers: readonly RankedPeer[]): void {
    this.#groupOf = new Map();
    for (const peer of peers) {
      if (peer.group !== undefined && ADDRESS_GROUP.test(peer.group)) {
        this.#groupOf.set(peer.id, peer.group);
      }
    }
    this.#holdGroups();
  }

  /**
   * {@link #demotedIn} and {@link #heldGroups} after a change of the peers or the demotions: a
   * demoted peer in the set is tied to its group now, and one whose demotion ended (ran out, or
   * forgotten) holds its group no longer. Bounded by the demoted peers the penalties keep.
   */
  #holdGroups(): void {
    for (const [id, group] of this.#groupOf) {
      if (this.#penalties.demoted(id)) this.#demotedIn.set(id, group);
    }
    for (const id of this.#demotedIn.keys()) {
      if (!this.#penalties.demoted(id)) this.#demotedIn.delete(id);
    }
    this.#heldGroups = new Set(this.#demotedIn.values());
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
      this.#penalties.holdsAgain(peer.id, cid); // it holds a good copy again
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
    this.#penalties.failedAudit(peerId, cids);
    this.#holdGroups(); // demoted now, or another demotion evicted to make room
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
    this.#penalties.markFailed(peerId, cid);
  }

  /** An audit round of this node's ended: strikes age, and demotions that ran out end. */
  auditRoundEnded(): void {
    this.#penalties.auditRoundEnded();
    this.#holdGroups();
  }

  /** Whether `peerId` is placed last for every chunk (see {@link failedAudit}). */
  demoted(peerId: string): boolean {
    return this.#penalties.demoted(peerId);
  }

  /**
   * The peers to place `cid` on, in order: its rank order (`ranked`), except that a peer that
   * failed this node's audit of it, or is demoted for every chunk, or is in the address group a
   * demoted peer was last seen in, comes after every other. Its first r are the chunk's holders
   * (writes, repairs, audits): kept in rank, a holder that kept nothing was sent a fresh copy of
   * each chunk it failed by every round's repair, which the auditor paid, and its share of every
   * put (review s62); and keyed by key alone, a demoted host came back under a fresh key from the
   * same address and held copies of half the chunks at once (review s76 vstore F5). Past the
   * others it is still a fallback when too few peers are left.
   */
  placementOrder(cid: string, ranked: StoragePeer[]): StoragePeer[] {
    const penalties = this.#penalties;
    if (penalties.empty) return ranked;
    const held = this.#heldGroups;
    const groupHeld = (peer: RankedPeer) =>
      held.size > 0 && peer.group !== undefined && held.has(peer.group);
    const last = (peer: StoragePeer) =>
      penalties.demoted(peer.id) || penalties.failedAuditOf(peer.id, cid) || groupHeld(peer);
    return [...ranked.filter((p) => !last(p)), ...ranked.filter(last)];
  }

  /** Whether `peerId` failed this node's audit of `cid` (and holds no good copy of it since). */
  failedAuditOf(peerId: string, cid: string): boolean {
    return this.#penalties.failedAuditOf(peerId, cid);
  }

  /**
   * Whether `peerId`, placed past the holders of `cid`, stands in for one: this node knows it was
   * given the chunk (or proved it) and it failed no audit of it since (`ReplicatedStore.standIns`).
   */
  standsIn(peerId: string, cid: string): boolean {
    return this.#given.has(peerId, cid) && !this.#penalties.failedAuditOf(peerId, cid);
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
