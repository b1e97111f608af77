/**
 * What a validator holds of peers' stream proofs (`_stream_claims.ts`), and its bounds (review
 * s69): the proofs being checked, by accuser and stream, and the accusations left undecided here,
 * each counted against its accuser's stake (`ValidatorMemory.countAccusation`) for as long as it is
 * held, so that a key's free stake backs the false-accusation penalty of every proof of its that
 * costs this node anything — a forward pass queued, or a memory entry and a copy passed on to every
 * peer for a proof no ledger can decide. Not part of the public API.
 *
 * Who pays: a flood of proofs is bounded by the accusers' stake, and in all by
 * {@link MAX_PEER_PROOFS_CHECKING} being checked at once; past it, the newest proof of the accuser
 * holding the most gives way to a proof of an accuser holding fewer, so one key (or a few) staked
 * high cannot fill the queue and keep out another accuser's true proof. This node's router's own
 * claims are bounded apart (`_stream_claims.ts`): no peer's proof takes their room.
 *
 * @module
 */
/**
 * Peers' stream proofs being checked at once, at most (each a forward pass waiting in the work
 * queue, and up to a frame of job and input held). Far past what honest routers' convictions
 * bring; past it, see the module doc.
 */
export const MAX_PEER_PROOFS_CHECKING = 256;

/**
 * Accusations left undecided here remembered, at most (one per accuser and stream: the same
 * accuser's copy is not checked or passed on again), each counted against its accuser's stake
 * while remembered; past the bound the oldest of the accuser holding the most is forgotten and its
 * count released.
 */
export const MAX_UNDECIDED_STREAM_PROOFS = 1024;

/** A peer's proof being checked, as the bounds see it. */
interface Checking {
  /** Hex key of its accuser. */
  accuser: string;
  /** The stream it accuses (`streamFraudKey`). */
  subject: string;
}

/** Peers' stream proofs being checked and left undecided here (see the module doc). */
export class StreamProofBounds {
  /** Being checked, by proof hash, the oldest first. */
  readonly #checking = new Map<string, Checking>();
  /** `accuser/subject` of those being checked. */
  readonly #accusing = new Set<string>();
  /** Proofs being checked, by hex accuser. */
  readonly #perAccuser = new Map<string, number>();
  /** `accuser/subject` of the accusations left undecided, the oldest first, with the accuser. */
  readonly #undecided = new Map<string, string>();
  /** Counts a held accusation against its accuser's stake (+1), or releases it (−1). */
  readonly #count: (accuser: string, delta: 1 | -1) => void;

  /** @param count Counts a held accusation against its accuser's stake, or releases it. */
  constructor(count: (accuser: string, delta: 1 | -1) => void) {
    this.#count = count;
  }

  /**
   * Whether `accuser` (hex) accused stream `subject` here already: being checked, or left
   * undecided and still remembered.
   */
  accused(accuser: string, subject: string): boolean {
    const key = `${accuser}/${subject}`;
    return this.#accusing.has(key) || this.#undecided.has(key);
  }

  /**
   * Room for a proof of `accuser` (hex): `true` if there is some, else the hash of the proof that
   * gives way to it (the newest of the accuser holding the most, if that holds more than `accuser`
   * would), or `false` (the newcomer's accuser holds the most: refused).
   */
  room(accuser: string): true | false | string {
    if (this.#checking.size < MAX_PEER_PROOFS_CHECKING) return true;
    let heaviest: string | undefined;
    let most = 0;
    for (const [key, n] of this.#perAccuser) if (n > most) [heaviest, most] = [key, n];
    if (heaviest === undefined || most <= (this.#perAccuser.get(accuser) ?? 0) + 1) return false;
    let newest: string | undefined;
    for (const [hash, c] of this.#checking) if (c.accuser === heaviest) newest = hash;
    return newest ?? false;
  }

  /** A proof taken for its check: counted against its accuser's stake. */
  take(hash: string, accuser: string, subject: string): void {
    this.#checking.set(hash, { accuser, subject });
    this.#accusing.add(`${accuser}/${subject}`);
    this.#perAccuser.set(accuser, (this.#perAccuser.get(accuser) ?? 0) + 1);
    this.#count(accuser, 1);
  }

  /**
   * The proof's check is over (settled, dropped, given way): its count released. `undecided`:
   * left undecided here, remembered (and counted again) instead.
   */
  done(hash: string, undecided = false): void {
    const c = this.#checking.get(hash);
    if (c === undefined) return;
    this.#checking.delete(hash);
    const key = `${c.accuser}/${c.subject}`;
    this.#accusing.delete(key);
    const n = (this.#perAccuser.get(c.accuser) ?? 1) - 1;
    if (n > 0) this.#perAccuser.set(c.accuser, n);
    else this.#perAccuser.delete(c.accuser);
    this.#count(c.accuser, -1);
    if (!undecided || this.#undecided.has(key)) return;
    this.#rememberUndecided(key, c.accuser);
  }

  /**
   * Remember `accuser`'s accusation `key` left undecided, counted against its stake. Past the
   * bound, the oldest of the accuser holding the most is forgotten (its count released), not the
   * oldest of all: else a flood of other keys' undecided proofs released an accuser's backing,
   * and its same proof was replayed and passed on again (review s69, fourth round).
   */
  #rememberUndecided(key: string, accuser: string): void {
    this.#undecided.set(key, accuser);
    this.#count(accuser, 1);
    if (this.#undecided.size <= MAX_UNDECIDED_STREAM_PROOFS) return;
    const held = new Map<string, number>();
    for (const who of this.#undecided.values()) held.set(who, (held.get(who) ?? 0) + 1);
    let heaviest = accuser;
    for (const [who, n] of held) if (n > held.get(heaviest)!) heaviest = who;
    for (const [oldest, who] of this.#undecided) {
      if (who !== heaviest) continue;
      this.#undecided.delete(oldest);
      this.#count(who, -1);
      return;
    }
  }

  /**
   * The accusations left undecided here, oldest first, as kept across a stop (the held
   * evidence): the restart remembers them again, counted again, so the same accuser's copy is not
   * checked and passed on once more per restart.
   */
  undecided(): { accuser: string; subject: string }[] {
    return [...this.#undecided].map(([key, accuser]) => ({
      accuser,
      subject: key.slice(accuser.length + 1),
    }));
  }

  /** Remember again accusations left undecided before a stop ({@link undecided}); untrusted. */
  restoreUndecided(kept: readonly unknown[]): void {
    for (const item of kept.slice(-MAX_UNDECIDED_STREAM_PROOFS)) {
      const { accuser, subject } = (item ?? {}) as { accuser?: unknown; subject?: unknown };
      if (typeof accuser !== "string" || !/^[0-9a-f]{64}$/.test(accuser)) continue;
      if (typeof subject !== "string" || subject.length > 256) continue;
      const key = `${accuser}/${subject}`;
      if (!this.#undecided.has(key)) this.#rememberUndecided(key, accuser);
    }
  }

  /** Whether proof `hash` is being checked. */
  checking(hash: string): boolean {
    return this.#checking.has(hash);
  }
}
