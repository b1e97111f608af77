/**
 * The fraud proofs a TrainingValidator (`training_validator.ts`) checks and settles: this
 * validator's own (from its failed challenges) and peers' (from gossip). A proof goes through the
 * intake first (`_training_proof_intake.ts`: held, refused or charged), is re-run outside the
 * mailbox under the architecture and start model its receipt signs (`_fraud_proof_rerun.ts`:
 * `checked`, or `unchecked` when the check fails unsettled), and is settled in the ledger; a
 * peer's confirmed `opening_missing` is a claim, passed on and taken over instead
 * (`_claim_takeovers.ts`). A peer's proof is taken from its intake until it settles, its
 * settlement asked again while the ledger does not answer (`_taken_training_proofs.ts`); this
 * validator's own challenge ends with its proof (`_challenge_endings.ts`).
 *
 * Owns only the re-run (and the answers it keeps); everything else it reads and writes (the seen
 * marks, the counters, the endings, the taken proofs, the intake, the takeovers) is the
 * validator's, handed in, and touched only inside the validator's `receive`: the re-run's end
 * comes back as its `checked` or `unchecked` message. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { toHex } from "../protocols/hash.ts";
import type { TrainingGossip } from "../protocols/training_messages.ts";
import type {
  TrainingCheckingMessage,
  TrainingFraudLedgerMessage,
} from "../actors/validator_messages.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { trainingFraudProofHash } from "./training_fraud_proof.ts";
import type { ChallengeEndings } from "./_challenge_endings.ts";
import { copyKey, type TakenTrainingProofs } from "./_taken_training_proofs.ts";
import type { TrainingProofIntake } from "./_training_proof_intake.ts";
import type { ClaimTakeovers } from "./_claim_takeovers.ts";
import { FraudProofRerun } from "./_fraud_proof_rerun.ts";
import type { StepRerun } from "./step_rerun.ts";
import type { TrainingValidatorMessage, TrainingValidatorOptions } from "./training_validator.ts";

/** The internal `checked` message: a fraud proof checked here, to settle. */
type CheckedMessage = Extract<TrainingValidatorMessage, { type: "checked" }>;

/** What {@link FraudProofChecks} needs from the validator. */
export interface FraudProofChecksOptions {
  /**
   * The validator's options, read at each use (`models`, `now`, `openingDeadlineMs`, `timers`).
   */
  settings: Pick<TrainingValidatorOptions, "models" | "now" | "openingDeadlineMs" | "timers">;
  /** The validator's incarnation, told with each check's failure (its `#incarnation`). */
  incarnation: object;
  /** The validator's counters of proofs checked and confirmed here. */
  stats: { checked: number; confirmed: number };
  /** The validator's seen marks: `add` is false when the key was already seen. */
  seen: { add(key: string): boolean; delete(key: string): boolean };
  /** The challenges the validator holds in its ledger, until they end. */
  endings: ChallengeEndings;
  /** Peers' proofs taken and not settled, and their copies. */
  taken: TakenTrainingProofs;
  /** The intake of fraud proofs. */
  intake: TrainingProofIntake;
  /** Takeovers of peers' `opening_missing` claims. */
  claims: ClaimTakeovers;
  /** Ask the ValidatorActor holding the ledger; rejects when there is none, or no answer. */
  ask<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: TrainingCheckingMessage | TrainingFraudLedgerMessage,
  ): Promise<R>;
  /** Pass gossip on to every peer but the one it came from. */
  publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void;
  /** Where a proof's disputed step is re-run (the validator's worker); default this thread. */
  rerun?: StepRerun;
  /** Where one line per proof goes. */
  log(line: string): void;
}

/** See the module doc. */
export class FraudProofChecks {
  readonly #options: FraudProofChecksOptions["settings"];
  readonly #parts: FraudProofChecksOptions;
  readonly #incarnation: object;
  readonly #stats: FraudProofChecksOptions["stats"];
  readonly #seen: FraudProofChecksOptions["seen"];
  readonly #endings: ChallengeEndings;
  readonly #taken: TakenTrainingProofs;
  readonly #intake: TrainingProofIntake;
  readonly #claims: ClaimTakeovers;
  /** The re-run of each proof, and the architecture answers it keeps (`_fraud_proof_rerun.ts`). */
  readonly #rerun: FraudProofRerun;

  /** @param options See {@link FraudProofChecksOptions}. */
  constructor(options: FraudProofChecksOptions) {
    this.#options = options.settings;
    this.#parts = options;
    this.#incarnation = options.incarnation;
    this.#stats = options.stats;
    this.#seen = options.seen;
    this.#endings = options.endings;
    this.#taken = options.taken;
    this.#intake = options.intake;
    this.#claims = options.claims;
    this.#rerun = new FraudProofRerun(options.settings, options.rerun);
  }

