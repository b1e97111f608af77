/**
 * Peers' training fraud proofs a TrainingValidator (`training_validator.ts`) has taken and not
 * settled yet, by copy ({@link copyKey}), and their keeping across a stop.
 *
 * A peer's proof taken and not settled — told again from a hold and waiting in the mailbox, being
 * checked, a copy waiting behind another copy's check, or checked with its settlement unanswered
 * (the ValidatorActor crashed on a ledger write) — is kept on disk too
 * (`<ledger dir>/taken-training-proofs/`, `_kept_held_training_proofs.ts`) and taken through the
 * intake again at the next start: lost at a stop, nobody settled it here, and the lazy trainer
 * every other ledger slashed was paid.
 *
 * The architecture and start file travel unsigned beside a proof, so copies of one proof (one
 * hash) may differ by them: a copy under another architecture or start file waits behind the
 * copy being checked ({@link MAX_COPIES_PER_PROOF}) and goes through the intake again if that
 * check fails unsettled. A checked proof whose settlement the ledger did not answer stays taken
 * and is asked again (the validator's `settle_again`, `END_RETRY_MS` doubling,
 * `MAX_END_ATTEMPTS` asks: `_challenge_endings.ts`), then at the next start, from the disk.
 *
 * {@link TakenTrainingProofs} holds the state and the decisions only: the validator takes the
 * messages, asks the ledger, tells itself the proofs to take again and keeps the timers; a
 * method that changes what is to be kept on disk says so, and the validator keeps it at its next
 * recheck or stop. Owned by the validator, read and written only inside its `receive`.
 *
 * @example
 * ```ts ignore
 * const taken = new TakenTrainingProofs({ dir, now: Date.now });
 * if (taken.takeUp(held)) keepLater(); // released from a hold, in the mailbox
 * taken.checking(copyKey(body), body, origin, since, charged); // its check under way
 * if (taken.settled(hash)) keepLater(); // the ledger answered: no longer taken
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import { sha256Hex } from "../protocols/hash.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import type { SpentUnbacked } from "../actors/_unbacked_checks.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { trainingFraudProofHash } from "./training_fraud_proof.ts";
import {
  type KeptHeldProof,
  KeptHeldTrainingProofs,
  TAKEN_TRAINING_PROOFS_DIR,
} from "./_kept_held_training_proofs.ts";
import { END_RETRY_MS, MAX_END_ATTEMPTS, MAX_END_RETRY_MS } from "./_challenge_endings.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * Copies of one proof (one hash) taken at once: the one being checked and those waiting behind
 * it. The architecture and start file travel unsigned beside the proof, so a relay's copy under
 * a wrong architecture, its check under way, shut out the genuine copy that came meanwhile (a
 * duplicate by hash); the bad copy then failed before its re-run and nobody settled the proof.
 * A copy with another architecture or start file now waits for that check, and goes through the
 * intake again if it fails unsettled: the genuine one and a few bad ones relayed before it, as
 * the outcome gate's per-model bound. Past it, a copy is dropped as before.
 */
export const MAX_COPIES_PER_PROOF = 4;
/**
 * Peers' proofs taken and not settled kept on disk at most, oldest first: all that both holds
 * can release at once (`MAX_RECEIPT_HELD_TRAINING_PROOFS` and
 * `MAX_PLEDGE_HELD_TRAINING_PROOFS`). A training proof can be megabytes; more in flight at a stop
 * than this lose their newest, as every one was lost before.
 */
export const MAX_KEPT_TAKEN_PROOFS = 32;

/** The validator's internal `checked` message: a fraud proof checked there, to settle. */
type CheckedMessage = Extract<TrainingValidatorMessage, { type: "checked" }>;

/** A checked proof whose settlement the ledger did not answer, to ask again. */
export interface UnsettledTrainingProof {
  /** The check, as the validator settles it. */
  checked: CheckedMessage;
  /** Asks made so far. */
  attempts: number;
}

/**
 * A peer's fraud proof taken and not settled here, by the key of its copy ({@link copyKey}):
 * kept on disk ({@link TAKEN_TRAINING_PROOFS_DIR}) and taken up again at the next start.
 */
interface TakenTrainingProof {
  /** Hex hash of the proof (shared by its copies). */
  hash: string;
  /** Id of the receipt it accuses. */
  receiptId: string;
  /** The proof as it came, with its architecture and start file. */
  body: TrainingFraudProofBody;
  /** The peer it came from. */
  origin: string;
  /** When it was held or taken, ms. */
  since: number;
  /**
   * `queued`: told again from a hold, in the mailbox; `checking`: its check under way (or done,
   * its settlement unanswered); `waiting`: a copy behind another copy's check.
   */
  state: "queued" | "checking" | "waiting";
  /** Whether its check was charged to its receipt's unbacked budget. */
  charged: boolean;
  /** Checked, its settlement unanswered by the ledger: asked again (`settle_again`). */
  unsettled?: UnsettledTrainingProof;
}

