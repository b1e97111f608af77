/**
 * Peers' fraud proofs that came while the same accuser's accusation of the same receipt was
 * still in flight here (being checked, or held for the receipt): queued, and taken again once
 * that one settles (`_fraud_proofs.ts`). Review s76 left them refused (`repeated_accusation`), so
 * an accuser's confirmed proof that came while its refuted one of the receipt was being checked
 * was lost there, and the cheat was paid in that ledger and slashed in a ledger that heard the
 * two the other way round, or one after the other. Queued, each settles after the one before it
 * in every order: the accuser charged for the refuted one and rewarded for the confirmed one,
 * the worker slashed.
 *
 * Why a queue and not a second check at once: one accusation per accuser and receipt in flight
 * is what bounds a key's re-signed copies to checks it pays for one at a time (each settled one
 * charged before the next is weighed against its free stake, `_unbacked_checks.ts`). Why
 * bounded: a proof carries its receipt and job (up to about 448 KiB), and only the accuser's own
 * key signs its proofs — an honest validator signs one per receipt — so what a longer queue of
 * one accuser's would keep is its own re-signed copies. Memory only: a stop loses the queue,
 * where the proof in flight is kept (`_held_evidence.ts`); its sender's next copy is taken then.
 * Owned by the actor; read and written only inside its `receive`. Not part of the public API.
 *
 * @module
 */
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { FraudCheckResult } from "../proof/fraud_check.ts";

/**
 * Proofs queued behind one accuser's accusation of one receipt: the case to cover is a refuted
 * proof in flight and the accuser's confirmed one after it; four leave room for a re-signed copy
 * or two besides. Past it the accusation's oldest queued proof goes (the newest is its word now).
 */
export const MAX_QUEUED_PER_ACCUSATION = 4;
/**
 * Proofs queued in all: as many as the proofs held for their receipt (`MAX_HELD_FRAUD_PROOFS`,
 * `_validator_memory.ts`), which bounds their memory the same way. Past it the oldest proof of
 * the accuser queuing the most goes, so one key's copies push out its own first.
 */
export const MAX_QUEUED_ACCUSATIONS = 64;

/** A proof queued behind its accuser's accusation in flight. */
export interface QueuedAccusation {
  /** The proof (parsed, its signature verified). */
  proof: FraudProof;
  /** Its hash. */
  hash: string;
  /** The peer that sent it. */
  origin?: string;
  /** Settled when the proof is checked once taken again (or rejected if it is dropped). */
  waiting: PromiseWithResolvers<FraudCheckResult>;
}

/** The queued proofs (see the module doc). */
export class QueuedAccusations {
  /** By `accuser/receiptId` (hex accuser, the receipt it settles here), oldest first. */
  readonly #queues = new Map<string, QueuedAccusation[]>();
  /** Hashes queued. */
  readonly #hashes = new Set<string>();
  /** Queued per accuser (hex). */
  readonly #byAccuser = new Map<string, number>();

  /** How many proofs are queued. */
  get size(): number {
    return this.#hashes.size;
  }

  /** Whether the proof with this hash is queued. */
  holds(hash: string): boolean {
    return this.#hashes.has(hash);
  }

  /** Queue `item` behind `accuser`'s (hex) accusation of receipt `subject`. */
  queue(accuser: string, subject: string, item: QueuedAccusation): void {
    const key = `${accuser}/${subject}`;
    const queue = this.#queues.get(key) ?? [];
    this.#queues.set(key, queue);
    queue.push(item);
    this.#hashes.add(item.hash);
    this.#byAccuser.set(accuser, (this.#byAccuser.get(accuser) ?? 0) + 1);
    if (queue.length > MAX_QUEUED_PER_ACCUSATION) this.#drop(key);
    if (this.#hashes.size > MAX_QUEUED_ACCUSATIONS) {
      let most: string | undefined;
      for (const [a, n] of this.#byAccuser) {
        if (most === undefined || n > this.#byAccuser.get(most)!) most = a;
      }
      const oldest = [...this.#queues.keys()].find((k) => k.startsWith(`${most}/`));
      if (oldest !== undefined) this.#drop(oldest);
    }
  }

  /** The oldest proof queued behind `accuser`'s (hex) accusation of `subject`, forgotten here. */
  take(accuser: string, subject: string): QueuedAccusation | undefined {
    const key = `${accuser}/${subject}`;
    const item = this.#queues.get(key)?.[0];
    if (item !== undefined) this.#forget(key);
    return item;
  }

  /** The accusations (`[accuser, subject]`) that have a proof queued, oldest queue first. */
  accusations(): [string, string][] {
    return [...this.#queues.keys()].map((key) => {
      const slash = key.indexOf("/");
      return [key.slice(0, slash), key.slice(slash + 1)];
    });
  }

  /** Drop the oldest proof queued under `key`: its waiter learns it was dropped. */
  #drop(key: string): void {
    const item = this.#queues.get(key)?.[0];
    if (item === undefined) return;
    this.#forget(key);
    item.waiting.reject(new Error("fraud proof dropped from its accusation's queue"));
  }

  /** Forget the oldest proof queued under `key`. */
  #forget(key: string): void {
    const queue = this.#queues.get(key)!;
    const item = queue.shift()!;
    if (queue.length === 0) this.#queues.delete(key);
    this.#hashes.delete(item.hash);
    const accuser = key.slice(0, key.indexOf("/"));
    const n = (this.#byAccuser.get(accuser) ?? 1) - 1;
    if (n > 0) this.#byAccuser.set(accuser, n);
    else this.#byAccuser.delete(accuser);
  }
}
