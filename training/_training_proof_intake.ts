/**
 * The intake of the fraud proofs a TrainingValidator (`training_validator.ts`) takes, and the
 * holds of peers' proofs not worth their re-run yet.
 *
 * A proof is re-run (a few steps of training, seconds at a large batch) only when its receipt is
 * recorded and open in this ledger, and, from a peer, when its accuser has free stake here to
 * lose (`freeStake`: not what its own receipts lock) or, short of it, has pledged here with the
 * receipt's unbacked budget left (`actors/_unbacked_checks.ts`, kept across a stop:
 * `_kept_unbacked_training_checks.ts`). A peer's proof that outran its receipt is held until the
 * receipt is recorded (`_receipt_held_training_proofs.ts`); one whose accuser never pledged here is
 * held until it has (`_pledge_held_training_proofs.ts`, the ledger asked again every
 * {@link PLEDGE_RECHECK_MS}, on the validator's `timers`).
 * Released, a proof goes through the intake again, taken meanwhile (`_taken_training_proofs.ts`).
 * What is held, and what was taken and not settled, is kept on disk (`ownProofsDir`) at each
 * recheck and at the stop, and read back at the next start.
 *
 * **A peer's proof the ledger did not answer for is kept and taken again**
 * (`_unanswered_training_proofs.ts`): an ask the ValidatorActor did not answer is neither "receipt
 * unknown" nor "unstaked" ({@link LEDGER_UNANSWERED}). This validator's own proof is not refused
 * for an unanswered read: it goes on to its settlement, which is asked again while the ledger does
 * not answer (before, its challenge ended `undecided` at once, and the trainer it convicted went
 * unslashed here).
 *
 * {@link TrainingProofIntake} holds the state and the decisions; it asks the ledger through the
 * callback the validator gives, and, as `_challenge_endings.ts` does, tells the validator the
 * proofs to take again (`fraud_proof`), its rechecks (`pledges_again`) and the waits over of the
 * proofs kept for a ledger that did not answer (`unanswered_again`), both waits on the validator's
 * `timers`, so every change still happens in the validator's `receive`. Owned by the validator,
 * read and written only there.
 *
 * @example
 * ```ts ignore
 * const intake = new TrainingProofIntake({ publicKey, taken, dir, now, ask, log });
 * const { refusal, unbacked } = await intake.admit(ctx, body.proof, origin === "local");
 * if (refusal !== undefined) await intake.hold(ctx, body, origin, refusal, since);
 * else check(body, await intake.charge(body.proof, hash, receiptId, unbacked)); // then `done`
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import {
  type TrainingFraudProofBody,
  TrainingFraudProofMessage,
} from "../protocols/training_messages.ts";
import type { EconomicParams } from "../proof/economics.ts";
import { type ReceiptStatus, worthFraudCheck } from "../proof/ledger_state.ts";
import { type Account, freeStake } from "../proof/ledger.ts";
import type {
  AccountMessage,
  HasAccusedMessage,
  HasStakedMessage,
  ReceiptStatusMessage,
} from "../actors/validator_messages.ts";
import { MAX_UNBACKED_CHECKS_IN_FLIGHT, UnbackedChecks } from "../actors/_unbacked_checks.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { trainingFraudProofHash } from "./training_fraud_proof.ts";
import { PLEDGE_RECHECK_MS, PledgeHeldTrainingProofs } from "./_pledge_held_training_proofs.ts";
import {
  type KeptHeldProof,
  KeptHeldTrainingProofs,
  RECEIPT_HELD_TRAINING_PROOFS_DIR,
} from "./_kept_held_training_proofs.ts";
import {
  type KeptUnbackedTrainingChecks,
  keptUnbackedTrainingChecks,
} from "./_kept_unbacked_training_checks.ts";
import { signedProof, UnansweredTrainingProofs } from "./_unanswered_training_proofs.ts";
import type { TakenTrainingProofs } from "./_taken_training_proofs.ts";
import {
  MAX_RECEIPT_HELD_TRAINING_PROOFS,
  ReceiptHeldTrainingProofs,
} from "./_receipt_held_training_proofs.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * Proofs whose unbacked check is counted already remembered (those whose check failed before its
 * re-run, the kept claims read back): as many as the validator remembers gossip items (its
 * `SEEN_LIMIT`), oldest forgotten first.
 */
