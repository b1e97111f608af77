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
 * one accuser's would keep is its own re-signed copies. Also a proof whose accuser's first proof
 * of the receipt is held for the accuser's pledge (`_pledge_held_proofs.ts`) waits here, and is
 * taken in order once the pledge came and the first was taken (review s77 F3).
 *
 * Each keeps when it came (review s77 F4: taken again with the time of the retake, a proof that
 * came inside its receipt's window behind one checked past it was refused as too late), and the
 * queue is kept across a stop after the proofs in flight (`_held_evidence.ts`), so each queues
 * behind its kept predecessor again at the start (review s77 F5: lost at a stop, the confirmed
 * proof queued behind a refuted one was gone and the cheat paid). Owned by the actor; read and
 * written only inside its `receive`. Not part of the public API.
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
 * `_validator_memory.ts`), which bounds their memory the same way. Past it one proof goes, of
 * the least backed class: a proof whose accuser's free stake did not cover it when it was queued
 * before a covered one, then one about a receipt not recorded here when it was queued before one
 * about a recorded receipt; from the accuser with the least free stake per proof it has queued in
 * that class (one key's copies push out its own first), its oldest; among accusers as low, the
 * one queuing the most there (as low with no stake at all), then the one that queued last — the
 * newcomer itself when it is among them. Never one accuser's only
 * queued proof for another's of its class and stake (review s77 F2: at a tie the first accuser in
 * order went, so 64 keys pledging 1 unit each, one queued proof each, pushed out the honest
 * accuser's queued confirmed proof and the cheat was paid).
 *
 * Why the receipt and the stake (review s78): with the newcomer going at a tie, 64 keys each
 * pledging enough to cover their proofs, queued first, still pushed out the honest accuser's
 * covered confirmed proof, and the cheat was paid here. Each had queued its proof behind one held
 * for a receipt that is never recorded: no check, nothing ever charged, so the flood cost the
 * keys nothing. Ranked below a proof about a recorded receipt, such a flood is what goes; to
 * stay, a flooding key needs an accusation of a recorded receipt in flight — a check, refuted and
 * charged the false-accusation penalty, burned — and more free stake per queued proof than the
 * honest accuser. So a flood that keeps one ledger's proof out burns at least
 * 64 × `falseAccusationPenalty` (6,400 by default) for what the cheat keeps in that one ledger
 * alone (its lock, `slashMultiplier ×` its pay; every ledger that heard the proof unqueued slashes
 * it). Not a bound for every cheat: one whose lock is larger still gains in that ledger, and keys
 * whose accusations in flight are true (confirmed) lose nothing for them.
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
  /**
   * When it came (ledger clock, unix ms; for one kept across a stop, when it first came): taken
   * again as of then, so one that came inside its receipt's window still settles after it.
   */
  arrivedAt: number;
  /**
   * Whether its accuser's free stake covered it when it was queued (a penalty for it, its
   * accusations in flight and its proofs queued before it): an uncovered one goes first at the
   * bound ({@link MAX_QUEUED_ACCUSATIONS}).
   */
  backed: boolean;
  /**
   * Whether the receipt it settles was recorded here when it was queued (absent: as recorded):
   * one about a receipt not recorded goes before one about a recorded receipt at the bound
   * ({@link MAX_QUEUED_ACCUSATIONS}).
   */
  known?: boolean;
  /** Settled when the proof is checked once taken again (or rejected if it is dropped). */
  waiting: PromiseWithResolvers<FraudCheckResult>;
}

/** How the queue weighs its accusers at the bound. */
export interface QueuedAccusationsOptions {
  /**
   * An accuser's (hex) free stake here now: at the bound, the accuser with the least of it per
   * proof it has queued in the class that goes gives one (see {@link MAX_QUEUED_ACCUSATIONS}).
   * Default: the same for every accuser (the accuser queuing the most gives one).
   */
  freeStake?: (accuser: string) => number;
}

/** The queued proofs (see the module doc). */
export class QueuedAccusations {
  readonly #freeStake: (accuser: string) => number;
  /** By `accuser/receiptId` (hex accuser, the receipt it settles here), oldest first. */
  readonly #queues = new Map<string, QueuedAccusation[]>();
  /** Hashes queued. */
  readonly #hashes = new Set<string>();
  /** Queued per accuser (hex). */
  readonly #byAccuser = new Map<string, number>();
  /** Each queued proof's place in the order queued (across accusations). */
  readonly #order = new Map<QueuedAccusation, number>();
  /** The next place in {@link #order}. */
  #next = 0;

  /**
   * Create an empty queue.
   * @param options How the bound weighs accusers.
   */
  constructor(options: QueuedAccusationsOptions = {}) {
    this.#freeStake = options.freeStake ?? (() => 1);
  }

