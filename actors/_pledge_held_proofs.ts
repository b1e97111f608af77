/**
 * Peers' fraud proofs held by the ValidatorActor (`validator_actor.ts`) until their accuser's
 * stake pledge comes in. A proof is checked only on the word of stake here (a refuted one costs
 * its accuser the false-accusation penalty), and a pledge travels apart from the proofs it backs:
 * one that reaches this ledger after its accuser's proof used to leave the proof skipped for good,
 * so a cheat the other ledgers slashed was paid here. Held, the proof goes through the intake
 * again when the pledge is recorded, and settles as it would have in the other order — for the
 * worker and for the accuser alike.
 *
 * Only what would be worth a check then is held: the proof's signature verified (and its
 * receipt's, for a receipt not recorded here yet), about a receipt not settled past its window
 * here, one per accuser and receipt (the first: one accusation each). It costs this ledger
 * memory only — nothing is checked until the accuser has stake here — and that memory is
 * bounded per accuser, per receipt and in all, the longest held pushed out first. Keys are free, so a
 * flood of them can push an honest accuser's proof out before its pledge comes: then it is
 * skipped, as every such proof was before; what a flood can never do is buy a forward pass.
 * Kept across a stop with the rest of the held evidence (`_held_evidence.ts`), each with when it
 * came.
 *
 * Each is timed from its own arrival, not its pledge's, when the pledge comes within
 * {@link MAX_PLEDGE_WAIT_MS} (review s78: taken as of the pledge, a confirmed proof that came
 * inside its receipt's window and whose pledge came after it was refused as late and the cheat
 * paid here, slashed in every ledger that had the pledge first); meanwhile its receipt is held
 * out of the finalize tick (`FraudProofs.checkedReceipts`). Owned by the actor, read and written
 * only inside its `receive`. Not part of the public API.
 *
 * @module
 */
import type { FraudProof } from "../protocols/fraud_proof.ts";
import { toHex } from "../protocols/hash.ts";
import { receiptId } from "../protocols/receipt.ts";

/**
 * Proofs held in all. Each is at most a frame (1 MiB; a real one is 1.5–3.3 kB), so this bounds
 * the memory a flood of free keys can take (as the 64 held for their receipt do,
 * `_validator_memory.ts`); an honest network needs few (a node sends a peer the accuser's pledge
 * ahead of the proof, `PledgeSync.sendAhead`: a proof outruns its pledge only when that room is
 * spent).
 */
export const MAX_PLEDGE_HELD_PROOFS = 64;
/**
 * Held proofs per accuser: its ninth pushes out its own longest held, which may be its valid one
 * (nothing here can tell before a check). Eight, not the four held per accuser for a receipt: an
 * accuser whose pledge is late has every proof it sent meanwhile waiting, not only those whose
 * receipt is late too.
 */
export const MAX_PLEDGE_HELD_PER_ACCUSER = 8;
/**
 * Held proofs per receipt: a fifth pushes out that receipt's longest held, so a flood about one
 * receipt takes four places, not the whole hold, and an accuser arriving later still gets in.
 */
export const MAX_PLEDGE_HELD_PER_RECEIPT = 4;
/**
 * Longest a held proof waits for its accuser's pledge and is still timed from its own arrival
 * (ms), its receipt held out of the finalize tick meanwhile: a minute, the time a connection
 * remembers carrying a pledge (`CARRIED_PLEDGE_TTL_MS`, `network/pledge_sync.ts`). An honest node
 * sends the pledge ahead of the proof on the same connection, so it lags the proof only when the
 * pledge's budget made it wait or a restart lost it; past the minute the author's next evidence
 * brings it again. Bounded because the hold is free: a key with no stake here could otherwise keep
 * an honest receipt unpaid for as long as it likes (one minute at most past its window now, at
 * most {@link MAX_PLEDGE_HELD_PER_RECEIPT} keys a receipt, all of them one minute). A pledge later
 * than that: the proof is timed from the pledge, as every held proof was before.
 */
export const MAX_PLEDGE_WAIT_MS = 60_000;

/**
 * Whether a held proof that came at `arrivedAt` is still timed from then at `now` (within
 * {@link MAX_PLEDGE_WAIT_MS}): one place for the hold of its receipt and the time it is taken as of.
 */
