/**
 * TrainingValidator: a ledger-keeping node's part in the network round. It challenges the
 * training receipts it samples (the coordinator hands it every report before the outer step),
 * re-runs the opened steps, and on a mismatch signs a fraud proof that is settled in this
 * node's ledger and spread to every peer; it takes the same gossip from peers — receipts to
 * record, fraud proofs to check before they slash, round outcomes whose model this node then
 * fetches by CID and serves.
 *
 * ```
 * challenge   { report, connection, round… }  → { result: Promise<ChallengeOutcome> }
 * receipt     { body, origin }   record in the ledger (uncredited); new: pass on (kept and
 *                                recorded again when the ledger does not answer:
 *                                `receipts_again`, `_receipt_credits.ts`)
 * receipts_again {}              internal: record again the peers' receipts the ledger did not
 *                                answer for
 * credit      { receipts, terms } credit receipts whose deltas went into a round's model (kept
 *                                and made again when the ledger does not answer: `outcome_again`)
 * fraud_proof { body, origin }   check (outside the mailbox) → checked
 * checked     { … }              internal: settle in the ledger; confirmed and new: pass on. A
 *                                peer's confirmed `opening_missing` is a claim, not settled on
 *                                its word: taken over instead (`_claim_takeovers.ts`)
 * takeover_ended { claimant, outcome } internal: a takeover of a claim ended (served: the claim
 *                                was false here)
 * claims_again {}                internal: consider again the claims whose takeover's ledger
 *                                asks went unanswered (`_claim_takeovers.ts`)
 * resume_again {}                internal: read again what the start could not read of the
 *                                challenges the previous incarnation left in the ledger
 *                                (`_challenge_resume.ts`)
 * unchecked   { … }              internal: the check failed unsettled; the copies that waited
 *                                behind it go through the intake again
 * settle_again { key }           internal: ask the ledger again to settle a peer's checked
 *                                proof whose settlement it did not answer
 * outcome     { body, origin }   let through by the outcome gate (`_outcome_gate.ts`: new,
 *                                signed by a coordinator staked here, within its and its
 *                                relay's budgets): audit it (redo the outer step, outside the
 *                                mailbox); otherwise refuse it (`outcomesRefused` in the stats).
 *                                From this node's coordinator (`origin: "local"`) → { result:
 *                                Promise<void> }, settled once it was passed on or its audit
 *                                ended without (rejected: this actor stopped first)
 * audited     { body, audit }    internal: reproduced (or not checkable here): serve the
 *                                model and pass on; not reproduced: the gate refuses it
 * outcome_again {}               internal: take again the outcomes the ledger did not answer
 *                                for (the coordinator's stake at the gate, or a receipt's
 *                                credit): `_outcome_audits.ts`
 * uncredited  { credit, unanswered } internal: a credit made outside the mailbox ended: it
 *                                leaves the disk, or, some ledger asks unanswered, is kept to
 *                                make again (`outcome_again`)
 * unaudited   { body, origin, attempts, error } internal: an audit that ended without a verdict:
 *                                it leaves the disk, or, storage failed it (a delta not found,
 *                                bytes that are not the file, an ask past its timeout), is kept
 *                                to make again (`outcome_again`), bounded tries, nothing
 *                                charged again
 * model_standing { model }       → why this node refused that round model, or null
 * seat_stakes { keys, work }     → a receipt's lock and each key's free stake in the ledger
 *                                (`_seat_stakes.ts`): whom a coordinator can seat
 * end_again   {}                 internal: ask the ledger again to end the challenges whose
 *                                ending ask failed (see below)
 * pledges_again {}               internal: the proofs held for their accuser's pledge whose
 *                                accuser has staked since go through the intake again; the
 *                                held ones (and those held for their receipt) are kept on disk
 *                                (`ownProofsDir`) for the next start
 * stakes_again {}                internal: the peers' receipts held for their trainer's stake
 *                                whose trainer has staked since are recorded again
 *                                (`_receipt_credits.ts`, `_stake_held_training_receipts.ts`)
 * unanswered_again { hash, attempts } internal: the wait of a peer's proof kept because the
 *                                ledger did not answer its intake is over: through the intake
 *                                again (`_unanswered_training_proofs.ts`)
 * ```
 *
 * Whether a fraud proof is worth its re-run here (its receipt recorded and open, its accuser's
 * stake or unbacked budget), and the holds of peers' proofs not worth it yet (for their receipt,
 * for their accuser's pledge), are the intake's (`_training_proof_intake.ts`).
 *
 * A peer's proof taken and not settled (in the mailbox, being checked, waiting behind another
 * copy's check, or its settlement unanswered) is kept on disk too and taken through the intake
 * again at the next start (`_taken_training_proofs.ts`).
 *
 * The ledger belongs to the ValidatorActor: this actor asks it (`training_receipt`,
 * `training_fraud`), never holds it. Gossip goes out through the NetworkActor
 * (`publish_training`), to every peer but the one it came from, once per item.
 *
 * A challenge (the `challenge` message, and each trainer of a round audited here on this node's
 * own coin) runs outside the mailbox (`_training_challenge_run.ts`): the coin, the trainer's
 * openings fetched within the deadline, the re-run (each opened step, as each fraud proof's
 * disputed step, in this validator's worker: `step_rerun.ts`) and its verdict; a failed one tells this actor
 * its fraud proof (`fraud_proof`, origin `local`), settled as a peer's. A trainer that refuses to
 * open its steps, or does not answer by the challenge's deadline, is convicted the same way: the
 * signed challenge without an answer is an `opening_missing` proof. The run reaches this actor
 * only through what it is given: the ledger asks, the connection to a trainer, the round models,
 * the log, and the challenge endings below.
 *
 * A challenge holds its receipt `challenged` in the ledger until it is ended there: passed
 * (paid when its window closes), undecided (unpaid) or settled by its fraud proof (slashed); the
 * ending is kept on disk and asked again until the ledger has it (`_challenge_endings.ts`).
 *
 * The parts, each in its own private module: the fraud proofs checked and settled here
 * (`_fraud_proof_checks.ts`), the receipts recorded and credited (`_receipt_credits.ts`), the
 * round outcomes audited and their models served (`_outcome_audits.ts`), the ways to the
 * NetworkActor (`_training_network.ts`), and what the start reads of the challenges the previous
 * incarnation left in the ledger (`_challenge_resume.ts`).
 *
 * @module
 */
