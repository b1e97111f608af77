/**
 * Peers' training fraud proofs held by the TrainingValidator (`training_validator.ts`) until
 * their receipt is recorded in this node's ledger. A proof can outrun its receipt (a node that
 * learns the receipt only from the round's outcome, while auditing it); dropped, it never settled
 * here while every other ledger slashed, and the audit then credited the receipt. Held, it goes
 * through the intake again once the receipt is recorded.
 *
 * The validator holds only a proof its accuser signed, about a receipt its trainer signed, from
 * an accuser that pledged in this ledger (it asks the ledger; this hold keeps state only). A
 * training proof can be megabytes (an `opening_mismatch` carries the whole answer), hence few
 * ({@link MAX_RECEIPT_HELD_TRAINING_PROOFS}); an accuser's third pushes out its own oldest
 * ({@link MAX_RECEIPT_HELD_PER_ACCUSER}), so one key flooding proofs about receipts that never
 * come pushes out its own (with the space full, the oldest held goes: many staked keys can still
 * push out an honest one). The validator keeps what is held across a stop
 * (`_kept_held_training_proofs.ts`, `RECEIPT_HELD_TRAINING_PROOFS_DIR`): lost at a restart before
 * the receipt came, the proof never settled here. Owned by the validator, read and written only
 * inside its `receive`. The receipt-side twin of `_pledge_held_training_proofs.ts`.
 *
 * @example
 * ```ts ignore
 * const held = new ReceiptHeldTrainingProofs();
 * if (!held.has(hash)) held.hold({ receiptId, accuser, hash, body, origin, since });
 * for (const proof of held.release(receiptId)) takeUp(proof); // its receipt is recorded now
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import type { PledgeHeldTrainingProof } from "./_pledge_held_training_proofs.ts";

/** Proofs held for their receipt in all (see the module doc). */
export const MAX_RECEIPT_HELD_TRAINING_PROOFS = 16;
/** Held proofs per accuser: its third pushes out its own oldest (see the module doc). */
export const MAX_RECEIPT_HELD_PER_ACCUSER = 2;

/**
 * A peer's fraud proof held until its receipt is recorded here: the same record as one held for
 * its accuser's pledge (`_pledge_held_training_proofs.ts`), `since` kept across a stop with it.
 */
export type ReceiptHeldTrainingProof = PledgeHeldTrainingProof;

/** Training fraud proofs held until their receipt is recorded here, oldest first. */
export class ReceiptHeldTrainingProofs {
  /** Held proofs, oldest first. */
  readonly #held: ReceiptHeldTrainingProof[] = [];

  /** The held proofs, oldest first (as kept on disk). */
  all(): readonly ReceiptHeldTrainingProof[] {
    return this.#held;
  }

  /** Whether proof `hash` (hex) is held. */
  has(hash: string): boolean {
    return this.#held.some((h) => h.hash === hash);
  }

  /**
   * Hold `held` until its receipt is recorded. Past {@link MAX_RECEIPT_HELD_PER_ACCUSER} for its
   * accuser, that accuser's oldest is pushed out; otherwise, past
   * {@link MAX_RECEIPT_HELD_TRAINING_PROOFS} in all, the oldest held.
   */
  hold(held: ReceiptHeldTrainingProof): void {
    const own = this.#held.filter((h) => h.accuser === held.accuser);
    if (own.length >= MAX_RECEIPT_HELD_PER_ACCUSER) {
      this.#held.splice(this.#held.indexOf(own[0]), 1);
    } else if (this.#held.length >= MAX_RECEIPT_HELD_TRAINING_PROOFS) this.#held.shift();
    this.#held.push(held);
  }

  /** The proofs held for receipt `receiptId`, oldest first, forgotten here (it is recorded). */
  release(receiptId: string): ReceiptHeldTrainingProof[] {
    const released = this.#held.filter((h) => h.receiptId === receiptId);
    if (released.length === 0) return released;
    this.#held.splice(
      0,
      this.#held.length,
      ...this.#held.filter((h) => h.receiptId !== receiptId),
    );
    return released;
  }
}
