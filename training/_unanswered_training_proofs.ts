/**
 * The peers' fraud proofs a TrainingValidator's intake (`_training_proof_intake.ts`) keeps because
 * the ledger did not answer their intake, and takes through the intake again.
 *
 * **A peer's proof the ledger did not answer for is kept and taken again.** The intake asks the
 * ledger where the receipt stands and what the accuser holds there. An ask the ValidatorActor did
 * not answer (crashed on a failed read and restarting, stopped, past the ask's timeout) is neither
 * "receipt unknown" nor "unstaked": the proof is kept ({@link MAX_UNANSWERED_PROOFS}, an eighth
 * of them per accuser) and taken through the intake again after its own wait, `END_RETRY_MS`
 * doubling, `MAX_END_ATTEMPTS` tries (the validator's `endRetryMs`, `retryWait` in
 * `_ledger_retries.ts`), as a challenge's ending or a claim whose ledger ask went unanswered
 * (`_challenge_endings.ts`, `_claim_takeovers.ts`). The wait runs on the validator's `timers`, as
 * theirs do, and ends in the validator's `unanswered_again` message: the proof is taken again in
 * its `receive` (until stop 62 a kept proof was due on the wall clock and taken at the first
 * intake recheck after it, both on real time whatever `timers` said). Before (review s59,
 * `tests/training/ledger_retries_test.ts`) an unanswered receipt read was
 * taken for "receipt unknown": the proof, held for a receipt the ledger had recorded already, was
 * never released, and the lazy trainer, slashed in every other ledger, was paid in this one. Who
 * pays when the ledger stays down past the tries or the bound is full: the lazy trainer goes
 * unslashed here, as before. A kept proof is on disk ({@link UNANSWERED_TRAINING_PROOFS_DIR})
 * before it counts as kept, and read back through the intake at the next start with the held ones:
 * memory only, a stop or restart of the validator while the ledger was down lost it, and the lazy
 * trainer was paid here (review s60, `tests/training/ledger_retries_restart_test.ts`).
 *
 * {@link UnansweredTrainingProofs} holds them, in memory and on disk; owned by the intake, which
 * tells it the proofs to keep, the ones answered since and the waits over (`unanswered_again`),
 * and is told back the proofs to take again. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { verifySignature } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import { verifyTrainingReceipt } from "./training_receipt.ts";
import { trainingFraudProofHash, trainingFraudProofSigningBytes } from "./training_fraud_proof.ts";
import { MAX_END_ATTEMPTS } from "./_challenge_endings.ts";
import { retryWait } from "./_ledger_retries.ts";
import { KeptHeldTrainingProofs } from "./_kept_held_training_proofs.ts";
import type { TrainingProofIntakeOptions } from "./_training_proof_intake.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * Peers' proofs kept because the ledger did not answer their intake, at most: a restart of the
 * ValidatorActor takes a fraction of a second, in which a handful of proofs come; each holds a
 * step's openings (a few MB for `tiny`), so the bound keeps the memory to tens of MB.
 */
export const MAX_UNANSWERED_PROOFS = 16;
/**
 * Of those, the proofs one accuser may have kept: an eighth, as the kept outcomes per relay and the
 * kept claims per claimant, so a key filing proofs while the ledger is down cannot shut out another
 * accuser's.
 */
export const MAX_UNANSWERED_PROOFS_PER_ACCUSER = MAX_UNANSWERED_PROOFS / 8;
/**
 * The folder, under the ledger's directory, of the peers' proofs kept because the ledger did not
 * answer their intake (one file per proof, named by its hash: `_kept_held_training_proofs.ts`).
 */
export const UNANSWERED_TRAINING_PROOFS_DIR = "unanswered-training-proofs";

/** The validator's context, which the proofs are told to. */
type Context = ActorContext<TrainingValidatorMessage>;

/** A peer's proof whose intake the ledger did not answer, kept to take again. */
interface UnansweredProof {
  /** The proof. */
  body: TrainingFraudProofBody;
  /** The relaying peer's hex key. */
  origin: string;
  /** When it was first held (ledger clock, ms). */
  since: number;
  /** Its accuser's key (hex). */
  accuser: string;
  /** Tries made so far: its wait's `unanswered_again` names them (an older wait's is stale). */
  attempts: number;
  /** Told to the validator again, its intake not ended yet. */
  told: boolean;
}

/** What {@link UnansweredTrainingProofs} needs from the intake. */
export interface UnansweredTrainingProofsOptions {
  /** The intake's options, read at each use (`now`, `retryMs`, `timers`). */
  settings: Pick<TrainingProofIntakeOptions, "now" | "retryMs" | "timers">;
  /** The ledger's directory (`ownProofsDir`): the kept proofs are kept there. */
  dir?: string;
  /** A kept proof whose wait is over goes through the intake again, taken meanwhile. */
  takeUp(
    ctx: Context,
    held: { body: TrainingFraudProofBody; origin: string; since: number },
  ): void;
  /** Where one line per proof kept or dropped, and per failed write, goes. */
  log(line: string): void;
}

/** See the module doc. */
export class UnansweredTrainingProofs {
  readonly #options: UnansweredTrainingProofsOptions["settings"];
  readonly #parts: UnansweredTrainingProofsOptions;
  /** Peers' proofs the ledger did not answer the intake for, by hash (see the module doc). */
  readonly #unanswered = new Map<string, UnansweredProof>();
  /** The proofs kept because the ledger did not answer their intake, across a stop. */
  readonly #keptUnanswered: KeptHeldTrainingProofs | undefined;