import { join } from "node:path";
import type { Actor, ActorContext } from "../actors/actor.ts";
import type { Connection, ConnectionTimers } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import type {
  OutcomeBody,
  ReportBody,
  TrainingFraudProofBody,
  TrainingReceiptBody,
} from "../protocols/training_messages.ts";
import { DEFAULT_ECONOMICS, type EconomicParams, type TrainingWork } from "../proof/economics.ts";
import type { Account } from "../proof/ledger_state.ts";
import { seatStakes } from "./_seat_stakes.ts";
import type {
  AccountMessage,
  ReceiptStatusMessage,
  TrainingChallengedMessage,
  TrainingChallengeLedgerMessage,
  TrainingCheckingMessage,
  TrainingFraudLedgerMessage,
  TrainingReceiptLedgerMessage,
} from "../actors/validator_messages.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { RoundModels } from "./round_models.ts";
import { OWN_TRAINING_FRAUD_PROOFS_DIR, ReceiptFiles } from "../actors/_receipt_files.ts";
import type { RoundAudit } from "./round_audit.ts";
import {
  AUDITED_MOMENTA_DIR,
  DEFAULT_GENESIS_SEEDS,
  FALSE_OUTCOME_BENCH_MS,
  MAX_AUDITS_PER_COORDINATOR,
  MAX_AUDITS_PER_PEER,
  OutcomeGate,
  type OutcomeGateStats,
  PEER_AUDIT_WINDOW_MS,
} from "./_outcome_gate.ts";
import type { TrainingReceipt } from "./training_receipt.ts";
import type { TrainingChallenge } from "./training_challenge.ts";
import type { SealedStepOpenings } from "./step_opening.ts";
import {
  checkStepOpenings,
  type CheckStepOpeningsOptions,
  type StepOpeningsCheck,
} from "./step_check.ts";
import type { TrainingFraudProof } from "./training_fraud_proof.ts";
import { ChallengeEndings, END_RETRY_MS } from "./_challenge_endings.ts";
import { copyKey, TakenTrainingProofs } from "./_taken_training_proofs.ts";
import { type IntakeLedgerMessage, TrainingProofIntake } from "./_training_proof_intake.ts";
import {
  type ChallengeRunStats,
  type TakeoverOutcome,
  TrainingChallengeRun,
} from "./_training_challenge_run.ts";
import { ChallengedReceipts } from "./_challenged_receipts.ts";
import { TAKEOVER_LAST_STEPS_DIR } from "./_kept_last_steps.ts";
import { ClaimTakeovers } from "./_claim_takeovers.ts";
import { ChallengeResume } from "./_challenge_resume.ts";
import { TrainingNetwork } from "./_training_network.ts";
import { FraudProofChecks } from "./_fraud_proof_checks.ts";
import { ReceiptCredits } from "./_receipt_credits.ts";
import { type KeptCredit, OutcomeAudits } from "./_outcome_audits.ts";
import { type StepRerun, WorkerStepRerun } from "./step_rerun.ts";

