/**
 * The challenge run of a TrainingValidator (`training_validator.ts`): the coin that decides
 * whether a report is challenged, the hold of its receipt in the ledger, the download of the
 * trainer's sealed openings within the challenge's deadline (`_challenge_answer.ts`), the re-run
 * of the opened steps and what that verdict leaves: the receipt's challenge ended `passed` or
 * `undecided` (`_challenge_endings.ts`), or this validator's own fraud proof kept on disk and told
 * to the validator (`fraud_proof`, origin `local`), which checks and settles it as a peer's. A
 * refusal, silence or junk from the trainer waits for the deadline and ends in an
 * `opening_missing` proof.
 *
 * A challenge comes from the validator's `challenge` message (the coordinator's reports) or from
 * an outcome audited there ({@link TrainingChallengeRun.afterRound}: each trainer of a finished
 * round, on this node's own coin and connection, the trainer dialled by its key when none is
 * open). A drawn trainer not reached within the dial (`#reconnect`: its connection, a dial, and,
 * when this node cannot dial it, a look every second for it to join again) is not challenged from
 * here, and its receipt ends `undecided` here ({@link UNREACHED_REASON}: unpaid, not slashed),
 * but only when a dial was made and this node's own network is known to work (`#unreached`);
 * otherwise the receipt is left pending. A takeover of a peer's `opening_missing` claim
 * ({@link TrainingChallengeRun.takeover}, decided in `_claim_takeovers.ts`) is a challenge made
 * without the coin; its last opened step is kept until the receipt's delta comes, and checked
 * against it then. No receipt is challenged twice (`_challenged_receipts.ts`): marked there once
 * a challenge goes out, and meanwhile (its dial) held off here. It runs outside the validator's
 * mailbox, for up to the challenge's deadline and a re-run, so one trainer does not hold the
 * mailbox; as it did inside the validator, it holds and ends the validator's challenges
 * (`ChallengeEndings`, given) and saves its own fraud proofs (`ReceiptFiles`, given) from there,
 * outside the mailbox. The only state it owns is its counters (`stats`) and the receipts it is
 * dialling. Everything else it needs from the validator is {@link TrainingChallengeRunOptions}:
 * the ledger asks (the open, where a receipt stands), whether a ledger is on the node, the
 * connection to a trainer, the round models, the log, and the context it tells its fraud proofs
 * to. Deadlines are on the wall clock (`Date.now`), the one
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
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type {
  OutcomeBody,
  OutcomeReport,
  TrainingFraudProofBody,
} from "../protocols/training_messages.ts";
import type { ReceiptStatus } from "../proof/ledger_state.ts";
import type {
  ReceiptStatusMessage,
  TrainingChallengeLedgerMessage,
} from "../actors/validator_messages.ts";
import type { ReceiptFiles } from "../actors/_receipt_files.ts";
import type { RoundModels } from "./round_models.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "./training_receipt.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "../proof/economics.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
  type TrainingChallenge,
} from "./training_challenge.ts";
import { MAX_OPENING_WINDOW_MS, openingWindowMs } from "./opening_window.ts";
import type { SealedStepOpenings, StepOpening } from "./step_opening.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { deltaMismatch } from "./step_verify.ts";
import type { CheckStepOpeningsOptions, StepOpeningsCheck } from "./step_check.ts";
import type { StepRerun } from "./step_rerun.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
  type TrainingFraudProof,
} from "./training_fraud_proof.ts";
import type { ChallengeEndings } from "./_challenge_endings.ts";
import type { ChallengedReceipts } from "./_challenged_receipts.ts";
import { KeptLastSteps } from "./_kept_last_steps.ts";
import { checkedAnswer } from "./_challenge_answer.ts";
import { type OpenChallenge, openChallengeRecord } from "./_open_challenge_record.ts";
import { sleep } from "../actors/_common.ts";
import type {
  ChallengeOutcome,
  ChallengeRequest,
  TrainingValidatorMessage,
  TrainingValidatorOptions,
  TrainingValidatorStats,
} from "./training_validator.ts";

/** The validator's context: its signal stops a run, and the run tells it its fraud proofs. */
type Context = ActorContext<TrainingValidatorMessage>;

/** The ledger questions of the challenge run (the ValidatorActor's messages). */
export type ChallengeRunLedgerMessage = TrainingChallengeLedgerMessage | ReceiptStatusMessage;

/** The counters of the validator's stats that are the challenge run's. */
export type ChallengeRunStats = Pick<
  TrainingValidatorStats,
  "challenged" | "passed" | "frauds" | "faults" | "takeovers" | "falseClaims"
>;

/** A takeover of a peer's `opening_missing` claim (see {@link TrainingChallengeRun.takeover}). */
export interface TakeoverRequest {
  /** The receipt the claim is about. */
  receipt: TrainingReceipt;
  /** Its start model's architecture (checked against the start model by the claim's check). */
  arch: GptArchitecture;
  /**
   * The receipt stands `unpaid` in this ledger (drawn here before, its trainer not reached:
   * {@link UNREACHED_REASON}): not held for the takeover, which the ledger would refuse, and
   * nothing to hold (it is not paid); a failure convicts as on a held one (a proof settles an
   * unpaid receipt inside its window), a pass leaves it unpaid.
   */
  unpaid?: boolean;
  /** Storage file id of the start model, if known (for this validator's own fraud proof). */
  startFile?: string;
  /**
   * This node's connection to the trainer; absent: none was open, and the trainer is dialled by
   * its key first (see {@link TrainingChallengeRunOptions.reach}).
   */
  connection?: Connection;
  /** When the receipt's challenge window closes in this ledger (ms, the ledger's clock). */
  pendingUntil: number;
}

