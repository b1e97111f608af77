/**
 * The training receipts a TrainingValidator (`training_validator.ts`) records and credits in its
 * ledger: a peer's receipt from gossip (`record`: recorded uncredited, passed on when new), the
 * receipts whose deltas went into a model this node's coordinator made (`credit`), and those a
 * round this node audited averaged (`creditRound`). A receipt newly recorded earns takeover
 * credit (`_claim_takeovers.ts`) and starts the window of a challenge made of it before
 * (`TrainingChallengeRun.recorded`); one recorded lets the proofs held for it through the intake
 * again (`_training_proof_intake.ts`).
 *
 * **A peer's receipt the ledger did not answer for is kept and recorded again.** An ask the
 * ValidatorActor did not answer (stopped, restarting after a failed write, past its ask's timeout)
 * is neither "recorded" nor "refused": the receipt is kept ({@link MAX_KEPT_RECEIPTS}, an eighth of
 * them per relaying peer; signed by its trainer only), on disk
 * (`<ledger dir>/kept-training-receipts/`, one file each, `_kept_held_training_proofs.ts`) before
 * it counts as kept, and recorded again (and passed on when new then) after `END_RETRY_MS`,
 * doubling, `MAX_END_ATTEMPTS` tries (the validator's `endRetryMs`, its `receipts_again`), and at
 * the next start (the mechanism: `_ledger_retries.ts`). Before (review s60,
 * `tests/training/ledger_retries_test.ts`) it was neither recorded nor passed on
 * and never asked again: a peer's fraud proof about it found its receipt unknown here (held for a
 * receipt that never came), and the lazy trainer every other ledger slashed kept its stake in this
 * one, and in every node that heard of the receipt only through this one. Who pays when the ledger stays down past the tries or the bound is full: the
 * same, as before. An answer (a refusal: no stake to lock, a duplicate) is final, but one:
 *
 * **A receipt that came before its trainer's stake is held for it** (review s63,
 * `_stake_held_training_receipts.ts`): a peer's receipt refused `insufficient_stake` while its
 * trainer has never staked here is recorded again once the trainer has (the validator's
 * `stakes_again`, every `pledgeRecheckMs`), as where the pledge came first. Before, it stayed
 * unrecorded here: the proof about a lazy one was held for it for good, and that trainer kept here
 * the stake every other ledger slashed. So is a credit (review s64): refused so, it is recorded
 * credited then, and the honest trainer every ledger that had its pledge first paid is paid here
 * too. Held for the challenge window of the node's ledger (`stakeHoldMs`, the validator's
 * `economics`: it was the default one whatever the ledger's), and kept beside the ledger across a
 * restart (`_kept_stake_held_training_receipts.ts`: memory only, a restart forgot them).
 *
 * **The receipt a fraud proof held for its receipt carries is recorded as a peer's** (review s63,
 * `tests/training/stake_held_receipts_test.ts`, `proofHeld`): signed by its trainer,
 * against the round it names (as the ledger records it when a proof outruns it:
 * `actors/_validator_training.ts`), through the same path and checks as a peer's receipt, held
 * for its trainer's stake in places of its own (`_stake_held_training_receipts.ts`). Before, the
 * lazy trainer's own receipts for made-up rounds (terms are not signed) pushed its lazy receipt
 * out of the hold, its pledge let only them through, and the proof waited for good. It records
 * nothing a peer could not: anyone holding the proof holds the receipt and could relay it; the
 * receipt is recorded uncredited (never paid from here), and only for a proof the intake held
 * for its receipt, signed by an accuser that pledged here, about a receipt its trainer signed (a
 * proof from a key with no pledge here waits for it first, `_pledge_held_training_proofs.ts`).
 *
 * The ledger belongs to the ValidatorActor, asked through the validator. Owned by the validator,
 * read and written only inside its `receive`; its outcome audits (`_outcome_audits.ts`) credit a
 * round through it. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { toHex } from "../protocols/hash.ts";
import {
  type OutcomeBody,
  type TrainingGossip,
  type TrainingReceiptBody,
  TrainingReceiptMessage,
} from "../protocols/training_messages.ts";
import type {
  HasStakedMessage,
  TrainingReceiptLedgerMessage,
  TrainingReceiptRecorded,
} from "../actors/validator_messages.ts";
import type { TrainingFraudProof } from "./training_fraud_proof.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "./training_receipt.ts";
import { LedgerRetries } from "./_ledger_retries.ts";
import {
  DEFAULT_STAKE_HOLD_MS,
  type StakeHeldTrainingReceipt,
  StakeHeldTrainingReceipts,
} from "./_stake_held_training_receipts.ts";
import {
  type KeptStakeHeldTrainingReceipts,
  keptStakeHeldTrainingReceipts,
} from "./_kept_stake_held_training_receipts.ts";
import { PLEDGE_RECHECK_MS } from "./_pledge_held_training_proofs.ts";
import type { TrainingProofIntake } from "./_training_proof_intake.ts";
import type { TrainingChallengeRun } from "./_training_challenge_run.ts";
import type { ClaimTakeovers } from "./_claim_takeovers.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * Peers' receipts kept for a ledger that did not answer, at most: one outcome frame's receipts (a
 * round's reports, gossiped at once), so a ledger restarting as a round's receipts come loses
 * none; a receipt is about a kilobyte.
 */