// The outcome gate's bounds and the endings' first retry, named here as before they had
// modules of their own.
export {
  DEFAULT_GENESIS_SEEDS,
  END_RETRY_MS,
  FALSE_OUTCOME_BENCH_MS,
  MAX_AUDITS_PER_COORDINATOR,
  MAX_AUDITS_PER_PEER,
  PEER_AUDIT_WINDOW_MS,
};

/**
 * Chance that a validator challenges a training receipt in production: the economics'
 * challenge probability, which with the slash multiplier makes lazy training lose money in
 * expectation (`proof/economics.ts`: `q·(1 + m) > 1`). Tests set 1.
 */
export const DEFAULT_TRAINING_CHALLENGE_PROBABILITY = DEFAULT_ECONOMICS.challengeProbability;

/** Fraud proofs and outcomes remembered to take each once (gossip arrives from every peer). */
const SEEN_LIMIT = 4096;

/** Random bits in a draw of {@link secureRandom}: all a float64 in [0, 1) holds exactly. */
const DRAW_BITS = 53;
/** Of those, the ones taken from the first 32-bit word (the second gives all 32 of its own). */
const HIGH_WORD_BITS = DRAW_BITS - 32;

/**
 * A uniform draw in [0, 1) from the platform's CSPRNG (`crypto.getRandomValues`), in steps of
 * 2^-53: the challenge coin's default source.
 *
 * @example
 * ```ts
 * import { secureRandom } from "./training_validator.ts";
 * const u = secureRandom();
 * u >= 0 && u < 1; // true
 * ```
 */
export function secureRandom(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return ((high >>> (32 - HIGH_WORD_BITS)) * 2 ** 32 + low) / 2 ** DRAW_BITS;
}

/** How a challenge of one report ended. */
export type ChallengeOutcome =
  | { challenged: false }
  | { challenged: true; ok: true }
  | { challenged: true; ok: false; reason: string; proof?: TrainingFraudProof };

/** The ValidatorActor's training messages, as this actor asks them. */
type LedgerTrainingMessage =
  | TrainingReceiptLedgerMessage
  | TrainingFraudLedgerMessage
  | TrainingCheckingMessage
  | TrainingChallengeLedgerMessage
  | TrainingChallengedMessage
  | ReceiptStatusMessage
  | AccountMessage
  | IntakeLedgerMessage;