const MAX_UNBACKED_FAILED = 4096;

/** The intake's refusal when the ledger did not answer: kept, and taken again (module doc). */
export const LEDGER_UNANSWERED = "ledger_unanswered";

/** The validator's context, which the intake asks through and tells proofs to. */
type Context = ActorContext<TrainingValidatorMessage>;

/** The validator's `fraud_proof` message. */
type FraudProofMessage = Extract<TrainingValidatorMessage, { type: "fraud_proof" }>;

/** The ledger questions of the intake and the holds (the ValidatorActor's messages). */
export type IntakeLedgerMessage =
  | ReceiptStatusMessage
  | AccountMessage
  | HasAccusedMessage
  | HasStakedMessage;

/** Options of {@link TrainingProofIntake}. */
export interface TrainingProofIntakeOptions {
  /** The validator's key: its own proof read back from a hold is taken as a peer's from it. */
  publicKey: Uint8Array;
  /**
   * The validator's peers' proofs taken and not settled: a proof released from a hold is taken
   * there; kept on disk and read back with the holds.
   */
  taken: TakenTrainingProofs;
  /** The ledger's directory (`ownProofsDir`): the holds and unbacked counts are kept there. */
  dir?: string;
  /** The ledger's clock, ms (a receipt's `pendingUntil`, how long a proof is held). */
  now(): number;
  /**
   * The economics the ledger runs with (the validator's, defaults merged): a peer's accuser with
   * its `falseAccusationPenalty` of free stake is checked backed, and a proof is held for its
   * accuser's pledge its `challengeWindowMs` at most.
   */
  economics: EconomicParams;
  /**
   * How often the ledger is asked whether the accusers of the proofs held for their pledge have
   * staked, ms; default {@link PLEDGE_RECHECK_MS}.
   */
  pledgeRecheckMs?: number;
  /**
   * First wait before a proof the ledger did not answer for is taken again, ms; default
   * `END_RETRY_MS` (doubling, `MAX_END_ATTEMPTS` tries): the validator's `endRetryMs`.
   */
  retryMs?: number;
  /**
   * The timers its rechecks (`pledges_again`) and the waits before a proof the ledger did not
   * answer for is taken again (`unanswered_again`) run on: the validator's `timers`; default the
   * real clock.
   */
  timers?: ConnectionTimers;
  /** Ask the ValidatorActor holding the ledger; rejects when it does not answer. */
  ask<R>(ctx: Context, message: IntakeLedgerMessage): Promise<R>;
  /** Where one line per failed read or write goes. */
  log(line: string): void;
}

/** The intake's verdict on a proof: refused, taken, or taken unbacked. */
export interface IntakeVerdict {
  /** Why it is not worth its re-run here. */
  refusal?: string;
  /** Taken unbacked: the end of its receipt's window (ledger clock, ms). */
  unbacked?: number;
}