  /** How many proofs are queued. */
  get size(): number {
    return this.#hashes.size;
  }

  /** Whether the proof with this hash is queued. */
  holds(hash: string): boolean {
    return this.#hashes.has(hash);
  }

  /** How many proofs `accuser` (hex) has queued. */
  queuedBy(accuser: string): number {
    return this.#byAccuser.get(accuser) ?? 0;
  }

  /**
   * Queue `item` behind `accuser`'s (hex) accusation of receipt `subject`. Past a bound one
   * queued proof goes (its waiter rejected): that accusation's oldest past
   * {@link MAX_QUEUED_PER_ACCUSATION}; past {@link MAX_QUEUED_ACCUSATIONS}, see there — maybe
   * `item` itself.
   */
  queue(accuser: string, subject: string, item: QueuedAccusation): void {
    const key = `${accuser}/${subject}`;
    const queue = this.#queues.get(key) ?? [];
    this.#queues.set(key, queue);
    queue.push(item);
    this.#order.set(item, this.#next++);
    this.#hashes.add(item.hash);
    this.#byAccuser.set(accuser, (this.#byAccuser.get(accuser) ?? 0) + 1);
    if (queue.length > MAX_QUEUED_PER_ACCUSATION) this.#drop(key, queue[0]);
    if (this.#hashes.size > MAX_QUEUED_ACCUSATIONS) this.#dropLeastBacked();
  }

  /** At the global bound: drop one proof (see {@link MAX_QUEUED_ACCUSATIONS}). */
  #dropLeastBacked(): void {
    const queued = [...this.#queues].flatMap(([key, items]) =>
      items.map((item) => ({ key, item }))
    );
    // Arrival order across accusations: the queues are kept per accusation, so their order is
    // rebuilt from the order each proof was queued in (`#order`).
    queued.sort((a, b) => this.#order.get(a.item)! - this.#order.get(b.item)!);
    // The least backed class present: uncovered, then about a receipt not recorded here.
    const classes = [
      ({ item }: { item: QueuedAccusation }) => !item.backed,
      ({ item }: { item: QueuedAccusation }) => item.known === false,
      () => true,
    ];
    const least = classes.map((inClass) => queued.filter(inClass)).find((c) => c.length > 0)!;
    const count = new Map<string, number>();
    const latest = new Map<string, number>();
    for (const [i, { key }] of least.entries()) {
      const accuser = key.slice(0, key.indexOf("/"));
      count.set(accuser, (count.get(accuser) ?? 0) + 1);
      latest.set(accuser, i);
    }
    // Free stake per proof queued in the class: read once per accuser (a ledger look-up).
    const perProof = new Map(
      [...count].map(([accuser, n]) => [accuser, Math.max(0, this.#freeStake(accuser)) / n]),
    );
    // Least stake per proof; as low (say none at all), the one queuing the most; then the latest.
    const rank = (accuser: string) => [perProof.get(accuser)!, -count.get(accuser)!];
    let victim: string | undefined;
    for (const accuser of count.keys()) {
      if (victim === undefined) {
        victim = accuser;
        continue;
      }
      const [mine, mineMost] = rank(accuser);
      const [low, lowMost] = rank(victim);
      const later = latest.get(accuser)! > latest.get(victim)!;
      if (mine < low || (mine === low && (mineMost < lowMost || (mineMost === lowMost && later)))) {
        victim = accuser;
      }
    }
    const gone = least.find(({ key }) => key.startsWith(`${victim}/`));
    if (gone !== undefined) this.#drop(gone.key, gone.item);
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

  /** The proofs queued, each with its sender and when it came, oldest first per accusation. */
  all(): { proof: FraudProof; origin?: string; takenAt: number }[] {
    return [...this.#queues.values()].flat()
      .sort((a, b) => this.#order.get(a)! - this.#order.get(b)!)
      .map(({ proof, origin, arrivedAt }) => ({ proof, origin, takenAt: arrivedAt }));
  }

  /** Drop `item`, queued under `key`: its waiter learns it was dropped. */
  #drop(key: string, item: QueuedAccusation): void {
    this.#forget(key, item);
    item.waiting.reject(new Error("fraud proof dropped from its accusation's queue"));
  }

  /** Forget `item` (by default the oldest) queued under `key`. */
  #forget(key: string, item = this.#queues.get(key)![0]): void {
    const queue = this.#queues.get(key)!;
    queue.splice(queue.indexOf(item), 1);
    this.#order.delete(item);
    if (queue.length === 0) this.#queues.delete(key);
    this.#hashes.delete(item.hash);
    const accuser = key.slice(0, key.indexOf("/"));
    const n = (this.#byAccuser.get(accuser) ?? 1) - 1;
    if (n > 0) this.#byAccuser.set(accuser, n);
    else this.#byAccuser.delete(accuser);
  }
}
