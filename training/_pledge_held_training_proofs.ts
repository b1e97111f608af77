/**
 * Peers' training fraud proofs held by the TrainingValidator (`training_validator.ts`) until
 * their accuser's stake pledge is recorded in this node's ledger. A peer's proof is re-run (a
 * training step) only on the word of stake here, and a pledge travels apart from the proofs it
 * backs: one that reached this ledger after its accuser's proof used to leave the proof skipped
 * for good (`unstaked_accuser`), so a lazy trainer every other ledger slashed kept its stake here
 * and had its receipt finalized. Held, the proof goes through the intake again once the accuser
 * has stake here, and settles as it would have in the other order — for the trainer and for the
 * accuser alike. The training side of the ValidatorActor's `_pledge_held_proofs.ts`.
 *
 * The ledger belongs to the ValidatorActor, which does not tell this actor of pledges: the
 * holder asks it whether the held proofs' accusers have staked ({@link PLEDGE_RECHECK_MS}, only
 * while something is held). Only a proof worth a re-run then is held: its signature and its
 * receipt's verified, from a key with no pledge here at all (one from a key that pledged and
 * spent its stake is checked unbacked, in either order), one per accuser and receipt. It costs
 * this node memory and one ledger question per held accuser and recheck, never a re-run, and
 * that memory is bounded per accuser, per receipt and in all, the longest held pushed out first,
 * and for at most the challenge window the ledger runs with (the validator's `economics`; until
 * review s64 the default window whatever the ledger's). Keys are free, so a flood of them can push
 * an honest proof out before its pledge comes: it is then skipped, as every such proof was before. The
 * actor keeps what is held across a stop (`_kept_held_training_proofs.ts`, when it has a
 * ledger directory). Owned by the actor, read and written only inside its `receive`. Not part of
 * the public API.
 *
 * @module
 */
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";

/**
 * Proofs held in all. A training proof can be megabytes (an `opening_mismatch` carries the
 * trainer's whole answer), so few, as for those held for their receipt; an honest network needs
 * few (a node sends a peer the accuser's pledge ahead of the proof, `PledgeSync.sendAhead`: a
 * proof outruns its pledge only when that room is spent).
 */
export const MAX_PLEDGE_HELD_TRAINING_PROOFS = 16;
/**
 * Held proofs per accuser: its third pushes out its own longest held. An honest validator
 * challenges a fraction of a round's receipts and convicts fewer; two is what one round's late
 * pledge leaves waiting.
 */
export const MAX_PLEDGE_HELD_PER_ACCUSER = 2;
/**
 * Held proofs per receipt: a fifth pushes out that receipt's longest held, so a flood of keys
 * about one receipt takes four places, not the whole hold.
 */
export const MAX_PLEDGE_HELD_PER_RECEIPT = 4;
/**
 * How often the ledger is asked whether the held proofs' accusers have staked, ms. Pledges come
 * on connect and by gossip; a second's lag is nothing against a receipt's window (ten minutes),
 * and the questions are in-process, one per held accuser.
 */
export const PLEDGE_RECHECK_MS = 1_000;

/** A proof waiting for its accuser's pledge. */
export interface PledgeHeldTrainingProof {
  /** Id of the receipt it accuses. */
  receiptId: string;
  /** Hex key of its accuser. */
  accuser: string;
  /** Hex hash of the proof. */
  hash: string;
  /** The proof as it came, with its architecture and start file. */
  body: TrainingFraudProofBody;
  /** The peer it came from (not passed back to it). */
  origin: string;
  /** When it was held, ms. */
  since: number;
}

/** Training fraud proofs held until their accuser pledges here, oldest first. */
export class PledgeHeldTrainingProofs {
  /** Held proofs by hash, in arrival order (a Map keeps insertion order). */
  readonly #held = new Map<string, PledgeHeldTrainingProof>();

  /** How many proofs are held. */
  get size(): number {
    return this.#held.size;
  }

  /** The held proofs, longest held first. */
  all(): PledgeHeldTrainingProof[] {
    return [...this.#held.values()];
  }

  /** The keys of the accusers with a proof held, each once, longest held first. */
  accusers(): Uint8Array[] {
    const keys = new Map<string, Uint8Array>();
    for (const held of this.#held.values()) {
      if (!keys.has(held.accuser)) keys.set(held.accuser, held.body.proof.validator);
    }
    return [...keys.values()];
  }

  /**
   * Hold `held` until its accuser pledges. Past {@link MAX_PLEDGE_HELD_PER_ACCUSER} for its
   * accuser, or {@link MAX_PLEDGE_HELD_PER_RECEIPT} for its receipt, the longest held of those
   * is pushed out; past {@link MAX_PLEDGE_HELD_TRAINING_PROOFS} in all, the longest held. A copy
   * (the same hash), or a second accusation of one receipt by one accuser, is not held (false).
   */
  hold(held: PledgeHeldTrainingProof): boolean {
    const all = [...this.#held.values()];
    const again = (h: PledgeHeldTrainingProof) =>
      h.hash === held.hash || (h.accuser === held.accuser && h.receiptId === held.receiptId);
    if (all.some(again)) return false;
    const ofAccuser = all.filter((h) => h.accuser === held.accuser);
    if (ofAccuser.length >= MAX_PLEDGE_HELD_PER_ACCUSER) this.#held.delete(ofAccuser[0].hash);
    const ofReceipt = all.filter((h) => h.receiptId === held.receiptId);
    if (ofReceipt.length >= MAX_PLEDGE_HELD_PER_RECEIPT) this.#held.delete(ofReceipt[0].hash);
    this.#held.set(held.hash, held);
    while (this.#held.size > MAX_PLEDGE_HELD_TRAINING_PROOFS) {
      this.#held.delete(this.#held.keys().next().value!);
    }
    return true;
  }

  /** The proofs `accuser` (hex) signed, in arrival order, forgotten here (it staked). */
  take(accuser: string): PledgeHeldTrainingProof[] {
    const taken = [...this.#held.values()].filter((h) => h.accuser === accuser);
    for (const held of taken) this.#held.delete(held.hash);
    return taken;
  }

  /**
   * Forget the proofs held since before `before`, ms: a challenge window ago (the ledger's). Past
   * it, a proof's receipt (recorded by the time the proof came, or later) is settled or final
   * there, and no longer takes a proof.
   */
  expire(before: number): void {
    for (const held of [...this.#held.values()]) {
      if (held.since < before) this.#held.delete(held.hash);
    }
  }
}