/** A proof to take through the intake again, as the validator tells it to itself. */
export interface TakenAgain {
  /** The proof as it came, with its architecture and start file. */
  body: TrainingFraudProofBody;
  /** The peer it came from. */
  origin: string;
}

/** Options of {@link TakenTrainingProofs}. */
export interface TakenTrainingProofsOptions {
  /** The ledger's directory (`ownProofsDir`); absent: the taken proofs are not kept. */
  dir?: string;
  /** The validator's clock, ms. */
  now: () => number;
  /**
   * First wait before a settlement the ledger did not answer is asked again, ms; default
   * {@link END_RETRY_MS} (doubling, at most {@link MAX_END_ATTEMPTS} asks).
   */
  retryMs?: number;
}

/**
 * The key of one copy of a fraud proof: its hash with the architecture and start file that
 * travel unsigned beside it (copies of one proof under another architecture differ by it).
 */
export function copyKey(body: TrainingFraudProofBody): string {
  const beside = JSON.stringify([body.arch, body.startFile ?? null]);
  return sha256Hex(
    new TextEncoder().encode(`${trainingFraudProofHash(body.proof)}|${beside}`),
  );
}

/** See the module doc. */
export class TakenTrainingProofs {
  readonly #options: TakenTrainingProofsOptions;
  /** Peers' proofs taken and not settled, by copy key ({@link TakenTrainingProof}), oldest first. */
  readonly #taken = new Map<string, TakenTrainingProof>();
  /** The copy keys of {@link TakenTrainingProofs.#taken} on disk at its last keep. */
  #onDisk = new Set<string>();
  /** The taken proofs across a stop (`dir`). */
  readonly #kept: KeptHeldTrainingProofs | undefined;

  /** @param options See {@link TakenTrainingProofsOptions}. */
  constructor(options: TakenTrainingProofsOptions) {
    this.#options = options;
    this.#kept = options.dir === undefined
      ? undefined
      : KeptHeldTrainingProofs.in(options.dir, TAKEN_TRAINING_PROOFS_DIR, MAX_KEPT_TAKEN_PROOFS);
  }

