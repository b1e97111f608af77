/**
 * Takeovers of peers' `opening_missing` claims in a TrainingValidator (`training_validator.ts`).
 *
 * A peer's `opening_missing` that checks out says only that its challenge gave the trainer the
 * whole window and that the proof was signed after it. Whether anything arrived rests on the
 * accuser's word, and any staked key can sign a challenge it never sent. So it is a claim, not a
 * proof, and no ledger settles it on that word: until stop 51 every ledger did, and any staked key
 * slashed an honest trainer in every ledger, for free. A claim is passed on like a proof. Then,
 * within this validator's takeover budget (`actors/_takeover_budget.ts`, the one inference's
 * "proof withheld" claims use), this validator asks the trainer itself
 * (`TrainingChallengeRun.takeover`). Not served by the deadline: the trainer is convicted here on
 * this validator's own proof. Served: the claim was false here, and it counts against its
 * claimant. A claim not taken over leaves the trainer as it was here.
 *
 * Owns the budget and the open takeovers per claimant, read and written only inside the
 * validator's `receive`; the takeover itself runs outside it and its end comes back as the
 * validator's `takeover_ended` message. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { TakeoverBudget } from "../actors/_takeover_budget.ts";
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { ReceiptRecord } from "../proof/ledger_state.ts";
import type { ReceiptStatusMessage } from "../actors/validator_messages.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import type {
  TakeoverOutcome,
  TakeoverRequest,
  TrainingChallengeRun,
} from "./_training_challenge_run.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * How long a false claim (a takeover the trainer answered) counts against its claimant, ms: one
 * challenge window, as for inference's claims.
 */
const CLAIM_MEMORY_MS = DEFAULT_ECONOMICS.challengeWindowMs;

/** The validator's context: the takeover's end is told to it. */
type Context = ActorContext<TrainingValidatorMessage>;

/** What {@link ClaimTakeovers} needs from the validator. */
export interface ClaimTakeoversOptions {
  /** The validator's key (its own receipts are not taken over; its stake is asked). */
  identity: Identity;
  /** The challenge run: whether a receipt was challenged here, and the takeover itself. */
  challenges: TrainingChallengeRun;
  /** The validator's challenge probability: what each newly recorded receipt earns. */
  challengeProbability: number;
  /** The ledger's clock (ms). */
  now: () => number;
  /** Ask the ValidatorActor holding the ledger; rejects when it does not answer. */
  ask<R>(
    ctx: Context,
    message: ReceiptStatusMessage | { type: "account"; key: Uint8Array },
  ): Promise<R>;
  /** This node's connection to a trainer over `training/1`; none: undefined (it is dialled). */
  connectionTo(ctx: Context, trainer: Uint8Array): Promise<Connection | undefined>;
  /** Where one line per claim goes. */
  log(line: string): void;
}

/** See the module doc. */
export class ClaimTakeovers {
  readonly #options: ClaimTakeoversOptions;
  readonly #budget = new TakeoverBudget();
  /** Takeovers open now, per claimant (hex). */
  readonly #open = new Map<string, number>();

  /** @param options See {@link ClaimTakeoversOptions}. */
  constructor(options: ClaimTakeoversOptions) {
    this.#options = options;
  }

  /**
   * A receipt was newly recorded here: it earns `p` of a takeover, so takeovers at most double
   * the challenges the coin makes.
   */
  earn(): void {
    this.#budget.earn(this.#options.challengeProbability);
  }

  /**
   * A peer's confirmed `opening_missing` claim (`body`): take it over, or say why not in the log.
   * Call inside the validator's `receive`.
   */
  async consider(body: TrainingFraudProofBody, ctx: Context): Promise<void> {
    const { proof } = body;
    const claimant = toHex(proof.validator);
    const trainer = toHex(proof.receipt.trainer).slice(0, 16);
    const request = await this.#requestFor(body, claimant, ctx);
    if (typeof request === "string") {
      this.#options.log(
        `training validator: ${claimant.slice(0, 16)}'s claim that trainer ${trainer} did not ` +
          `open its steps not taken over (${request}): the trainer is not slashed here on its word`,
      );
      return;
    }
    this.#budget.spend();
    this.#open.set(claimant, (this.#open.get(claimant) ?? 0) + 1);
    this.#options.log(
      `training validator: taking over ${claimant.slice(0, 16)}'s claim that trainer ${trainer} ` +
        `did not open its steps: asking the trainer`,
    );
    void this.#options.challenges.takeover(request, ctx).then(
      (outcome) => ctx.self.tell({ type: "takeover_ended", claimant, outcome }),
      (error) => {
        this.#options.log(
          `training validator: takeover of trainer ${trainer}: ${(error as Error).message}`,
        );
        return ctx.self.tell({ type: "takeover_ended", claimant });
      },
    ).catch(() => {}); // the validator stopped meanwhile
  }

  /**
   * A takeover on `claimant`'s (hex) claim ended (`outcome` undefined: it threw); served, the
   * claim was false here. Call inside the validator's `receive`.
   */
  ended(claimant: string, outcome: TakeoverOutcome | undefined): void {
    const open = (this.#open.get(claimant) ?? 1) - 1;
    if (open > 0) this.#open.set(claimant, open);
    else this.#open.delete(claimant);
    if (outcome === "served") {
      this.#budget.foundFalse(claimant, this.#options.now() + CLAIM_MEMORY_MS);
    }
  }

  /** What a takeover of `body`'s claim needs, or why none runs. */
  async #requestFor(
    body: TrainingFraudProofBody,
    claimant: string,
    ctx: Context,
  ): Promise<TakeoverRequest | string> {
    const { receipt } = body.proof;
    const id = trainingReceiptId(receipt);
    const self = this.#options.identity.publicKey;
    const challenges = this.#options.challenges;
    if (bytesEqual(receipt.trainer, self)) return "own_receipt";
    if (challenges.challengedHere(id)) return "challenged_here";
    const refusal = this.#budget.refusal(
      claimant,
      this.#options.now(),
      this.#open.get(claimant) ?? 0,
    );
    if (refusal !== undefined) return refusal;
    const record = await this.#options.ask<ReceiptRecord | undefined>(ctx, {
      type: "receipt_status",
      receiptId: id,
    }).catch(() => undefined);
    if (record?.status !== "pending") return "not_pending";
    // Past its window (not finalized yet: the ledger's tick comes later) the ledger will not hold
    // it for a challenge, and the takeover is cleared unasked: refused before a credit is spent,
    // or any key drained the budget for free with claims about receipts just past their window,
    // and a withholding trainer's true claims then found none left.
    if (this.#options.now() > record.pendingUntil) return "window_closed";
    // The trainer opens its steps only to a key with a peer accuser's stake in its ledger: one
    // without would be refused, and that refusal taken for withholding.
    const { stake } = await this.#options.ask<{ stake: number }>(ctx, {
      type: "account",
      key: self,
    }).catch(() => ({ stake: 0 }));
    if (stake < DEFAULT_ECONOMICS.falseAccusationPenalty) return "unstaked";
    // None open: the takeover dials the trainer by its key (`TrainingChallengeRun.takeover`).
    const connection = await this.#options.connectionTo(ctx, receipt.trainer);
    // Challenged meanwhile (the asks above await): not again.
    if (challenges.challengedHere(id)) return "challenged_here";
    return {
      receipt,
      arch: body.arch,
      ...(body.startFile === undefined ? {} : { startFile: body.startFile }),
      ...(connection === undefined ? {} : { connection }),
      pendingUntil: record.pendingUntil,
    };
  }
}
