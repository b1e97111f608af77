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
 * receipt     { body, origin }   record in the ledger (uncredited); new: pass on
 * credit      { receipts, terms } credit receipts whose deltas went into a round's model
 * fraud_proof { body, origin }   check (outside the mailbox) → checked
 * checked     { … }              internal: settle in the ledger; confirmed and new: pass on. A
 *                                peer's confirmed `opening_missing` is a claim, not settled on
 *                                its word: taken over instead (`_claim_takeovers.ts`)
 * takeover_ended { claimant, outcome } internal: a takeover of a claim ended (served: the claim
 *                                was false here)
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
 * model_standing { model }       → why this node refused that round model, or null
 * end_again   {}                 internal: ask the ledger again to end the challenges whose
 *                                ending ask failed (see below)
 * pledges_again {}               internal: the proofs held for their accuser's pledge whose
 *                                accuser has staked since go through the intake again; the
 *                                held ones (and those held for their receipt) are kept on disk
 *                                (`ownProofsDir`) for the next start
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
 * openings fetched within the deadline, the re-run and its verdict; a failed one tells this actor
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
 * @module
 */
import { join } from "node:path";
import type { Actor, ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import {
  type OutcomeBody,
  type ReportBody,
  TRAINING_PROTOCOL,
  type TrainingFraudProofBody,
  type TrainingGossip,
  type TrainingReceiptBody,
} from "../protocols/training_messages.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { ReceiptStatus } from "../proof/ledger_state.ts";
import type {
  ReceiptStatusMessage,
  TrainingChallengedMessage,
  TrainingChallengeLedgerMessage,
  TrainingCheckingMessage,
  TrainingFraudLedgerMessage,
  TrainingReceiptLedgerMessage,
  TrainingReceiptRecorded,
} from "../actors/validator_messages.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { RoundModels } from "./round_models.ts";
import { OWN_TRAINING_FRAUD_PROOFS_DIR, ReceiptFiles } from "../actors/_receipt_files.ts";
import { TrainingError } from "./training_error.ts";
import type { GptWeights } from "./gpt_weights.ts";
import type { RoundAudit } from "./round_audit.ts";
import {
  DEFAULT_GENESIS_SEEDS,
  FALSE_OUTCOME_BENCH_MS,
  MAX_AUDITS_PER_COORDINATOR,
  MAX_AUDITS_PER_PEER,
  OutcomeGate,
  type OutcomeGateStats,
  PEER_AUDIT_WINDOW_MS,
} from "./_outcome_gate.ts";
import { type TrainingReceipt, trainingReceiptId } from "./training_receipt.ts";
import { DEFAULT_OPENING_DEADLINE_MS, type TrainingChallenge } from "./training_challenge.ts";
import type { SealedStepOpenings } from "./step_opening.ts";
import {
  checkStepOpenings,
  type CheckStepOpeningsOptions,
  type StepOpeningsCheck,
} from "./step_check.ts";
import {
  checkTrainingFraudProof,
  type TrainingFraudProof,
  trainingFraudProofHash,
} from "./training_fraud_proof.ts";
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
/**
 * Answers kept to "is this the architecture of that start model" (a model built and hashed, tens
 * of milliseconds): a proof re-sent under a wrong architecture, which is not marked seen so that
 * the genuine copy is still checked, costs a lookup.
 */
const KEPT_ARCH_CHECKS = 256;

/**
 * How often a dial of a trainer (`reach`: a takeover's, or a drawn trainer's after a round) looks
 * for the connection it brings up, ms: a Hyperswarm connection takes a DHT lookup and a handshake
 * (hundreds of ms), so a quarter second costs at most that much of the dial and few asks of the
 * NetworkActor.
 */
const REACH_POLL_MS = 250;

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
  /** Chance of challenging a receipt; default {@link DEFAULT_TRAINING_CHALLENGE_PROBABILITY}. */
  challengeProbability?: number;
  /**
   * Uniform draws in [0, 1) for the challenge coin; default {@link secureRandom}, a CSPRNG. A
   * trainer that could predict the coin (Math.random's state is recovered from a few of its
   * outputs) would train lazily exactly when it is not drawn. Tests inject fixed draws.
   */
  random?: () => number;
  /** Time a trainer has to open its steps, ms; default {@link DEFAULT_OPENING_DEADLINE_MS}. */
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
   * Seeds of the genesis models coordinators start from; default {@link DEFAULT_GENESIS_SEEDS}.
   * A round from one starts with no momentum, so it is audited whatever its number.
   */
  genesisSeeds?: readonly number[];
  /** Where one line per challenge, fraud and adopted model goes. */
  log?: (line: string) => void;
  /**
   * The ledger's directory: this validator's own fraud proofs are kept in its
   * `own-training-fraud-proofs/` from the failed challenge to their settlement, and resumed at
   * start (set the ValidatorActor's `trainingProofsResumed` with it); peers' proofs held for
   * their accuser's pledge are kept in its `pledge-held-training-proofs/`, those held for their
   * receipt in its `receipt-held-training-proofs/`, both taken up again at start, and the
   * unbacked checks spent per receipt in its `training-unbacked-checks.cbor`. Absent: not kept,
   * and a stop before the settlement leaves the receipt unresolved.
   */
  ownProofsDir?: string;
  /**
   * First wait before an ending ask that failed is asked again, ms; default
   * {@link END_RETRY_MS} (doubling, at most `MAX_END_ATTEMPTS` asks: `_challenge_endings.ts`).
   */
  endRetryMs?: number;
  /**
   * How often the ledger is asked whether the accusers of the proofs held for their pledge have
   * staked, ms; default `PLEDGE_RECHECK_MS` (`_pledge_held_training_proofs.ts`).
   */
  pledgeRecheckMs?: number;
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
  | { type: "adopted"; model: string }
  | { type: "model_standing"; model: string }
  | { type: "stats" }
  | { type: "end_again" }
  | { type: "pledges_again" }
  | {
    type: "takeover_ended";
    /** The claimant's key (hex). */
    claimant: string;
    /** How it ended (undefined: it threw). */
    outcome?: TakeoverOutcome;
  };

/** The internal `checked` message: a fraud proof checked here, to settle. */
type CheckedMessage = Extract<TrainingValidatorMessage, { type: "checked" }>;

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
   * (`tests/training/review_s42_split_test.ts`).
   */
  readonly #incarnation = {};
  /** Which outcomes are audited, and what is kept of each audit (`_outcome_gate.ts`). */
  readonly #outcomes: OutcomeGate;
  readonly #stats: ValidatorOwnStats = { checked: 0, confirmed: 0, adopted: [] };
  /** Whether an architecture is a start model's, by `cid|arch` ({@link KEPT_ARCH_CHECKS}). */
  readonly #archChecks = new Map<string, boolean>();
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

  /** @param options See {@link TrainingValidatorOptions}. */
  constructor(options: TrainingValidatorOptions) {
    this.#options = options;
    this.#outcomes = new OutcomeGate({
      models: options.models,
      seen: { has: (key) => this.#seen.has(key), add: (key) => this.#firstTime(key) },
      genesisSeeds: options.genesisSeeds,
      now: () => (this.#options.now ?? Date.now)(),
      log: (line) => this.#log(line),
    });
    this.#ownProofs = options.ownProofsDir === undefined
      ? undefined
      : ReceiptFiles.in(options.ownProofsDir, OWN_TRAINING_FRAUD_PROOFS_DIR);
    this.#endings = new ChallengeEndings({
      ownProofs: this.#ownProofs,
      retryMs: options.endRetryMs,
      askEnd: (ctx, receiptId, step, reason) =>
        this.#ledger<boolean>(ctx, { type: "training_challenge", receiptId, step, reason }),
      settleInLedger: (ctx, checked) => this.#settleInLedger(ctx, checked),
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
      pledgeRecheckMs: options.pledgeRecheckMs,
      ask: (ctx, message) => this.#ledger(ctx, message),
      log: (line) => this.#log(line),
    });
    this.#challenged = new ChallengedReceipts(dir, () => this.#now());
    this.#challenges = new TrainingChallengeRun({
      identity: options.identity,
      challenged: this.#challenged,
      now: () => this.#now(),
      models: options.models,
      challengeProbability: options.challengeProbability ?? DEFAULT_TRAINING_CHALLENGE_PROBABILITY,
      random: options.random ?? secureRandom,
      openingDeadlineMs: options.openingDeadlineMs ?? DEFAULT_OPENING_DEADLINE_MS,
      check: options.check ?? checkStepOpenings,
      endings: this.#endings,
      ownProofs: this.#ownProofs,
      lastStepsDir: dir === undefined ? undefined : join(dir, TAKEOVER_LAST_STEPS_DIR),
      ask: (ctx, message) => this.#ledger(ctx, message),
      hasLedger: (ctx) => {
        const name = this.#options.ledger;
        return name !== undefined && ctx.system.lookup(name) !== undefined;
      },
      connectionTo: (ctx, trainer) => this.#connectionTo(ctx, trainer),
      reach: (ctx, trainer, forMs, holder) => this.#reach(ctx, trainer, forMs, holder),
      log: (line) => this.#log(line),
    });
    this.#claims = new ClaimTakeovers({
      identity: options.identity,
      challenges: this.#challenges,
      challengeProbability: options.challengeProbability ?? DEFAULT_TRAINING_CHALLENGE_PROBABILITY,
      now: () => this.#now(),
      ask: (ctx, message) => this.#ledger(ctx, message),
      connectionTo: (ctx, trainer) => this.#connectionTo(ctx, trainer),
      log: (line) => this.#log(line),
    });
  }

  /**
   * Resume the challenges a stop interrupted after they failed with a fraud proof (kept on
   * disk): each is held again and its proof checked and settled as it would have been. One
   * whose ending was kept (its ask had failed, or the stop came before the answer) is ended in
   * the ledger with it: passed, paid when its window closes. One whose receipt is no longer
   * challenged here is forgotten; one whose kept bytes are neither ends unresolved, as does every
   * other challenge still open in the ledger.
   */
  async preStart(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    await this.#challenged.readBack();
    const kept = await this.#ownProofs?.all() ?? new Map<string, unknown>();
    for (const [id, value] of kept) {
      let record: { status: ReceiptStatus } | undefined;
      try {
        record = await this.#ledger<{ status: ReceiptStatus } | undefined>(ctx, {
          type: "receipt_status",
          receiptId: id,
        });
      } catch (error) {
        // No answer: not "no longer challenged". Kept for the next start (the ValidatorActor
        // leaves a kept receipt `challenged` at its own).
        this.#log(
          `training validator: challenge of ${id.slice(0, 12)} left to the next start: ${
            (error as Error).message
          }`,
        );
        continue;
      }
      if (record?.status !== "challenged") {
        await this.#ownProofs!.remove(id);
        continue;
      }
      // Ended before the stop, the ledger not told: told now, with the verdict it had.
      if (await this.#endings.resumeKept(ctx, id, value)) continue;
      this.#endings.hold(id);
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
    // start ends them in the ValidatorActor's, before this one).
    const open = await this.#ledger<string[]>(ctx, { type: "training_challenged" })
      .catch(() => [] as string[]);
    for (const id of open) {
      if (this.#endings.holds(id) || kept.has(id)) continue;
      this.#endings.hold(id);
      await this.#endings.end(ctx, id, "undecided", "validator_restarted");
    }
    // The unbacked counts spent before, then the held and taken proofs through the intake
    // again, as a peer's proof goes (`_training_proof_intake.ts`); then kept as held now.
    for (const message of await this.#intake.readBack()) await this.receive(message, ctx);
    await this.#intake.keep();
  }

  /**
   * Keep the held proofs, the peers' proofs taken and not settled (waiting in the mailbox, being
   * checked: their answer, told after the stop, is lost) and the spent unbacked checks for the
   * next start.
   */
  async postStop(): Promise<void> {
    await this.#intake.keep();
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
        return await this.#onReceipt(message.body, message.origin, ctx);
      case "credit":
        return await this.#credit(message.receipts, message.terms, ctx);
      case "fraud_proof": {
        const key = copyKey(message.body);
        try {
          return await this.#onFraudProof(message, key, ctx);
        } finally {
          // Told again from a hold, now taken: being checked, waiting, held again or refused.
          if (this.#taken.handled(key)) this.#intake.keepLater(ctx);
        }
      }
      case "unchecked":
        // A crashed incarnation's check: this one took the proof again from disk (see above).
        if (message.by !== this.#incarnation) return;
        return await this.#onUnchecked(message, ctx);
      case "checked":
        return await this.#settle(message, ctx);
      case "settle_again": {
        const unsettled = this.#taken.unsettled(message.key);
        if (unsettled !== undefined) {
          await this.#settleInLedgerOnce(unsettled.checked, ctx, unsettled.attempts);
        }
        return;
      }
      case "outcome": {
        // This node's own coordinator waits on `result` before it forgets the outcome (its
        // state keeps it until then, and a restart sends it again): it settles once the outcome
        // was passed on, or its audit here ended without (refused, no verdict); it rejects when
        // this actor stopped before that. A peer's copy is told, its answer unused.
        const ended = Promise.withResolvers<void>();
        ended.promise.catch(() => {}); // nobody may be waiting on it
        // Stopped with its `audited` still to come (told or not): that answer is lost.
        const stopped = () => ended.reject(new Error("the training validator stopped"));
        ctx.signal.addEventListener("abort", stopped, { once: true });
        ended.promise.finally(() => ctx.signal.removeEventListener("abort", stopped))
          .catch(() => {});
        const answer = message.origin === "local" ? { result: ended.promise } : undefined;
        // Signed by a staked coordinator, within its budget and its relay's, a copy of a model
        // not proven yet, or refused (`_outcome_gate.ts`).
        if (!await this.#outcomes.mayAudit(message.body, message.origin, this.#stakeOf(ctx))) {
          ended.resolve();
          return answer;
        }
        // Audited outside the mailbox; served and passed on only when it holds (`audited`).
        void this.#outcomes.audit(message.body, this.#convicted(ctx)).then(
          (audit) =>
            ctx.self.tell({
              type: "audited",
              body: message.body,
              audit,
              origin: message.origin,
              ended: ended.resolve,
            }),
          (error) => {
            this.#log(
              `training: model ${message.body.model.slice(0, 16)} not adopted: ${
                (error as Error).message
              }`,
            );
            ended.resolve();
          },
        ).catch((error) => ended.reject(error)); // this actor stopped meanwhile
        return answer;
      }
      case "audited":
        try {
          return this.#onAudited(message.body, message.audit, message.origin, ctx);
        } finally {
          message.ended?.();
        }
      case "adopted":
        this.#stats.adopted.push(message.model);
        return;
      case "model_standing":
        return this.#outcomes.standing(message.model);
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
      case "takeover_ended":
        return this.#claims.ended(message.claimant, message.outcome);
    }
  }

  /**
   * Take a fraud proof: through the intake (held, or refused), then checked outside the mailbox
   * (`checked`, or `unchecked` when the check fails unsettled). A peer's is taken from here until
   * it settles; a copy of a proof whose check is under way waits for it when its unsigned
   * architecture or start file differs (`_taken_training_proofs.ts`).
   * @param key The copy's key (`copyKey`).
   */
  async #onFraudProof(
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
      this.#log(`training validator: a peer's fraud proof not checked (${refusal})`);
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
    if (!this.#firstTime(seen)) {
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
    void this.#check(body, () => reran = true).then(
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
  async #onUnchecked(
    message: Extract<TrainingValidatorMessage, { type: "unchecked" }>,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    const { hash, body, origin } = message;
    this.#seen.delete(`fraud:${hash}`);
    this.#intake.done(hash);
    // Failed before its re-run (this copy's start model or architecture): the next copy is not
    // charged again. One that failed in the re-run is charged again.
    if (message.unbacked && !message.reran) this.#intake.failedBeforeRerun(hash);
    this.#log(`training validator: fraud proof ${hash.slice(0, 12)} unchecked: ${message.error}`);
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
  #settleInLedger(
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

  /** Check a fraud proof; `rerunning` is called once its start model and architecture hold. */
  async #check(
    body: TrainingFraudProofBody,
    rerunning?: () => void,
  ): Promise<{ confirmed: boolean; reason: string }> {
    const receipt = body.proof.receipt;
    const start = await this.#options.models.get(receipt.startModel, body.arch, body.startFile);
    // `arch` travels beside the signed proof, unsigned: under another architecture an honest
    // opening does not decode (a false `opening_mismatch` confirmed) and a true step claim
    // does not either (its accuser charged). The receipt signs its start model's CID, which
    // the architecture and the start weights must give.
    if (!this.#archOf(receipt.startModel, body.arch, start.weights)) {
      throw new TrainingError(
        "arch_mismatch",
        `the architecture sent with the proof is not that of start model ${receipt.startModel}`,
      );
    }
    rerunning?.();
    return await checkTrainingFraudProof(body.proof, {
      arch: body.arch,
      startWeights: start.weights,
      // A trainer is owed at least the window this node gives when it challenges.
      minOpeningWindowMs: this.#options.openingDeadlineMs ?? DEFAULT_OPENING_DEADLINE_MS,
    });
  }

  async #settle(
    message: CheckedMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    this.#stats.checked++;
    this.#intake.done(message.hash);
    if (message.confirmed) {
      this.#stats.confirmed++;
      // Everyone checks for themselves; a refuted proof is not spread (it would cost its author).
      this.#publish(ctx, { kind: "fraud_proof", body: message.body }, message.origin);
    }
    if (
      message.confirmed && message.origin !== "local" &&
      message.body.proof.reason === "opening_missing"
    ) return await this.#onClaim(message, ctx);
    await this.#settleInLedgerOnce(message, ctx, 0);
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

  /** The ledger's clock (ms). */
  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  /**
   * Ask the ledger to settle a checked proof (`attempts` asks made before). This validator's
   * own challenge ends with it (`_challenge_endings.ts`); a peer's proof, once the ledger
   * answered, is no longer taken, with its copies; unanswered (the ValidatorActor crashed on the
   * ledger write, or is restarting), it stays taken and is asked again ({@link END_RETRY_MS},
   * doubling, `MAX_END_ATTEMPTS` asks: `_taken_training_proofs.ts`), then at the next start, from
   * the disk.
   */
  async #settleInLedgerOnce(
    message: CheckedMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
    attempts: number,
  ): Promise<void> {
    const proof = message.body.proof;
    const receipt = proof.receipt;
    const trainer = toHex(receipt.trainer);
    let failed: Error | undefined;
    const settled = await this.#settleInLedger(ctx, message).catch((error) => {
      failed = error as Error;
      this.#log(
        `training validator: fraud proof ${
          message.hash.slice(0, 12)
        } not settled: ${failed.message}`,
      );
      return undefined;
    });
    this.#log(
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
      this.#log(
        `training validator: fraud proof ${message.hash.slice(0, 12)} left to the next start`,
      );
      return;
    }
    // Told, not run here: the taken proofs change in `receive` (`settle_again`).
    void sleep(again.wait, ctx.signal).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "settle_again", key });
    }).catch(() => {}); // stopped meanwhile: kept on disk, taken up at the next start
  }

  async #onReceipt(
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
      // `credit` from the coordinator, or an outcome this node audits (`#creditRound`).
      credited: false,
    }).catch((error) => ({ recorded: false, fresh: false, refusal: (error as Error).message }));
    if (answer.fresh) {
      this.#publish(ctx, { kind: "receipt", body }, origin);
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
   */
  async #credit(
    receipts: readonly TrainingReceipt[],
    terms: TrainingReceiptBody["terms"],
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    for (const receipt of receipts) {
      const answer = await this.#ledger<TrainingReceiptRecorded>(ctx, {
        type: "training_receipt",
        receipt,
        terms,
        credited: true,
      }).catch(() => undefined); // refused (no stake, convicted): it earns nothing here
      if (answer?.fresh) this.#recordedHere(receipt);
      if (answer?.recorded) this.#intake.release(ctx, trainingReceiptId(receipt));
    }
  }

  /**
   * Credit the receipts a reproduced round averaged (recording those this ledger has not seen):
   * the round ran, and their deltas are what made its model.
   */
  async #creditRound(
    body: OutcomeBody,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    // The round's H is the one its receipts share (the audit refuses an outcome whose receipts
    // differ: `steps_mismatch`), not each receipt's own claim.
    const steps = body.reports[0]?.receipt.steps ?? 0;
    for (const { receipt } of body.reports) {
      const answer = await this.#ledger<TrainingReceiptRecorded>(ctx, {
        type: "training_receipt",
        receipt,
        terms: { round: body.round, startModel: body.startModel, steps },
        credited: true,
      }).catch(() => undefined); // refused (no stake, convicted): it earns nothing here
      if (answer?.fresh) this.#recordedHere(receipt);
      if (answer?.recorded) this.#intake.release(ctx, trainingReceiptId(receipt));
    }
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

  /** The outcome gate's question: the stake a key holds in the ledger (0: no answer). */
  #stakeOf(ctx: ActorContext<TrainingValidatorMessage>): (key: Uint8Array) => Promise<number> {
    return async (key) =>
      (await this.#ledger<{ stake: number }>(ctx, { type: "account", key })
        .catch(() => ({ stake: 0 }))).stake;
  }

  /** The audit's question: whether the ledger convicted a receipt (no answer: not). */
  #convicted(
    ctx: ActorContext<TrainingValidatorMessage>,
  ): (receiptId: string) => Promise<boolean> {
    return async (receiptId) =>
      (await this.#ledger<{ status: string } | undefined>(ctx, {
        type: "receipt_status",
        receiptId,
      }).catch(() => undefined))?.status === "fraud";
  }

  /** Whether `arch` with `weights` is start model `cid` (their `gptModelId` is it). */
  #archOf(cid: string, arch: GptArchitecture, weights: GptWeights): boolean {
    const key = `${cid}|${JSON.stringify(arch)}`;
    let same = this.#archChecks.get(key);
    if (same === undefined) {
      try {
        same = RoundModels.cidOf(arch, weights) === cid;
      } catch {
        same = false; // weights of another shape
      }
      this.#archChecks.set(key, same);
      if (this.#archChecks.size > KEPT_ARCH_CHECKS) {
        this.#archChecks.delete(this.#archChecks.keys().next().value!);
      }
    }
    return same;
  }

  /** Serve and pass on an outcome that holds (or could not be checked here); refuse one that does not. */
  #onAudited(
    body: OutcomeBody,
    audit: RoundAudit,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): void {
    if (!audit.ok) return this.#outcomes.auditFailed(body, audit, origin);
    if (!this.#outcomes.auditHeld(body, audit)) return; // another copy proved it first
    const name = `round ${body.round} model ${body.model.slice(0, 16)}…`;
    // Its receipts are recorded before this node challenges any: a challenge holds its receipt
    // in the ledger, which it can only once the receipt is there.
    const credited = audit.verified ? this.#creditRound(body, ctx) : Promise.resolve();
    this.#publish(ctx, { kind: "outcome", body }, origin);
    // The coordinator challenged before it aggregated; this node samples the same receipts
    // on its own coin, so no trainer is checked by its coordinator alone.
    if (origin !== "local") {
      body.reports.forEach((report, i) => {
        const delta = audit.verified ? audit.deltas[i] : undefined;
        void credited.catch(() => {}).then(() =>
          this.#challenges.afterRound(body, report, delta, ctx)
        );
      });
    }
    void this.#adopt(body, audit.verified ? "reproduced" : `not audited: ${audit.why}`).then(
      () => ctx.self.tell({ type: "adopted", model: body.model }),
      (error) => this.#log(`training: ${name} not adopted: ${(error as Error).message}`),
    ).catch(() => {}); // this actor stopped meanwhile
  }

  async #adopt(body: OutcomeBody, how: string): Promise<void> {
    const model = await this.#options.models.get(body.model, body.arch, body.file);
    await this.#options.serve?.(model.dir);
    this.#log(
      `training: round ${body.round} model ${body.model.slice(0, 16)}… ${how}, served` +
        (body.heldOutLoss === undefined ? "" : ` (held-out loss ${body.heldOutLoss.toFixed(3)})`),
    );
  }

  /** This node's connection to `trainer` over `training/1`, from the NetworkActor; none: undefined. */
  async #connectionTo(
    ctx: ActorContext<TrainingValidatorMessage>,
    trainer: Uint8Array,
  ): Promise<Connection | undefined> {
    const name = this.#options.network;
    const network = name === undefined
      ? undefined
      : ctx.system.lookup<{ type: "connection_to"; key: Uint8Array; protocol: string }>(name);
    return await network?.ask<Connection | undefined>({
      type: "connection_to",
      key: trainer,
      protocol: TRAINING_PROTOCOL.name,
    }).catch(() => undefined);
  }

  /**
   * Have the NetworkActor dial `trainer` by its key (`reach`, on behalf of `holder`) and answer
   * the `training/1` connection once it is up; undefined when none came up within `forMs`, or
   * the node has no network or swarm. The dial is released however this ends.
   */
  async #reach(
    ctx: ActorContext<TrainingValidatorMessage>,
    trainer: Uint8Array,
    forMs: number,
    holder: string,
  ): Promise<Connection | undefined> {
    const name = this.#options.network;
    const network = name === undefined ? undefined : ctx.system.lookup<
      | { type: "reach"; key: Uint8Array; forMs: number; holder: string }
      | { type: "release_reach"; key: Uint8Array; holder: string }
    >(name);
    if (network === undefined) return undefined;
    const until = performance.now() + forMs;
    let dialled = false;
    try {
      for (;;) {
        const connection = await this.#connectionTo(ctx, trainer);
        if (connection !== undefined) return connection;
        const left = until - performance.now();
        if (left <= 0 || ctx.signal.aborted) return undefined;
        if (!dialled) {
          // `false` (nothing to dial: no swarm, or a connection came up meanwhile) or "full"
          // (this node's bound on dials): looked for once more, then no dial is waited for.
          const answer = await network.ask<boolean | "full">(
            { type: "reach", key: trainer, forMs: left, holder },
            { timeoutMs: Math.max(1, left), signal: ctx.signal },
          ).catch(() => undefined);
          dialled = true;
          if (answer !== true) return await this.#connectionTo(ctx, trainer);
        }
        await sleep(Math.min(REACH_POLL_MS, left), ctx.signal);
      }
    } finally {
      if (dialled) network.tell({ type: "release_reach", key: trainer, holder }).catch(() => {});
    }
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

  #publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void {
    const name = this.#options.network;
    const ref = name === undefined
      ? undefined
      : ctx.system.lookup<{ type: "publish_training"; gossip: TrainingGossip; except?: string }>(
        name,
      );
    ref?.tell({ type: "publish_training", gossip, except: origin === "local" ? undefined : origin })
      .catch(() => {});
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