export const MAX_KEPT_RECEIPTS = 256;
/**
 * Of those, the receipts one relaying peer may have kept: an eighth, as the other holds, so a peer
 * relaying receipts of keys of its own while the ledger is down cannot shut out the others'.
 */
export const MAX_KEPT_RECEIPTS_PER_PEER = MAX_KEPT_RECEIPTS / 8;
/** The folder, under the ledger's directory, of the kept receipts (module doc). */
export const KEPT_TRAINING_RECEIPTS_DIR = "kept-training-receipts";

/** A peer's receipt whose record the ledger did not answer, kept to record again. */
interface KeptReceipt {
  /** The receipt with its round's terms. */
  body: TrainingReceiptBody;
  /** The relaying peer's hex key. */
  origin: string;
  /** Tries made so far. */
  attempts: number;
}

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
    message: TrainingReceiptLedgerMessage | HasStakedMessage,
  ): Promise<R>;
  /** Pass gossip on to every peer but the one it came from. */
  publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void;
  /** Whether this node has a ledger at all (none: a receipt is not kept for one). */
  hasLedger?: boolean;
  /**
   * The ledger's directory (`ownProofsDir`): the kept receipts and those held for their trainer's
   * stake go there; absent, memory only.
   */
  dir?: string;
  /**
   * First wait before a receipt the ledger did not answer for is recorded again, ms; default
   * `END_RETRY_MS` (doubling, `MAX_END_ATTEMPTS` tries): the validator's `endRetryMs`.
   */
  retryMs?: number;
  /**
   * The timers its waits before a try again run on (the validator's `timers`); default real time.
   */
  timers?: ConnectionTimers;
  /**
   * How often the ledger is asked whether the trainers of the receipts held for their stake have
   * staked, ms; default `PLEDGE_RECHECK_MS` (the validator's `pledgeRecheckMs`).
   */
  stakeRecheckMs?: number;
  /**
   * How long a receipt is held for its trainer's stake, ms: the challenge window of the node's
   * ledger (the validator's `economics`); default `DEFAULT_STAKE_HOLD_MS`.
   */
  stakeHoldMs?: number;
  /** The validator's clock, ms (when a receipt was held for its trainer's stake); default now. */
  now?: () => number;
  /** Where one line per kept or dropped receipt goes. */
  log?: (line: string) => void;
}

/** See the module doc. */
export class ReceiptCredits {
  readonly #parts: ReceiptCreditsOptions;
  readonly #intake: TrainingProofIntake;
  readonly #claims: ClaimTakeovers;
  readonly #challenges: TrainingChallengeRun;
  /** Peers' receipts the ledger did not answer for, by receipt id (see the module doc). */
  readonly #kept: LedgerRetries<KeptReceipt>;
  /** Peers' receipts refused before their trainer's stake came here (see the module doc). */
  readonly #stakeHeld = new StakeHeldTrainingReceipts();
  /** Their file beside the ledger (`dir`); absent, memory only. */
  readonly #keptStakeHeld: KeptStakeHeldTrainingReceipts | undefined;
  /** Whether a `stakes_again` is on its way. */
  #stakesAgainScheduled = false;

