/**
 * Fraud-proof checks the ValidatorActor (`validator_actor.ts`) runs although the accuser's stake
 * here does not back them. A peer's proof is normally checked only while its accuser's stake
 * covers the false-accusation penalty of it and of its other accusations in flight. That bound,
 * alone, made a worker's conviction depend on arrival order: an accuser whose stake an earlier
 * refuted proof had spent (or that had other proofs in flight) had its valid proof skipped in one
 * ledger and settled in another, where it came first — the cheat paid in one and slashed in the
 * other. A confirmed proof convicts the worker whoever signed it; the stake only pays for a false
 * one.
 *
 * So a proof whose accuser has pledged here but whose free stake falls short is still checked
 * while its receipt is recorded here and inside its window (it could settle there) — the same
 * receipts a backed proof is checked for, so an accuser's refuted proofs cost it the same in
 * every order too — within a budget that no number of keys enlarges:
 *
 * - **Per receipt**: at most {@link MAX_UNBACKED_CHECKS_PER_RECEIPT}, ever (while it is
 *   remembered: {@link MAX_REMEMBERED_RECEIPTS}, least recently checked forgotten first, and
 *   until its window closes, after which no proof is checked for it). The count is kept across
 *   a restart with the held evidence (`_held_evidence.ts`: at each finalize tick and at the
 *   stop); it used to be memory only, so each restart granted every receipt that many again.
 * - **In flight**: at most {@link MAX_UNBACKED_CHECKS_IN_FLIGHT} at once, over every receipt,
 *   and one per accuser and receipt (a re-signed copy is not checked beside the first; once that
 *   settles, the next is checked within the budget per receipt: a refuted proof does not block
 *   its accuser's later ones, `_fraud_proofs.ts`).
 *
 * Who pays: a refuted one costs its accuser what stake it has left here, up to the penalty (the
 * ledger takes no stake below zero), and this node the forward pass up to the cited position; a
 * confirmed one slashes the worker and rewards its accuser, as any proof does. An accuser that
 * never pledged here gets none: its proofs wait for its pledge (`_pledge_held_proofs.ts`), so a
 * free key costs this node memory, never a forward pass. Owned by the actor, read and written
 * only inside its `receive`. Not part of the public API.
 *
 * @module
 */

/**
 * Unbacked checks per receipt. One is what an honest accuser short of stake needs to convict a
 * cheat; the second leaves room for it when the first went to a false proof (refuted, it convicts
 * nobody), and each accuser of a receipt in the ledger-order test world (three) is checked in
 * every order. Spent by false proofs of pledged-but-spent keys, they cost this node at most that
 * many partial forward passes per receipt.
 */
export const MAX_UNBACKED_CHECKS_PER_RECEIPT = 3;
/**
 * Unbacked checks queued or running at once. Honest traffic has one or two; the cap keeps a flood
 * of proofs about many receipts from queueing without bound (each holds a proof of up to a
 * frame). Past it the proof is skipped, as every short-staked one was before.
 */
export const MAX_UNBACKED_CHECKS_IN_FLIGHT = 16;
/** Receipts whose spent unbacked checks are remembered (least recently checked forgotten first). */
const MAX_REMEMBERED_RECEIPTS = 4096;

/** The unbacked checks one receipt has spent, as kept across a restart. */
export interface SpentUnbacked {
  /** The receipt id. */
  receiptId: string;
  /** Unbacked checks spent on it. */
  checks: number;
  /** The end of its challenge window (ledger clock, ms): forgotten after it. */
  until: number;
}

/** The unbacked checks spent per receipt, and those in flight. */
export class UnbackedChecks {
  /** Unbacked checks spent per receipt id, least recently checked first. */
  readonly #spent = new Map<string, { checks: number; until: number }>();
  /** In flight, by proof hash: `accuser/receiptId`. */
  readonly #inFlight = new Map<string, string>();

  /** Unbacked checks queued or running. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Whether `accuser` (hex) may have an unbacked check of receipt `id` now. */
  available(id: string, accuser: string): boolean {
    if (this.#inFlight.size >= MAX_UNBACKED_CHECKS_IN_FLIGHT) return false;
    if ((this.#spent.get(id)?.checks ?? 0) >= MAX_UNBACKED_CHECKS_PER_RECEIPT) return false;
    for (const pair of this.#inFlight.values()) if (pair === `${accuser}/${id}`) return false;
    return true;
  }

  /**
   * An unbacked check of receipt `id` by `accuser` (hex), proof `hash`, is queued; `until`: the
   * end of the receipt's window (ledger clock, ms).
   */
  take(id: string, accuser: string, hash: string, until: number): void {
    this.#spend(id, (this.#spent.get(id)?.checks ?? 0) + 1, until);
    this.#inFlight.set(hash, `${accuser}/${id}`);
  }

  /**
   * The checks spent per receipt whose window is still open at `now` (ledger clock, ms), least
   * recently checked first, for keeping across a stop; those past it are forgotten.
   */
  spent(now: number): SpentUnbacked[] {
    const kept: SpentUnbacked[] = [];
    for (const [receiptId, { checks, until }] of this.#spent) {
      if (until < now) this.#spent.delete(receiptId);
      else kept.push({ receiptId, checks, until });
    }
    return kept;
  }

  /**
   * As {@link spent}, less the checks in flight whose proof is kept beside the counts (`kept`, by
   * proof hash: the ValidatorActor's held evidence keeps a bounded number of the proofs in flight,
   * `_held_evidence.ts`). A kept proof spends its check again when it is taken up after the stop:
   * counted too, the check would be spent twice, and the proof could find its receipt's budget
   * gone. A check whose proof is not kept stays counted: forgotten with its proof, the restart
   * would grant its receipt that check again.
   */
  spentSettled(now: number, kept: ReadonlySet<string>): SpentUnbacked[] {
    const inFlight = new Map<string, number>();
    for (const [hash, pair] of this.#inFlight) {
      if (!kept.has(hash)) continue;
      const id = pair.slice(pair.indexOf("/") + 1);
      inFlight.set(id, (inFlight.get(id) ?? 0) + 1);
    }
    return this.spent(now).flatMap((entry) => {
      const checks = entry.checks - (inFlight.get(entry.receiptId) ?? 0);
      return checks > 0 ? [{ ...entry, checks }] : [];
    });
  }

  /**
   * Take back what {@link spent} kept before a stop (untrusted when read: entries that are not
   * such a count are skipped; a count is never lowered).
   */
  restore(kept: readonly unknown[]): void {
    for (const value of kept) {
      const entry = value as Partial<SpentUnbacked> | null;
      const { receiptId, checks, until } = entry ?? {};
      if (typeof receiptId !== "string" || !Number.isInteger(checks) || checks! < 1) continue;
      if (typeof until !== "number" || !Number.isFinite(until)) continue;
      const now = this.#spent.get(receiptId)?.checks ?? 0;
      this.#spend(
        receiptId,
        Math.min(MAX_UNBACKED_CHECKS_PER_RECEIPT, Math.max(now, checks!)),
        until,
      );
    }
  }

  #spend(id: string, checks: number, until: number): void {
    this.#spent.delete(id); // re-inserted last: the receipt least recently checked goes first
    this.#spent.set(id, { checks, until });
    while (this.#spent.size > MAX_REMEMBERED_RECEIPTS) {
      this.#spent.delete(this.#spent.keys().next().value!);
    }
  }

  /** The check of proof `hash` ended (settled, or failed): no longer in flight. */
  done(hash: string): void {
    this.#inFlight.delete(hash);
  }
}
