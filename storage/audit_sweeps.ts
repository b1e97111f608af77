/**
 * The holders whose whole record this node is checking, a slice per audit round: once a holder
 * fails an audit of this node's (its own signed verdict, `audit.ts`), every chunk the node's record
 * says it was given (`GivenChunks`) is queued, and each round (`audit_round.ts`) audits the next
 * {@link SWEEP_CHUNKS_PER_ROUND} of them that still count it as a copy, so what it failed is placed
 * on the next peer and repaired in that round. Sampling alone (4 chunks per holder per round)
 * restored about 4 of a liar's chunks per round, and a liar given 400 chunks kept them below r
 * copies for about 100 rounds, 17 hours (review s75, finding 2). A round's sweeps share one budget,
 * {@link SWEEP_CHUNKS_PER_ROUND_ALL}, whatever the number of failed holders; a sweep of a holder
 * whose record of given chunks was dropped (away past its retention) is dropped with it, and at
 * most {@link MAX_SWEEPS} are kept.
 *
 * @module
 */
import { MAX_PROVE_CIDS } from "../protocols/storage_messages.ts";
import type { StoragePeer } from "./storage_peer.ts";

/**
 * Most chunks of one failed holder audited per round (less when the round's sweeps share
 * {@link SWEEP_CHUNKS_PER_ROUND_ALL}): four challenges of {@link MAX_PROVE_CIDS} (64),
 * each costing the auditor a verified reference copy per chunk (up to 64 MiB a round at 256 KiB
 * chunks, then the repair of what failed). The review's case, 800 chunks over 5 honest peers and a
 * liar with r = 3, gave the liar about 400 (378 of 800 were short of 3 real copies): found in round
 * 1, it is checked on 256 of them that round and the rest in round 2, so every short chunk is
 * repaired within 2 rounds (20 minutes at the default 10-minute `storage.auditIntervalMs`), where
 * it had 164 still short after 12 rounds, and about 100 rounds with a reconnect after each.
 */
export const SWEEP_CHUNKS_PER_ROUND = 4 * MAX_PROVE_CIDS;

/**
 * Chunks all sweeps together audit per round, shared among the holders being swept: two holders'
 * full slices, 512 reference reads (128 MiB at 256 KiB chunks) a round at most, where one slice
 * per failed holder read 2,620 with 10 failed holders (655 MiB) and would read about 6.4 GiB with
 * 100 (review s75 verify, finding 4). One or two liars are still swept at full speed; more share
 * it, each taking longer.
 */
export const SWEEP_CHUNKS_PER_ROUND_ALL = 2 * SWEEP_CHUNKS_PER_ROUND;

/**
 * Most sweeps kept at once: each holds a copy of its holder's record, and with
 * {@link SWEEP_CHUNKS_PER_ROUND_ALL} shared among 64 each still gets 8 chunks a round; more would
 * only add memory (10,000 departed holders kept 10,000 sweeps, 63 MiB: review s75 verify, finding
 * 5). A holder that fails while the table is full is not swept then: sampled as before, it starts
 * its sweep when it fails again once a sweep has ended.
 */
export const MAX_SWEEPS = 64;

/** One holder's sweep: its chunks (storage keys) and how far the rounds got. */
interface Sweep {
  peer: StoragePeer;
  chunks: string[];
  next: number;
}

/**
 * The sweeps in progress (see the module doc), kept by the audit rounds' owner from one round to
 * the next. At most one per holder: a holder that fails again while its sweep runs is already
 * being checked. Each holds a copy of the holder's record of given chunks (`GivenChunks`); at most
 * {@link MAX_SWEEPS} are kept, and a round drops ({@link drop}) the sweep of a holder whose record
 * was dropped (away past the departed-holder retention), so they are bounded by the records kept.
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
    if (this.#byPeer.size >= MAX_SWEEPS) return; // full: see MAX_SWEEPS
    this.#byPeer.set(peer.id, { peer, chunks: [...chunks], next: 0 });
  }

  /**
   * Stop `peerId`'s sweep, if one runs (its holder's record of given chunks was dropped).
   *
   * @param peerId The holder.
   */
  drop(peerId: string): void {
    this.#byPeer.delete(peerId);
  }

  /**
   * The holders with chunks left to check, as each was when its sweep started, the one served
   * longest ago first ({@link take} moves a sweep it leaves unfinished to the end).
   *
   * @returns The holders.
   */
  pending(): StoragePeer[] {
    return [...this.#byPeer.values()].map((sweep) => sweep.peer);
  }

  /**
   * The next chunks of `peerId`'s sweep that `counts` (still one of its copies here), at most
   * `max`; those that no longer count are passed over for good. The sweep ends with its last; one
   * left unfinished goes to the end of {@link pending}, so a shared budget reaches each in turn.
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
    this.#byPeer.delete(peerId);
    if (sweep.next < sweep.chunks.length) this.#byPeer.set(peerId, sweep);
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
      if (this.#byPeer.size >= MAX_SWEEPS) return; // full: see MAX_SWEEPS
      this.#byPeer.set(peer.id, { peer, chunks: [...cids], next: 0 });
    } else sweep.chunks.splice(sweep.next, 0, ...cids);
  }
}
