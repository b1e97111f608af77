/**
 * Peers' stream proofs held until a pledge they need comes in (`_stream_claims.ts`): the accused
 * worker's (without stake here a conviction cuts nothing) or the accuser's (without stake here a
 * refutation charges nothing). A pledge travels apart from the proof it backs, and is sent ahead
 * of it only while the connection's pledge budget allows (`PledgeSync.sendAhead`): a proof that
 * outran its pledge was refused for good, and the liar every other ledger cut kept its stake here
 * (review s69). Held, the proof goes through the intake again when the pledge is recorded, as a
 * fraud proof does (`_pledge_held_proofs.ts`).
 *
 * Only a proof worth a check then is held (its accuser's signature verified, about a stream not
 * settled here), by the key it waits for. It costs memory only — nothing is replayed until both
 * keys have stake here — and that memory is bounded per key and in all, the longest held pushed
 * out first: keys are free, so a flood can push an honest proof out before its pledge comes (it
 * is then refused, as before), but can never buy a forward pass. Kept across a stop with the
 * claims taken (the held evidence). Not part of the public API.
 *
 * @module
 */
import type { StreamProof } from "../protocols/stream_proof.ts";

/**
 * Proofs held in all. Each is at most a frame (the job, its input and the tokens, within
 * `MAX_NETWORK_JOB_BYTES`), so this bounds what a flood of free keys can make a ledger hold; an
 * honest network needs few (the pledges go ahead of the proof).
 */
export const MAX_PLEDGE_HELD_STREAM_PROOFS = 64;

/** Held proofs per key waited for: a ninth pushes out that key's longest held. */
export const MAX_PLEDGE_HELD_STREAM_PROOFS_PER_KEY = 8;

/** A proof waiting for a pledge, and who sent it (not passed back to that peer). */
export interface HeldStreamProof {
  proof: StreamProof;
  origin?: string;
}

/** Stream proofs held until the key each waits for pledges here, oldest first. */
export class StreamPledgeHold {
  /** Held proofs by hash, in arrival order, with the hex key each waits for. */
  readonly #held = new Map<string, HeldStreamProof & { key: string }>();

  /** Whether proof `hash` is held. */
  holds(hash: string): boolean {
    return this.#held.has(hash);
  }

  /** Hold `held` (hash `hash`) until `key` (hex) pledges here; the bounds push the oldest out. */
  hold(hash: string, key: string, held: HeldStreamProof): void {
    this.#held.set(hash, { ...held, key });
    const ofKey = [...this.#held].filter(([, h]) => h.key === key);
    if (ofKey.length > MAX_PLEDGE_HELD_STREAM_PROOFS_PER_KEY) this.#held.delete(ofKey[0][0]);
    while (this.#held.size > MAX_PLEDGE_HELD_STREAM_PROOFS) {
      this.#held.delete(this.#held.keys().next().value!);
    }
  }

  /** `key` (hex) pledged here: the proofs that waited for it, let go (the intake takes them). */
  take(key: string): HeldStreamProof[] {
    const taken: HeldStreamProof[] = [];
    for (const [hash, { key: waited, ...held }] of this.#held) {
      if (waited !== key) continue;
      this.#held.delete(hash);
      taken.push(held);
    }
    return taken;
  }

  /** Every proof held, oldest first (kept across a stop). */
  all(): HeldStreamProof[] {
    return [...this.#held.values()].map(({ key: _, ...held }) => held);
  }
}