  /** @param options See {@link UnansweredTrainingProofsOptions}. */
  constructor(options: UnansweredTrainingProofsOptions) {
    this.#options = options.settings;
    this.#parts = options;
    const dir = options.dir;
    this.#keptUnanswered = dir === undefined ? undefined : KeptHeldTrainingProofs.in(
      dir,
      UNANSWERED_TRAINING_PROOFS_DIR,
      MAX_UNANSWERED_PROOFS,
    );
  }

  /** How many proofs are kept. */
  get size(): number {
    return this.#unanswered.size;
  }

  /** Proof `hash` was answered (or dropped): no longer kept. @returns Whether it was kept. */
  delete(hash: string): boolean {
    return this.#unanswered.delete(hash);
  }

  /** The kept proofs on disk, read back at start; undefined without `dir`. */
  get store(): KeptHeldTrainingProofs | undefined {
    return this.#keptUnanswered;
  }

  /**
   * Keep a peer's proof whose intake the ledger did not answer, to take again after a wait that
   * doubles, on the validator's `timers` (`unanswered_again`); past `MAX_END_ATTEMPTS` tries, or
   * past the bounds, it is dropped, logged: its trainer goes unslashed here. This validator's own
   * proof is not kept: it is never refused for an unanswered receipt read, and its accuser's stake
   * is not asked.
   * @returns Whether it is kept.
   */
  async keep(
    ctx: Context,
    body: TrainingFraudProofBody,
    origin: string,
    since: number = this.#options.now(),
  ): Promise<boolean> {
    const { proof } = body;
    if (origin === "local" || !signedProof(proof)) return false;
    const hash = trainingFraudProofHash(proof);
    const before = this.#unanswered.get(hash);
    const attempts = (before?.attempts ?? 0) + 1;
    const accuser = toHex(proof.validator);
    const fromAccuser = [...this.#unanswered.values()]
      .filter((kept) => kept.accuser === accuser && kept !== before).length;
    // A validator stopping keeps it too: on disk, taken again at the next start (review s60).
    const dropped = attempts >= MAX_END_ATTEMPTS
      ? `${attempts} tries`
      : before === undefined && this.#unanswered.size >= MAX_UNANSWERED_PROOFS
      ? "too many kept"
      : fromAccuser >= MAX_UNANSWERED_PROOFS_PER_ACCUSER
      ? "too many kept from its accuser"
      : undefined;
    const what = `fraud proof ${hash.slice(0, 12)}`;
    if (dropped !== undefined) {
      // Off the disk too: read back at the next start, it would be tried again for nothing.
      if (this.#unanswered.delete(hash)) await this.keepOnDisk();
      this.#parts.log(
        `training validator: ${what} dropped, the ledger did not answer its intake (${dropped})`,
      );
      return false;
    }
    this.#unanswered.set(hash, {
      body,
      origin,
      since: before?.since ?? since,
      accuser,
      attempts,
      told: false,
    });
    // On disk before it counts as kept: memory only, a stop or restart of this validator while
    // the ledger was down lost it, and the lazy trainer every other ledger slashed was paid here
    // (review s60). One write per proof newly kept, bounded by the kept bound; a failed write
    // costs only its survival of a restart (logged), not its retry.
    await this.keepOnDisk();
    this.#parts.log(`training validator: ${what} kept, the ledger did not answer its intake`);
    this.#againLater(ctx, hash, attempts);
    return true;
  }

  /**
   * Tell the validator `unanswered_again` for proof `hash`, kept after `attempts` tries, once its
   * wait is over: {@link retryWait} on the validator's `timers` (real time by default).
   */
  #againLater(ctx: Context, hash: string, attempts: number): void {
    const wait = retryWait(this.#options.retryMs, attempts);
    // Told, not run here: the kept proofs change in the validator's `receive`.
    void sleep(wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "unanswered_again", hash, attempts });
    }).catch(() => {}); // stopped meanwhile: the next start reads it from the disk
  }

  /**
   * Make the folder of the proofs kept for a ledger that did not answer hold those kept now (a
   * proof dropped or answered since is removed). A failed write is logged.
   */
  async keepOnDisk(): Promise<void> {
    const kept = [...this.#unanswered].map(([hash, { body, origin, since }]) => ({
      hash,
      body,
      origin,
      since,
    }));
    await this.#keptUnanswered?.keep(kept).catch((error) =>
      this.#parts.log(
        `training validator: proofs kept for the ledger not kept on disk: ${
          (error as Error).message
        }`,
      )
    );
  }

  /**
   * The wait of proof `hash`, kept after `attempts` tries, is over (the validator's
   * `unanswered_again`): it goes through the intake again, unless it was answered, dropped, taken
   * again already, or kept again since (that keep's own wait takes it).
   */
  again(ctx: Context, hash: string, attempts: number): void {
    const kept = this.#unanswered.get(hash);
    if (kept === undefined || kept.told || kept.attempts !== attempts) return;
    kept.told = true;
    this.#parts.takeUp(ctx, kept);
  }
}

/** Whether `proof` is signed by its accuser, about a receipt its trainer signed (worth holding). */
export function signedProof(proof: TrainingFraudProofBody["proof"]): boolean {
  return verifySignature(proof.validator, trainingFraudProofSigningBytes(proof), proof.sig) &&
    verifyTrainingReceipt(proof.receipt).ok;
}
