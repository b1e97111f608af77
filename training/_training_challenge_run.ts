/**
 * The challenge run of a TrainingValidator (`training_validator.ts`): the coin that decides
 * whether a report is challenged, the hold of its receipt in the ledger, the download of the
 * trainer's sealed openings within the challenge's deadline, the re-run of the opened steps and
 * what that verdict leaves: the receipt's challenge ended `passed` or `undecided`
 * (`_challenge_endings.ts`), or this validator's own fraud proof kept on disk and told to the
 * validator (`fraud_proof`, origin `local`), which checks and settles it as a peer's. A refusal,
 * silence or junk from the trainer waits for the deadline and ends in an `opening_missing` proof.
 *
 * A challenge comes from the validator's `challenge` message (the coordinator's reports) or from
 * an outcome audited there ({@link TrainingChallengeRun.afterRound}: each trainer of a finished
 * round, on this node's own coin and connection). It runs outside the validator's mailbox, for
 * up to the challenge's deadline and a re-run, so one trainer does not hold the mailbox; as it
 * did inside the validator, it holds and ends the validator's challenges (`ChallengeEndings`,
 * given) and saves its own fraud proofs (`ReceiptFiles`, given) from there, outside the mailbox.
 * The only state it owns is its counters (`stats`). Everything else it needs from the validator
 * is {@link TrainingChallengeRunOptions}: the ledger asks (the open, where a receipt stands),
 * whether a ledger is on the node, the connection to a trainer, the round models, the log, and
 * the context it tells its fraud proofs to. Deadlines are on the wall clock (`Date.now`), the one
 * the challenge is stamped with, not the validator's `now` (the ledger's).
 *
 * @example
 * ```ts ignore
 * const run = new TrainingChallengeRun({ identity, models, endings, ask, hasLedger, … });
 * const outcome = await run.challenge(request, ctx); // { challenged: false } off the coin
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { decodeCheckedCbor } from "../protocols/cbor_guard.ts";
import {
  ChallengeMessage,
  OpeningPartMessage,
  type OutcomeBody,
  type OutcomeReport,
  type TrainingFraudProofBody,
} from "../protocols/training_messages.ts";
import type { ReceiptStatus } from "../proof/ledger_state.ts";
import type {
  ReceiptStatusMessage,
  TrainingChallengeLedgerMessage,
} from "../actors/validator_messages.ts";
import type { ReceiptFiles } from "../actors/_receipt_files.ts";
import type { RoundModels } from "./round_models.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import {
  drawTrainingChallenge,
  type TrainingChallenge,
  trainingChallengeId,
} from "./training_challenge.ts";
import type { SealedStepOpenings } from "./step_opening.ts";
import type { ChallengeEndings } from "./_challenge_endings.ts";
import type {
  ChallengeOutcome,
  ChallengeRequest,
  TrainingValidatorMessage,
  TrainingValidatorOptions,
  TrainingValidatorStats,
} from "./training_validator.ts";

/** Past a challenge's deadline by this much before "no answer" is claimed (clock rounding). */
const DEADLINE_MARGIN_MS = 50;

/** The validator's context: its signal stops a run, and the run tells it its fraud proofs. */
type Context = ActorContext<TrainingValidatorMessage>;

/** The ledger questions of the challenge run (the ValidatorActor's messages). */
export type ChallengeRunLedgerMessage = TrainingChallengeLedgerMessage | ReceiptStatusMessage;

/** The counters of the validator's stats that are the challenge run's. */
export type ChallengeRunStats = Pick<
  TrainingValidatorStats,
  "challenged" | "passed" | "frauds" | "faults"
>;

/** Options of {@link TrainingChallengeRun}: what it needs from the validator. */
export interface TrainingChallengeRunOptions {
  /** The validator's key: signs challenges (and, through the check, fraud proofs). */
  identity: Identity;
  /** Round models: the start model to re-run steps from, a finished round's deltas. */
  models: RoundModels;
  /** Chance of challenging a report (the validator's option, its default applied). */
  challengeProbability: number;
  /** Uniform draws in [0, 1) for the challenge coin (the validator's option, default applied). */
  random: () => number;
  /** Time a trainer has to open its steps, ms (the validator's option, default applied). */
  openingDeadlineMs: number;
  /** The step check (re-runs opened steps; the validator's option, default applied). */
  check: NonNullable<TrainingValidatorOptions["check"]>;
  /** The validator's challenges held in its ledger: a run holds its receipt and ends it. */
  endings: ChallengeEndings;
  /** The validator's own fraud proofs on disk until they settle (`ownProofsDir`); absent: not kept. */
  ownProofs?: ReceiptFiles;
  /** Ask the ValidatorActor holding the ledger; rejects when it does not answer (or is none). */
  ask<R>(ctx: Context, message: ChallengeRunLedgerMessage): Promise<R>;
  /** Whether a ValidatorActor holding the ledger is on this node now. */
  hasLedger(ctx: Context): boolean;
  /** This node's connection to a trainer over `training/1`; none: not challenged from here. */
  connectionTo(ctx: Context, trainer: Uint8Array): Promise<Connection | undefined>;
  /** Where one line per challenge goes. */
  log(line: string): void;
}

