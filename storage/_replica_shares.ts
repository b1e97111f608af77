/**
 * Each peer's share of what this node holds for peers: who placed each chunk held here (its
 * giver), what each giver holds, which givers asked for room lately, and the rule that decides
 * whether a giver's next chunk is taken. `ReplicaCap` (`_replica_cap.ts`) owns one
 * {@link ReplicaShares} and asks {@link ReplicaShares.fits} before a replica write, once the
 * chunk fits the allowance as a whole. Not part of the public API.
 *
 * The rule is max-min fairness among the givers that asked lately (within
 * {@link RECENT_GIVER_MS}): the allowance, less what givers that have not asked lately hold, is
 * split evenly among those that have (their share). A giver's chunk is taken when what is left
 * after it still covers what every other recent giver lacks of its share. So a giver under its
 * share is always taken up to it (while the allowance has room), one over its share only takes
 * room no other recent giver is owed, and a lone giver — one writer in a small network, whose
 * big put goes to every holder — takes the whole allowance when nobody else asks. What a giver
 * holds is never taken back: a peer that filled the allowance while nobody else asked keeps it
 * (records are never removed), and others' copies go to other holders, as before.
 *
 * A chunk is counted once, for the giver whose record placed it here first: a second giver
 * sending it again moves nothing. A chunk without a giver (recorded by an older node, a record
 * whose giver could not be read, or placed by no peer: a chunk proven to a peer, an unattributed
 * in-process put) is counted for no giver: it takes room from the allowance, and its puts are
 * bounded by the allowance alone.
 *
 * @module
 */

/**
 * How long a giver counts as asking for room after its last `put_chunk` here, accepted or
 * refused: an hour. Long enough for a writer between the files of one upload, short enough that
 * a peer gone quiet stops holding room for itself.
 */
export const RECENT_GIVER_MS = 60 * 60 * 1000;

/**
 * Most givers remembered as asking lately: past it the one that asked longest ago is forgotten
 * (it keeps what it holds, not room for more). Well above any peer table.
 */
const MAX_RECENT_GIVERS = 4096;

/** The giver of a chunk placed by no peer (see the module documentation). */
export const NO_GIVER = "";

/** Who placed each chunk held for peers, and whether a giver's next chunk fits its share. */
export class ReplicaShares {
  readonly #clock: () => number;
  /** The giver of each chunk in the replica set. */
  readonly #giverOf = new Map<string, string>();
  /** Bytes charged per giver: its indexed chunks and its writes in flight. */
  readonly #heldBy = new Map<string, number>();
  /** When each giver last asked, the one that asked longest ago first. */
  readonly #askedAt = new Map<string, number>();

  /** Shares on `clock` (ms). */
  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** Bytes charged to `giver`: its chunks held here and its writes in flight. */
  heldFor(giver: string): number {
    return this.#heldBy.get(giver) ?? 0;
  }

  /** The giver recorded for `cid` ({@link NO_GIVER} when none). */
  giverOf(cid: string): string {
    return this.#giverOf.get(cid) ?? NO_GIVER;
  }

  /** Record `giver` as the one that placed `cid` (before any charge of it). */
  assign(cid: string, giver: string): void {
    this.#giverOf.set(cid, giver);
  }

  /** `cid` left the replica set: forget its giver (after its charge was taken off). */
  unassign(cid: string): void {
    this.#giverOf.delete(cid);
  }

  /** Charge `bytes` (negative: take them off) to the giver of `cid`. */
  chargeChunk(cid: string, bytes: number): void {
    this.charge(this.giverOf(cid), bytes);
  }

  /** Charge `bytes` (negative: take them off) to `giver`. */
  charge(giver: string, bytes: number): void {
    const held = this.heldFor(giver) + bytes;
    if (held === 0) this.#heldBy.delete(giver);
    else this.#heldBy.set(giver, held);
  }

  /**
   * Whether `giver`'s chunk of `cost` bytes fits its share, with `held` bytes charged to every
   * giver together and `allowance` the room for peers' chunks. Counts this as an ask of
   * `giver`'s, taken or not: a refused giver is owed its share from now on.
   */
  fits(giver: string, cost: number, held: number, allowance: number): boolean {
    if (giver === NO_GIVER) return true;
    this.#asked(giver);
    if (!Number.isFinite(allowance)) return true;
    let recentHeld = 0;
    for (const peer of this.#askedAt.keys()) recentHeld += this.heldFor(peer);
    // What givers that have not asked lately hold is taken, not shared.
    const share = (allowance - (held - recentHeld)) / this.#askedAt.size;
    let owed = 0;
    for (const peer of this.#askedAt.keys()) {
      if (peer !== giver) owed += Math.max(0, share - this.heldFor(peer));
    }
    return held + cost + owed <= allowance;
  }

  /** The number of givers asking lately (`giver` among them after {@link fits}). */
  get recentGivers(): number {
    return this.#askedAt.size;
  }

  #asked(giver: string): void {
    const now = this.#clock();
    this.#askedAt.delete(giver); // re-added as the latest
    this.#askedAt.set(giver, now);
    for (const [peer, at] of this.#askedAt) {
      if (now - at < RECENT_GIVER_MS && this.#askedAt.size <= MAX_RECENT_GIVERS) break;
      this.#askedAt.delete(peer);
    }
  }
}