/** Options of {@link TrainingValidator}. */
export interface TrainingValidatorOptions {
  /** The validator's key: signs challenges and fraud proofs. */
  identity: Identity;
  /** Round models (start weights to re-run steps, new models to serve). */
  models: RoundModels;
  /** Registry name of the ValidatorActor holding the ledger. */
  ledger?: string;
  /** Registry name of the NetworkActor (gossip). */
  network?: string;
  /** Serve a round's model directory (register it with the node's models); absent: don't. */
  serve?: (dir: string) => Promise<void>;
  /**
   * Chance of challenging a receipt; default the `economics`' `challengeProbability`
   * ({@link DEFAULT_TRAINING_CHALLENGE_PROBABILITY} under the default economics).
   */
  challengeProbability?: number;
  /**
   * Uniform draws in [0, 1) for the challenge coin; default {@link secureRandom}, a CSPRNG. A
   * trainer that could predict the coin (Math.random's state is recovered from a few of its
   * outputs) would train lazily exactly when it is not drawn. Tests inject fixed draws.
   */
  random?: () => number;
  /**
   * A fixed time a trainer has to open its steps, ms (tests, and the shortest window this node's
   * checker takes an `opening_missing` on). Default: each challenge's window grows with the steps
   * it asks re-run, from `DEFAULT_OPENING_DEADLINE_MS` (60 s) up to `MAX_OPENING_WINDOW_MS`
   * (`opening_window.ts`; a fixed 60 s slashed an honest trainer on a loaded machine, stop 76).
   */
  openingDeadlineMs?: number;
  /**
   * Clock of the per-peer audit budget ({@link MAX_AUDITS_PER_PEER}), of how long a proof is held
   * for its accuser's pledge, and of the intake's "is the receipt inside its window" (the
   * ledger's `pendingUntil`: give the ledger's clock), ms; default `Date.now`.
   */
  now?: () => number;
  /** The step check (re-runs opened steps); default `checkStepOpenings`. */
  check?: (
    receipt: TrainingReceipt,
    challenge: TrainingChallenge,
    sealed: SealedStepOpenings | undefined,
    context: CheckStepOpeningsOptions,
  ) => Promise<StepOpeningsCheck>;
  /**
   * Where opened steps are re-run, for its challenges' checks and for fraud proofs
   * (`step_rerun.ts`). Default: a worker of this validator's own ({@link WorkerStepRerun}),
   * started at the first re-run and terminated when the validator stops, so that a step's re-run
   * (up to 4.3 s measured under load) no longer holds the node's event loop; `check` gets it as
   * its `rerun`. Tests give `IN_PROCESS_STEP_RERUN`, or a worker of their own.
   */
  rerun?: StepRerun;
  /**
   * Seeds of the genesis models coordinators start from; default {@link DEFAULT_GENESIS_SEEDS}.
   * A round from one starts with no momentum, so it is audited whatever its number.
   */
  genesisSeeds?: readonly number[];
  /** Where one line per challenge, fraud and adopted model goes. */
  log?: (line: string) => void;
  /**
   * The ledger's directory: this validator's own fraud proofs are kept in its
   * `own-training-fraud-proofs/` from the failed challenge to their settlement, and resumed at
   * start (set the ValidatorActor's `trainingProofsResumed` with it), as are its challenges while
   * open (`_open_challenge_record.ts`: asked of the trainer again at start); peers' proofs held for
   * their accuser's pledge are kept in its `pledge-held-training-proofs/`, those held for their
   * receipt in its `receipt-held-training-proofs/`, both taken up again at start, the
   * unbacked checks spent per receipt in its `training-unbacked-checks.cbor`, and the receipts
   * held for their trainer's stake in its `stake-held-training-receipts.cbor`. Absent: not kept,
   * and a stop before the settlement leaves the receipt unresolved.
   */
  ownProofsDir?: string;
  /**
   * First wait before an ending ask that failed is asked again, ms; default
   * {@link END_RETRY_MS} (doubling, at most `MAX_END_ATTEMPTS` asks: `_challenge_endings.ts`);
   * the same for an outcome or a peer's claim kept because the ledger did not answer, and for
   * the start's reads of the challenges a previous incarnation left open (`resume_again`).
   */
  endRetryMs?: number;
  /**
   * The timers the waits before a try again run on: of the ending asks (`end_again`), the start's
   * reads (`resume_again`), the settlements (`settle_again`), the claims, peers' receipts,
   * outcomes and peers' fraud proofs kept because the ledger did not answer (`claims_again`,
   * `receipts_again`, `outcome_again`, `unanswered_again`), and the intake's rechecks of the
   * proofs held for their accuser's pledge (`pledges_again`); default the real clock
   * (`SYSTEM_TIMERS`). Tests pass fake timers and fire exactly the waits scheduled, instead of
   * sleeping past them on the wall clock.
   */
  timers?: ConnectionTimers;
  /**
   * How often the ledger is asked whether the accusers of the proofs held for their pledge, and
   * the trainers of the peers' receipts held for their stake, have staked, ms; default
   * `PLEDGE_RECHECK_MS` (`_pledge_held_training_proofs.ts`).
   */
  pledgeRecheckMs?: number;
  /**
   * The economics the node's ledger (the ValidatorActor's `ledger.economics`) runs with; default
   * `DEFAULT_ECONOMICS`. Merged with the defaults once, here, and given to every part: its
   * `challengeWindowMs` is how long a receipt refused before its trainer's stake and a peer's
   * proof refused before its accuser's pledge are held (`_stake_held_training_receipts.ts`,
   * `_pledge_held_training_proofs.ts`), how long a receipt challenged here and a claimant's false
   * claim are remembered (`_training_challenge_run.ts`, `_claim_takeovers.ts`); its
   * `falseAccusationPenalty` is the stake a peer's accuser needs to be checked backed
   * (`_training_proof_intake.ts`), a round's coordinator to be audited (`_outcome_gate.ts`) and
   * this validator to take a claim over (`_claim_takeovers.ts`), as the ledger asks of an accuser.
   */
  economics?: Partial<EconomicParams>;
}

/** A report to challenge, with what the check needs. */
export interface ChallengeRequest {
  /** Message tag. */
  type: "challenge";
  /** The trainer's report. */
  report: ReportBody;
  /** The connection to the trainer. */
  connection: Connection;
  /** The round's terms. */
  terms: TrainingReceiptBody["terms"];
  /** Architecture. */
  arch: GptArchitecture;
  /** Storage file id of the start model. */
  startFile?: string;
  /** Samples in the trainer's shard, as it joined. */
  shardSize: number;
  /** Its shard root, as it joined. */
  shardRoot?: string;
}