export function timedFromArrival(arrivedAt: number | undefined, now: number): arrivedAt is number {
  return arrivedAt !== undefined && now - arrivedAt <= MAX_PLEDGE_WAIT_MS;
}

/** A proof waiting for its accuser's pledge, and who sent it (not passed back to that peer). */
export interface PledgeHeldProof {
  /** The proof (parsed, its signature verified). */
  proof: FraudProof;
  /** The proof's hash (`fraudProofHash`). */
  hash: string;
  /** Who sent it. */
  origin?: string;
  /**
   * When it came (ledger clock, unix ms; for one kept across a stop, when it first came): taken
   * as of then when its pledge comes within {@link MAX_PLEDGE_WAIT_MS}. Absent: taken as of the
   * pledge, and its receipt not held for it.
   */
  arrivedAt?: number;
}

/** Fraud proofs held until their accuser pledges here, oldest first. */
export class PledgeHeldProofs {
  /** Held proofs by hash, in arrival order (a Map keeps insertion order). */
  readonly #held = new Map<string, PledgeHeldProof>();

  /** How many proofs are held. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether the proof with this hash is held. */
  holds(hash: string): boolean {
    return this.#held.has(hash);
  }

  /** Whether `accuser` (hex) already has a proof about receipt `id` held. */
  accuses(accuser: string, id: string): boolean {
    for (const held of this.#held.values()) {
      if (toHex(held.proof.validator) === accuser && receiptId(held.proof.receipt) === id) {
        return true;
      }
    }
    return false;
  }

  /**
   * Hold `held` until its accuser pledges. Past {@link MAX_PLEDGE_HELD_PER_ACCUSER} for its
   * accuser, or {@link MAX_PLEDGE_HELD_PER_RECEIPT} for its receipt, the longest held of those is
   * pushed out; past {@link MAX_PLEDGE_HELD_PROOFS} in all, the longest held. A copy (the same
   * hash), or a second accusation of one receipt by one accuser, is not held (false).
   */
  hold(held: PledgeHeldProof): boolean {
    const accuser = toHex(held.proof.validator);
    const id = receiptId(held.proof.receipt);
    if (this.#held.has(held.hash) || this.accuses(accuser, id)) return false;
    const ofAccuser = [...this.#held.values()].filter((h) => toHex(h.proof.validator) === accuser);
    if (ofAccuser.length >= MAX_PLEDGE_HELD_PER_ACCUSER) this.#held.delete(ofAccuser[0].hash);
    const ofReceipt = [...this.#held.values()].filter((h) => receiptId(h.proof.receipt) === id);
    if (ofReceipt.length >= MAX_PLEDGE_HELD_PER_RECEIPT) this.#held.delete(ofReceipt[0].hash);
    this.#held.set(held.hash, held);
    while (this.#held.size > MAX_PLEDGE_HELD_PROOFS) {
      this.#held.delete(this.#held.keys().next().value!);
    }
    return true;
  }

  /** The proofs `accuser` (hex) signed, in arrival order, forgotten here (its pledge came). */
  take(accuser: string): PledgeHeldProof[] {
    const taken = [...this.#held.values()].filter((h) => toHex(h.proof.validator) === accuser);
    for (const held of taken) this.#held.delete(held.hash);
    return taken;
  }

  /**
   * Every held proof, oldest first, with its sender and when it came (for keeping across a stop:
   * taken again at the start as of then, and held again with it).
   */
  all(): { proof: FraudProof; origin?: string; takenAt?: number }[] {
    return [...this.#held.values()].map(({ proof, origin, arrivedAt }) => ({
      proof,
      origin,
      takenAt: arrivedAt,
    }));
  }

  /**
   * The proofs held at `now` for no longer than {@link MAX_PLEDGE_WAIT_MS}, with when each came:
   * their receipts are not paid yet, so a pledge that comes within it still finds them open.
   */
  waiting(now: number): { proof: FraudProof; arrivedAt: number }[] {
    return [...this.#held.values()].flatMap(({ proof, arrivedAt }) =>
      timedFromArrival(arrivedAt, now) ? [{ proof, arrivedAt }] : []
    );
  }
}
