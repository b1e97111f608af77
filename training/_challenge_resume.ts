/**
 * What a TrainingValidator's (`training_validator.ts`) start reads of the challenges the previous
 * incarnation left in the ledger: where each receipt stands whose own fraud proof or ending was
 * kept on disk (`ownProofsDir`), then the challenges held open there. A kept proof is told to the
 * validator again (`fraud_proof`, origin `local`), a kept ending is ended with its verdict
 * (`_challenge_endings.ts`), a kept open challenge is asked of its trainer again
 * (`_open_challenge_record.ts`, `TrainingChallengeRun.resume`), and every other challenge left
 * open ends undecided (`validator_restarted`). A read the ledger does not answer is read again:
 * the validator's `resume_again` message, told from here after a wait.
 *
 * Owns only what is left to read ({@link ChallengeResume.begin}); the endings, the own proofs on
 * disk and the challenge run (whose opens made meanwhile are this incarnation's own) are the
 * validator's, handed in, and {@link ChallengeResume.read} runs only inside the validator's
 * `preStart` and `receive`. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import type { ReceiptStatus } from "../proof/ledger_state.ts";
import type {
  ReceiptStatusMessage,
  TrainingChallengedMessage,
} from "../actors/validator_messages.ts";
import type { ReceiptFiles } from "../actors/_receipt_files.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import {
  type ChallengeEndings,
  END_RETRY_MS,
  MAX_END_ATTEMPTS,
  MAX_END_RETRY_MS,
} from "./_challenge_endings.ts";
import type { TrainingChallengeRun } from "./_training_challenge_run.ts";
import { openChallengeOf } from "./_open_challenge_record.ts";
import type { TrainingValidatorMessage, TrainingValidatorOptions } from "./training_validator.ts";

/** The ledger questions of the resume (the ValidatorActor's messages). */
type LedgerTrainingMessage = ReceiptStatusMessage | TrainingChallengedMessage;

/** What {@link ChallengeResume} needs from the validator. */
export interface ChallengeResumeOptions {
  /** The validator's options, read at each use (`identity`, `endRetryMs`, `timers`). */
  settings: Pick<TrainingValidatorOptions, "identity" | "endRetryMs" | "timers">;
  /** This validator's own fraud proofs until they settle, on disk (`ownProofsDir`). */
  ownProofs: ReceiptFiles | undefined;
  /** The challenges the validator holds in its ledger, until they end. */
  endings: ChallengeEndings;
  /** The challenges the validator runs: which ones it opened since its start. */
  challenges: TrainingChallengeRun;
  /** Ask the ValidatorActor holding the ledger; rejects when there is none, or no answer. */
  ask<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: LedgerTrainingMessage,
  ): Promise<R>;
  /** Where one line per read left to later goes. */
  log(line: string): void;
}

/** See the module doc. */
export class ChallengeResume {
  readonly #options: ChallengeResumeOptions["settings"];
  readonly #parts: ChallengeResumeOptions;
  readonly #ownProofs: ReceiptFiles | undefined;
  readonly #endings: ChallengeEndings;
  readonly #challenges: TrainingChallengeRun;
  /**
   * What this start still has to read of the challenges the previous incarnation left in the
   * ledger, until the ledger answered (`read`): the own proofs and endings kept on disk
   * (`kept`), those whose receipt's standing is not read yet (`unread`), whether the open
   * challenges are (`openUnread`), and the rounds of reads made. Undefined once read (or given up).
   */
  #resuming:
    | {
      kept: Map<string, unknown>;
      unread: Map<string, unknown>;
      openUnread: boolean;
      attempts: number;
    }
    | undefined;

  /** @param options See {@link ChallengeResumeOptions}. */
  constructor(options: ChallengeResumeOptions) {
    this.#options = options.settings;
    this.#parts = options;
    this.#ownProofs = options.ownProofs;
    this.#endings = options.endings;
    this.#challenges = options.challenges;
  }

  /**
   * Start reading: `kept` holds the own proofs and endings kept on disk, by receipt id; the
   * challenges held open in the ledger are read too ({@link ChallengeResume.read}).
   */
  begin(kept: Map<string, unknown>): void {
    this.#resuming = { kept, unread: new Map(kept), openUnread: true, attempts: 0 };
  }