/** See the module doc. */
export class TrainingChallengeRun {
  readonly #options: TrainingChallengeRunOptions;
  readonly #stats: ChallengeRunStats = { challenged: 0, passed: 0, frauds: 0, faults: 0 };

  /** @param options See {@link TrainingChallengeRunOptions}. */
  constructor(options: TrainingChallengeRunOptions) {
    this.#options = options;
  }

  /** This run's counters, for the validator's `stats`. */
  stats(): ChallengeRunStats {
    return { ...this.#stats };
  }

  /** Draw, ask the trainer, check; runs outside the validator's mailbox. */
  async challenge(request: ChallengeRequest, ctx: Context): Promise<ChallengeOutcome> {
    if (!(this.#options.random() < this.#options.challengeProbability)) {
      return { challenged: false };
    }
    const { receipt } = request.report;
    const deadlineMs = this.#options.openingDeadlineMs;
    const challenge = drawTrainingChallenge(receipt, this.#options.identity, { deadlineMs });
    // Held `challenged` in the ledger while it runs (a credited receipt, from an audited round,
    // is not paid meanwhile, nor after a stop mid-challenge); ended below, or by the settlement
    // of this challenge's fraud proof.
    const id = trainingReceiptId(receipt);
    await this.#open(ctx, id);
    this.#stats.challenged++;
    try {
      return await this.#run(request, challenge, ctx);
    } catch (error) {
      await this.#options.endings.end(ctx, id, "undecided", "challenge_failed");
      throw error;
    }
  }

  /**
   * Challenge one trainer of a finished round on this validator's own coin, over this node's
   * connection to it (none: not challenged from here), with the delta the audit fetched (or,
   * when the round could not be audited here, fetched now). A failure is a fraud proof like the
   * coordinator's: settled here, gossiped, slashing in every ledger.
   */
  async afterRound(
    body: OutcomeBody,
    report: OutcomeReport,
    fetched: Uint8Array | undefined,
    ctx: Context,
  ): Promise<void> {
    const { receipt } = report;
    if (bytesEqual(receipt.trainer, this.#options.identity.publicKey)) return; // not our own
    const connection = await this.#options.connectionTo(ctx, receipt.trainer);
    if (connection === undefined) return;
    try {
      const delta = fetched ?? await this.#options.models.getFile(report.deltaFile);
      await this.challenge({
        type: "challenge",
        report: { receipt, delta },
        connection,
        terms: { round: body.round, startModel: body.startModel, steps: receipt.steps },
        arch: body.arch,
        startFile: body.startFile,
        shardSize: receipt.shardSize,
        shardRoot: receipt.shardRoot,
      }, ctx);
    } catch (error) {
      this.#options.log(
        `training validator: trainer ${toHex(receipt.trainer).slice(0, 16)} not challenged ` +
          `after round ${body.round}: ${(error as Error).message}`,
      );
    }
  }

  /** The drawn challenge's work (see {@link TrainingChallengeRun.challenge}). */
  async #run(
    request: ChallengeRequest,
    challenge: TrainingChallenge,
    ctx: Context,
  ): Promise<ChallengeOutcome> {
    const { receipt, delta } = request.report;
    const id = trainingReceiptId(receipt);
    const trainer = toHex(receipt.trainer).slice(0, 16);
    let sealed: SealedStepOpenings | undefined;
    try {
      sealed = await fetchOpenings(request.connection, challenge, ctx.signal);
    } catch (error) {
      // Refused, silent, or gone: the opening is missing. Its proof (the signed challenge with
      // no answer) holds only once the challenge's deadline has passed: wait for it.
      const why = (error as { code?: string }).code ?? (error as Error).message;
      this.#options.log(`training validator: trainer ${trainer} did not open its steps (${why})`);
      sealed = undefined;
      await sleep(challenge.deadline - Date.now() + DEADLINE_MARGIN_MS, ctx.signal);
    }
    const start = await this.#options.models.get(
      request.terms.startModel,
      request.arch,
      request.startFile,
    );
    const checkAnswer = (answer: typeof sealed) =>
      this.#options.check(receipt, challenge, answer, {
        validator: this.#options.identity,
        arch: request.arch,
        startWeights: start.weights,
        delta,
        shardSize: request.shardSize,
        shardRoot: request.shardRoot,
      });
    let check = await checkAnswer(sealed);
    const ownConnection = bytesEqual(
      request.connection.peerKey ?? new Uint8Array(0),
      receipt.trainer,
    );
    if (
      !check.ok &&
      (check.reason === "opening_unopenable" ||
        (check.reason === "opening_unsigned" && ownConnection))
    ) {
      // An answer that is not the trainer's signed answer is "someone else's": ignored, keep
      // waiting. But one that came over the trainer's own authenticated connection (it answers
      // each part request once: nothing else will come), or one the trainer signed that opens
      // nothing, is no answer: past the deadline, with its `opening_missing` proof. A proof
      // issued before the deadline would be refuted by every checker, and a lazy trainer
      // cannot send junk for free.
      this.#options.log(
        `training validator: trainer ${trainer} answered with an opening that is ${
          check.reason === "opening_unsigned" ? "unsigned" : "signed but cannot be opened"
        }; waiting for the deadline`,
      );
      await sleep(challenge.deadline - Date.now() + DEADLINE_MARGIN_MS, ctx.signal);
      check = await checkAnswer(undefined);
    }
    const endings = this.#options.endings;
    if (check.ok) {
      await endings.end(ctx, id, "passed");
      this.#stats.passed++;
      this.#options.log(
        `training validator: trainer ${trainer}'s steps ${
          challenge.steps.join(",")
        } re-ran within tolerance`,
      );
      return { challenged: true, ok: true };
    }
    this.#options.log(
      `training validator: trainer ${trainer} failed its challenge (${check.reason})`,
    );
    if (check.reason === "opening_missing") this.#stats.faults++;
    if (check.proof !== undefined) {
      this.#stats.frauds++;
      const body: TrainingFraudProofBody = {
        proof: check.proof,
        arch: request.arch,
        ...(request.startFile === undefined ? {} : { startFile: request.startFile }),
      };
      // Kept until it settles: a stop before that resumes it at the next start.
      if (endings.holds(id)) await this.#options.ownProofs?.save(id, body);
      // Settled by the validator and spread like a peer's: the same path checks it before it
      // slashes.
      await ctx.self.tell({ type: "fraud_proof", body, origin: "local" });
    } else await endings.end(ctx, id, "undecided", `training_${check.reason}`);
    return { challenged: true, ok: false, reason: check.reason, proof: check.proof };
  }

  /**
   * Ask the ledger to hold receipt `id` `challenged` while this validator challenges it (see
   * `TrainingChallengeLedgerMessage`): held from then, until the challenge ends.
   */
  async #open(ctx: Context, id: string): Promise<void> {
    // Not held (not recorded here, past its window, no ledger): the challenge runs all the same.
    const changed = await this.#options.ask<boolean>(ctx, {
      type: "training_challenge",
      receiptId: id,
      step: "open",
    }).catch(() => undefined);
    // No answer (a timeout, the ValidatorActor busy or restarting) is not "not held": a failed
    // ask does not take its message back, and the ledger may move the receipt to `challenged`
    // after the ask gave up. Not held, it stayed `challenged` with nobody holding it: a trainer
    // whose challenge passed was not paid when its window closed, and the next start ended it
    // unresolved. So the ledger is asked where the receipt stands, after the open in its
    // mailbox's order: held if `challenged`, or if that ask fails too (its ending is then
    // asked, and a ledger that never opened it answers false to a pass). Held on the failed ask
    // alone, a refused open (its window closed, not finalized yet) let an undecided ending leave
    // the never-challenged pending receipt unresolved (`leaveUnresolved` takes `pending` ones):
    // a trainer the answered refusal pays went unpaid here.
    const endings = this.#options.endings;
    if (changed === true) endings.hold(id);
    if (changed !== undefined) return;
    if (!this.#options.hasLedger(ctx)) return;
    const unanswered = Symbol("unanswered");
    const record = await this.#options.ask<{ status: ReceiptStatus } | undefined>(ctx, {
      type: "receipt_status",
      receiptId: id,
    }).catch(() => unanswered);
    if (record === unanswered || (record as { status?: string })?.status === "challenged") {
      endings.hold(id);
    }
  }
}