  /**
   * A proof released from a hold goes through the intake again, taken meanwhile: in the
   * mailbox, it is in neither hold, and a stop before it is handled would lose it.
   * @returns Whether it was taken now (what is kept changed).
   */
  takeUp(held: { body: TrainingFraudProofBody; origin: string; since: number }): boolean {
    const key = copyKey(held.body);
    if (this.#taken.has(key)) return false;
    this.#take(key, held.body, held.origin, held.since, { state: "queued", charged: false });
    return true;
  }

  /**
   * A peer's copy `key` is being checked (`charged`: to its receipt's unbacked budget); `since`,
   * when it was held or came, unless it was taken before. What is kept changes.
   * @returns When it was taken, as kept: the time its settlement is judged at (one taken inside
   *   its receipt's window settles after it, as in the ledgers that checked it sooner).
   */
  checking(
    key: string,
    body: TrainingFraudProofBody,
    origin: string,
    since: number,
    charged: boolean,
  ): number {
    since = this.#taken.get(key)?.since ?? since;
    this.#take(key, body, origin, since, { state: "checking", charged });
    return since;
  }

  /** Whether a copy of proof `hash` is being checked (or checked, its settlement unanswered). */
  checks(hash: string): boolean {
    return [...this.#taken.values()].some((t) => t.hash === hash && t.state === "checking");
  }

  /**
   * A peer's copy of a proof taken already: it waits for the copy being checked when its
   * architecture or start file (unsigned, beside the proof) differs from every copy taken, within
   * {@link MAX_COPIES_PER_PROOF}; otherwise (a copy of one taken, the proof settled or in a
   * re-run here only as this validator's own) it is dropped.
   * @returns Whether it waits (what is kept changed).
   */
  waitBehind(
    key: string,
    body: TrainingFraudProofBody,
    origin: string,
    hash: string,
    receiptId: string,
  ): boolean {
    const copies = [...this.#taken].filter(([k, t]) => t.hash === hash && k !== key);
    if (!copies.some(([, t]) => t.state === "checking")) return false;
    if (this.#taken.get(key)?.state !== "queued" && this.#taken.has(key)) return false;
    if (copies.length + 1 > MAX_COPIES_PER_PROOF) return false;
    const since = this.#taken.get(key)?.since ?? this.#options.now();
    this.#taken.delete(key); // re-inserted last, as it now waits
    this.#taken.set(key, {
      hash,
      receiptId,
      body,
      origin,
      since,
      state: "waiting",
      charged: false,
    });
    return true;
  }

  /**
   * Copy `key`, told again from a hold, was handled: now taken (being checked, waiting) or no
   * longer (held again or refused).
   * @returns Whether it was forgotten (what is kept changed).
   */
  handled(key: string): boolean {
    return this.#taken.get(key)?.state === "queued" && this.forget(key);
  }

  /**
   * A taken copy is no longer taken (settled, failed, held again or refused): off the disk at the
   * next keep.
   * @returns Whether it was taken (what is kept changed).
   */
  forget(key: string): boolean {
    return this.#taken.delete(key);
  }

  /**
   * The check of proof `hash` failed unsettled (its copy forgotten with {@link forget}): the
   * copies that waited behind it are queued, to go through the intake again.
   * @returns Those copies, to tell again, oldest first.
   */
  requeue(hash: string): TakenAgain[] {
    const again: TakenAgain[] = [];
    for (const [key, taken] of [...this.#taken]) {
      if (taken.hash !== hash || taken.state !== "waiting") continue;
      taken.state = "queued";
      this.#taken.set(key, taken);
      again.push({ body: taken.body, origin: taken.origin });
    }
    return again;
  }

  /**
   * The ledger answered the settlement of proof `hash`: it is no longer taken, with its copies.
   * @returns Whether any was taken (what is kept changed).
   */
  settled(hash: string): boolean {
    let forgot = false;
    for (const [key, taken] of [...this.#taken]) {
      if (taken.hash === hash) forgot = this.forget(key) || forgot;
    }
    return forgot;
  }

  /**
   * The ledger did not answer the settlement of `checked`, copy `key` (`attempts` asks made
   * before this one): it stays taken, to ask again.
   * @returns `undefined` when copy `key` is not taken (nothing to ask again); otherwise the wait
   * before the next ask, ms ({@link END_RETRY_MS}, doubling), `wait` absent once
   * {@link MAX_END_ATTEMPTS} asks were made: left to the next start, from the disk.
   */
  unanswered(
    key: string,
    checked: CheckedMessage,
    attempts: number,
  ): { wait?: number } | undefined {
    const taken = this.#taken.get(key);
    if (taken === undefined) return undefined;
    taken.unsettled = { checked, attempts: attempts + 1 };
    if (attempts + 1 >= MAX_END_ATTEMPTS) return {};
    const first = this.#options.retryMs ?? END_RETRY_MS;
    return { wait: Math.min(MAX_END_RETRY_MS, first * 2 ** attempts) };
  }

  /** Copy `key`'s settlement the ledger did not answer, to ask again (`settle_again`), if any. */
  unsettled(key: string): UnsettledTrainingProof | undefined {
    return this.#taken.get(key)?.unsettled;
  }

  /**
   * The taken proofs kept at the last stop (or keep), untrusted: the validator takes each through
   * its intake again. Rejects when the folder cannot be read.
   */
  read(): Promise<KeptHeldProof[]> {
    return this.#kept?.read() ?? Promise.resolve([]);
  }

  /**
   * Make the folder hold the taken proofs now (the oldest {@link MAX_KEPT_TAKEN_PROOFS}).
   * Rejects when a write fails: the proofs on disk are then those of the last keep.
   */
  async keep(): Promise<void> {
    if (this.#kept === undefined) return;
    const taken = [...this.#taken].slice(0, MAX_KEPT_TAKEN_PROOFS);
    await this.#kept.keep(taken.map(([key, t]) => ({ ...t, hash: key })));
    this.#onDisk = new Set(taken.map(([key]) => key));
  }

  /**
   * The unbacked checks `spent` per receipt less those of the charged taken proofs kept on
   * disk: taken up again at the next start, each spends its check again (counted twice, the
   * genuine proof could find its receipt's budget gone).
   */
  lessKept(spent: readonly SpentUnbacked[]): SpentUnbacked[] {
    const kept = new Map<string, number>();
    for (const [key, { charged, receiptId }] of this.#taken) {
      if (charged && this.#onDisk.has(key)) {
        kept.set(receiptId, (kept.get(receiptId) ?? 0) + 1);
      }
    }
    return spent.flatMap((entry) => {
      const checks = entry.checks - (kept.get(entry.receiptId) ?? 0);
      return checks > 0 ? [{ ...entry, checks }] : [];
    });
  }

  /** Take copy `key` (told again from a hold, or its check under way) until it settles. */
  #take(
    key: string,
    body: TrainingFraudProofBody,
    origin: string,
    since: number,
    how: Pick<TakenTrainingProof, "state" | "charged">,
  ): void {
    const { proof } = body;
    this.#taken.set(key, {
      hash: trainingFraudProofHash(proof),
      receiptId: trainingReceiptId(proof.receipt),
      body,
      origin,
      since,
      ...how,
    });
  }
}
