/**
 * Peers' training receipts held by the TrainingValidator (`training_validator.ts`, through
 * `_receipt_credits.ts`) until their trainer's stake is recorded in this node's ledger. The
 * ledger refuses a receipt whose trainer cannot back its lock (`insufficient_stake`); a trainer's
 * pledge comes on its own connection and by gossip, so a receipt relayed by a coordinator can
 * outrun it. Taken as final, that refusal left the receipt unrecorded here for good: a fraud
 * proof about it was held for a receipt that never came, and the lazy trainer every ledger that
 * had its pledge first slashed kept its stake here (review s63,
 * `tests/training/review_s63_training_stake_order_test.ts`). The inference side holds such
 * receipts too (`actors/_validator_memory.ts`, `awaitStake`).
 *
 * Only a peer's receipt its trainer signed, from a trainer that never staked here (one whose
 * stake is spent or locked is refused for good, as the ledger says), and bounded: at most
 * {@link MAX_STAKE_HELD_TRAINING_RECEIPTS}, {@link MAX_STAKE_HELD_PER_TRAINER} a trainer (its
 * newest replaces its oldest: a trainer has one receipt a round) and an eighth of them per
 * relaying peer (a peer relaying receipts of made-up keys, which cost nothing, cannot shut out
 * the others'); a receipt past a full hold is not held (logged).
 *
 * **A receipt a held fraud proof names has places of its own.** A trainer's receipt terms are not
 * signed, so a lazy trainer can sign receipts for made-up rounds; relayed after its lazy one, they
 * pushed it out of its two places, its pledge let only them through, and the proof about the lazy
 * one (held for its receipt, `_receipt_held_training_proofs.ts`) waited for it for good: the
 * trainer kept here the stake every other ledger slashed (review s63,
 * `tests/training/review_s63_redteam_stake_hold_test.ts`). The receipt a proof held for its
 * receipt carries (`ReceiptCredits.proofHeld`) is held with its accuser: never pushed out by its
 * trainer's receipts nor shut out by a full hold of peers' ones, bounded as those proofs are
 * ({@link MAX_STAKE_HELD_PROVED}, {@link MAX_STAKE_HELD_PROVED_PER_ACCUSER}: an accuser's third
 * pushes out its own oldest, past them all the oldest goes). Held for a challenge window
 * ({@link STAKE_HOLD_MS}) at most. Memory only: a restart forgets them (as before this hold). Owned
 * by the validator, read and written only inside its `receive`.
 *
 * @example
 * ```ts ignore
 * const held = new StakeHeldTrainingReceipts();
 * held.hold({ body, origin, since: now });
 * for (const trainer of held.trainers()) if (staked(trainer)) retake(held.take(trainer));
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { TrainingReceiptBody } from "../protocols/training_messages.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import {
  MAX_RECEIPT_HELD_PER_ACCUSER,
  MAX_RECEIPT_HELD_TRAINING_PROOFS,
} from "./_receipt_held_training_proofs.ts";

/** Receipts held for their trainer's stake in all: a round's reports from fresh trainers. */
export const MAX_STAKE_HELD_TRAINING_RECEIPTS = 64;
/** Held receipts per trainer: its newest replaces its oldest (one receipt a round). */
export const MAX_STAKE_HELD_PER_TRAINER = 2;
/** Held receipts per relaying peer: an eighth, as the validator's other holds. */
export const MAX_STAKE_HELD_PER_ORIGIN = MAX_STAKE_HELD_TRAINING_RECEIPTS / 8;
/**
 * Receipts named by held fraud proofs, held in places of their own: as many as proofs are held for
 * their receipt (`_receipt_held_training_proofs.ts`).
 */
export const MAX_STAKE_HELD_PROVED = MAX_RECEIPT_HELD_TRAINING_PROOFS;
/** Of those, per accuser: as many as its proofs held for their receipt (its third: oldest goes). */
export const MAX_STAKE_HELD_PROVED_PER_ACCUSER = MAX_RECEIPT_HELD_PER_ACCUSER;
/**
 * How long a receipt is held, ms: a challenge window. A trainer whose pledge has not come by then
 * is not in the rounds its receipts are for.
 */