/**
 * How a takeover ended: the trainer served its answer (the claim was false here), did not (this
 * validator's own fraud proof is told to the validator), or nothing was decided (cleared: the
 * claim is not taken here, and a challenge held for it ends `undecided`).
 */
export type TakeoverOutcome = "served" | "convicted" | "cleared";

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
  /**
   * A fixed time a trainer has to open its steps, ms (the validator's option); absent: each
   * challenge's window grows with the steps it asks re-run (`openingWindowMs`), up to
   * `MAX_OPENING_WINDOW_MS` (`opening_window.ts`).
   */
  openingDeadlineMs?: number;
  /** The step check (re-runs opened steps; the validator's option, default applied). */
  check: NonNullable<TrainingValidatorOptions["check"]>;
  /**
   * Where the step check re-runs each opened step (the validator's worker, `step_rerun.ts`),
   * handed to it; absent: the check's default, this thread.
   */
  rerun?: StepRerun;
  /** The validator's challenges held in its ledger: a run holds its receipt and ends it. */
  endings: ChallengeEndings;
  /** The validator's own fraud proofs on disk until they settle (`ownProofsDir`); absent: not kept. */
  ownProofs?: ReceiptFiles;
  /**
   * Where takeovers' last opened steps are kept on disk until their delta comes
   * (`_kept_last_steps.ts`: `<ownProofsDir>/takeover-last-steps`); absent: memory only, the
   * latest 8, lost with a stop.
   */
  lastStepsDir?: string;
  /** The receipts this validator challenged: never challenged twice (`_challenged_receipts.ts`). */
  challenged: ChallengedReceipts;
  /** The ledger's clock (ms): how long a challenged receipt is remembered. */
  now: () => number;
  /**
   * The economics the ledger runs with (the validator's, defaults merged): a receipt challenged
   * here whose window the ledger did not say is remembered its `challengeWindowMs` (and the
   * opening deadline); default `DEFAULT_ECONOMICS` (a run outside a validator: tests).
   */
  economics?: EconomicParams;
  /** Ask the ValidatorActor holding the ledger; rejects when it does not answer (or is none). */
  ask<R>(ctx: Context, message: ChallengeRunLedgerMessage): Promise<R>;
  /** Whether a ValidatorActor holding the ledger is on this node now. */
  hasLedger(ctx: Context): boolean;
  /** This node's connection to a trainer over `training/1`; none: not challenged from here. */
  connectionTo(ctx: Context, trainer: Uint8Array): Promise<Connection | undefined>;
  /**
   * Dial a trainer this node has no connection to, by its key, for up to `forMs` on behalf of
   * `holder` (the receipt's id), and answer the connection once it is up; undefined when none
   * came up in that time (or this node has no swarm). A takeover dials, and so does a round's
   * outcome for a trainer its coin drew: before (review s52) neither reached a trainer this node
   * was not connected to, so one that kept its connections to a few validators was challenged,
   * and slashed for withholding, in those ledgers alone.
   */
  reach(
    ctx: Context,
    trainer: Uint8Array,
    forMs: number,
    holder: string,
    dialled?: () => void,
  ): Promise<Connection | undefined>;
  /**
   * Whether this node's own network is known to work since `since` (ms, the wall clock): a live
   * peer connection, or a dial that brought a connection up since then. Without it (absent, or
   * false) a drawn trainer not reached is not held against it: its receipt is left pending
   * (review s81 vtrn2 F3: a validator whose network was down withheld pay from every trainer its
   * coin drew).
   */
  networkWorks?(ctx: Context, since: number): Promise<boolean>;
  /** Where one line per challenge goes. */
  log(line: string): void;
}

/**
 * How often a challenge whose connection was lost looks for the trainer's new one, when this node
 * cannot dial it: a trainer that joins again is asked within a second of it, and one poll a
 * second of a map lookup costs nothing beside a challenge.
 */
export const RECONNECT_POLL_MS = 1_000;

/**
 * Why a receipt drawn by this node's own coin ended `undecided`: its trainer was not reached
 * within the dial, a dial was made, and this node's own network works (`#unreached`). Paid, a lazy
 * trainer that refused every connection but its coordinator's was checked by that coordinator's
 * coin alone and paid in every other ledger (review s81 train F1); slashed, an honest trainer
 * would pay for this node's own reach, which a dial by key cannot tell from the trainer's absence.
 * So unpaid here and not slashed, as for a takeover whose re-run could not be made, and as
 * inference's `worker_unreachable`. A takeover not reached never ends a receipt so: a peer's
 * claim would raise the coin to certainty for free (review s81 vtrn2 F2).
 */
export const UNREACHED_REASON = "trainer_unreachable";

/**
 * What a dial before a challenge brought (`#dial`): the trainer's connection, or none; whether a
 * dial was made at all (the NetworkActor took it: not "no swarm", not "full" to the end); and
 * when it began (ms, the wall clock), for the evidence that this node's network works.
 */