/** Messages the TrainingValidator accepts. */
export type TrainingValidatorMessage =
  | ChallengeRequest
  | { type: "receipt"; body: TrainingReceiptBody; origin: string }
  | { type: "credit"; receipts: TrainingReceipt[]; terms: TrainingReceiptBody["terms"] }
  | {
    type: "fraud_proof";
    body: TrainingFraudProofBody;
    origin: string;
    /** When it was first held (for its accuser's pledge or its receipt), ms: one read back. */
    since?: number;
  }
  | {
    type: "checked";
    body: TrainingFraudProofBody;
    hash: string;
    confirmed: boolean;
    reason: string;
    origin: string;
    /** When a peer's proof was taken here (kept across a stop), ms; absent: this validator's. */
    takenAt?: number;
  }
  | {
    type: "unchecked";
    body: TrainingFraudProofBody;
    hash: string;
    origin: string;
    /** Taken unbacked (charged, or a copy of one whose charged check failed). */
    unbacked: boolean;
    /** Whether it failed in the re-run itself (after the architecture and start model held). */
    reran: boolean;
    /** Why. */
    error: string;
    /** The incarnation that ran the check ({@link TrainingValidator}'s `#incarnation`). */
    by: object;
  }
  | { type: "settle_again"; key: string }
  | { type: "outcome"; body: OutcomeBody; origin: string }
  | {
    type: "audited";
    body: OutcomeBody;
    audit: RoundAudit;
    origin: string;
    /** Called once it was passed on (or refused): see `outcome`'s answer. */
    ended?: () => void;
  }
  | { type: "outcome_again" }
  | { type: "receipts_again" }
  | { type: "uncredited"; credit: KeptCredit; unanswered: number }
  | { type: "unaudited"; body: OutcomeBody; origin: string; attempts: number; error: Error }
  | { type: "adopted"; model: string }
  | { type: "model_standing"; model: string }
  | {
    /**
     * A coordinator seating a round: what a receipt of `work` locks in this node's ledger and
     * each of `keys`' (hex) free stake there (`_seat_stakes.ts`). Answers `SeatStakes`, or
     * undefined when this validator has no ledger.
     */
    type: "seat_stakes";
    keys: string[];
    work: TrainingWork;
  }
  | { type: "stats" }
  | { type: "end_again" }
  | { type: "pledges_again" }
  | { type: "stakes_again" }
  | {
    type: "unanswered_again";
    /** The kept proof's hash. */
    hash: string;
    /** Its tries when it was kept (a wait of an earlier keep is stale). */
    attempts: number;
  }
  | { type: "claims_again" }
  | { type: "resume_again" }
  | {
    type: "takeover_ended";
    /** The claimant's key (hex). */
    claimant: string;
    /** How it ended (undefined: it threw). */
    outcome?: TakeoverOutcome;
  };

/** Counters of the training validator (the outcome gate's among them). */
export interface TrainingValidatorStats extends OutcomeGateStats {
  /** Receipts challenged here. */
  challenged: number;
  /** Challenges whose openings re-ran within tolerance. */
  passed: number;
  /** Fraud proofs this validator signed. */
  frauds: number;
  /** Refusals and missed deadlines (among the fraud proofs: `opening_missing`). */
  faults: number;
  /** Peers' `opening_missing` claims taken over: this validator asked the trainer itself. */
  takeovers: number;
  /** Takeovers the trainer answered: the claim was false here, and not taken. */
  falseClaims: number;
  /** Fraud proofs checked here (own and peers'). */
  checked: number;
  /** Fraud proofs confirmed here. */
  confirmed: number;
  /** Round models fetched and served here. */
  adopted: string[];
}

/** The validator's counters that are neither the outcome gate's nor the challenge run's. */
type ValidatorOwnStats = Omit<
  TrainingValidatorStats,
  keyof OutcomeGateStats | keyof ChallengeRunStats
>;

/** See the module doc. */
export class TrainingValidator implements Actor<TrainingValidatorMessage> {
  readonly #options: TrainingValidatorOptions;
  readonly #seen = new Set<string>();
  /**
   * This incarnation, told with each check's failure: `ctx.self` outlives a supervisor's restart,
   * so a failure of a check the crashed incarnation ran reached the restarted one, which had taken
   * the same proof again from disk and was checking it: it forgot that copy (its `seen` mark, its
   * unbacked place, its kept file), and nobody settled the proof here
   * (`tests/training/training_proof_intake_test.ts`).
   */
  readonly #incarnation = {};
  /** Which outcomes are audited, and what is kept of each audit (`_outcome_gate.ts`). */
  readonly #outcomes: OutcomeGate;
  readonly #stats: ValidatorOwnStats = { checked: 0, confirmed: 0, adopted: [] };
  /** The challenges this validator holds in its ledger, until they end (`_challenge_endings.ts`). */
  readonly #endings: ChallengeEndings;
  /** Peers' proofs taken and not settled, and their copies (`_taken_training_proofs.ts`). */
  readonly #taken: TakenTrainingProofs;
  /**
   * The intake of fraud proofs, the holds of peers' proofs not worth their re-run yet and the
   * unbacked checks spent (`_training_proof_intake.ts`).
   */
  readonly #intake: TrainingProofIntake;
  /**
   * The challenges this validator runs, outside the mailbox: coin, openings, re-run, verdict
   * (`_training_challenge_run.ts`).
   */
  readonly #challenges: TrainingChallengeRun;