/**
 * Ask the trainer to answer `challenge` and download the sealed answer part by part, within
 * the challenge's deadline. Throws when the trainer refuses, goes, or runs past the deadline,
 * or when what arrives is not what it announced.
 */
async function fetchOpenings(
  connection: Connection,
  challenge: TrainingChallenge,
  signal: AbortSignal,
): Promise<SealedStepOpenings> {
  const left = () => Math.max(1, challenge.deadline - Date.now());
  const header = await connection.request(ChallengeMessage, { challenge }, {
    timeoutMs: left(),
    signal,
  });
  const challengeId = trainingChallengeId(challenge);
  const bytes = new Uint8Array(header.size);
  let at = 0;
  for (let index = 0; index < header.parts; index++) {
    const part = await connection.request(OpeningPartMessage, { challengeId, index }, {
      timeoutMs: left(),
      signal,
    });
    if (at + part.bytes.length > bytes.length) throw new Error("answer longer than announced");
    bytes.set(part.bytes, at);
    at += part.bytes.length;
  }
  if (at !== bytes.length || sha256Hex(bytes) !== header.sha256) {
    throw new Error("answer does not match its announced hash");
  }
  // Parsed by the check itself: a malformed answer is one that cannot be opened. The trainer
  // wrote these bytes: no cbor-x extension may turn them into more than they hold.
  return decodeCheckedCbor(bytes) as SealedStepOpenings;
}