  /**
   * Take a fraud proof: through the intake (held, or refused), then checked outside the mailbox
   * (`checked`, or `unchecked` when the check fails unsettled). A peer's is taken from here until
   * it settles; a copy of a proof whose check is under way waits for it when its unsigned
   * architecture or start file differs (`_taken_training_proofs.ts`).
   * @param key The copy's key (`copyKey`).
   */
  async take(
    message: Extract<TrainingValidatorMessage, { type: "fraud_proof" }>,
    key: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<unknown> {
    const { refusal, unbacked } = await this.#intake.admit(
      ctx,
      message.body.proof,
      message.origin === "local",
    );
    if (refusal !== undefined) {
      if (message.origin === "local") {
        const id = trainingReceiptId(message.body.proof.receipt);
        await this.#endings.end(ctx, id, "undecided", `proof_${refusal}`);
      }
      this.#parts.log(`training validator: a peer's fraud proof not checked (${refusal})`);
      // Taken again after a stop and refused now: its receipt is no longer held for it.
      const refused = trainingFraudProofHash(message.body.proof);
      if (message.origin !== "local" && !this.#taken.checks(refused)) {
        await this.#release(ctx, refused);
      }
      // For its receipt, or from a key with no pledge here (yet) for its pledge; then taken again.
      const { held, awaitingPledge } = await this.#intake.hold(
        ctx,
        message.body,
        message.origin,
        refusal,
        message.since,
      );
      return {
        queued: false,
        skipped: refusal,
        ...(held ? { held: true } : {}),
        ...(awaitingPledge ? { awaitingPledge: true } : {}),
      };
    }
    const hash = trainingFraudProofHash(message.body.proof);
    const id = trainingReceiptId(message.body.proof.receipt);
    const seen = `fraud:${hash}`;
    if (!this.#seen.add(seen)) {
      if (message.origin === "local") {
        await this.#endings.end(ctx, id, "undecided", "proof_duplicate");
        return { queued: false };
      }
      if (!this.#taken.waitBehind(key, message.body, message.origin, hash, id)) {
        return { queued: false };
      }
      // On disk at the next recheck, which this schedules if none is on its way.
      this.#intake.keepLater(ctx);
      return { queued: false, waiting: true };
    }
    // Charged to its receipt's unbacked budget when taken unbacked (`_training_proof_intake.ts`).
    const charged = await this.#intake.charge(message.body.proof, hash, id, unbacked);
    let takenAt: number | undefined;
    if (message.origin !== "local") {
      const now = (this.#options.now ?? Date.now)();
      takenAt = this.#taken.checking(
        key,
        message.body,
        message.origin,
        message.since ?? now,
        charged,
      );
      this.#intake.keepLater(ctx);
      // Its receipt is held out of the ledger's finalize tick while it is re-run (slow): paid
      // meanwhile, the lazy trainer it catches would keep the pay (as for an inference proof).
      await this.#ledger(ctx, {
        type: "training_checking",
        fraudProofHash: hash,
        hold: { receiptId: id, takenAt },
      }).catch(() => {}); // no ledger answering: nothing to hold there
    }
    // The re-run is outside the mailbox; the settlement comes back as `checked`, a failure as
    // `unchecked` (told, not handled here: state changes in `receive`).
    let reran = false;
    const { body, origin } = message;
    void this.#rerun.check(body, () => reran = true).then(
      (check) => ctx.self.tell({ type: "checked", body, hash, ...check, origin, takenAt }),
      (error) =>
        ctx.self.tell({
          type: "unchecked",
          body,
          hash,
          origin,
          unbacked: unbacked !== undefined,
          reran,
          error: (error as Error).message,
          by: this.#incarnation,
        }),
    ).catch(() => {}); // this actor stopped meanwhile: a peer's proof is kept (`#taken`)
    return { queued: true };
  }

  /**
   * A check failed unsettled: nothing settled, so another copy (its start model reachable, its
   * architecture the receipt's) may still be checked — those that waited behind it go through
   * the intake again. This validator's own challenge ends undecided.
   */
  async unchecked(
    message: Extract<TrainingValidatorMessage, { type: "unchecked" }>,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    const { hash, body, origin } = message;
    this.#seen.delete(`fraud:${hash}`);
    this.#intake.done(hash);
    // Failed before its re-run (this copy's start model or architecture): the next copy is not
    // charged again. One that failed in the re-run is charged again.
    if (message.unbacked && !message.reran) this.#intake.failedBeforeRerun(hash);
    this.#parts.log(
      `training validator: fraud proof ${hash.slice(0, 12)} unchecked: ${message.error}`,
    );
    if (origin === "local") {
      await this.#endings.end(
        ctx,
        trainingReceiptId(body.proof.receipt),
        "undecided",
        "proof_unchecked",
      );
      return;
    }
    if (this.#taken.forget(copyKey(body))) this.#intake.keepLater(ctx);
    const requeued = this.#taken.requeue(hash);
    // No copy of it left to check: its receipt is no longer held for it in the ledger.
    if (requeued.length === 0) await this.#release(ctx, hash);
    for (const again of requeued) {
      ctx.self.tell({ type: "fraud_proof", ...again }).catch(() => {});
    }
  }

  /** Proof `hash` is no longer checked here: its receipt is not held for it in the ledger. */
  async #release(ctx: ActorContext<TrainingValidatorMessage>, hash: string): Promise<void> {
    await this.#ledger(ctx, { type: "training_checking", fraudProofHash: hash }).catch(() => {});
  }

  /** Settle a checked fraud proof in the ledger; rejects when the ledger did not answer. */
  settleInLedger(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: CheckedMessage,
  ): Promise<{ settled: boolean; slashed: number }> {
    const proof = message.body.proof;
    return this.#ledger<{ settled: boolean; slashed: number }>(ctx, {
      type: "training_fraud",
      receipt: proof.receipt,
      fraudProofHash: message.hash,
      validator: proof.validator,
      confirmed: message.confirmed,
      // What the trainer did (`delta_mismatch`, …) when confirmed; why not, when refuted.
      reason: message.confirmed ? proof.reason : message.reason,
      // Kept there, confirmed and settled, for the peers that connect later (`_catch_up.ts`).
      body: message.body,
      // Taken inside the window, its re-run ending after it: settles as in faster ledgers.
      takenAt: message.takenAt,
    });
  }

  async settle(
    message: CheckedMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    this.#stats.checked++;
    this.#intake.done(message.hash);
    if (message.confirmed) {
      this.#stats.confirmed++;
      // Everyone checks for themselves; a refuted proof is not spread (it would cost its author).
      this.#parts.publish(ctx, { kind: "fraud_proof", body: message.body }, message.origin);
    }
    if (
      message.confirmed && message.origin !== "local" &&
      message.body.proof.reason === "opening_missing"
    ) return await this.#onClaim(message, ctx);
    await this.settleInLedgerOnce(message, ctx, 0);
  }

  /**
   * A peer's `opening_missing`, confirmed, is a claim on its author's word, not a proof: passed
   * on, not settled here, and taken over within this validator's budget (`_claim_takeovers.ts`).
   */
  async #onClaim(
    message: CheckedMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    // No longer taken, nor held in the ledger for it: nothing of it is settled here.
    if (this.#taken.settled(message.hash)) this.#intake.keepLater(ctx);
    await this.#release(ctx, message.hash);
    await this.#claims.consider(message.body, ctx);
  }

  /**
   * Ask the ledger to settle a checked proof (`attempts` asks made before). This validator's
   * own challenge ends with it (`_challenge_endings.ts`); a peer's proof, once the ledger
   * answered, is no longer taken, with its copies; unanswered (the ValidatorActor crashed on the
   * ledger write, or is restarting), it stays taken and is asked again (`END_RETRY_MS`,
   * doubling, `MAX_END_ATTEMPTS` asks: `_taken_training_proofs.ts`), then at the next start, from
   * the disk.
   */
  async settleInLedgerOnce(
    message: CheckedMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
    attempts: number,
  ): Promise<void> {
    const proof = message.body.proof;
    const receipt = proof.receipt;
    const trainer = toHex(receipt.trainer);
    let failed: Error | undefined;
    const settled = await this.settleInLedger(ctx, message).catch((error) => {
      failed = error as Error;
      this.#parts.log(
        `training validator: fraud proof ${
          message.hash.slice(0, 12)
        } not settled: ${failed.message}`,
      );
      return undefined;
    });
    this.#parts.log(
      `training: fraud proof against trainer ${trainer.slice(0, 16)} ${
        message.confirmed ? "confirmed" : "refuted"
      } (${message.confirmed ? proof.reason : message.reason})${
        settled?.settled ? `; slashed ${settled.slashed} in this ledger` : ""
      }`,
    );
    if (message.origin === "local") {
      // This validator's own challenge ends with its proof, once the ledger answered; until
      // then it stays held (the proof kept) and the settlement is asked again.
      const id = trainingReceiptId(receipt);
      if (settled !== undefined) {
        await this.#endings.settled(ctx, id, message.confirmed, settled.settled);
      } else await this.#endings.unsettled(ctx, id, message, failed!);
      return;
    }
    if (settled !== undefined) {
      if (this.#taken.settled(message.hash)) this.#intake.keepLater(ctx);
      return;
    }
    const key = copyKey(message.body);
    const again = this.#taken.unanswered(key, message, attempts);
    if (again === undefined) return;
    if (again.wait === undefined || ctx.signal.aborted) {
      this.#parts.log(
        `training validator: fraud proof ${message.hash.slice(0, 12)} left to the next start`,
      );
      return;
    }
    // Told, not run here: the taken proofs change in `receive` (`settle_again`).
    void sleep(again.wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "settle_again", key });
    }).catch(() => {}); // stopped meanwhile: kept on disk, taken up at the next start
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: TrainingCheckingMessage | TrainingFraudLedgerMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }
}