  /** This validator's own fraud proofs until they settle, on disk (`ownProofsDir`). */
  readonly #ownProofs: ReceiptFiles | undefined;
  /** The receipts challenged here, never challenged twice (`_challenged_receipts.ts`). */
  readonly #challenged: ChallengedReceipts;
  /** Takeovers of peers' `opening_missing` claims (`_claim_takeovers.ts`). */
  readonly #claims: ClaimTakeovers;
  /**
   * What this start still has to read of the challenges the previous incarnation left in the
   * ledger, until the ledger answered (`_challenge_resume.ts`).
   */
  readonly #resume: ChallengeResume;

  /** The fraud proofs checked and settled here (`_fraud_proof_checks.ts`). */
  readonly #proofs: FraudProofChecks;
  /** The receipts recorded and credited in the ledger (`_receipt_credits.ts`). */
  readonly #credits: ReceiptCredits;
  /** The round outcomes audited here, and their models served (`_outcome_audits.ts`). */
  readonly #audits: OutcomeAudits;
  /** The ways to the NetworkActor: connections, dials, gossip (`_training_network.ts`). */
  readonly #network: TrainingNetwork;
  /**
   * The worker this validator re-runs opened steps in, when it made one (no `rerun` given):
   * terminated at `postStop` (`step_rerun.ts`).
   */
  readonly #ownRerun: WorkerStepRerun | undefined;

