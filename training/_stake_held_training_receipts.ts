/**
 * Peers' training receipts held by the TrainingValidator (`training_validator.ts`, through
 * `_receipt_credits.ts`) until their trainer's stake is recorded in this node's ledger. The
 * ledger refuses a receipt whose trainer cannot back its lock (`insufficient_stake`); a trainer's
 * pledge comes on its own connection and by gossip, so a receipt relayed by a coordinator can
 * outrun it. Taken as final, that refusal left the receipt unrecorded here for good: a fraud
 * proof about it was held for a receipt that never came, and the lazy trainer every ledger that
 * had its pledge first slashed kept its stake here (review s63,
 * `tests/training/stake_held_receipts_test.ts`). The inference side holds such
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
 * `tests/training/stake_held_receipts_test.ts`). The receipt a proof held for its
 * receipt carries (`ReceiptCredits.proofHeld`) is held with its accuser: never pushed out by its
 * trainer's receipts nor shut out by a full hold of peers' ones, bounded as those proofs are
 * ({@link MAX_STAKE_HELD_PROVED}, {@link MAX_STAKE_HELD_PROVED_PER_ACCUSER}: an accuser's third
 * pushes out its own oldest, past them all the oldest goes).
 *
 * **So has a credit** (review s64, `tests/training/stake_held_receipts_test.ts`): a receipt
 * this node's coordinator or one of its audits credited (`credited`), refused before its trainer's
 * pledge: recorded credited once it comes, as where the pledge came first (it was final: the honest
 * trainer every other ledger paid went unpaid here). A credit is this node's own finding (an audit
 * re-ran the round; a coordinator's report passed its challenge), so it is neither pushed out by
 * peers' receipts nor proofs' ones, nor counted in a relaying peer's share: at most
 * {@link MAX_STAKE_HELD_CREDITS}, past them the oldest credit goes. The same receipt held again
 * keeps the strongest of its places (a credit, then a proof's, then a peer's) and when it was
 * first held.
 *
 * Held for a challenge window at most: the one the node's ledger runs with (the validator's
 * `economics`, default {@link DEFAULT_STAKE_HOLD_MS}). Kept across a restart by the validator
 * (`_kept_stake_held_training_receipts.ts`). Owned by the validator, read and written only inside
 * its `receive`.
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
/** Credits held, in places of their own: a round's reports from fresh trainers, as peers' ones. */
export const MAX_STAKE_HELD_CREDITS = MAX_STAKE_HELD_TRAINING_RECEIPTS;
/**
 * How long a receipt is held by default, ms: the default challenge window (the validator holds
 * them for its ledger's). A trainer whose pledge has not come by then is not in the rounds its
 * receipts are for.
 */
export const DEFAULT_STAKE_HOLD_MS: number = DEFAULT_ECONOMICS.challengeWindowMs;

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
  /**
   * Credited by this node (its coordinator, or an audit): recorded credited once its trainer
   * has staked, held in the credits' places (see the module doc).
   */
  credited?: true;
}

/** A held receipt with its trainer (hex) and id. */
type HeldEntry = StakeHeldTrainingReceipt & { trainer: string; id: string };

/** The places a held receipt can take, weakest first (the same receipt keeps the strongest). */
const PLACES = ["peer", "proved", "credit"] as const;

/** Which places `held` takes. */
function placeOf(held: StakeHeldTrainingReceipt): (typeof PLACES)[number] {
  if (held.credited) return "credit";
  return held.accuser === undefined ? "peer" : "proved";
}

/** Training receipts held until their trainer has stake here, oldest first. */
export class StakeHeldTrainingReceipts {
  /** Held receipts, oldest first, each with its trainer (hex) and id. */
  readonly #held: HeldEntry[] = [];

  /** How many receipts are held. */
  get size(): number {
    return this.#held.length;
  }

  /**
   * Hold `held` until its trainer has stake here (the same receipt again: held once, in the
   * strongest of its places, since it was first held). A peer's receipt: past
   * {@link MAX_STAKE_HELD_PER_TRAINER} its trainer's oldest peer's receipt goes; past a full hold,
   * or its relaying peer's share, it is not held. One a proof carried (`accuser`): past
   * {@link MAX_STAKE_HELD_PROVED_PER_ACCUSER} its accuser's oldest goes, else past
   * {@link MAX_STAKE_HELD_PROVED} the oldest of them. A credit: past
   * {@link MAX_STAKE_HELD_CREDITS} the oldest credit goes.
   * @returns Whether it is held.
   */
  hold(held: StakeHeldTrainingReceipt): boolean {
    const trainer = toHex(held.body.receipt.trainer);
    const id = trainingReceiptId(held.body.receipt);
    const same = this.#held.find((h) => h.id === id);
    const place = placeOf(held);
    if (same !== undefined) {
      if (PLACES.indexOf(placeOf(same)) >= PLACES.indexOf(place)) return true;
      this.#drop(same);
    }
    const entry = { ...held, since: same?.since ?? held.since, trainer, id };
    const others = this.#held.filter((h) => placeOf(h) === place);
    if (place === "credit") {
      if (others.length >= MAX_STAKE_HELD_CREDITS) this.#drop(others[0]);
    } else if (place === "proved") {
      const own = others.filter((h) => h.accuser === held.accuser);
      if (own.length >= MAX_STAKE_HELD_PROVED_PER_ACCUSER) this.#drop(own[0]);
      else if (others.length >= MAX_STAKE_HELD_PROVED) this.#drop(others[0]);
    } else {
      const own = others.filter((h) => h.trainer === trainer);
      if (own.length >= MAX_STAKE_HELD_PER_TRAINER) this.#drop(own[0]);
      else if (
        others.length >= MAX_STAKE_HELD_TRAINING_RECEIPTS ||
        others.filter((h) => h.origin === held.origin).length >= MAX_STAKE_HELD_PER_ORIGIN
      ) {
        return false;
      }
    }
    this.#held.push(entry);
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
    return taken.map(asHeld);
  }

  /** Every receipt held, oldest first (what the validator keeps on disk). */
  all(): StakeHeldTrainingReceipt[] {
    return this.#held.map(asHeld);
  }

  /** Forget the receipts held since before `before` (ms). */
  expire(before: number): void {
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (this.#held[i].since < before) this.#held.splice(i, 1);
    }
  }
}

/** `entry` as it was held, without what the hold adds. */
function asHeld({ body, origin, since, accuser, credited }: HeldEntry): StakeHeldTrainingReceipt {
  return {
    body,
    origin,
    since,
    ...(accuser === undefined ? {} : { accuser }),
    ...(credited ? { credited } : {}),
  };
}