export const STAKE_HOLD_MS: number = DEFAULT_ECONOMICS.challengeWindowMs;

/** A peer's receipt held for its trainer's stake. */
export interface StakeHeldTrainingReceipt {
  /** The receipt with its round's terms, as gossiped. */
  body: TrainingReceiptBody;
  /** The relaying peer's hex key. */
  origin: string;
  /** When it was held (validator clock, ms). */
  since: number;
  /**
   * The accuser (hex) of the fraud proof held for this receipt that carried it: held in the
   * proofs' places (see the module doc). Absent: a peer's receipt from gossip.
   */
  accuser?: string;
}

/** A held receipt with its trainer (hex) and id. */
type HeldEntry = StakeHeldTrainingReceipt & { trainer: string; id: string };

/** Training receipts held until their trainer has stake here, oldest first. */
export class StakeHeldTrainingReceipts {
  /** Held receipts, oldest first, each with its trainer (hex) and id. */
  readonly #held: HeldEntry[] = [];

  /** How many receipts are held. */
  get size(): number {
    return this.#held.length;
  }

  /**
   * Hold `held` until its trainer has stake here (the same receipt again: held once; carried by a
   * proof, it moves to the proofs' places). A peer's receipt: past
   * {@link MAX_STAKE_HELD_PER_TRAINER} its trainer's oldest peer's receipt goes; past a full hold,
   * or its relaying peer's share, it is not held. One a proof carried (`accuser`): past
   * {@link MAX_STAKE_HELD_PROVED_PER_ACCUSER} its accuser's oldest goes, else past
   * {@link MAX_STAKE_HELD_PROVED} the oldest of them.
   * @returns Whether it is held.
   */
  hold(held: StakeHeldTrainingReceipt): boolean {
    const trainer = toHex(held.body.receipt.trainer);
    const id = trainingReceiptId(held.body.receipt);
    const same = this.#held.find((h) => h.id === id);
    if (same !== undefined && (same.accuser !== undefined || held.accuser === undefined)) {
      return true;
    }
    if (held.accuser !== undefined) {
      if (same !== undefined) this.#held.splice(this.#held.indexOf(same), 1);
      const proved = this.#held.filter((h) => h.accuser !== undefined);
      const own = proved.filter((h) => h.accuser === held.accuser);
      if (own.length >= MAX_STAKE_HELD_PROVED_PER_ACCUSER) this.#drop(own[0]);
      else if (proved.length >= MAX_STAKE_HELD_PROVED) this.#drop(proved[0]);
      this.#held.push({ ...held, since: same?.since ?? held.since, trainer, id });
      return true;
    }
    const peers = this.#held.filter((h) => h.accuser === undefined);
    const own = peers.filter((h) => h.trainer === trainer);
    if (own.length >= MAX_STAKE_HELD_PER_TRAINER) this.#drop(own[0]);
    else if (
      peers.length >= MAX_STAKE_HELD_TRAINING_RECEIPTS ||
      peers.filter((h) => h.origin === held.origin).length >= MAX_STAKE_HELD_PER_ORIGIN
    ) {
      return false;
    }
    this.#held.push({ ...held, trainer, id });
    return true;
  }

  /** Forget held receipt `held`. */
  #drop(held: HeldEntry): void {
    this.#held.splice(this.#held.indexOf(held), 1);
  }

  /** The trainers (raw keys) whose receipts are held, each once. */
  trainers(): Uint8Array[] {
    const seen = new Map<string, Uint8Array>();
    for (const h of this.#held) seen.set(h.trainer, h.body.receipt.trainer);
    return [...seen.values()];
  }

  /** The receipts held for `trainer` (hex), oldest first, no longer held. */
  take(trainer: string): StakeHeldTrainingReceipt[] {
    const taken = this.#held.filter((h) => h.trainer === trainer);
    for (const h of taken) this.#held.splice(this.#held.indexOf(h), 1);
    return taken.map(({ body, origin, since, accuser }) => ({ body, origin, since, accuser }));
  }

  /** Forget the receipts held since before `before` (ms). */
  expire(before: number): void {
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (this.#held[i].since < before) this.#held.splice(i, 1);
    }
  }
}
