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
 * claimant. The trainer not reached: the receipt is left as it was here (not slashed, the
 * claimant not counted false; review s81 vtrn2 F2: ended unpaid, any staked key's claim took an
 * honest trainer's pay wherever it could not be reached). A claim not taken over leaves the trainer
 * as it was here. A receipt left `unpaid` here because this node's coin drew it and its trainer was
 * not reached is taken over as a pending one is: the trainer was never asked here. A claim that
 * comes while this node's coin dials the trainer is kept and considered again, as below.
 *
 * **A claim the ledger did not answer for is kept and considered again.** Whether a claim is taken
 * over asks the ledger twice: where the receipt stands (pending, inside its window) and this
 * validator's own stake (a trainer opens its steps only to a staked key). A ledger that does not
 * answer (the ValidatorActor stopped, restarting after a failed write, or past its ask's timeout)
 * says nothing about either: the claim is kept ({@link MAX_KEPT_CLAIMS}, one per receipt, an
 * eighth of them per claimant) and considered again after `END_RETRY_MS`, doubling,
 * `MAX_END_ATTEMPTS` tries (the validator's `endRetryMs`), as a challenge's ending or a round's
 * outcome whose ledger ask went unanswered (`_challenge_endings.ts`, `_outcome_audits.ts`). Before
 * (review s59, `tests/training/ledger_retries_test.ts`) "no answer" read as "not
 * pending" or "unstaked": the claim, passed on once, never came again, and the withholding trainer,
 * convicted in every ledger that took the claim over, was paid in this one. An answer (not
 * pending, past its window, unstaked) and the budget's own refusals are final, as before. The
 * takeover budget is charged once, when the takeover opens: a kept claim holds no credit and no
 * open place of its claimant, and is refused at a later try when the budget has none by then. Who
 * pays when the ledger stays down past the tries, the bound is full, the receipt's window closes
 * meanwhile: the trainer is paid
 * here, as for any claim not taken over; every ledger that took it over convicts it.
 *
 * **A kept claim outlives a stop.** It is on disk (`<ledger dir>/kept-training-claims/`, one file
 * per claim, `_kept_held_training_proofs.ts`) before it counts as kept, and read back at the next
 * start ({@link ClaimTakeovers.readBack}; the mechanism, kept, retried and read back as the kept
 * receipts and outcomes: `_ledger_retries.ts`): untrusted, each goes through the validator's
 * intake and check again as a peer's proof from its claimant, and a confirmed one is considered
 * again. Before (review s60, `tests/training/ledger_retries_restart_test.ts`) kept claims were
 * memory only: a stop or restart of the training validator while the ledger was down lost them,
 * and the withholding trainer every ledger that took the claim over convicted was paid here.
 *
 * Owns the budget, the open takeovers per claimant and the kept claims, read and written only
 * inside the validator's `receive`; the takeover itself runs outside it and its end comes back as
 * the validator's `takeover_ended` message; a kept claim's next try is its `claims_again`. Not
 * part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { TakeoverBudget } from "../actors/_takeover_budget.ts";
import type { Connection } from "../protocols/connection.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import type { EconomicParams } from "../proof/economics.ts";
import type { ReceiptRecord } from "../proof/ledger_state.ts";
import type { ReceiptStatusMessage } from "../actors/validator_messages.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { trainingFraudProofHash } from "./training_fraud_proof.ts";
import { TrainingFraudProofMessage } from "../protocols/training_messages.ts";
import { LedgerRetries } from "./_ledger_retries.ts";
import type {
  TakeoverOutcome,
  TakeoverRequest,
  TrainingChallengeRun,
} from "./_training_challenge_run.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * Claims kept for a ledger that did not answer, at most: twice the takeover burst (8), the most
 * takeovers that can open on credit at once, so a ledger down for the whole retry span (about four
 * minutes) loses none of the claims its budget could have taken over; one claim holds one receipt
 * and an architecture, a few KiB.
 */
export const MAX_KEPT_CLAIMS = 16;
/**
 * Of those, the claims one claimant may have kept: an eighth, as a relaying peer's kept outcomes
 * (`_outcome_audits.ts`), so a key filing claims while the ledger is down cannot shut out another
 * claimant's true one.
 */
export const MAX_KEPT_CLAIMS_PER_CLAIMANT = MAX_KEPT_CLAIMS / 8;

/** The folder, under the ledger's directory, of the claims kept for a ledger that did not answer. */
export const KEPT_TRAINING_CLAIMS_DIR = "kept-training-claims";

/** The validator's context: the takeover's end is told to it. */
type Context = ActorContext<TrainingValidatorMessage>;

/** A claim whose takeover's ledger asks went unanswered, kept to consider again. */
interface KeptClaim {
  /** The claim (a peer's confirmed `opening_missing`). */
  body: TrainingFraudProofBody;
  /** Its claimant's key (hex). */
  claimant: string;
  /** Tries made so far. */
  attempts: number;
}

/** A ledger ask of {@link ClaimTakeovers} that went unanswered: the claim is kept, not refused. */
class LedgerUnanswered extends Error {}

/**
 * The claim's receipt is drawn by this node's coin, its trainer being dialled: kept and considered
 * again as a claim the ledger did not answer for. Refused, a claim that came during a dial that
 * then failed was lost, and the withholder, slashed in every ledger that took it over, was only
 * unpaid here (review s81 train F2).
 */
class DialUnderWay extends LedgerUnanswered {}

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
  /**
   * The economics the ledger runs with (the validator's, defaults merged): a false claim (a
   * takeover the trainer answered) counts against its claimant one `challengeWindowMs`, as for
   * inference's claims, and a claim is taken over only while this validator holds the
   * `falseAccusationPenalty` of stake a trainer asks of a peer's accuser.
   */
  economics: EconomicParams;
  /**
   * The ledger's directory (`ownProofsDir`): the kept claims are kept in its
   * {@link KEPT_TRAINING_CLAIMS_DIR} across a stop; absent, memory only.
   */
  dir?: string;
  /**
   * First wait before a claim the ledger did not answer for is considered again, ms; default
   * `END_RETRY_MS` (doubling, `MAX_END_ATTEMPTS` tries): the validator's `endRetryMs`.
   */
  retryMs?: number;
  /**
   * The timers its waits before a try again run on (the validator's `timers`); default real time.
   */
  timers?: ConnectionTimers;
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
  /** Claims the ledger did not answer for, by receipt id, to consider again (`claims_again`). */
  readonly #kept: LedgerRetries<KeptClaim>;

  /** @param options See {@link ClaimTakeoversOptions}. */
  constructor(options: ClaimTakeoversOptions) {
    this.#options = options;
    const what = ({ claimant, body }: KeptClaim) =>
      `${claimant.slice(0, 16)}'s claim that trainer ${
        toHex(body.proof.receipt.trainer).slice(0, 16)
      } did not open its steps`;
    this.#kept = new LedgerRetries<KeptClaim>({
      dir: options.dir,
      folder: KEPT_TRAINING_CLAIMS_DIR,
      max: MAX_KEPT_CLAIMS,
      maxPerShare: MAX_KEPT_CLAIMS_PER_CLAIMANT,
      shareName: "claimant",
      key: (claim) => trainingReceiptId(claim.body.proof.receipt),
      share: (claim) => claim.claimant,
      // One takeover per receipt: the claim kept stands.
      duplicate: { dropped: "another claim about its receipt is kept" },
      onDisk: (_id, claim) => ({
        hash: trainingFraudProofHash(claim.body.proof),
        body: claim.body,
        origin: claim.claimant,
        since: options.now(),
      }),
      tryAgain: (claim, ctx) => this.#consider(claim.body, ctx, claim.attempts),
      again: { type: "claims_again" },
      retryMs: () => options.retryMs,
      timers: options.timers,
      label: "training validator: kept claims",
      noun: "claim",
      kept: (claim, error) =>
        `training validator: ${what(claim)} kept, ${
          error instanceof DialUnderWay
            ? "this node is dialling its trainer"
            : "the ledger did not answer"
        }: ${error.message}`,
      // The trainer is paid here, as for any claim not taken over.
      dropped: (claim, reason, error) =>
        `training validator: ${what(claim)} not taken over, ${
          error instanceof DialUnderWay ? "its trainer still dialled" : "the ledger did not answer"
        } (${reason}): ${error.message}; the trainer is not slashed here on its word`,
      log: (line) => options.log(line),
    });
  }

  /**
   * At start: the claims kept when the validator last stopped, as `fraud_proof` messages from
   * their claimant (hex key) for the validator's intake and check again (nothing read is trusted:
   * an entry that is not an `opening_missing` proof body with its claimant is dropped, logged).
   * Once they went through the intake (now taken or held there, on its disk), call
   * {@link ClaimTakeovers.keepOnDisk}: the folder then holds only what is kept again.
   */
  async readBack(): Promise<
    { type: "fraud_proof"; body: TrainingFraudProofBody; origin: string }[]
  > {
    const read = await this.#kept.read();
    const again: { type: "fraud_proof"; body: TrainingFraudProofBody; origin: string }[] = [];
    for (const { body, origin } of read) {
      const parsed = TrainingFraudProofMessage.schema.safeParse(body);
      const proof = parsed.success ? (parsed.data as TrainingFraudProofBody) : undefined;
      if (
        proof === undefined || proof.proof.reason !== "opening_missing" ||
        typeof origin !== "string" || origin !== toHex(proof.proof.validator)
      ) {
        this.#options.log("training validator: a damaged kept claim dropped");
        continue;
      }
      again.push({ type: "fraud_proof", body: proof, origin });
    }
    return again;
  }

  /**
   * Make the folder hold the claims kept now (a claim taken over, answered or dropped since is
   * removed). A failed write costs only the claims' survival of a restart, not their retry:
   * logged.
   */
  keepOnDisk(): Promise<void> {
    return this.#kept.keepOnDisk();
  }

  /**
   * A receipt was newly recorded here: it earns `p` of a takeover, so takeovers at most double
   * the challenges the coin makes.
   */
  earn(): void {
    this.#budget.earn(this.#options.challengeProbability);
  }

  /**
   * A peer's confirmed `opening_missing` claim (`body`): take it over, or say why not in the log;
   * kept to consider again when the ledger did not answer (see the module doc). Call inside the
   * validator's `receive`.
   */
  async consider(body: TrainingFraudProofBody, ctx: Context): Promise<void> {
    await this.#consider(body, ctx, 0);
  }

  /**
   * Consider again every claim the ledger did not answer for (the validator's `claims_again`):
   * kept again while it still does not answer. Call inside the validator's `receive`.
   */
  again(ctx: Context): Promise<void> {
    return this.#kept.again(ctx);
  }

  /** {@link ClaimTakeovers.consider}, tried `attempts` times before without a ledger answer. */
  async #consider(body: TrainingFraudProofBody, ctx: Context, attempts: number): Promise<void> {
    const { proof } = body;
    const claimant = toHex(proof.validator);
    const trainer = toHex(proof.receipt.trainer).slice(0, 16);
    let request: TakeoverRequest | string;
    try {
      request = await this.#requestFor(body, claimant, ctx);
    } catch (error) {
      if (!(error instanceof LedgerUnanswered)) throw error;
      // Nothing charged: kept, and considered again once the ledger answers.
      await this.#kept.keep(ctx, { body, claimant, attempts: attempts + 1 }, error);
      return;
    }
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
      this.#budget.foundFalse(
        claimant,
        this.#options.now() + this.#options.economics.challengeWindowMs,
      );
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
    if (challenges.dialling(id)) throw new DialUnderWay("drawn by this node's coin");
    const refusal = this.#budget.refusal(
      claimant,
      this.#options.now(),
      this.#open.get(claimant) ?? 0,
    );
    if (refusal !== undefined) return refusal;
    // No answer is neither "not pending" nor "unstaked": the claim is kept (see the module doc).
    const record = await this.#ledger<ReceiptRecord | undefined>(ctx, {
      type: "receipt_status",
      receiptId: id,
    });
    // `unpaid` and not challenged here (above): left undecided here when this validator drew it
    // and its trainer was not reached (`UNREACHED_REASON`), never asked. A proof still settles it
    // inside its window, so the claim is taken over as on a pending one: refused, a withholder
    // reachable again was slashed in every ledger that took the claim over but this one.
    const unpaid = record?.status === "unpaid";
    if (record?.status !== "pending" && !unpaid) return "not_pending";
    // Past its window (not finalized yet: the ledger's tick comes later) the ledger will not hold
    // it for a challenge, and the takeover is cleared unasked: refused before a credit is spent,
    // or any key drained the budget for free with claims about receipts just past their window,
    // and a withholding trainer's true claims then found none left.
    if (this.#options.now() > record.pendingUntil) return "window_closed";
    // The trainer opens its steps only to a key with a peer accuser's stake in its ledger: one
    // without would be refused, and that refusal taken for withholding.
    const { stake } = await this.#ledger<{ stake: number }>(ctx, { type: "account", key: self });
    if (stake < this.#options.economics.falseAccusationPenalty) return "unstaked";
    // None open: the takeover dials the trainer by its key (`TrainingChallengeRun.takeover`).
    const connection = await this.#options.connectionTo(ctx, receipt.trainer);
    // Challenged meanwhile (the asks above await): not again.
    if (challenges.challengedHere(id)) return "challenged_here";
    if (challenges.dialling(id)) throw new DialUnderWay("drawn by this node's coin");
    return {
      receipt,
      arch: body.arch,
      ...(body.startFile === undefined ? {} : { startFile: body.startFile }),
      ...(connection === undefined ? {} : { connection }),
      ...(unpaid ? { unpaid } : {}),
      pendingUntil: record.pendingUntil,
    };
  }

  /** Ask the ledger; an ask it did not answer rejects with {@link LedgerUnanswered}. */
  #ledger<R>(
    ctx: Context,
    message: ReceiptStatusMessage | { type: "account"; key: Uint8Array },
  ): Promise<R> {
    return this.#options.ask<R>(ctx, message).catch((error) => {
      throw new LedgerUnanswered((error as Error).message);
    });
  }
}
