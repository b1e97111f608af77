/**
 * The training receipts a TrainingValidator (`training_validator.ts`) records and credits in its
 * ledger: a peer's receipt from gossip (`record`: recorded uncredited, passed on when new), the
 * receipts whose deltas went into a model this node's coordinator made (`credit`), and those a
 * round this node audited averaged (`creditRound`). A receipt newly recorded earns takeover
 * credit (`_claim_takeovers.ts`) and starts the window of a challenge made of it before
 * (`TrainingChallengeRun.recorded`); one recorded lets the proofs held for it through the intake
 * again (`_training_proof_intake.ts`).
 *
 * Holds no state of its own: the ledger belongs to the ValidatorActor, asked through the
 * validator. Owned by the validator; its outcome audits (`_outcome_audits.ts`) credit a round
 * through it. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type {
  OutcomeBody,
  TrainingGossip,
  TrainingReceiptBody,
} from "../protocols/training_messages.ts";
import type {
  TrainingReceiptLedgerMessage,
  TrainingReceiptRecorded,
} from "../actors/validator_messages.ts";
import { type TrainingReceipt, trainingReceiptId } from "./training_receipt.ts";
import type { TrainingProofIntake } from "./_training_proof_intake.ts";
import type { TrainingChallengeRun } from "./_training_challenge_run.ts";
import type { ClaimTakeovers } from "./_claim_takeovers.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/** What {@link ReceiptCredits} needs from the validator. */
export interface ReceiptCreditsOptions {
  /** The intake of fraud proofs: a recorded receipt releases the proofs held for it. */
  intake: TrainingProofIntake;
  /** Takeovers of peers' claims: a newly recorded receipt earns their budget. */
  claims: ClaimTakeovers;
  /** The challenge run: a newly recorded receipt starts its challenge's window here. */
  challenges: TrainingChallengeRun;
  /** Ask the ValidatorActor holding the ledger; rejects when there is none, or no answer. */
  ask<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: TrainingReceiptLedgerMessage,
  ): Promise<R>;
  /** Pass gossip on to every peer but the one it came from. */
  publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void;
}

/** See the module doc. */
export class ReceiptCredits {
  readonly #parts: ReceiptCreditsOptions;
  readonly #intake: TrainingProofIntake;
  readonly #claims: ClaimTakeovers;
  readonly #challenges: TrainingChallengeRun;

  /** @param options See {@link ReceiptCreditsOptions}. */
  constructor(options: ReceiptCreditsOptions) {
    this.#parts = options;
    this.#intake = options.intake;
    this.#claims = options.claims;
    this.#challenges = options.challenges;
  }

  /** Record a peer's receipt (`body`, from gossip) uncredited; new here: pass it on. */
  async record(
    body: TrainingReceiptBody,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<TrainingReceiptRecorded> {
    const answer = await this.#ledger<TrainingReceiptRecorded>(ctx, {
      type: "training_receipt",
      receipt: body.receipt,
      terms: body.terms,
      // Recorded (so a fraud proof can slash it), never paid from here: gossip alone is the
      // trainer's word about a round, and this node's own coordinator records each report
      // before its challenge and the outer step. It is paid once its delta went into a model:
      // `credit` from the coordinator, or an outcome this node audits (`creditRound`).
      credited: false,
    }).catch((error) => ({ recorded: false, fresh: false, refusal: (error as Error).message }));
    if (answer.fresh) {
      this.#parts.publish(ctx, { kind: "receipt", body }, origin);
      this.#recordedHere(body.receipt);
    }
    if (answer.recorded) this.#intake.release(ctx, trainingReceiptId(body.receipt));
    return answer;
  }

  /**
   * Credit receipts whose deltas went into a round's model this node's coordinator made
   * (recording those this ledger has not seen): only the accepted ones, after the challenge
   * and the outer step. A report left out — a failed challenge with or without a proof, a
   * check this validator could not run, a round that made no model — earns nothing.
   * @returns How many of the ledger asks went unanswered (no ledger actor, or it crashed or
   * stopped first): the caller makes the credit again (`_outcome_audits.ts`). A refusal (no
   * stake, convicted) is an answer: that receipt earns nothing here.
   */
  async credit(
    receipts: readonly TrainingReceipt[],
    terms: TrainingReceiptBody["terms"],
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<number> {
    let unanswered = 0;
    for (const receipt of receipts) {
      if (!await this.#creditOne(ctx, receipt, terms)) unanswered++;
    }
    return unanswered;
  }

  /**
   * Credit the receipts a reproduced round averaged (recording those this ledger has not seen):
   * the round ran, and their deltas are what made its model.
   * @returns How many of the ledger asks went unanswered, as {@link ReceiptCredits.credit}.
   */
  async creditRound(
    body: OutcomeBody,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<number> {
    // The round's H is the one its receipts share (the audit refuses an outcome whose receipts
    // differ: `steps_mismatch`), not each receipt's own claim.
    const steps = body.reports[0]?.receipt.steps ?? 0;
    const terms = { round: body.round, startModel: body.startModel, steps };
    let unanswered = 0;
    for (const { receipt } of body.reports) {
      if (!await this.#creditOne(ctx, receipt, terms)) unanswered++;
    }
    return unanswered;
  }

  /**
   * Record `receipt` credited (a refusal — no stake, convicted — earns it nothing here).
   * @returns Whether the ledger answered.
   */
  async #creditOne(
    ctx: ActorContext<TrainingValidatorMessage>,
    receipt: TrainingReceipt,
    terms: TrainingReceiptBody["terms"],
  ): Promise<boolean> {
    let answer: TrainingReceiptRecorded;
    try {
      answer = await this.#ledger<TrainingReceiptRecorded>(ctx, {
        type: "training_receipt",
        receipt,
        terms,
        credited: true,
      });
    } catch {
      return false; // no answer: the caller makes the credit again
    }
    if (answer.fresh) this.#recordedHere(receipt);
    if (answer.recorded) this.#intake.release(ctx, trainingReceiptId(receipt));
    return true;
  }

  /**
   * Receipt `receipt` was newly recorded in the ledger: it earns takeover credit, and a challenge
   * this validator made of it before (its window here starting only now) is remembered for that
   * window (`TrainingChallengeRun.recorded`).
   */
  #recordedHere(receipt: TrainingReceipt): void {
    this.#claims.earn();
    this.#challenges.recorded(trainingReceiptId(receipt));
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: TrainingReceiptLedgerMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }
}