interface Dialled {
  connection?: Connection;
  dialled: boolean;
  since: number;
}

/** See the module doc. */
export class TrainingChallengeRun {
  readonly #options: TrainingChallengeRunOptions;
  /** The ledger's challenge window, ms ({@link TrainingChallengeRunOptions.economics}). */
  readonly #window: number;
  /** A challenge's answer window: fixed (the option) or by the steps it asks re-run. */
  readonly #openingWindow: number | ((steps: readonly number[]) => number);
  /**
   * Whether this node's network was last found down when a drawn trainer was not reached (see
   * `#unreached`): its outage is logged once, not once per trainer.
   */
  #outage = false;
  /**
   * How long to dial a trainer before its challenge is drawn: the base window (the dial comes
   * before the challenge, and eats none of the trainer's time to answer).
   */
  readonly #dialMs: number;
  /**
   * What a re-ask after a restart ({@link TrainingChallengeRun.resume}) must leave the trainer of
   * the challenge's signed window for its silence to convict, as on a first ask: the shortest
   * window this node's checker takes an `opening_missing` on (the fixed option, else
   * `DEFAULT_OPENING_DEADLINE_MS`, as `_fraud_proof_rerun.ts` checks). A checker judges a first
   * ask by that bound alone (its signed window, deadline − issue, at least this long), so a re-ask
   * with this much left gives even a trainer the first ask never reached what every checker owes
   * a challenge; one the first ask reached kept its answer until the deadline and has only to
   * serve it. The proof is the one a first ask makes (the signed challenge, issued past its
   * deadline), confirmed by any checker.
   */
  readonly #reaskSilenceMs: number;
  /**
   * Takeovers' last opened steps, by receipt id, until their delta comes: in memory and, with
   * {@link TrainingChallengeRunOptions.lastStepsDir}, on disk (`_kept_last_steps.ts`).
   */
  readonly #lastSteps: KeptLastSteps;
  /**
   * Takeovers under way, by receipt id: settled when the takeover ended (its step kept or not).
   * A delta that comes meanwhile waits for it: checked then against the kept step. Without this
   * the delta went to the coin, which a takeover's mark refuses (`challengedHere`), and came no
   * more: a lazy trainer whose own key claimed at once and who stalled its takeover answer until
   * the round's outcome came kept its delta from every ledger that took the claim over.
   */
  readonly #takingOver = new Map<string, Promise<void>>();
  /**
   * Receipts whose trainer is being dialled for this node's coin, until the challenge goes out or,
   * not reached, its `undecided` ending was asked: no takeover meanwhile (it would race the dial
   * with a second challenge; a claim waits, `_claim_takeovers.ts`), and marked in `challenged`
   * only once the challenge goes out. Marked before the dial and kept when it failed, the trainer
   * never asked here refused every later true claim (`challenged_here`) and the withholder was
   * paid here (review s81 train F2).
   */
  readonly #dialling = new Set<string>();
  /** Receipts this run asked the ledger to hold, while recorded (`recordOpens`). */
  #opened: Set<string> | undefined;
  readonly #stats: ChallengeRunStats = {
    challenged: 0,
    passed: 0,
    frauds: 0,
    faults: 0,
    takeovers: 0,
    falseClaims: 0,
  };

  /** @param options See {@link TrainingChallengeRunOptions}. */
  constructor(options: TrainingChallengeRunOptions) {
    this.#options = options;
    this.#window = (options.economics ?? DEFAULT_ECONOMICS).challengeWindowMs;
    this.#openingWindow = options.openingDeadlineMs ?? ((steps) => openingWindowMs(steps));
    this.#dialMs = options.openingDeadlineMs ?? DEFAULT_OPENING_DEADLINE_MS;
    this.#reaskSilenceMs = options.openingDeadlineMs ?? DEFAULT_OPENING_DEADLINE_MS;
    this.#lastSteps = new KeptLastSteps(options.lastStepsDir, options.now, options.log);
  }

  /** This run's counters, for the validator's `stats`. */
  stats(): ChallengeRunStats {
    return { ...this.#stats };
  }

  /** Draw, ask the trainer, check; runs outside the validator's mailbox. */
  challenge(request: ChallengeRequest, ctx: Context): Promise<ChallengeOutcome> {
    const given = { connection: request.connection, dialled: false, since: Date.now() };
    return this.#challenge(request, () => Promise.resolve(given), ctx);
  }

  /**
   * {@link TrainingChallengeRun.challenge} over the connection `connect` answers once the coin
   * has drawn the report (none: not challenged, the receipt ended `undecided` here when that was
   * the trainer's doing, `#unreached`, and not marked challenged here: a later claim may be taken
   * over).
   */
  async #challenge(
    request: Omit<ChallengeRequest, "connection">,
    connect: () => Promise<Dialled>,
    ctx: Context,
  ): Promise<ChallengeOutcome> {
    // Taken over before: its delta is checked against the kept last step, whatever the coin.
    if (this.#takingOver.size > 0 || await this.#lastSteps.any()) {
      const { receipt, delta } = request.report;
      const checked = await this.#checkKeptDelta(receipt, delta, ctx);
      if (checked !== undefined) return checked;
    }
    if (!(this.#options.random() < this.#options.challengeProbability)) {
      return { challenged: false };
    }
    const { receipt } = request.report;
    const id = trainingReceiptId(receipt);
    // A second challenge of a receipt is refused by its trainer, and that refusal would be an
    // `opening_missing`: a receipt challenged here (by the coin, or a takeover) is not again.
    if (this.challengedHere(id) || this.dialling(id)) return { challenged: false };
    // Connected (dialled) before the challenge is drawn: the dial does not eat the trainer's
    // time to answer. Held off from takeovers while dialling, marked challenged here only once
    // connected (the challenge goes out below).
    this.#dialling.add(id);
    let connection: Connection | undefined;
    try {
      const dial = await connect();
      connection = dial.connection;
      if (connection === undefined) {
        await this.#unreached(ctx, receipt, dial);
        return { challenged: false };
      }
    } finally {
      this.#dialling.delete(id);
    }
    const remembered = this.#remember(id, undefined);
    remembered.catch(() => {}); // awaited below, after the open: not an unhandled rejection
    const challenge = drawTrainingChallenge(receipt, this.#options.identity, {
      deadlineMs: this.#openingWindow,
    });
    // Kept before the ledger holds it: a stop from here on asks the trainer again at the next
    // start (`resume`), instead of ending the challenge unresolved (the honest trainer unpaid).
    await this.#keepOpen({ ...request, challenge }, id);
    // Held `challenged` in the ledger while it runs (a credited receipt, from an audited round,
    // is not paid meanwhile, nor after a stop mid-challenge); ended below, or by the settlement
    // of this challenge's fraud proof.
    await this.#open(ctx, id);
    // Not held here (not recorded, past its window, no ledger): nothing a restart would resume.
    if (!this.#options.endings.holds(id)) await this.#options.ownProofs?.remove(id).catch(() => {});
    this.#stats.challenged++;
    try {
      await remembered;
      return await this.#run({ ...request, connection }, challenge, ctx);
    } catch (error) {
      await this.#options.endings.end(ctx, id, "undecided", "challenge_failed");
      throw error;
    }
  }

  /**
   * Challenge one trainer of a finished round on this validator's own coin, over this node's
   * connection to it (none: the trainer is dialled once drawn, and not challenged from here when
   * the dial brings none: its receipt may end `undecided` here, {@link UNREACHED_REASON}), with the
   * delta the audit fetched (or, when the round could not be audited here, fetched now). A
   * failure is a fraud proof like the coordinator's: settled here, gossiped, slashing in every
   * ledger.
   */
  async afterRound(
    body: OutcomeBody,
    report: OutcomeReport,
    fetched: Uint8Array | undefined,
    ctx: Context,
  ): Promise<void> {
    const { receipt } = report;
    if (bytesEqual(receipt.trainer, this.#options.identity.publicKey)) return; // not our own
    const taken = trainingReceiptId(receipt);
    if (this.#takingOver.has(taken) || await this.#lastSteps.has(taken)) {
      // Taken over here (or being taken over: its kept step is waited for): no challenge (the
      // trainer refuses a second), only the delta check, which needs no connection.
      try {
        const delta = fetched ?? await this.#options.models.getFile(report.deltaFile);
        await this.#checkKeptDelta(receipt, delta, ctx);
      } catch (error) {
        this.#options.log(
          `training validator: trainer ${toHex(receipt.trainer).slice(0, 16)}'s delta not ` +
            `checked after round ${body.round}: ${(error as Error).message}`,
        );
      }
      return;
    }
    try {
      const delta = fetched ?? await this.#options.models.getFile(report.deltaFile);
      // A trainer this node has no connection to is dialled by its key once the coin drew it:
      // one that kept its connections to a few validators escaped every other ledger's coin.
      const connect = () => this.#dial(ctx, receipt.trainer, taken);
      await this.#challenge(
        {
          type: "challenge",
          report: { receipt, delta },
          terms: { round: body.round, startModel: body.startModel, steps: receipt.steps },
          arch: body.arch,
          startFile: body.startFile,
          shardSize: receipt.shardSize,
          shardRoot: receipt.shardRoot,
        },
        connect,
        ctx,
      );
    } catch (error) {
      this.#options.log(
        `training validator: trainer ${toHex(receipt.trainer).slice(0, 16)} not challenged ` +
          `after round ${body.round}: ${(error as Error).message}`,
      );
    }
  }

  /**
   * At the start: ask the trainer again the challenge `open` that a stop of this validator cut off
   * (kept on disk, `_open_challenge_record.ts`; the receipt held `challenged` here, read by
   * `_challenge_resume.ts`), the same signed challenge, over this node's connection to it or one
   * dialled for what is left of the deadline, and check its answer as the first run would have:
   * an answer that holds ends `passed` (paid when its window closes), one that fails is this
   * validator's fraud proof. Silence convicts as on a first ask (`opening_missing`) when the
   * re-ask left the trainer at least the shortest window a checker takes (`#reaskSilenceMs`):
   * ended undecided, silence through a restart was a lazy trainer's best answer (review s80 vtrn
   * F1). With less left (the restart came late: the stop may have come before the trainer was
   * ever asked, and the deadline is the one signed then), or a trainer not reached, it ends
   * `undecided` (`validator_restarted`: unpaid, its stake released). Runs outside the mailbox, as
   * a challenge does.
   */
  async resume(open: OpenChallenge, ctx: Context): Promise<void> {
    const { challenge, report } = open;
    const id = trainingReceiptId(report.receipt);
    this.#options.log(
      `training validator: challenge of trainer ${
        toHex(report.receipt.trainer).slice(0, 16)
      } cut off by a restart: asked again`,
    );
    try {
      const connection = await this.#reconnect(
        ctx,
        report.receipt.trainer,
        undefined,
        challenge.deadline,
        id,
      );
      if (connection === undefined) {
        await this.#options.endings.end(ctx, id, "undecided", "validator_restarted");
        return;
      }
      // Measured as the re-ask goes out: what the trainer has left of the signed window.
      const left = challenge.deadline - Date.now();
      const silence = left >= this.#reaskSilenceMs ? "convicts" : "undecided";
      this.#options.log(
        `training validator: challenge of ${id.slice(0, 12)} asked again with ${
          Math.max(0, Math.round(left / 1000))
        } s of its window left: ${
          silence === "convicts"
            ? "no answer convicts, as on a first ask"
            : "no answer ends undecided (less than the shortest window a checker takes)"
        }`,
      );
      await this.#run({ type: "challenge", ...open, connection }, challenge, ctx, silence);
    } catch (error) {
      await this.#options.endings.end(ctx, id, "undecided", "validator_restarted");
      this.#options.log(
        `training validator: challenge of ${id.slice(0, 12)} asked again failed: ${
          (error as Error).message
        }`,
      );
    }
  }

  /**
   * Keep the challenge about to open on disk until it ends ({@link TrainingChallengeRun.resume}).
   * Not kept (no folder, a failed write): the challenge runs all the same, and a stop ends it
   * unresolved at the next start, as before.
   */
  async #keepOpen(open: OpenChallenge, id: string): Promise<void> {
    await this.#options.ownProofs?.save(id, openChallengeRecord(open)).catch((error) =>
      this.#options.log(
        `training validator: challenge of ${id.slice(0, 12)} not kept for a restart: ${
          (error as Error).message
        }`,
      )
    );
  }

  /**
   * The trainer's connection after `lost` went during its challenge (review s75 vtrain F1), or
   * (`lost` undefined) at a restart or before a challenge is drawn: the one it has open (again),
   * or this node dials it until `deadline` (ms, the wall clock), and, when it cannot dial it,
   * looks for it to join again every {@link RECONNECT_POLL_MS} until then. `dialled` is called
   * once a dial was made (see {@link TrainingChallengeRunOptions.reach}).
   */
  async #reconnect(
    ctx: Context,
    trainer: Uint8Array,
    lost: Connection | undefined,
    deadline: number,
    holder: string,
    dialled?: () => void,
  ): Promise<Connection | undefined> {
    const fresh = async () => {
      const open = await this.#options.connectionTo(ctx, trainer);
      return open !== undefined && open !== lost && !open.isClosed ? open : undefined;
    };
    const now = await fresh();
    if (now !== undefined) return now;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    const reached = await this.#options.reach(ctx, trainer, left, holder, dialled);
    if (reached !== undefined) return reached;
    // Not dialled (no swarm here, or a trainer that does not listen): it comes back on its own.
    // Stop 76, loaded: both trainers dropped the coordinator at once and joined again seconds later,
    // and the one whose answer was lost was slashed `opening_missing`, never asked again.
    while (Date.now() + RECONNECT_POLL_MS < deadline && !ctx.signal.aborted) {
      await sleep(RECONNECT_POLL_MS, ctx.signal);
      const back = await fresh();
      if (back !== undefined) return back;
    }
    return undefined;
  }

  /**
   * A connection to `trainer` before a challenge of receipt `holder` is drawn (the coin's, or a
   * takeover's): the one open, else as `#reconnect`, for the dial's time (`#dialMs`, the base answer window). A
   * trainer away for a moment (a restart, a dropped link) is found within it; one not found by
   * then is not reached here; whether a dial was made at all comes with it (see `#unreached`).
   */
  async #dial(ctx: Context, trainer: Uint8Array, holder: string): Promise<Dialled> {
    const since = Date.now();
    const deadline = since + this.#dialMs;
    let dialled = false;
    const connection = await this.#options.connectionTo(ctx, trainer) ??
      await this.#reconnect(ctx, trainer, undefined, deadline, holder, () => dialled = true);
    return { connection, dialled, since };
  }

  /**
   * Receipt `receipt`, drawn by this node's coin, whose trainer `dial` did not reach: not
   * challenged, nothing proved. Its receipt is held and ended `undecided` here
   * ({@link UNREACHED_REASON}: unpaid, not slashed; a peer's proof still settles it inside its
   * window) only when the failure is the trainer's as far as this node can tell: a dial was made
   * (not "no swarm", nor this node's dials "full" to the end: review s81 vtrn2 F1) and this
   * node's own network works ({@link TrainingChallengeRunOptions.networkWorks}: a live peer, or a
   * dial that brought a connection since this one began; F3). Otherwise the receipt is left as it
   * was (pending: paid when its window closes), and a network found down is logged once until it
   * works again. Not marked challenged here either way: the trainer was never asked, so a later
   * claim about it may be taken over.
   */
  async #unreached(ctx: Context, receipt: TrainingReceipt, dial: Dialled): Promise<void> {
    const id = trainingReceiptId(receipt);
    const trainer = toHex(receipt.trainer).slice(0, 16);
    if (!dial.dialled) {
      this.#options.log(
        `training validator: trainer ${trainer} drawn for a challenge but never dialled (no ` +
          `swarm here, or this node's dials full to the dial's end): not challenged from here, ` +
          `its receipt left pending`,
      );
      return;
    }
    const works = await this.#options.networkWorks?.(ctx, dial.since).catch(() => false);
    if (works !== true) {
      if (!this.#outage) {
        this.#outage = true;
        this.#options.log(
          `training validator: a drawn trainer not reached and no live peer nor a dial that ` +
            `connected: this node's own network looks down, so drawn trainers it does not reach ` +
            `are left pending (paid), not ended unpaid, until it works again`,
        );
      }
      return;
    }
    if (this.#outage) {
      this.#outage = false;
      this.#options.log(`training validator: this node's network works again`);
    }
    this.#options.log(
      `training validator: trainer ${trainer} drawn for a challenge but not reached: not ` +
        `challenged from here, its receipt ended undecided here (unpaid, not slashed)`,
    );
    await this.#open(ctx, id);
    await this.#options.endings.end(ctx, id, "undecided", UNREACHED_REASON);
  }

  /**
   * The drawn challenge's work (see {@link TrainingChallengeRun.challenge}); `silence`: whether no
   * answer convicts (`opening_missing`), as on a first ask, or ends `undecided` (a re-ask after a
   * restart that left the trainer too little of its window, see `resume`).
   */
  async #run(
    request: ChallengeRequest,
    challenge: TrainingChallenge,
    ctx: Context,
    silence: "convicts" | "undecided" = "convicts",
  ): Promise<ChallengeOutcome> {
    const { receipt, delta } = request.report;
    const id = trainingReceiptId(receipt);
    const trainer = toHex(receipt.trainer).slice(0, 16);
    const check = await checkedAnswer(
      receipt,
      request.connection,
      challenge,
      ctx,
      () =>
        this.#stepCheck(receipt, challenge, {
          startModel: request.terms.startModel,
          arch: request.arch,
          startFile: request.startFile,
          delta,
          shardSize: request.shardSize,
          shardRoot: request.shardRoot,
        }),
      (line) => this.#options.log(line),
      (lost) => this.#reconnect(ctx, receipt.trainer, lost, challenge.deadline, id),
    );
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
    if (silence === "undecided" && check.reason === "opening_missing") {
      // Asked again late after a restart: silence is no proof (see `resume`).
      await endings.end(ctx, id, "undecided", "validator_restarted");
      return { challenged: true, ok: false, reason: check.reason };
    }
    if (check.proof !== undefined) await this.#convict(check.proof, request, ctx);
    else await endings.end(ctx, id, "undecided", `training_${check.reason}`);
    return { challenged: true, ok: false, reason: check.reason, proof: check.proof };
  }

  /**
   * Take over a peer's `opening_missing` claim about `request.receipt` (`training_validator.ts`
   * decides whether, within its takeover budget): challenge the trainer on this validator's own
   * key, as a drawn challenge would, and check its answer as one: signed, openable, opening the
   * receipt's commitments, and its steps re-run (the validator's step check, without the delta,
   * which a claim does not carry). Served and holding, the challenge ends `passed` (paid when its
   * window closes) and the claim was false here; not served by the deadline, or an answer that
   * fails the check, is this validator's own proof (`opening_missing`, `opening_mismatch`,
   * `step_mismatch`, …), settled and spread as any. Anything else —
   * the ledger would not hold the receipt, a check without a verdict, an error here (a re-run that
   * could not be made: `step_rerun_failed`) — clears the claim, and the receipt held ends
   * `undecided`: the trainer is not paid in this ledger, nor slashed. A trainer the dial did not
   * reach clears the claim with nothing held: the receipt is left as it was (pending: paid). A
   * receipt already `unpaid` here (its trainer
   * not reached before: {@link TakeoverRequest.unpaid}) is taken over without a hold. Ended
   * `passed`, a lazy trainer whose openings no one re-ran was paid, and this ledger's own coin
   * never challenged it again (review s77 vtrain F1). Runs outside the validator's mailbox.
   */
  async takeover(request: TakeoverRequest, ctx: Context): Promise<TakeoverOutcome> {
    const { receipt } = request;
    const id = trainingReceiptId(receipt);
    if (this.challengedHere(id) || this.dialling(id)) return "cleared";
    // Under way until it ends: a delta that comes meanwhile waits for its kept step.
    const ended = Promise.withResolvers<void>();
    this.#takingOver.set(id, ended.promise);
    try {
      return await this.#takeover(request, id, ctx);
    } finally {
      this.#takingOver.delete(id);
      ended.resolve();
    }
  }

  /** {@link TrainingChallengeRun.takeover}'s work, marked under way there. */
  async #takeover(request: TakeoverRequest, id: string, ctx: Context): Promise<TakeoverOutcome> {
    const { receipt } = request;
    const trainer = toHex(receipt.trainer).slice(0, 16);
    // Dialled before the challenge is drawn, so the dial does not eat the trainer's time to
    // answer. Not reached: not challenged, and the receipt is left as it was here (pending, or
    // unpaid after this node's own coin). Ended `undecided` (8cfdaaea), any staked key's claim
    // took the pay of an honest trainer that only dials out in every ledger that could not reach
    // it, at no cost to the claimant (review s81 vtrn2 F2): only this node's own coin may end a
    // receipt unreached. Not marked challenged here: a later claim may be taken over again.
    const connection = request.connection ??
      (await this.#dial(ctx, receipt.trainer, id)).connection;
    if (connection === undefined) {
      this.#options.log(
        `training validator: trainer ${trainer} not reached for a takeover: the claim decides ` +
          `nothing here, its receipt left ${request.unpaid === true ? "unpaid" : "pending"}`,
      );
      return "cleared";
    }
    const remembered = this.#remember(id, request.pendingUntil);
    remembered.catch(() => {}); // awaited below, after the open: not an unhandled rejection
    const challenge = drawTrainingChallenge(receipt, this.#options.identity, {
      deadlineMs: this.#openingWindow,
    });
    const endings = this.#options.endings;
    if (request.unpaid !== true) {
      await this.#open(ctx, id);
      // Not held `challenged` here (its window closed, the ledger gone): nothing to decide.
      if (!endings.holds(id)) return "cleared";
    }
    this.#stats.takeovers++;
    let last: { opening: StepOpening; endWeights: GptWeights } | undefined;
    try {
      await remembered;
      // Re-run, not just "served": a lazy trainer refuses its challenger (slashed in that
      // ledger alone) and serves each takeover openings that open its commitments but are not
      // training; checked for availability only, it was paid in every other ledger, and the
      // takeover's mark kept those ledgers' own coins from ever re-running it. No delta here:
      // state H is checked against it when it comes (the last step kept, below).
      const check = await checkedAnswer(
        receipt,
        connection,
        challenge,
        ctx,
        () =>
          this.#stepCheck(receipt, challenge, {
            startModel: receipt.startModel,
            arch: request.arch,
            startFile: request.startFile,
            shardSize: receipt.shardSize,
            shardRoot: receipt.shardRoot,
            onLastStep: (opening, endWeights) => last = { opening, endWeights },
          }),
        (line) => this.#options.log(line),
        (lost) => this.#reconnect(ctx, receipt.trainer, lost, challenge.deadline, id),
      );
      if (check.ok) {
        // State H is checked against the delta once the round's outcome (or the coordinator's
        // report) brings it: the challenge its coin would have made is this one.
        // Kept (on disk too) before the challenge ends `passed`: a stop after that finds it.
        if (last !== undefined) {
          await this.#lastSteps.keep(id, {
            challenge,
            ...last,
            arch: request.arch,
            ...startFileOf(request),
          }, request.pendingUntil);
        }
        await endings.end(ctx, id, "passed");
        this.#stats.falseClaims++;
        this.#options.log(
          `training validator: trainer ${trainer} served its openings to this validator's ` +
            `takeover: the claim that it withheld them is not taken here`,
        );
        return "served";
      }
      if (check.proof !== undefined) {
        this.#options.log(
          `training validator: trainer ${trainer} failed this validator's takeover too ` +
            `(${check.reason})`,
        );
        await this.#convict(check.proof, request, ctx);
        return "convicted";
      }
      await endings.end(ctx, id, "undecided", `training_${check.reason}`);
      this.#options.log(
        `training validator: takeover of trainer ${trainer}'s receipt decided nothing ` +
          `(${check.reason}): ended undecided`,
      );
      return "cleared";
    } catch (error) {
      // The steps were not checked (a validator-side gap): not a pass (see `takeover`).
      await endings.end(ctx, id, "undecided", "takeover_failed");
      throw error;
    }
  }

  /**
   * Receipt `id` was newly recorded in the ledger, its window there starting now. A challenge
   * made of it before (an outcome's coin, with the receipt's gossip late) was remembered for a
   * window from the challenge only: past that, inside the window here, a peer's claim opened a
   * takeover, the trainer refused this validator's second challenge, and the honest trainer was
   * slashed here. So it is remembered again from now (kept on disk as any mark).
   */
  recorded(id: string): void {
    if (!this.challengedHere(id)) return;
    this.#remember(id, undefined).catch((error) =>
      this.#options.log(
        `training validator: challenge of ${id.slice(0, 12)} not kept: ${(error as Error).message}`,
      )
    );
  }

  /**
   * A takeover's receipt whose delta came (the coordinator's report, a round's outcome): its
   * delta checked against the end state the takeover's last opened step holds. A takeover checks
   * no delta (a claim carries none), and it takes this validator's one challenge of the receipt,
   * so without this a trainer's own second key, claiming at once, kept the delta from every
   * ledger's coin. A mismatch is this validator's `delta_mismatch` proof on the takeover's
   * challenge, settled and spread as any. Undefined when no step is kept for the receipt.
   */
  async #checkKeptDelta(
    receipt: TrainingReceipt,
    delta: Uint8Array,
    ctx: Context,
  ): Promise<ChallengeOutcome | undefined> {
    const id = trainingReceiptId(receipt);
    // A takeover under way keeps its step when it passes: waited for (it ends by its dial's
    // time and its deadline).
    await this.#takingOver.get(id);
    if (!await this.#lastSteps.has(id)) return undefined;
    // Not the delta this receipt signs: nothing to check it against (kept for the right one).
    if (!verifyTrainingReceipt(receipt, { delta }).ok) return { challenged: false };
    const kept = await this.#lastSteps.take(id);
    if (kept === undefined) return undefined;
    const start = await this.#options.models.get(receipt.startModel, kept.arch, kept.startFile);
    const why = deltaMismatch(start.weights, kept.endWeights, delta);
    const trainer = toHex(receipt.trainer).slice(0, 16);
    if (why === null) {
      this.#options.log(`training validator: trainer ${trainer}'s delta is its trained end state`);
      await this.#lastSteps.forget(id);
      return { challenged: true, ok: true };
    }
    this.#options.log(
      `training validator: trainer ${trainer}'s delta is not the end state it opened (${why})`,
    );
    const proof = signTrainingFraudProof({
      v: TRAINING_FRAUD_PROOF_VERSION,
      reason: "delta_mismatch",
      receipt,
      challenge: kept.challenge,
      opening: kept.opening,
      delta,
      issuedAt: Math.floor(Date.now()),
    }, this.#options.identity);
    await this.#convict(proof, kept, ctx);
    await this.#lastSteps.forget(id); // only now: the proof is this validator's, kept with its own
    return { challenged: true, ok: false, reason: "delta_mismatch", proof };
  }

  /**
   * Record (`on`) or stop recording the receipts this run asks the ledger to hold `challenged`:
   * the validator records them while its start has not read the challenges a previous incarnation
   * left open (`_challenge_resume.ts`), so that a later read does not end this incarnation's own
   * challenges with the lost ones. Bounded by the challenges opened during those reads' retries
   * (minutes at most).
   */
  recordOpens(on: boolean): void {
    this.#opened = on ? this.#opened ?? new Set() : undefined;
  }

  /** Whether this run asked the ledger to hold receipt `id` while recording (`recordOpens`). */
  openedHere(id: string): boolean {
    return this.#opened?.has(id) ?? false;
  }

  /** Whether receipt `id` was challenged here (by the coin or a takeover) within its window. */
  challengedHere(id: string): boolean {
    return this.#options.challenged.has(id);
  }

  /**
   * Whether receipt `id`'s trainer is being dialled for this node's coin now (until the challenge
   * goes out, or its `undecided` ending was asked): a claim about it waits.
   */
  dialling(id: string): boolean {
    return this.#dialling.has(id);
  }

  /**
   * Mark receipt `id` challenged here, until `pendingUntil` or, unknown, a challenge window from
   * now (the ledger's clock): resolves once kept on disk.
   */
  #remember(id: string, pendingUntil: number | undefined): Promise<void> {
    const until = Math.max(
      pendingUntil ?? 0,
      this.#options.now() + this.#window +
        (this.#options.openingDeadlineMs ?? MAX_OPENING_WINDOW_MS),
    );
    return this.#options.challenged.mark(id, until);
  }

  /**
   * The validator's step check of an answer to `challenge` (`check`, its default
   * `checkStepOpenings`), with the start model loaded first.
   */
  async #stepCheck(
    receipt: TrainingReceipt,
    challenge: TrainingChallenge,
    options: Omit<CheckStepOpeningsOptions, "validator" | "startWeights"> & {
      startModel: string;
      startFile?: string;
    },
  ): Promise<(answer: SealedStepOpenings | undefined) => Promise<StepOpeningsCheck>> {
    const { startModel, startFile, ...rest } = options;
    const start = await this.#options.models.get(startModel, options.arch, startFile);
    return (answer) =>
      this.#options.check(receipt, challenge, answer, {
        ...rest,
        validator: this.#options.identity,
        startWeights: start.weights,
        ...(this.#options.rerun === undefined ? {} : { rerun: this.#options.rerun }),
      });
  }

  /**
   * This validator's own fraud proof from a challenge of `request`'s receipt: kept until it
   * settles (a stop before that resumes it at the next start), then told to the validator,
   * which checks it, settles it and spreads it like a peer's.
   */
  async #convict(
    proof: TrainingFraudProof,
    request: { arch: GptArchitecture; startFile?: string },
    ctx: Context,
  ): Promise<void> {
    const id = trainingReceiptId(proof.receipt);
    if (proof.reason === "opening_missing") this.#stats.faults++;
    this.#stats.frauds++;
    const body: TrainingFraudProofBody = {
      proof,
      arch: request.arch,
      ...(request.startFile === undefined ? {} : { startFile: request.startFile }),
    };
    if (this.#options.endings.holds(id)) await this.#options.ownProofs?.save(id, body);
    await ctx.self.tell({ type: "fraud_proof", body, origin: "local" });
  }

  /**
   * Ask the ledger to hold receipt `id` `challenged` while this validator challenges it (see
   * `TrainingChallengeLedgerMessage`): held from then, until the challenge ends.
   */
  async #open(ctx: Context, id: string): Promise<void> {
    // Before the ask: the ledger may hold it before this run hears back.
    this.#opened?.add(id);
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

/** `request`'s start file, as an optional field. */
function startFileOf(request: { startFile?: string }): { startFile?: string } {
  return request.startFile === undefined ? {} : { startFile: request.startFile };
}