  /** @param options See {@link TrainingValidatorOptions}. */
  constructor(options: TrainingValidatorOptions) {
    this.#options = options;
    // Started at the first re-run (a validator that never re-runs costs no worker).
    this.#ownRerun = options.rerun === undefined
      ? new WorkerStepRerun({ log: (line) => this.#log(line) })
      : undefined;
    const rerun = options.rerun ?? this.#ownRerun;
    // Resolved once: every part holds, charges and admits by the economics its ledger runs with.
    const economics: EconomicParams = { ...DEFAULT_ECONOMICS, ...options.economics };
    this.#network = new TrainingNetwork(options);
    // A validator given no round models (a ledger-only one; tests of its coin) keeps no momenta.
    const modelsDir = options.models?.modelsDir;
    this.#outcomes = new OutcomeGate({
      models: options.models,
      // Beside the round models: an audit after a stop starts from the momentum kept there.
      momentaDir: modelsDir === undefined ? undefined : join(modelsDir, AUDITED_MOMENTA_DIR),
      seen: { has: (key) => this.#seen.has(key), add: (key) => this.#firstTime(key) },
      genesisSeeds: options.genesisSeeds,
      economics,
      now: () => (this.#options.now ?? Date.now)(),
      log: (line) => this.#log(line),
    });
    this.#ownProofs = options.ownProofsDir === undefined
      ? undefined
      : ReceiptFiles.in(options.ownProofsDir, OWN_TRAINING_FRAUD_PROOFS_DIR);
    this.#endings = new ChallengeEndings({
      ownProofs: this.#ownProofs,
      retryMs: options.endRetryMs,
      timers: options.timers,
      askEnd: (ctx, receiptId, step, reason) =>
        this.#ledger<boolean>(ctx, { type: "training_challenge", receiptId, step, reason }),
      settleInLedger: (ctx, checked) => this.#proofs.settleInLedger(ctx, checked),
      log: (line) => this.#log(line),
    });
    const dir = options.ownProofsDir;
    this.#taken = new TakenTrainingProofs({
      dir,
      now: () => (this.#options.now ?? Date.now)(),
      retryMs: options.endRetryMs,
    });
    this.#intake = new TrainingProofIntake({
      publicKey: options.identity.publicKey,
      taken: this.#taken,
      dir,
      now: () => (this.#options.now ?? Date.now)(),
      economics,
      pledgeRecheckMs: options.pledgeRecheckMs,
      retryMs: options.endRetryMs,
      timers: options.timers,
      ask: (ctx, message) => this.#ledger(ctx, message),
      log: (line) => this.#log(line),
    });
    this.#challenged = new ChallengedReceipts(dir, () => this.#now());
    this.#challenges = new TrainingChallengeRun({
      identity: options.identity,
      challenged: this.#challenged,
      now: () => this.#now(),
      economics,
      models: options.models,
      challengeProbability: options.challengeProbability ?? economics.challengeProbability,
      random: options.random ?? secureRandom,
      openingDeadlineMs: options.openingDeadlineMs,
      check: options.check ?? checkStepOpenings,
      rerun,
      endings: this.#endings,
      ownProofs: this.#ownProofs,
      lastStepsDir: dir === undefined ? undefined : join(dir, TAKEOVER_LAST_STEPS_DIR),
      ask: (ctx, message) => this.#ledger(ctx, message),
      hasLedger: (ctx) => {
        const name = this.#options.ledger;
        return name !== undefined && ctx.system.lookup(name) !== undefined;
      },
      connectionTo: (ctx, trainer) => this.#network.connectionTo(ctx, trainer),
      reach: (ctx, trainer, forMs, holder, dialled) =>
        this.#network.reach(ctx, trainer, forMs, holder, dialled),
      networkWorks: (ctx, since) => this.#network.works(ctx, since),
      log: (line) => this.#log(line),
    });
    this.#resume = new ChallengeResume({
      settings: options,
      ownProofs: this.#ownProofs,
      endings: this.#endings,
      challenges: this.#challenges,
      ask: (ctx, message) => this.#ledger(ctx, message),
      log: (line) => this.#log(line),
    });
    this.#claims = new ClaimTakeovers({
      identity: options.identity,
      challenges: this.#challenges,
      challengeProbability: options.challengeProbability ?? economics.challengeProbability,
      now: () => this.#now(),
      economics,
      dir,
      retryMs: options.endRetryMs,
      timers: options.timers,
      ask: (ctx, message) => this.#ledger(ctx, message),
      connectionTo: (ctx, trainer) => this.#network.connectionTo(ctx, trainer),
      log: (line) => this.#log(line),
    });
    this.#credits = new ReceiptCredits({
      intake: this.#intake,
      claims: this.#claims,
      challenges: this.#challenges,
      ask: (ctx, message) => this.#ledger(ctx, message),
      publish: (ctx, gossip, origin) => this.#network.publish(ctx, gossip, origin),
      hasLedger: options.ledger !== undefined,
      dir,
      retryMs: options.endRetryMs,
      timers: options.timers,
      stakeRecheckMs: options.pledgeRecheckMs,
      stakeHoldMs: economics.challengeWindowMs,
      now: () => this.#now(),
      log: (line) => this.#log(line),
    });
    this.#proofs = new FraudProofChecks({
      settings: options,
      incarnation: this.#incarnation,
      stats: this.#stats,
      seen: { add: (key) => this.#firstTime(key), delete: (key) => this.#seen.delete(key) },
      endings: this.#endings,
      taken: this.#taken,
      intake: this.#intake,
      claims: this.#claims,
      ask: (ctx, message) => this.#ledger(ctx, message),
      publish: (ctx, gossip, origin) => this.#network.publish(ctx, gossip, origin),
      rerun,
      log: (line) => this.#log(line),
    });
    this.#audits = new OutcomeAudits({
      settings: options,
      gate: this.#outcomes,
      creditRound: (ctx, body) => this.#credits.creditRound(body, ctx),
      creditReceipts: (ctx, receipts, terms) => this.#credits.credit(receipts, terms, ctx),
      challenges: this.#challenges,
      ask: (ctx, message) => this.#ledger(ctx, message),
      publish: (ctx, gossip, origin) => this.#network.publish(ctx, gossip, origin),
      log: (line) => this.#log(line),
    });
  }

  /**
   * Resume the challenges a stop interrupted after they failed with a fraud proof (kept on
   * disk): each is held again and its proof checked and settled as it would have been. One
   * whose ending was kept (its ask had failed, or the stop came before the answer) is ended in
   * the ledger with it: passed, paid when its window closes. One whose receipt is no longer
   * challenged here is forgotten; one whose kept bytes are neither ends unresolved, as does every
   * other challenge still open in the ledger. A read of these the ledger does not answer is read
   * again (`resume_again`, {@link END_RETRY_MS} doubling, `MAX_END_ATTEMPTS` rounds), not taken
   * as "none" (`_challenge_resume.ts`).
   */
  async preStart(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    await this.#challenged.readBack();
    const kept = await this.#ownProofs?.all() ?? new Map<string, unknown>();
    // Until the ledger answered both reads: the challenges this incarnation opens meanwhile are
    // its own, not the lost ones a later read ends.
    this.#challenges.recordOpens(true);
    this.#resume.begin(kept);
    await this.#resume.read(ctx);
    // The unbacked counts spent before, then the held and taken proofs through the intake
    // again, as a peer's proof goes (`_training_proof_intake.ts`); then kept as held now.
    // The claims kept for a ledger that did not answer, too: through the intake and check again
    // as their claimant's proofs, then considered again (`_claim_takeovers.ts`).
    const claims = await this.#claims.readBack();
    // The peers' receipts kept for a ledger that did not answer: recorded again at the first
    // `receipts_again` (a proof read back below meanwhile is held for its receipt until then);
    // those held for their trainer's stake: held again, recorded once it has staked.
    await this.#credits.readBack(ctx);
    for (const message of await this.#intake.readBack()) await this.receive(message, ctx);
    // A claim's check was charged to its receipt's unbacked budget before it was kept: that
    // charge is in the counts read back, and taking it again does not charge it again.
    this.#intake.chargedBefore(claims.map((message) => message.body.proof));
    for (const message of claims) await this.receive(message, ctx);
    await this.#intake.keep();
    // Taken or held now (on the intake's disk): the claims' folder holds only what is kept again.
    await this.#claims.keepOnDisk();
    // The outcomes and credits kept for a ledger that did not answer: taken again
    // (`outcome_again`, `_outcome_audits.ts`).
    await this.#audits.readBack(ctx);
  }

  /**
   * Keep the held proofs, the peers' proofs taken and not settled (waiting in the mailbox, being
   * checked: their answer, told after the stop, is lost), the spent unbacked checks and the
   * receipts held for their trainer's stake for the next start. The re-run worker is terminated:
   * a check in it fails `step_rerun_stopped` and ends as a check that could not be made
   * (docs/TRAINING.md, "Where the re-run runs").
   */
  async postStop(): Promise<void> {
    this.#ownRerun?.close();
    await this.#intake.keep();
    await this.#credits.keepStakeHeld();
  }

  /** Handle one message; see {@link TrainingValidatorMessage}. */
  async receive(
    message: TrainingValidatorMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<unknown> {
    switch (message.type) {
      case "challenge":
        return { result: this.#challenges.challenge(message, ctx) };
      case "receipt":
        return await this.#credits.record(message.body, message.origin, ctx);
      case "credit": {
        // Kept and credited again when the ledger did not answer (`_outcome_audits.ts`).
        const { receipts, terms } = message;
        return await this.#audits.credit(
          ctx,
          this.#audits.coordinatorCredit(ctx, receipts, terms),
        );
      }
      case "fraud_proof": {
        const key = copyKey(message.body);
        try {
          const answer = await this.#proofs.take(message, key, ctx);
          // Held for its receipt: the receipt it carries is recorded as a peer's
          // (`_receipt_credits.ts`, `proofHeld`): its trainer cannot hide it from the proof.
          const { held, skipped } = answer as { held?: boolean; skipped?: string };
          if (held === true && skipped === "receipt_unknown") {
            await this.#credits.proofHeld(ctx, message.body.proof, message.origin);
          }
          return answer;
        } finally {
          // Told again from a hold, now taken: being checked, waiting, held again or refused.
          if (this.#taken.handled(key)) this.#intake.keepLater(ctx);
        }
      }
      case "unchecked":
        // A crashed incarnation's check: this one took the proof again from disk (see above).
        if (message.by !== this.#incarnation) return;
        return await this.#proofs.unchecked(message, ctx);
      case "checked":
        return await this.#proofs.settle(message, ctx);
      case "settle_again": {
        const unsettled = this.#taken.unsettled(message.key);
        if (unsettled !== undefined) {
          await this.#proofs.settleInLedgerOnce(unsettled.checked, ctx, unsettled.attempts);
        }
        return;
      }
      case "outcome":
        return await this.#audits.take(message, ctx);
      case "audited":
        try {
          return await this.#audits.audited(message.body, message.audit, message.origin, ctx);
        } finally {
          message.ended?.();
        }
      case "outcome_again":
        return await this.#audits.again(ctx);
      case "receipts_again":
        return await this.#credits.again(ctx);
      case "uncredited":
        return await this.#audits.uncredited(ctx, message.credit, message.unanswered);
      case "unaudited":
        return await this.#audits.unaudited(ctx, message);
      case "adopted":
        this.#stats.adopted.push(message.model);
        return;
      case "model_standing":
        return this.#outcomes.standing(message.model);
      case "seat_stakes":
        if (this.#options.ledger === undefined) return undefined;
        return await seatStakes(
          (account) => this.#ledger<Account>(ctx, account),
          { ...DEFAULT_ECONOMICS, ...this.#options.economics },
          message.keys,
          message.work,
        );
      case "stats":
        return {
          ...this.#stats,
          ...this.#challenges.stats(),
          adopted: [...this.#stats.adopted],
          ...this.#outcomes.stats(),
        };
      case "end_again":
        return await this.#endings.again(ctx);
      case "pledges_again":
        return await this.#intake.pledgesAgain(ctx);
      case "stakes_again":
        return await this.#credits.stakesAgain(ctx);
      case "unanswered_again":
        return this.#intake.unansweredAgain(ctx, message.hash, message.attempts);
      case "takeover_ended":
        return this.#claims.ended(message.claimant, message.outcome);
      case "claims_again":
        return await this.#claims.again(ctx);
      case "resume_again":
        return await this.#resume.read(ctx);
    }
  }

  /** The ledger's clock (ms). */
  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: LedgerTrainingMessage,
  ): Promise<R> {
    const name = this.#options.ledger;
    const ref = name === undefined ? undefined : ctx.system.lookup<LedgerTrainingMessage>(name);
    if (ref === undefined) return Promise.reject(new Error("no ledger on this node"));
    return ref.ask<R>(message);
  }

  #firstTime(key: string): boolean {
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.values().next().value!);
    return true;
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}