  /** @param options See {@link ReceiptCreditsOptions}. */
  constructor(options: ReceiptCreditsOptions) {
    this.#parts = options;
    this.#intake = options.intake;
    this.#claims = options.claims;
    this.#challenges = options.challenges;
    this.#keptStakeHeld = options.dir === undefined
      ? undefined
      : keptStakeHeldTrainingReceipts(options.dir);
    const what = (kept: KeptReceipt) =>
      `training receipt ${trainingReceiptId(kept.body.receipt).slice(0, 12)}`;
    this.#kept = new LedgerRetries<KeptReceipt>({
      dir: options.dir,
      folder: KEPT_TRAINING_RECEIPTS_DIR,
      max: MAX_KEPT_RECEIPTS,
      maxPerShare: MAX_KEPT_RECEIPTS_PER_PEER,
      shareName: "relay",
      key: (kept) => trainingReceiptId(kept.body.receipt),
      share: (kept) => kept.origin,
      refusal: (kept) =>
        kept.origin === "local" || !verifyTrainingReceipt(kept.body.receipt).ok
          ? "not a peer's signed receipt"
          : undefined,
      duplicate: "ignored", // another copy is kept: recorded with it
      onDisk: (id, { body, origin }) => ({ hash: id, body, origin, since: 0 }),
      tryAgain: async (kept, ctx) => {
        await this.#record(kept.body, kept.origin, ctx, kept.attempts);
      },
      again: { type: "receipts_again" },
      retryMs: () => options.retryMs,
      timers: options.timers,
      label: "training validator: kept receipts",
      noun: "receipt",
      kept: (kept, error) =>
        `training validator: ${what(kept)} kept, the ledger did not answer: ${error.message}`,
      dropped: (kept, reason, error) =>
        `training validator: ${what(kept)} not recorded, the ledger did not answer (${reason}): ` +
        error.message,
      log: (line) => options.log?.(line),
    });
  }

  /**
   * Record a peer's receipt (`body`, from gossip) uncredited; new here: pass it on. Kept and
   * recorded again when the ledger did not answer (see the module doc).
   */
  record(
    body: TrainingReceiptBody,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<TrainingReceiptRecorded> {
    return this.#record(body, origin, ctx, 0);
  }

  /**
   * A peer's fraud proof `proof` is held for its receipt, unknown here
   * (`_training_proof_intake.ts`): its receipt, which it carries signed by its trainer, is
   * recorded as a peer's relayed by `origin`, against the round it names; refused for want of its
   * trainer's stake, it is held for it with `proof`'s accuser (see the module doc). Recorded, it
   * releases the proof.
   */
  async proofHeld(
    ctx: ActorContext<TrainingValidatorMessage>,
    proof: TrainingFraudProof,
    origin: string,
  ): Promise<void> {
    const { receipt } = proof;
    if (!verifyTrainingReceipt(receipt).ok) return;
    // From an accuser that pledged here only, as the intake holds it (a ledger that does not
    // answer: not now; the proof is taken again, and this asked again, when it does).
    const ask = { type: "has_staked" as const, key: proof.validator };
    const pledged = await this.#parts.ask<boolean>(ctx, ask).catch(() => false);
    if (!pledged) return;
    const terms = { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps };
    await this.#record({ receipt, terms }, origin, ctx, 0, toHex(proof.validator));
  }

  /**
   * Record again every receipt the ledger did not answer for (the validator's `receipts_again`):
   * kept again while it still does not answer; one unanswered ask per round of tries (the asks run
   * in the mailbox, and a hung ledger holds each up to its timeout).
   */
  again(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    return this.#kept.again(ctx);
  }

  /**
   * At start: the receipts kept when the validator last stopped are kept again (in memory) and
   * recorded again at the first `receipts_again`, one unanswered ask per round as any kept receipt
   * (not in the start itself: a hung ledger would hold it up to a timeout per receipt). Nothing
   * read is trusted: an entry that is not a receipt its trainer signed, with terms and a relaying
   * peer, is dropped, logged, and leaves the folder at its next write.
   */
  async readBack(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    const restored: KeptReceipt[] = [];
    for (const { body, origin } of await this.#kept.read()) {
      const parsed = TrainingReceiptMessage.schema.safeParse(body);
      const receipt = parsed.success ? (parsed.data as TrainingReceiptBody) : undefined;
      if (
        receipt === undefined || typeof origin !== "string" || origin === "local" ||
        !verifyTrainingReceipt(receipt.receipt).ok
      ) {
        this.#parts.log?.("training validator: a damaged kept receipt dropped");
        continue;
      }
      restored.push({ body: receipt, origin, attempts: 0 });
    }
    this.#kept.restore(ctx, restored);
    await this.#readBackStakeHeld(ctx);
  }

  /**
   * At start: the receipts held for their trainer's stake when the validator last stopped are
   * held again, oldest first, through the hold's bounds, and recorded at the next `stakes_again`
   * once their trainer has staked; those held past their window are forgotten, an entry that is not
   * a receipt its trainer signed, with terms, a relaying peer and the time it was held, is dropped
   * (logged), and the file then holds what is held (`_kept_stake_held_training_receipts.ts`).
   */
  async #readBackStakeHeld(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    if (this.#keptStakeHeld === undefined) return;
    const now = this.#now();
    const kept = await this.#keptStakeHeld.read().catch((error) => {
      this.#parts.log?.(`training validator: stake-held receipts not read: ${error.message}`);
      return [];
    });
    for (const entry of kept) {
      const held = stakeHeldEntry(entry, now);
      if (held === undefined) {
        this.#parts.log?.("training validator: a damaged stake-held receipt dropped");
      } else if (held.since >= now - this.#stakeHoldMs()) {
        this.#stakeHeld.hold(held);
      }
    }
    await this.keepStakeHeld();
    this.#stakesAgainLater(ctx);
  }

  /**
   * Make the file beside the ledger hold the receipts held for their trainer's stake now (at each
   * `stakes_again`, and at the validator's stop). A failed write costs only their survival of a
   * restart, not their hold: logged.
   */
  async keepStakeHeld(): Promise<void> {
    await this.#keptStakeHeld?.keep(this.#stakeHeld.all()).catch((error) =>
      this.#parts.log?.(`training validator: stake-held receipts not kept: ${error.message}`)
    );
  }

  /**
   * Make the folder hold the receipts kept now. A failed write costs only their survival of a
   * restart, not their retry: logged.
   */
  keepOnDisk(): Promise<void> {
    return this.#kept.keepOnDisk();
  }

  /**
   * {@link ReceiptCredits.record}, tried `attempts` times before without a ledger answer;
   * `accuser`: carried by that accuser's proof held for it ({@link ReceiptCredits.proofHeld}).
   */
  async #record(
    body: TrainingReceiptBody,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
    attempts: number,
    accuser?: string,
  ): Promise<TrainingReceiptRecorded> {
    let unanswered: Error | undefined;
    const answer = await this.#ledger<TrainingReceiptRecorded>(ctx, {
      type: "training_receipt",
      receipt: body.receipt,
      terms: body.terms,
      // Recorded (so a fraud proof can slash it), never paid from here: gossip alone is the
      // trainer's word about a round, and this node's own coordinator records each report
      // before its challenge and the outer step. It is paid once its delta went into a model:
      // `credit` from the coordinator, or an outcome this node audits (`creditRound`).
      credited: false,
    }).catch((error) => {
      unanswered = error as Error;
      return { recorded: false, fresh: false, refusal: (error as Error).message };
    });
    // No answer is not a refusal: kept and recorded again (see the module doc).
    if (unanswered !== undefined && this.#parts.hasLedger !== false) {
      await this.#kept.keep(ctx, { body, origin, attempts: attempts + 1 }, unanswered);
    }
    if (answer.refusal === "insufficient_stake" && (origin !== "local" || accuser !== undefined)) {
      await this.#holdForStake(ctx, {
        body,
        origin,
        ...(accuser === undefined ? {} : { accuser }),
      });
    }
    if (answer.fresh) {
      this.#parts.publish(ctx, { kind: "receipt", body }, origin);
      this.#recordedHere(body.receipt);
    }
    if (settlesHere(answer)) this.#intake.release(ctx, trainingReceiptId(body.receipt));
    return answer;
  }

  /**
   * Hold a receipt refused for want of its trainer's stake when that trainer never staked here:
   * its pledge may not have come yet (see the module doc). Recorded again once it has
   * ({@link ReceiptCredits.stakesAgain}). One a proof carried (`accuser`), or a credit
   * (`credited`), in places of their own.
   */
  async #holdForStake(
    ctx: ActorContext<TrainingValidatorMessage>,
    held: Omit<StakeHeldTrainingReceipt, "since">,
  ): Promise<void> {
    const staked = await this.#parts.ask<boolean>(ctx, {
      type: "has_staked",
      key: held.body.receipt.trainer,
    }).catch(() => true); // no answer: not held (the refusal stands, as before)
    if (staked) return;
    if (!this.#stakeHeld.hold({ ...held, since: this.#now() })) {
      this.#parts.log?.(
        `training validator: training receipt ${
          trainingReceiptId(held.body.receipt).slice(0, 12)
        } not held for its trainer's stake (the hold is full)`,
      );
    }
    this.#stakesAgainLater(ctx);
  }

  /**
   * Record again the receipts held for their trainer's stake whose trainer has staked here since
   * (a trainer's pledge lets through its receipts that came first, in order; a credit is recorded
   * credited); those held past the ledger's challenge window (`stakeHoldMs`) are forgotten; then
   * their file is kept. The validator's `stakes_again`.
   */
  async stakesAgain(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    this.#stakesAgainScheduled = false;
    this.#stakeHeld.expire(this.#now() - this.#stakeHoldMs());
    for (const trainer of this.#stakeHeld.trainers()) {
      if (ctx.signal.aborted) return;
      const staked = await this.#parts.ask<boolean>(ctx, { type: "has_staked", key: trainer })
        .catch(() => false);
      if (!staked) continue;
      for (const held of this.#stakeHeld.take(toHex(trainer))) await this.#retake(ctx, held);
    }
    await this.keepStakeHeld();
    this.#stakesAgainLater(ctx);
  }

  /** Record a receipt held for its trainer's stake again, now that its trainer has staked. */
  async #retake(
    ctx: ActorContext<TrainingValidatorMessage>,
    held: StakeHeldTrainingReceipt,
  ): Promise<void> {
    if (!held.credited) {
      await this.#record(held.body, held.origin, ctx, 0, held.accuser);
      return;
    }
    // A credit the ledger did not answer is held again as it was: asked at the next recheck.
    if (!await this.#creditOne(ctx, held.body.receipt, held.body.terms)) this.#stakeHeld.hold(held);
  }

  /** Ask the ledger again after the recheck wait, while receipts wait for their trainer's stake. */
  #stakesAgainLater(ctx: ActorContext<TrainingValidatorMessage>): void {
    if (this.#stakesAgainScheduled || this.#stakeHeld.size === 0) return;
    this.#stakesAgainScheduled = true;
    const wait = this.#parts.stakeRecheckMs ?? PLEDGE_RECHECK_MS;
    // Told, not run here: the held receipts change in `receive` (`stakes_again`).
    void sleep(wait, ctx.signal, this.#parts.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "stakes_again" });
    }).catch(() => {}); // this actor stopped meanwhile: the held receipts go with it
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
   * Record `receipt` credited (a refusal — no stake, convicted — earns it nothing here), but one
   * refused before its trainer's pledge is held for it and recorded credited once it comes (see
   * the module doc).
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
    if (answer.refusal === "insufficient_stake") {
      await this.#holdForStake(ctx, { body: { receipt, terms }, origin: "local", credited: true });
    }
    if (answer.fresh) this.#recordedHere(receipt);
    if (settlesHere(answer)) this.#intake.release(ctx, trainingReceiptId(receipt));
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
    message: TrainingReceiptLedgerMessage | HasStakedMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }

  /** The validator's clock, ms. */
  #now(): number {
    return (this.#parts.now ?? Date.now)();
  }

  /** How long a receipt is held for its trainer's stake, ms. */
  #stakeHoldMs(): number {
    return this.#parts.stakeHoldMs ?? DEFAULT_STAKE_HOLD_MS;
  }
}