/** See the module doc. */
export class TrainingProofIntake {
  readonly #options: TrainingProofIntakeOptions;
  /** Peers' proofs whose receipt is not recorded here yet (`_receipt_held_training_proofs.ts`). */
  readonly #heldProofs = new ReceiptHeldTrainingProofs();
  /**
   * Whether {@link TrainingProofIntake.#heldProofs} or the taken proofs changed since they were
   * last kept on disk.
   */
  #keptChanged = false;
  /** Peers' proofs whose accuser has no pledge here yet (`_pledge_held_training_proofs.ts`). */
  readonly #pledgeHeld = new PledgeHeldTrainingProofs();
  /** Whether a `pledges_again` is on its way. */
  #pledgesAgainScheduled = false;
  /**
   * Peers' proofs the ledger did not answer the intake for, by hash
   * (`_unanswered_training_proofs.ts`).
   */
  readonly #unanswered: UnansweredTrainingProofs;
  /**
   * Peers' proofs checked although their pledged accuser's stake here falls short, per receipt
   * and in flight (`actors/_unbacked_checks.ts`, the inference side's bounds).
   */
  readonly #unbacked = new UnbackedChecks();
  /**
   * Proofs (by hash) whose unbacked check is counted already, taken again without charging their
   * receipt again (nor counting them against the budget their own charge spent):
   *
   * - an unbacked proof whose check failed before its re-run (`arch_mismatch`, the start model
   *   out of reach): another copy of it (a failure in the re-run itself is not: each re-run is
   *   charged). The architecture and start file travel unsigned beside the proof, so a relay
   *   with no key could otherwise spend a receipt's whole unbacked budget on copies of its honest
   *   accuser's proof, and the genuine copy was then skipped (the lazy trainer paid here);
   * - a claim kept because the ledger did not answer its takeover (`_claim_takeovers.ts`), read
   *   back at start ({@link TrainingProofIntake.chargedBefore}): its charge is in the counts read
   *   back. Before (review s61, `tests/training/ledger_retries_test.ts`) each start
   *   charged it again: a claim kept across a few restarts spent its receipt's whole unbacked
   *   budget, was refused itself (`unstaked_accuser`), and the withholding trainer was paid here.
   *
   * Bounded by {@link MAX_UNBACKED_FAILED}, oldest forgotten first.
   */
  readonly #chargedAlready = new Set<string>();
  /** The proofs held for their accuser's pledge, across a stop (`ownProofsDir`). */
  readonly #keptPledgeHeld: KeptHeldTrainingProofs | undefined;
  /** The proofs held for their receipt, across a stop (`ownProofsDir`). */
  readonly #keptReceiptHeld: KeptHeldTrainingProofs | undefined;
  /** The unbacked checks spent per receipt, across a stop (`ownProofsDir`). */
  readonly #keptUnbacked: KeptUnbackedTrainingChecks | undefined;