  /**
   * Read what the previous incarnation left in the ledger (see `TrainingValidator.preStart`):
   * where each receipt stands whose own proof or ending was kept, then the challenges held open
   * there. A read the ledger does not answer (the ValidatorActor stopped, restarting, or busy past
   * the ask's deadline) is not an answer: before, it read as "left to the next start" and "none
   * open", and a validator restarted alone left those receipts `challenged`, held by nobody, until
   * the node's next start (a convicted lazy trainer neither slashed nor paid here, its stake
   * locked; the trainer of a lost challenge locked past its window). Now it is read again
   * (`resume_again`) after `endRetryMs` ({@link END_RETRY_MS}), doubling, at most
   * `MAX_END_ATTEMPTS` rounds, one unanswered ask per round; past them, left to the next start.
   */
  async read(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    const resuming = this.#resuming;
    if (resuming === undefined) return;
    resuming.attempts++;
    let unanswered: Error | undefined;
    for (const [id, value] of [...resuming.unread]) {
      if (ctx.signal.aborted) return;
      let record: { status: ReceiptStatus } | undefined;
      try {
        record = await this.#ledger<{ status: ReceiptStatus } | undefined>(ctx, {
          type: "receipt_status",
          receiptId: id,
        });
      } catch (error) {
        // No answer: not "no longer challenged" (the ValidatorActor leaves a kept receipt
        // `challenged` at its own start). Read again below.
        unanswered = error as Error;
        break;
      }
      resuming.unread.delete(id);
      if (record?.status !== "challenged") {
        await this.#ownProofs!.remove(id);
        continue;
      }
      // Ended before the stop, the ledger not told: told now, with the verdict it had.
      if (await this.#endings.resumeKept(ctx, id, value)) continue;
      this.#endings.hold(id);
      // Open when the stop came: the trainer is asked the same challenge again, off the mailbox
      // (`TrainingChallengeRun.resume`); before (review s80), it ended undecided here.
      const open = openChallengeOf(value, this.#options.identity.publicKey);
      if (open !== undefined && trainingReceiptId(open.report.receipt) === id) {
        this.#challenges.resume(open, ctx).catch(() => {}); // ends the challenge itself
        continue;
      }
      const body = value as TrainingFraudProofBody | undefined;
      const proof = body?.proof;
      const mine = proof?.validator instanceof Uint8Array &&
        bytesEqual(proof.validator, this.#options.identity.publicKey);
      let ours = false;
      try {
        ours = mine && trainingReceiptId(proof!.receipt) === id;
      } catch {
        // not a receipt
      }
      if (!ours) await this.#endings.end(ctx, id, "undecided", "validator_restarted");
      else ctx.self.tell({ type: "fraud_proof", body: body!, origin: "local" }).catch(() => {});
    }
    // Restarted alone, the ledger running on: the challenges this validator had open without a
    // proof or an ending kept lost their material with it, and end undecided (the node's own
    // start ends them in the ValidatorActor's, before this one). Those this incarnation opened
    // since its start are its own.
    let open: string[] = [];
    if (unanswered === undefined && resuming.openUnread) {
      try {
        open = await this.#ledger<string[]>(ctx, { type: "training_challenged" });
        resuming.openUnread = false;
      } catch (error) {
        unanswered = error as Error;
      }
    }
    for (const id of open) {
      if (ctx.signal.aborted) return;
      if (this.#endings.holds(id) || resuming.kept.has(id)) continue;
      if (this.#challenges.openedHere(id)) continue;
      this.#endings.hold(id);
      await this.#endings.end(ctx, id, "undecided", "validator_restarted");
    }
    if (unanswered === undefined || resuming.attempts >= MAX_END_ATTEMPTS) {
      this.#resuming = undefined;
      this.#challenges.recordOpens(false);
      if (unanswered !== undefined) {
        this.#log(
          `training validator: the challenges left open before this start left to the next start: ${unanswered.message}`,
        );
      }
      return;
    }
    this.#log(
      `training validator: the challenges left open before this start not read, read again: ${unanswered.message}`,
    );
    const first = this.#options.endRetryMs ?? END_RETRY_MS;
    const wait = Math.min(MAX_END_RETRY_MS, first * 2 ** (resuming.attempts - 1));
    // Told, not run here: what the reads change, changes in `receive` (`resume_again`).
    void sleep(wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "resume_again" });
    }).catch(() => {}); // stopped meanwhile: the next start reads them
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: LedgerTrainingMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }

  #log(line: string): void {
    this.#parts.log(line);
  }
}
