/**
 * Peers' stream proofs held until a pledge they need comes in (`_stream_claims.ts`): the accused
 * worker's (without stake here a conviction cuts nothing) or the accuser's (without stake here a
 * refutation charges nothing). A pledge travels apart from the proof it backs, and is sent ahead
 * of it only while the connection's pledge budget allows (`PledgeSync.sendAhead`): a proof that
 * outran its pledge was refused for good, and the liar every other ledger cut kept its stake here
 * (review s69). Held, the proof goes through the intake again when the pledge is recorded, as a
 * fraud proof does (`_pledge_held_proofs.ts`).
 *
 * Only a proof worth a check then is held: its accuser's signature and the worker's over its
 * stream verified, about a stream not settled here, one per accuser and stream (the first: one
 * accusation each). It costs memory only — nothing is replayed until both keys have stake here —
 * and that memory is bounded per accuser and in all (review s69, third round: bounded per key
 * waited for, eight junk proofs from free keys naming the liar pushed the router's true proof
 * out); past the bound in all, the longest held of an accuser without stake here goes first, then
 * the longest held (fourth round: 64 junk proofs did). Staked keys are not free, so pushing a
 * staked router's proof out takes 64 pledged accusers; a flood can never buy a forward pass. Kept across a stop with the claims taken (the held evidence). Not part of the public API.
 *
 * @module
 */
import type { StreamProof } from "../protocols/stream_proof.ts";

/**
 * Proofs held in all. Each is about a frame (its job and input within `MAX_NETWORK_JOB_BYTES`,
 * and its token ids), so this bounds what a flood of free keys can make a ledger hold; an honest
 * network needs few (the pledges go ahead of the proof).
 */
export const MAX_PLEDGE_HELD_STREAM_PROOFS = 64;

/** Held proofs per accuser: its ninth pushes out its own longest held. */
export const MAX_PLEDGE_HELD_STREAM_PROOFS_PER_ACCUSER = 8;

/** A proof waiting for a pledge, and who sent it (not passed back to that peer). */
export interface HeldStreamProof {
  proof: StreamProof;
  origin?: string;
}

/**
 * What a held proof is kept with: the key it waits for, its accuser, the stream it accuses, and
 * whether its accuser had stake here when it was held.
 */
interface Held extends HeldStreamProof {
  key: string;
  accuser: string;
  subject: string;
  staked: boolean;
}

/** Stream proofs held until the key each waits for pledges here, oldest first. */
export class StreamPledgeHold {
  /** Held proofs by hash, in arrival order. */
  readonly #held = new Map<string, Held>();

  /** Whether proof `hash` is held. */
  holds(hash: string): boolean {
    return this.#held.has(hash);
  }

  /**
   * Hold `held` (hash `hash`) by `accuser` (hex) about stream `subject` until `key` (hex) pledges
   * here; the bounds push the oldest out. False, holding nothing: the accuser has a proof of that
   * stream held already (one accusation each).
   */
  hold(
    hash: string,
    key: string,
    accuser: string,
    subject: string,
    held: HeldStreamProof & { staked: boolean },
  ): boolean {
    const mine = [...this.#held].filter(([, h]) => h.accuser === accuser);
    if (mine.some(([, h]) => h.subject === subject)) return false;
    this.#held.set(hash, { ...held, key, accuser, subject });
    if (mine.length >= MAX_PLEDGE_HELD_STREAM_PROOFS_PER_ACCUSER) this.#held.delete(mine[0][0]);
    // Past the bound, a proof whose accuser had no stake here goes first: junk from free keys,
    // not a staked router's proof waiting for the worker's pledge (review s69, fourth round: 64
    // liar-signed junk proofs pushed the router's out).
    while (this.#held.size > MAX_PLEDGE_HELD_STREAM_PROOFS) {
      const unstaked = [...this.#held].find(([, h]) => !h.staked);
      this.#held.delete(unstaked?.[0] ?? this.#held.keys().next().value!);
    }
    return true;
  }

  /** `key` (hex) pledged here: the proofs that waited for it, let go (the intake takes them). */
  take(key: string): HeldStreamProof[] {
    const taken: HeldStreamProof[] = [];
    for (const [hash, held] of this.#held) {
      if (held.key !== key) continue;
      this.#held.delete(hash);
      taken.push({ proof: held.proof, ...(held.origin ? { origin: held.origin } : {}) });
    }
    return taken;
  }

  /** Every proof held, oldest first (kept across a stop). */
  all(): HeldStreamProof[] {
    return [...this.#held.values()].map((held) => ({
      proof: held.proof,
      ...(held.origin ? { origin: held.origin } : {}),
    }));
  }
}