  /** @param options See {@link TrainingProofIntakeOptions}. */
  constructor(options: TrainingProofIntakeOptions) {
    this.#options = options;
    const dir = options.dir;
    this.#keptPledgeHeld = dir === undefined ? undefined : KeptHeldTrainingProofs.in(dir);
    this.#keptReceiptHeld = dir === undefined ? undefined : KeptHeldTrainingProofs.in(
      dir,
      RECEIPT_HELD_TRAINING_PROOFS_DIR,
      MAX_RECEIPT_HELD_TRAINING_PROOFS,
    );
    this.#keptUnbacked = dir === undefined ? undefined : keptUnbackedTrainingChecks(dir);
    this.#unanswered = new UnansweredTrainingProofs({
      settings: options,
      dir,
      takeUp: (ctx, held) => this.#takeUp(ctx, held),
      log: (line) => this.#options.log(line),
    });
  }

  /**
   * Why a fraud proof is not worth its re-run here (a few steps of training, seconds at a large
   * batch), or none: as the inference intake, its receipt must be recorded and open in this
   * ledger (the proof never records it: a made-up receipt from a fresh key cost every validator
   * the re-run, and was then passed on), and a peer's accuser must have free stake here to lose
   * (`freeStake`, not what its own receipts lock; `unstaked_accuser`; this validator's own
   * proofs come from its own challenges) — or, short of it, have pledged here, its receipt
   * inside its window and the unbacked budget room left (`unbacked`, the end of that window,
   * ledger clock: a conviction must not hang on the accuser's stake at the moment, see
   * `actors/_unbacked_checks.ts`).
   */
  async admit(
    ctx: Context,
    proof: TrainingFraudProofBody["proof"],
    own: boolean,
  ): Promise<IntakeVerdict> {
    const verdict = await this.#admit(ctx, proof, own);
    // Answered: no longer kept for a ledger that did not answer.
    if (verdict.refusal !== LEDGER_UNANSWERED && this.#unanswered.size > 0) {
      this.#unanswered.delete(trainingFraudProofHash(proof));
    }
    return verdict;
  }

  /** {@link TrainingProofIntake.admit}'s questions; {@link LEDGER_UNANSWERED}: one unanswered. */
  async #admit(
    ctx: Context,
    proof: TrainingFraudProofBody["proof"],
    own: boolean,
  ): Promise<IntakeVerdict> {
    // No answer is not "unknown" (nor, below, "unstaked"): kept and taken again (module doc).
    const unanswered = Symbol("unanswered");
    const record = await this.#options.ask<
      { receiptId?: string; status: ReceiptStatus; pendingUntil: number } | undefined
    >(ctx, {
      type: "receipt_status",
      receiptId: trainingReceiptId(proof.receipt),
      // The record the proof settles: its receipt's, or the one its trainer had recorded for the
      // round where this receipt was answered `equivocation` (review s63: held for it forever).
      trainingReceipt: proof.receipt,
    }).catch(() => unanswered);
    // This validator's own proof: its challenge holds the receipt there, and the settlement, asked
    // again while unanswered (`_challenge_endings.ts`), is where the ledger says whether it can
    // settle. Refused here, its challenge ended `undecided` at once: the trainer it convicted was
    // left unslashed here (review s59, `tests/training/ledger_retries_test.ts`).
    if (record === unanswered) return own ? {} : { refusal: LEDGER_UNANSWERED };
    if (record === undefined || typeof record === "symbol") return { refusal: "receipt_unknown" };
    // As the inference intake: a receipt left unpaid or slashed only inside its window (past it
    // a confirmed proof would also be passed on to every peer, for nothing). On this actor's
    // clock, the one `pendingUntil` was set on (a node gives both the same): on the wall's, a
    // clock behind it refused unbacked proofs of open receipts, and the lazy trainer was paid.
    const now = this.#options.now();
    if (!worthFraudCheck(record, now)) return { refusal: "not_pending" };
    if (own) return {};
    // One accusation per accuser and receipt, as the ledger settles (`repeated_accusation`):
    // the same claim signed again is a new proof hash, and would be re-run and passed on again.
    // The receipt the proof settles against: for one about another receipt of the trainer's for
    // the round, the one recorded (else each receipt the trainer signed bought a re-run).
    const accused = await this.#options.ask<boolean>(ctx, {
      type: "has_accused",
      validator: proof.validator,
      receiptId: record.receiptId ?? trainingReceiptId(proof.receipt),
    }).catch(() => false);
    if (accused) return { refusal: "repeated_accusation" };
    // Its free stake (review s45, as the inference intake): what its own receipts lock as a
    // worker backs their slash, not its accusations (the ledger charges a penalty out of free
    // stake only): counted whole, a key whose stake was all locked was taken as backed, past the
    // unbacked budget, and each refuted proof cost it nothing.
    const accuser = await this.#options.ask<Account>(ctx, {
      type: "account",
      key: proof.validator,
    }).catch(() => unanswered);
    if (typeof accuser === "symbol") return { refusal: LEDGER_UNANSWERED };
    if (freeStake(accuser) >= this.#options.economics.falseAccusationPenalty) return {};
    // Short of free stake: a key that never pledged here waits for its pledge (`#holdForPledge`:
    // memory, never a re-run); one that pledged and spent it is checked all the same while the
    // receipt could settle, within the unbacked budget. A refuted one costs it what free stake it
    // has left; a confirmed one slashes the trainer and rewards it, as any proof does.
    const pledged = await this.#options.ask<boolean>(ctx, {
      type: "has_staked",
      key: proof.validator,
    }).catch(() => unanswered);
    if (typeof pledged === "symbol") return { refusal: LEDGER_UNANSWERED };
    const id = trainingReceiptId(proof.receipt);
    const open = now <= record.pendingUntil;
    // Its check counted already (a copy of a proof whose charged check failed unsettled, a kept
    // claim read back): taken again, not charged again (`#chargedAlready`).
    const retry = this.#chargedAlready.has(trainingFraudProofHash(proof)) &&
      this.#unbacked.inFlight < MAX_UNBACKED_CHECKS_IN_FLIGHT;
    if (pledged && open && (retry || this.#unbacked.available(id, toHex(proof.validator)))) {
      return { unbacked: record.pendingUntil };
    }
    return { refusal: "unstaked_accuser" };
  }

  /**
   * A peer's proof the intake refused (`refusal`): held for its receipt when that is unknown here
   * ({@link TrainingProofIntake.#holdForReceipt}), else, from a key with no pledge here (yet),
   * held until it has one ({@link TrainingProofIntake.#holdForPledge}); then taken again.
   */
  async hold(
    ctx: Context,
    body: TrainingFraudProofBody,
    origin: string,
    refusal: string,
    since: number | undefined,
  ): Promise<{ held: boolean; awaitingPledge: boolean }> {
    if (refusal === LEDGER_UNANSWERED) {
      return { held: await this.#unanswered.keep(ctx, body, origin, since), awaitingPledge: false };
    }
    const held = refusal === "receipt_unknown" &&
      await this.#holdForReceipt(ctx, body, origin, since);
    const awaitingPledge = !held && origin !== "local" &&
      (refusal === "receipt_unknown" || refusal === "unstaked_accuser") &&
      await this.#holdForPledge(ctx, body, origin, since);
    return { held, awaitingPledge };
  }

  /**
   * Charge proof `hash` about receipt `id` to the receipt's unbacked budget when the intake took
   * it unbacked (`until`: its window's end), kept on disk before its re-run.
   * @returns Whether it was charged.
   */
  async charge(
    proof: TrainingFraudProofBody["proof"],
    hash: string,
    id: string,
    until: number | undefined,
  ): Promise<boolean> {
    // An unbacked check counts against its receipt from here; its in-flight place is freed
    // when it settles (`checked`) or fails (`unchecked`).
    // One whose check is counted already is not charged again (`#chargedAlready`; its in-flight
    // place is `#seen`'s one per hash; `admit` still caps it with the others).
    const charged = until !== undefined && !this.#chargedAlready.delete(hash);
    if (charged) {
      this.#unbacked.take(id, toHex(proof.validator), hash, until!);
      // On disk before the re-run: a restart must not grant the receipt its budget again.
      // One write per check, bounded by the budget the re-runs are (never per message).
      await this.#keepUnbacked();
    }
    return charged;
  }

  /** The check of proof `hash` settled or failed: its unbacked in-flight place is free. */
  done(hash: string): void {
    this.#unbacked.done(hash);
  }

  /**
   * The unbacked check of proof `hash` failed before its re-run (this copy's start model or
   * architecture): the next copy is not charged again.
   */
  failedBeforeRerun(hash: string): void {
    this.#countedAlready(hash);
  }

  /**
   * At start, after {@link TrainingProofIntake.readBack} (the counts spent before restored): the
   * claims kept because the ledger did not answer their takeover (`_claim_takeovers.ts`), read
   * back to go through the intake again. A claim's check was charged (when unbacked) before it
   * was kept, and that charge is in the counts read back: taken again, it is not charged again,
   * nor refused for the budget its own charge spent. One that was backed then and is unbacked now
   * is not charged this once either (at most the kept claims, a few per claimant).
   */
  chargedBefore(proofs: Iterable<TrainingFraudProofBody["proof"]>): void {
    for (const proof of proofs) this.#countedAlready(trainingFraudProofHash(proof));
  }

  /** Proof `hash`'s unbacked check is counted already: taken again, it is not charged again. */
  #countedAlready(hash: string): void {
    this.#chargedAlready.add(hash);
    if (this.#chargedAlready.size > MAX_UNBACKED_FAILED) {
      this.#chargedAlready.delete(this.#chargedAlready.values().next().value!);
    }
  }

  /**
   * Hold a peer's fraud proof whose receipt this ledger has not recorded yet, until it is
   * ({@link TrainingProofIntake.release}); it is then taken through the intake again. Only a
   * proof its accuser signed, about a receipt its trainer signed, from an accuser that pledged
   * here (its stake spent or not); bounded (`_receipt_held_training_proofs.ts`).
   * @returns Whether it is held.
   */
  async #holdForReceipt(
    ctx: Context,
    body: TrainingFraudProofBody,
    origin: string,
    since: number = this.#options.now(),
  ): Promise<boolean> {
    const { proof } = body;
    const hash = trainingFraudProofHash(proof);
    if (this.#heldProofs.has(hash)) return false;
    if (!signedProof(proof)) return false;
    const accuser = toHex(proof.validator);
    // From a key that pledged here, as the inference side: one whose stake is spent is checked
    // unbacked once the receipt is in (`admit`); one that never pledged waits for its pledge.
    const pledged = await this.#options.ask<boolean>(ctx, {
      type: "has_staked",
      key: proof.validator,
    }).catch(() => undefined);
    // No answer: kept and taken again (see the module doc), not dropped as "never pledged".
    if (pledged === undefined) return await this.#unanswered.keep(ctx, body, origin, since);
    if (!pledged) return false;
    this.#heldProofs.hold({
      receiptId: trainingReceiptId(proof.receipt),
      accuser,
      hash,
      body,
      origin,
      since,
    });
    // Kept at the next recheck (never one write per proof that came).
    this.keepLater(ctx);
    return true;
  }

  /** Receipt `receiptId` is recorded here now: the proofs held for it go through the intake. */
  release(ctx: Context, receiptId: string): void {
    const released = this.#heldProofs.release(receiptId);
    if (released.length === 0) return;
    this.keepLater(ctx);
    for (const held of released) this.#takeUp(ctx, held);
  }

  /**
   * A proof released from a hold goes through the intake again, taken meanwhile
   * (`_taken_training_proofs.ts`): in the mailbox, it is in neither hold.
   */
  #takeUp(
    ctx: Context,
    held: { body: TrainingFraudProofBody; origin: string; since: number },
  ): void {
    if (this.#options.taken.takeUp(held)) this.keepLater(ctx);
    ctx.self.tell({ type: "fraud_proof", body: held.body, origin: held.origin }).catch(() => {});
  }

  /** What is kept on disk changed (a hold, the taken proofs): kept at the next recheck. */
  keepLater(ctx: Context): void {
    this.#keptChanged = true;
    this.#pledgesAgainLater(ctx);
  }

  /**
   * Hold a peer's fraud proof whose accuser has no pledge in this ledger, until it has
   * ({@link TrainingProofIntake.pledgesAgain}); it is then taken through the intake again, and
   * settles as it would have had the pledge come first. Only a proof its accuser signed, about a
   * receipt its trainer signed, from a key that never staked here (one whose stake is spent is
   * checked unbacked, in either order: `admit`); bounded (`_pledge_held_training_proofs.ts`).
   * Costs memory and a ledger question per recheck, never a re-run.
   * @returns Whether it is held.
   */
  async #holdForPledge(
    ctx: Context,
    body: TrainingFraudProofBody,
    origin: string,
    since: number = this.#options.now(),
  ): Promise<boolean> {
    const { proof } = body;
    if (!signedProof(proof)) return false;
    // No answer: not "never staked" (held for it, it would only take a place); kept and taken
    // again instead (see the module doc), not dropped as "staked".
    const staked = await this.#options.ask<boolean>(ctx, {
      type: "has_staked",
      key: proof.validator,
    }).catch(() => undefined);
    if (staked === undefined) return await this.#unanswered.keep(ctx, body, origin, since);
    if (staked) return false;
    const held = this.#pledgeHeld.hold({
      receiptId: trainingReceiptId(proof.receipt),
      accuser: toHex(proof.validator),
      hash: trainingFraudProofHash(proof),
      body,
      origin,
      since,
    });
    if (held) this.#pledgesAgainLater(ctx);
    return held;
  }

  /**
   * Ask the ledger again, after {@link PLEDGE_RECHECK_MS} on the validator's `timers`, while
   * proofs wait for a pledge; and keep the proofs held for their receipt then, when they changed.
   * (The proofs kept for a ledger that did not answer are on disk as they are kept, and each
   * waits on its own: `unanswered_again`.)
   */
  #pledgesAgainLater(ctx: Context): void {
    if (this.#pledgesAgainScheduled) return;
    if (this.#pledgeHeld.size === 0 && !this.#keptChanged) return;
    this.#pledgesAgainScheduled = true;
    const wait = this.#options.pledgeRecheckMs ?? PLEDGE_RECHECK_MS;
    // Told, not run here: the held proofs change in `receive` (`pledges_again`).
    void sleep(wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "pledges_again" });
    }).catch(() => {}); // this actor stopped meanwhile: the held proofs go with it
  }

  /**
   * The proofs held for a pledge whose accuser has staked here since go through the intake
   * again; those held past the ledger's challenge window are forgotten (their receipt's window
   * closed).
   * The validator's `pledges_again`.
   */
  async pledgesAgain(ctx: Context): Promise<void> {
    this.#pledgesAgainScheduled = false;
    this.#pledgeHeld.expire(this.#options.now() - this.#options.economics.challengeWindowMs);
    for (const key of this.#pledgeHeld.accusers()) {
      if (ctx.signal.aborted) return;
      const staked = await this.#options.ask<boolean>(ctx, { type: "has_staked", key })
        .catch(() => false);
      if (!staked) continue;
      for (const held of this.#pledgeHeld.take(toHex(key))) this.#takeUp(ctx, held);
    }
    // At most one write per recheck (never one per proof that came): a kill loses one's worth.
    await this.keep();
    this.#pledgesAgainLater(ctx);
  }

  /**
   * The wait of a peer's proof kept after `attempts` tries because the ledger did not answer its
   * intake is over: it goes through the intake again (`_unanswered_training_proofs.ts`). The
   * validator's `unanswered_again`.
   */
  unansweredAgain(ctx: Context, hash: string, attempts: number): void {
    this.#unanswered.again(ctx, hash, attempts);
  }

  /**
   * At start: the unbacked checks spent before are restored, and the proofs held for their
   * accuser's pledge or for their receipt, or taken and not settled, when the validator last
   * stopped (or at its last recheck, if it was killed) are returned for the intake again, as a
   * peer's proof goes: signatures verified, the ledger asked, held again (for a pledge: for the
   * time they have left), or checked now that their accuser has staked or their receipt is
   * recorded. Nothing read is trusted: an entry that is not a proof body with a peer's origin
   * and a time held (for a pledge: inside the ledger's challenge window; for a receipt, not after now:
   * that hold has no time bound in memory either) is dropped; one marked as this validator's own
   * is taken as a peer's from its own key when its own key signed it, dropped otherwise (it would
   * skip the stake question). Once they went through, {@link TrainingProofIntake.keep} makes the
   * folders hold what is held then.
   * @returns The `fraud_proof` messages to take, longest held first.
   */
  async readBack(): Promise<FraudProofMessage[]> {
    // Before the held proofs: those read back are judged against the counts spent before.
    this.#unbacked.restore(
      await this.#keptUnbacked?.read().catch((error) => {
        this.#options.log(
          `training validator: unbacked counts not read back: ${(error as Error).message}`,
        );
        return [];
      }) ?? [],
    );
    const read = (store: { read(): Promise<KeptHeldProof[]> } | undefined) =>
      store?.read().catch((error) => {
        this.#options.log(
          `training validator: held proofs not read back: ${(error as Error).message}`,
        );
        return [];
      }) ?? Promise.resolve([]);
    const now = this.#options.now();
    const again: FraudProofMessage[] = [];
    const take = (kept: KeptHeldProof[], oldest: number) => {
      for (const { body, origin, since } of kept) {
        const parsed = TrainingFraudProofMessage.schema.safeParse(body);
        if (!parsed.success || typeof origin !== "string") continue;
        if (typeof since !== "number" || !(since >= oldest)) continue;
        const proof = parsed.data as TrainingFraudProofBody;
        // This validator's own proof, held for its receipt (its challenge's open refused), comes
        // back as a peer's from its own key: every check a peer's proof gets, none skipped.
        // Dropped, it was lost at a restart and the lazy trainer paid here. Any other "local"
        // entry is dropped (it would skip the stake question).
        const mine = bytesEqual(proof.proof.validator, this.#options.publicKey);
        const from = origin === "local" && mine ? toHex(proof.proof.validator) : origin;
        if (from === "local") continue;
        again.push({ type: "fraud_proof", body: proof, origin: from, since: Math.min(since, now) });
      }
    };
    take(await read(this.#keptReceiptHeld), -Infinity);
    take(await read(this.#keptPledgeHeld), now - this.#options.economics.challengeWindowMs);
    // Taken and not settled: the intake decides again (its window bounds how long that is).
    take(await read(this.#options.taken), -Infinity);
    // Kept because the ledger did not answer their intake (review s60): asked again now, with
    // this start's tries (the receipt's window bounds how long that goes on across starts).
    take(await read(this.#unanswered.store), -Infinity);
    // Longest held first, as they were held: the holds push those out first.
    again.sort((a, b) => a.since! - b.since!);
    return again;
  }

  /**
   * Make the kept folders hold what is held for a pledge or a receipt now, and the taken proofs
   * and the spent unbacked checks. A failed write costs only the proofs' survival of a restart,
   * not the hold: logged, and tried again at the next recheck.
   */
  async keep(): Promise<void> {
    await this.#keptPledgeHeld?.keep(this.#pledgeHeld.all()).catch((error) =>
      this.#options.log(`training validator: held proofs not kept: ${(error as Error).message}`)
    );
    // Cleared with no folder too: left set, it rescheduled the recheck every second for ever.
    this.#keptChanged = false;
    const failed = (error: Error) => {
      this.#keptChanged = true;
      this.#options.log(`training validator: held proofs not kept: ${error.message}`);
    };
    await this.#keptReceiptHeld?.keep(this.#heldProofs.all()).catch(failed);
    await this.#options.taken.keep().catch(failed);
    // After the taken proofs: one answered since (taken now) is on disk there before it leaves
    // this folder.
    await this.#unanswered.keepOnDisk();
    // After the taken proofs: the checks of those on disk are not counted (below).
    await this.#keepUnbacked();
  }

  /**
   * Keep the unbacked checks spent per receipt still inside its window (validator clock), less
   * those of the taken proofs kept on disk: taken up again at the next start, each spends its
   * check again (counted twice, the genuine proof could find its receipt's budget gone). A
   * failed write costs only the count's survival of a restart: logged.
   */
  async #keepUnbacked(): Promise<void> {
    const spent = this.#options.taken.lessKept(this.#unbacked.spent(this.#options.now()));
    await this.#keptUnbacked?.keep(spent).catch((error) =>
      this.#options.log(`training validator: unbacked counts not kept: ${(error as Error).message}`)
    );
  }
}
