/**
 * The holders whose whole record this node is checking, a slice per audit round: once a holder
 * fails an audit of this node's (its own signed verdict, `audit.ts`), every chunk the node's record
 * says it was given (`GivenChunks`) is queued, and each round (`audit_round.ts`) audits the next
 * {@link SWEEP_CHUNKS_PER_ROUND} of them that still count it as a copy, so what it failed is placed
 * on the next peer and repaired in that round. Sampling alone (4 chunks per holder per round)
 * restored about 4 of a liar's chunks per round, and a liar given 400 chunks kept them below r
 * copies for about 100 rounds, 17 hours (review s75, finding 2).
 *
 * @module
 */
import { MAX_PROVE_CIDS } from "../protocols/storage_messages.ts";
import type { StoragePeer } from "./storage_peer.ts";

/**
 * Chunks of one failed holder audited per round: four challenges of {@link MAX_PROVE_CIDS} (64),
 * each costing the auditor a verified reference copy per chunk (up to 64 MiB a round at 256 KiB
 * chunks, then the repair of what failed). The review's case, 800 chunks over 5 honest peers and a
 * liar with r = 3, gave the liar about 400 (378 of 800 were short of 3 real copies): found in round
 * 1, it is checked on 256 of them that round and the rest in round 2, so every short chunk is
 * repaired within 2 rounds (20 minutes at the default 10-minute `storage.auditIntervalMs`), where
 * it had 164 still short after 12 rounds, and about 100 rounds with a reconnect after each.
 */
export const SWEEP_CHUNKS_PER_ROUND = 4 * MAX_PROVE_CIDS;

/** One holder's sweep: its chunks (storage keys) and how far the rounds got. */
interface Sweep {
  peer: StoragePeer;
  chunks: string[];
  next: number;
}

/**
 * The sweeps in progress (see the module doc), kept by the audit rounds' owner from one round to
 * the next. At most one per holder: a holder that fails again while its sweep runs is already
 * being checked. Each holds a copy of the holder's record of given chunks, which is in memory
 * already (`GivenChunks`), so its size is bounded by that record's.
 *
 * @example
 * ```ts
 * import { AuditSweeps } from "./audit_sweeps.ts";
 * const sweeps = new AuditSweeps();
 * sweeps.pending(); // []
 * ```
 */
export class AuditSweeps {
  readonly #byPeer = new Map<string, Sweep>();

  /**
   * `peer` failed an audit of this node's: check each of `chunks` (what it was given), unless a
   * sweep of it is already under way.
   *
   * @param peer The holder.
   * @param chunks The storage keys it was recorded as given.
   */
  start(peer: StoragePeer, chunks: readonly string[]): void {
    if (this.#byPeer.has(peer.id) || chunks.length === 0) return;
    this.#byPeer.set(peer.id, { peer, chunks: [...chunks], next: 0 });
  }

  /**
   * The holders with chunks left to check, as each was when its sweep started.
   *
   * @returns The holders.
   */
  pending(): StoragePeer[] {
    return [...this.#byPeer.values()].map((sweep) => sweep.peer);
  }

  /**
   * The next chunks of `peerId`'s sweep that `counts` (still one of its copies here), at most
   * `max`; those that no longer count are passed over for good. The sweep ends with its last.
   *
   * @param peerId The holder.
   * @param max Most chunks to take.
   * @param counts Whether the holder still counts as a copy of a chunk.
   * @returns The slice (storage keys).
   */
  take(peerId: string, max: number, counts: (cid: string) => boolean): string[] {
    const sweep = this.#byPeer.get(peerId);
    if (sweep === undefined) return [];
    const slice: string[] = [];
    while (slice.length < max && sweep.next < sweep.chunks.length) {
      const cid = sweep.chunks[sweep.next++];
      if (counts(cid)) slice.push(cid);
    }
    if (sweep.next >= sweep.chunks.length) this.#byPeer.delete(peerId);
    return slice;
  }

  /**
   * `cids` of `peer`'s sweep could not be checked (it was not reached): checked at a later round.
   *
   * @param peer The holder.
   * @param cids The chunks taken and not checked.
   */
  putBack(peer: StoragePeer, cids: readonly string[]): void {
    if (cids.length === 0) return;
    const sweep = this.#byPeer.get(peer.id);
    if (sweep === undefined) {
      this.#byPeer.set(peer.id, { peer, chunks: [...cids], next: 0 });
    } else sweep.chunks.splice(sweep.next, 0, ...cids);
  }
}
