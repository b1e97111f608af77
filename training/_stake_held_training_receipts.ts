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
 * the others'); a receipt past a full hold is not held (logged). Held for a challenge window
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

/** Receipts held for their trainer's stake in all: a round's reports from fresh trainers. */
export const MAX_STAKE_HELD_TRAINING_RECEIPTS = 64;
/** Held receipts per trainer: its newest replaces its oldest (one receipt a round). */
export const MAX_STAKE_HELD_PER_TRAINER = 2;
/** Held receipts per relaying peer: an eighth, as the validator's other holds. */
export const MAX_STAKE_HELD_PER_ORIGIN = MAX_STAKE_HELD_TRAINING_RECEIPTS / 8;
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
}

/** Training receipts held until their trainer has stake here, oldest first. */
export class StakeHeldTrainingReceipts {
  /** Held receipts, oldest first, each with its trainer (hex) and id. */
  readonly #held: (StakeHeldTrainingReceipt & { trainer: string; id: string })[] = [];

  /** How many receipts are held. */
  get size(): number {
    return this.#held.length;
  }

  /**
   * Hold `held` until its trainer has stake here (the same receipt again: held once). Past
   * {@link MAX_STAKE_HELD_PER_TRAINER} its trainer's oldest goes; past a full hold, or its
   * relaying peer's share, it is not held.
   * @returns Whether it is held.
   */
  hold(held: StakeHeldTrainingReceipt): boolean {
    const trainer = toHex(held.body.receipt.trainer);
    const id = trainingReceiptId(held.body.receipt);
    if (this.#held.some((h) => h.id === id)) return true;
    const own = this.#held.filter((h) => h.trainer === trainer);
    if (own.length >= MAX_STAKE_HELD_PER_TRAINER) {
      this.#held.splice(this.#held.indexOf(own[0]), 1);
    } else if (
      this.#held.length >= MAX_STAKE_HELD_TRAINING_RECEIPTS ||
      this.#held.filter((h) => h.origin === held.origin).length >= MAX_STAKE_HELD_PER_ORIGIN
    ) {
      return false;
    }
    this.#held.push({ ...held, trainer, id });
    return true;
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
    return taken.map(({ body, origin, since }) => ({ body, origin, since }));
  }

  /** Forget the receipts held since before `before` (ms). */
  expire(before: number): void {
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (this.#held[i].since < before) this.#held.splice(i, 1);
    }
  }
}