/**
 * `entry`, read back from the stake-held file, as a held receipt: a receipt its trainer signed,
 * with its round's terms, a relaying peer and when it was held (not after `now`), or undefined.
 */
function stakeHeldEntry(entry: unknown, now: number): StakeHeldTrainingReceipt | undefined {
  if (typeof entry !== "object" || entry === null) return undefined;
  const { body, origin, since, accuser, credited } = entry as Record<string, unknown>;
  const parsed = TrainingReceiptMessage.schema.safeParse(body);
  if (!parsed.success || !verifyTrainingReceipt(parsed.data.receipt).ok) return undefined;
  if (typeof origin !== "string" || typeof since !== "number" || !Number.isFinite(since)) {
    return undefined;
  }
  if (accuser !== undefined && typeof accuser !== "string") return undefined;
  if (credited !== undefined && credited !== true) return undefined;
  return {
    body: parsed.data as TrainingReceiptBody,
    origin,
    since: Math.min(since, now),
    ...(accuser === undefined ? {} : { accuser }),
    ...(credited ? { credited } : {}),
  };
}

/**
 * Whether a fraud proof about a receipt the ledger answered `answer` can settle here now, so the
 * proofs held for it are taken up again (the intake asks the ledger again): it is recorded, or it
 * was the trainer's equivocation, and such a proof settles against the receipt recorded for the
 * round (`Ledger.trainingFraudSubject`). Review s63: released only when recorded, a proof about
 * the contradicting receipt was held until it lapsed. Not on `round_already_recorded` (the slot
 * slashed before): a proof about such a receipt finds its subject when it comes, and one held
 * for it would be held again, its receipt recorded again, without end.
 */
function settlesHere(answer: TrainingReceiptRecorded): boolean {
  return answer.recorded || answer.refusal === "equivocation";
}
