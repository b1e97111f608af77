/**
 * ValidatorActor: keeps the node's ledger, samples other nodes' receipts, challenges them,
 * signs verdicts, settles fraud proofs.
 *
 * Every receipt it hears about — its own worker's (origin `local`) or one a peer announced —
 * is recorded in the ledger as pending if it is bound to its job and its worker has stake to
 * back it, and credited only if this validator can get its model (`ValidatorModelSource.has`):
 * what nothing here could check earns nothing here, and is never drawn. A receipt that
 * contradicts its own job (more tokens than `maxTokens`, another model or parameters) is
 * challenged on arrival, whatever the coin. **It never challenges a receipt its own key signed**: a node validating itself proves nothing. Its own
 * receipts are instead handed to the NetworkActor to announce to other nodes' validators.
 * For anyone else's receipt the validator's coin (`proof/challenge.ts`) decides; a challenge
 * gathers the job (from the announcement, or {@link ChallengeSource}), the worker's proof data
 * (over the wire from the worker, through the NetworkActor) and the model
 * ({@link ValidatorModelSource}), validates on a serial work queue (one forward pass at a time,
 * so challenges never starve inference of CPU) and reports back to the actor by a `challenged`
 * message: the verdict is recorded, a fraud proof is checked and settled, and both are spread
 * to every peer that keeps a ledger, all inside `receive`. Verdicts and fraud proofs from peers
 * enter the same way, each checked before it moves a balance. A receipt enters the ledger only
 * through the receipt intake: a fraud proof about a receipt not recorded here waits (bounded)
 * until the receipt comes in, and one signed by the receipt's own worker is refused. A peer's
 * proof is checked on its accuser's stake; short of it, it waits for the accuser's pledge
 * (`_pledge_held_proofs.ts`) or, the accuser having pledged, is checked within a budget per
 * receipt (`_unbacked_checks.ts`), so a worker's conviction does not hang on the order a pledge
 * and the proofs reach this ledger. A timer
 * finalizes receipts whose challenge window has closed.
 *
 * A receipt drawn is kept on disk with its job before it is recorded (`_receipt_files.ts`), so
 * a stop between its record and its challenge has the next start open the challenge it owes; a
 * peer's receipt not drawn is kept so too while it is pending, so a peer's "proof withheld" claim
 * that comes after a restart can still be taken over (below); and a claim travels after its receipt
 * and job (`ClaimEvidence`: handed to the network with the claim; a copy of a receipt recorded
 * here, pending, that the bounded memory forgot is remembered again), so one that comes after a
 * flood of receipts pushed them out can too. A
 * challenge is opened in the ledger first (`challenged`: unpaid, durably) and ends in one
 * ledger transition: `valid` clears it (paid when the window closes), a fraud proof slashes
 * once checked, proof data withheld past the deadline slashes (burned), and anything
 * undecided — no model, an exception, a restart — leaves the job unpaid. A decided ending is
 * kept on disk before the ledger is asked (`_challenge_endings.ts`, `_receipt_files.ts`), so a
 * ledger write that fails and crashes this actor is applied at its restart. A staked peer's
 * "proof withheld" verdict makes this validator ask the worker itself, with or without the
 * model, within a takeover budget of its own (`_takeover_budget.ts`; a claim that outran its
 * receipt or its author's pledge is held, bounded, until they come, as a fraud proof is): that
 * claim is about availability, so a validator without the model checks only that the worker
 * serves signed data opening its commitment (`withheld_check.ts`) and clears the challenge if it
 * does; a takeover that decides nothing (its verdict signed as a takeover's) clears it too — an
 * unprovable claim never leaves otherwise-paid work unpaid, and never gets a worker's receipts
 * refused.
 *
 * The `receipt` message answers at once (recorded or not, and — in-process only — whether this
 * validator challenges it and a promise of the result), so the mailbox is never held for a
 * forward pass.
 *
 * @module
 */
import { PROOF_DEADLINE_MS, STALE_RECEIPT_AGE_MS } from "../proof/challenge_timing.ts";
import type { Actor, ActorContext } from "./actor.ts";
import type { ActorSystem } from "./actor_system.ts";
import type { Identity } from "../protocols/identity.ts";
import { type Job, jobId as jobIdOf } from "../protocols/job.ts";
import {
  parseReceipt,
  type Receipt,
  receiptContradiction,
  receiptId,
  verifyReceipt,
} from "../protocols/receipt.ts";
import { type Verdict, verdictId, verifyVerdict } from "../protocols/verdict.ts";
import {
  type FraudProof,
  fraudProofHash,
  FraudProofSchema,
  verifyFraudProofSignature,
} from "../protocols/fraud_proof.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { challengeTicket } from "../proof/challenge.ts";
import { SteeringRecord } from "../proof/steering.ts";
import type { ValidationOptions, ValidationResult } from "../proof/validation.ts";
import {
  checkFraudProof,
  type FraudCheckResult,
  fraudProofNeedsModel,
} from "../proof/fraud_check.ts";
import {
  type Account,
  freeStake,
  Ledger,
  type LedgerOptions,
  LedgerRejectedError,
  type ReceiptRecord,
  takesFraudProofs,
  worthFraudCheck,
} from "../proof/ledger.ts";
import type { ClaimEvidence, NetworkMessage } from "../network/network_actor.ts";

export type * from "./validator_messages.ts";
import { PROOF_SERVED } from "./withheld_check.ts";
import { proofOf } from "./_proof_fetch.ts";
import { failedChallenge, isTakeover, runChallenge } from "./_run_challenge.ts";
import { ChallengeHolds } from "./_challenge_holds.ts";
import { TakeoverBudget } from "./_takeover_budget.ts";
import { settleSteering } from "./_steering_settlement.ts";
import { judgedKey, ValidatorMemory } from "./_validator_memory.ts";
import { type HeldEvidence, HeldEvidenceFile } from "./_held_evidence.ts";
import { PledgeHeldProofs } from "./_pledge_held_proofs.ts";
import { UnbackedChecks } from "./_unbacked_checks.ts";
import {
  DRAWN_CHALLENGES_DIR,
  OWN_REFUSED_RECEIPTS_DIR,
  OWN_TRAINING_FRAUD_PROOFS_DIR,
  PENDING_RECEIPTS_DIR,
  ReceiptFiles,
  TAKEN_OVER_CLAIMS_DIR,
} from "./_receipt_files.ts";
import { ChallengeEndings, type ChallengeEndStep } from "./_challenge_endings.ts";
import { CatchUp } from "./_catch_up.ts";
import {
  holdTrainingChallenge,
  recordTrainingReceipt,
  settleTrainingFraud,
} from "./_validator_training.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type {
  ChallengedMessage,
  ChallengeSource,
  FraudCheckedMessage,
  FraudProofHandled,
  ReceiptHandled,
  ReceiptMessage,
  TrainingFraudLedgerMessage,
  ValidatorActivity,
  ValidatorMessage,
  ValidatorModelSource,
  ValidatorStats,
} from "./validator_messages.ts";

/**
 * `invalid` reasons that are the worker's own failure without a fraud proof: proof data
 * withheld, and a receipt that convicts its worker of steering (`proof/steering.ts`).
 */
const FAULTS: ReadonlySet<string> = new Set(["proof_unavailable", "steering"]);

/**
 * How a challenge that found no fraud proof ends in the ledger, from its signed verdict alone:
 * valid (or, taken over on a peer's claim — signed in the verdict, `TAKEOVER_DETAIL` — the data
 * served or undecided here) — cleared; withheld or steering — a fault; else unresolved. Also
 * what a kept ending is checked against at the start: nothing unsigned decides it.
 */
function endOf(verdict: Verdict): ChallengeEndStep {
  const { outcome, reason } = verdict;
  if (outcome === "valid" || (outcome === "inconclusive" && reason === PROOF_SERVED)) {
    return "cleared";
  }
  if (outcome === "inconclusive" && isTakeover(verdict)) return "cleared";
  return outcome === "invalid" && FAULTS.has(reason) ? "fault" : "unresolved";
}

/**
 * What a "proof withheld" verdict about `receipt` is passed on after (`ClaimEvidence`): the
 * receipt and its job, for a text job (what `validation.receipt` carries); undefined for any
 * other verdict, or without them.
 */
function claimEvidence(
  verdict: Verdict,
  receipt: Receipt | undefined,
  job: Job | undefined,
): ClaimEvidence | undefined {
  if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return undefined;
  if (receipt === undefined || job?.kind !== "text") return undefined;
  if (verdict.subjectId !== receiptId(receipt)) return undefined;
  return { receipt, job };
}

/** Options of {@link ValidatorActor}. */
export interface ValidatorActorOptions {
  /** The validator identity (signs verdicts, fraud proofs and the ledger). */
  identity: Identity;
  /** Ledger directory (for example `.veriflow/ledger`). */
  ledgerDir: string;
  /** Ledger economics and pricing. */
  ledger?: LedgerOptions;
  /** Challenge material beyond the announcement; default none (proofs from the network). */
  source?: ChallengeSource;
  /** Models. */
  models: ValidatorModelSource;
  /** Challenge probability; default the ledger economics' `challengeProbability`. */
  challengeProbability?: number;
  /** Tolerances for validation and checking. */
  validation?: ValidationOptions;
  /**
   * How long a challenged worker has to serve its proof data over the network, ms (default
   * {@link PROOF_DEADLINE_MS}). Past it the proof counts as withheld: the job is not paid and
   * the worker's locked stake is slashed.
   */
  proofDeadlineMs?: number;
  /** How often to finalize due receipts, ms; default 10 s; 0 disables the timer. */
  finalizeIntervalMs?: number;
  /**
   * A TrainingValidator on this node resumes, at its own start, the training challenges whose
   * own fraud proof it kept (`own-training-fraud-proofs/` in the ledger's directory): those are
   * left `challenged` at this actor's start instead of unresolved. Default false: every
   * challenge open at start ends unresolved.
   */
  trainingProofsResumed?: boolean;
  /**
   * Registry name of the NetworkActor: own receipts are announced, signed verdicts and fraud
   * proofs spread, and proof data fetched through it. Absent: a validator on its own.
   */
  network?: string;
  /** Where one line per challenge and per settled fraud goes. */
  log?: (line: string) => void;
  /** Told what the validator did as it happens (read-only; see {@link ValidatorActivity}). */
  onActivity?: (activity: ValidatorActivity) => void;
}

/** Default finalize timer period: a fraction of the default 10-minute window. */
export const DEFAULT_FINALIZE_INTERVAL_MS = 10_000;
/**
 * Most open challenges per worker: beyond it, that worker's new receipts are refused here (not
 * paid) until its challenges drain. At the default p = 0.1 a worker reaches 16 only with about
 * 160 receipts in flight at once, far past an honest node's queue. Only the challenges this
 * validator drew count toward refusing receipts; a takeover (a peer's claim) that would take
 * the worker past the cap is dropped instead.
 */
export const MAX_OPEN_CHALLENGES_PER_WORKER = 16;

/**
 * Longest a peer's fraud proof being checked holds its receipt out of the finalize tick (ms,
 * from when it was taken): three challenge windows, far past any check's re-run (seconds for an
 * inference proof, minutes for a training one), so only a check that never reports lapses.
 */
const MAX_CHECK_HOLD_MS = 3 * DEFAULT_ECONOMICS.challengeWindowMs;
/**
 * How many times a peer's fraud proof is checked when its check throws (the model failing to
 * load, the checker's own error): again at each finalize tick after a failure, the proof still
 * taken and its receipt held meanwhile; past the last, it is undecided here, as a check without
 * the model is (passed on, remembered, nobody charged, the hold released). Review s45: a check
 * that threw dropped the proof, not passed on, not remembered, and the cheat it caught was paid
 * here and in the ledgers behind this node.
 */
const MAX_FRAUD_CHECK_TRIES = 3;
// Public here before the challenge game's times had a module of their own (`mod.ts` exports it).
export { PROOF_DEADLINE_MS };

/** The validator actor. */
export class ValidatorActor implements Actor<ValidatorMessage> {
  readonly #options: ValidatorActorOptions;
  #ledger?: Ledger;
  /** This validator's own fraud proofs between verdict and settlement, on disk. */
  #ownProofs!: ReceiptFiles;
  /** How challenges without a fraud proof ended, on disk until the ledger has it. */
  #endings!: ChallengeEndings;
  /** Receipts drawn for a challenge, with their jobs, on disk until the challenge is open. */
  #drawn!: ReceiptFiles;
  /**
   * Peers' receipts recorded and not drawn, with their jobs, on disk while this validator
   * remembers them (`#memory.recent`): a claim that comes after a restart is taken over too.
   */
  #pending!: ReceiptFiles;
  /** This node's own receipts its ledger refused, each with its job id, on disk for good. */
  #ownRefused!: ReceiptFiles;
  /** The claims open takeovers were opened on, on disk until the challenge ends. */
  #takenOver!: ReceiptFiles;
  /**
   * The jobs of those receipts: jobs this node signed a receipt for though its ledger holds none
   * of its own (`job_recorded`).
   */
  readonly #ownRefusedJobs = new Set<string>();
  /** Receipts whose own proof was resumed at start: passed on once it is confirmed here. */
  readonly #resumed = new Set<string>();
  /**
   * What a ledger-keeping peer that connects later is sent (`_catch_up.ts`): the convictions
   * settled here, the verdicts the start applied. One per ledger directory in the process, so it
   * outlives this actor's restarts; its convictions are kept on disk, and read back at the first
   * start in a process.
   */
  #catchUp!: CatchUp;
  /** The system, for looking up the NetworkActor by name when work runs outside `receive`. */
  #system?: ActorSystem;
  #work: Promise<unknown> = Promise.resolve();
  /** Receipts with an open challenge here (not to be finalized), counted per worker. */
  readonly #held = new ChallengeHolds();
  /** Receipts awaiting stake, peers' receipts, verdict authors and fraud proofs (bounded). */
  readonly #memory = new ValidatorMemory();
  /** Where what waits for a pledge or a receipt is kept across a stop or a crash. */
  #heldFile?: HeldEvidenceFile;
  /** Peers' fraud proofs waiting for their accuser's pledge (bounded). */
  readonly #pledgeHeld = new PledgeHeldProofs();
  /**
   * Peers' fraud proofs being checked, by hash: their receipt and when they were taken (kept
   * across a restart in the held evidence; a training proof's, told by the training validator:
   * `training_checking`). The receipt is not finalized meanwhile, and a proof taken inside its
   * window settles after it.
   */
  readonly #checking = new Map<string, { receiptId: string; takenAt: number }>();
  /**
   * Peers' fraud proofs whose check threw, by hash, with the checks tried: checked again at the
   * next finalize tick (see {@link MAX_FRAUD_CHECK_TRIES}). Still taken meanwhile.
   */
  readonly #failedChecks = new Map<string, { proof: FraudProof; origin?: string; tries: number }>();
  /** Checks of proofs whose accuser's stake here falls short (bounded per receipt). */
  readonly #unbacked = new UnbackedChecks();
  /** Credit for taking over peers' "proof withheld" claims, and false claimants held back. */
  readonly #takeovers = new TakeoverBudget();
  /** End choices per worker over this validator's own verdicts (`proof/steering.ts`). */
  #steering = new SteeringRecord();
  /** Resolvers of in-process `result` promises, by receipt id. */
  readonly #waiting = new Map<string, PromiseWithResolvers<ValidationResult>>();
  readonly #stats: ValidatorStats = {
    received: 0,
    fromPeers: 0,
    refused: 0,
    own: 0,
    challenged: 0,
    verdicts: { valid: 0, fraud: 0, invalid: 0, inconclusive: 0 },
    peerVerdicts: 0,
    refusedVerdicts: 0,
    fraudProofsChecked: 0,
    fraudProofsSkipped: 0,
    slashes: 0,
    unresolved: 0,
    openChallenges: 0,
    fraudProofsChecking: 0,
  };

  /**
   * Create the actor (the factory of its ChildSpec calls this).
   * @param options Identity, ledger, sources.
   */
  constructor(options: ValidatorActorOptions) {
    this.#options = options;
  }

  /** Opens the ledger (verifying it) and starts the finalize timer. */
  async preStart(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    this.#system = ctx.system;
    this.#ledger = await Ledger.open(
      this.#options.ledgerDir,
      this.#options.identity,
      this.#options.ledger,
    );
    const ledger = this.#ledger;
    this.#catchUp = await CatchUp.of(this.#options.ledgerDir, {
      now: () => this.#now(),
      log: (line) => this.#log(line),
      // A conviction written ahead of its settlement is kept only if the ledger settled it: on
      // the receipt it settles here (its own, or the variant its worker had recorded here).
      settled: (id, accuser, receipt) => {
        const record = receipt === undefined ? ledger.receipt(id) : ledger.fraudSubject(receipt);
        const fraud = record?.status === "fraud" && ledger.hasAccused(accuser, record.receiptId);
        return fraud ? record.pendingUntil : undefined;
      },
    });
    // Challenges decided before a failed ledger write (or a stop) cut them off: ended as
    // decided, before anything else reads the ledger (`_challenge_endings.ts`).
    this.#endings = ChallengeEndings.in(this.#options.ledgerDir);
    await this.#applyKeptEndings(ctx);
    this.#steering = SteeringRecord.fromVerdicts(
      this.#ledger.verdictsBy(this.#options.identity.publicKey),
      this.#options.identity.publicKey,
    );
    // A conviction whose claw-back a crash interrupted is settled now.
    for (const worker of this.#steering.convicted()) await this.#settleSteering(fromHex(worker));
    // Challenges open when this validator last stopped (a crash, a restart): one that had
    // caught its worker cheating is settled from its fraud proof, kept on disk for this; the
    // others' material is gone, so they end undecided — the job is not paid — rather than slip
    // into payment.
    this.#ownProofs = ReceiptFiles.in(this.#options.ledgerDir);
    this.#drawn = ReceiptFiles.in(this.#options.ledgerDir, DRAWN_CHALLENGES_DIR);
    this.#pending = ReceiptFiles.in(this.#options.ledgerDir, PENDING_RECEIPTS_DIR, {
      durable: false,
    });
    this.#ownRefused = ReceiptFiles.in(this.#options.ledgerDir, OWN_REFUSED_RECEIPTS_DIR);
    for (const kept of (await this.#ownRefused.all()).values()) {
      const jobId = (kept as { jobId?: unknown } | undefined)?.jobId;
      if (typeof jobId === "string") this.#ownRefusedJobs.add(jobId);
    }
    const kept = await this.#ownProofs.all();
    // Which of the challenges open at the stop were taken over on a peer's claim: those end as a
    // takeover undecided here does (review s54: ended unresolved, an honest worker lost its pay
    // to anyone's free claim and this validator's restart).
    this.#takenOver = ReceiptFiles.in(this.#options.ledgerDir, TAKEN_OVER_CLAIMS_DIR);
    const claims = await this.#takenOver.all();
    const keptTraining = this.#options.trainingProofsResumed
      ? await ReceiptFiles.in(this.#options.ledgerDir, OWN_TRAINING_FRAUD_PROOFS_DIR).all()
      : new Map<string, unknown>();
    for (const id of this.#ledger.challenged()) {
      // The training validator's to settle from its kept proof (or end) when it starts.
      if (keptTraining.has(id) && this.#ledger.receipt(id)?.kind === "training") continue;
      if (this.#ledger.hasAccused(this.#options.identity.publicKey, id)) {
        // Its own accusation was booked before the stop, and did not hold (a confirmed one
        // ends the receipt as fraud): what the stop cut off is the clearing that follows it.
        // Re-checked, the proof would be refused a second settlement and the work left unpaid.
        await this.#ledger.clearChallenge(id);
        continue;
      }
      const claimant = this.#claimantKept(id, claims.get(id));
      const proof = kept.get(id);
      if (proof !== undefined && this.#resumeOwnProof(id, proof, ctx, claimant)) {
        kept.delete(id);
        continue;
      }
      if (claimant !== undefined) {
        // A takeover the stop cut off is undecided here, this validator's own gap: cleared, the
        // work stands as it would without the claim (see `TAKEOVER_DETAIL`).
        await this.#ledger.clearChallenge(id);
        continue;
      }
      // A kept proof that is not resumed (garbled, not this validator's, not checkable) ends
      // with its challenge: removed below.
      await this.#ledger.leaveUnresolved(id, "validator_restarted");
      this.#stats.unresolved++;
    }
    for (const id of kept.keys()) await this.#ownProofs.remove(id);
    // Kept only while its takeover is open (one resumed from its fraud proof above).
    for (const id of claims.keys()) {
      if (this.#ledger.receipt(id)?.status !== "challenged") await this.#takenOver.remove(id);
    }
    // After the challenges open at the stop have ended above: not one of those just opened.
    await this.#resumeDrawn(ctx);
    // Receipts challenged here before the stop that are open again (cleared: paid when their
    // window closes): a copy of one that comes ahead of a peer's claim must not have this validator
    // ask the worker again (`#forgottenPending`). Each such challenge ended in a verdict signed
    // here, or was a takeover the stop cut off (cleared above). One read of this validator's own
    // verdicts, at the start only.
    const me = this.#options.identity.publicKey;
    for (const id of [...this.#ledger.verdictsBy(me).map((v) => v.subjectId), ...claims.keys()]) {
      if (this.#inWindow(this.#ledger.receipt(id))) this.#memory.challenged(id);
    }
    // Before the held evidence below: a claim held for its receipt may be about one of these.
    await this.#restorePending();
    // What waited here at the last keep for a pledge or a receipt goes through the intake again.
    const { file, held } = await HeldEvidenceFile.open(this.#options.ledgerDir);
    this.#heldFile = file;
    // Spent before the stop: still spent (before the held proofs below may spend more).
    this.#unbacked.restore(held.unbacked);
    for (const message of held.receipts) await this.#onReceipt(message, ctx).catch(() => {});
    // Each with the time it was first taken (kept: a restart after the window closed must not
    // make a proof taken inside it too late), before the finalize timer below can pay its receipt.
    for (const { proof, origin, takenAt } of held.proofs) {
      const from = typeof origin === "string" ? origin : undefined;
      const at = typeof takenAt === "number" && Number.isFinite(takenAt) ? takenAt : undefined;
      this.#onFraudProof(proof, ctx, false, from, undefined, at);
    }
    // Peers' "proof withheld" claims held for their receipt: through the verdict intake again
    // (taken over now if a receipt replayed above recorded theirs, else held again).
    for (const { verdict, origin } of held.claims ?? []) {
      if (typeof origin !== "string" || origin === "local") continue;
      await this.receive({ type: "verdict", verdict: verdict as Verdict, origin }, ctx)
        .catch(() => {});
    }
    const every = this.#options.finalizeIntervalMs ?? DEFAULT_FINALIZE_INTERVAL_MS;
    if (every > 0) {
      const timer = setInterval(() => {
        ctx.self.tell({ type: "finalize" }).catch(() => {});
      }, every);
      ctx.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
  }

  /**
   * At start: open the challenge of each receipt drawn before the stop whose challenge the stop
   * cut off (the receipt recorded, its challenge not opened yet), from the receipt and job kept
   * at its draw: judged as it would have been, a cheat slashed and honest work paid. One whose
   * window closed meanwhile, or whose kept record does not read back, is left unpaid: its draw
   * was owed, and nothing here checked it. A record whose receipt was never recorded, or is no
   * longer `pending` (its challenge was opened), is removed.
   */
  async #resumeDrawn(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    const ledger = this.#ledger!;
    for (const [id, kept] of await this.#drawn.all()) {
      if (ledger.receipt(id)?.status !== "pending") {
        await this.#drawn.remove(id);
        continue;
      }
      const drawn = readDrawn(id, kept);
      const opened = drawn !== undefined &&
        await this.#open(drawn.receipt, drawn.job, ctx).then(() => true, (error) => {
          if (error instanceof LedgerRejectedError) return false;
          throw error;
        });
      if (opened) continue;
      await ledger.leaveUnresolved(id, "validator_restarted");
      this.#stats.unresolved++;
      await this.#drawn.remove(id);
    }
  }

  /**
   * At start: remember again, with their jobs, the peers' receipts kept at their intake that are
   * still `pending` here inside their window (oldest window first, as they were remembered; past
   * the memory's bounds, in count and bytes, the oldest are forgotten and removed again), so
   * that a peer's "proof withheld" claim that comes after the restart is taken over as one that
   * came before it (review s56: the receipt and job were in memory only, and the worker that
   * withheld from everyone was paid here, slashed in the ledgers that had not restarted). A
   * record whose receipt is no longer open (paid, slashed, left unpaid, challenged here: asked
   * once, before this stop or an earlier one: `ValidatorMemory.challenged`; or past its window:
   * no claim about it is recorded, `#worthRecording`), or that does not read back, is removed.
   */
  async #restorePending(): Promise<void> {
    const ledger = this.#ledger!;
    const open: { receipt: Receipt; job: Job; pendingUntil: number }[] = [];
    const stale: string[] = [];
    for (const [id, kept] of await this.#pending.all()) {
      const record = ledger.receipt(id);
      const takeable = this.#inWindow(record) && !this.#memory.wasChallenged(id);
      const pending = takeable ? readDrawn(id, kept) : undefined;
      if (pending === undefined) stale.push(id);
      else open.push({ ...pending, pendingUntil: record!.pendingUntil });
    }
    open.sort((a, b) => a.pendingUntil - b.pendingUntil);
    for (const { receipt, job } of open) stale.push(...this.#memory.remember(receipt, job));
    await this.#pending.removeAll(stale);
  }

  /**
   * At start: end each challenge whose ending was kept before the ledger was asked (the ask
   * failed and crashed this actor, or a stop came first) as it was decided; one whose receipt is
   * no longer `challenged` has its ending in the ledger already, and is not applied twice. A
   * ledger write that fails again fails the start: the supervisor tries again after its backoff,
   * and the ending stays kept for the next start.
   */
  async #applyKeptEndings(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    const ledger = this.#ledger!;
    const me = this.#options.identity.publicKey;
    for (const [id, ending] of await this.#endings.all()) {
      const verdict = ending?.verdict;
      const mine = verdict !== undefined && verdict.subject === "inference" &&
        verdict.subjectId === id && verdict.validator instanceof Uint8Array &&
        bytesEqual(verdict.validator, me);
      // The transition and its reason are not signed: only the one the verdict calls for is
      // taken (a `valid` verdict beside a `fault`, or an inconclusive one not signed as a
      // takeover's beside `cleared`, from a file written over is not this validator's).
      const called = mine && ending!.reason === verdict.reason && ending!.end === endOf(verdict);
      const record = ledger.receipt(id);
      if (called && record?.status === "challenged") {
        const recorded = await ledger.recordVerdict(verdict).then(() => true, (error) => {
          // A verdict that does not verify is not this validator's: its ending is not applied.
          if (error instanceof LedgerRejectedError) return false;
          throw error;
        });
        if (recorded) {
          const ended = await this.#transitionOf(id, ending!.end, verdict.reason)().then(
            () => true,
            (error) => {
              if (error instanceof LedgerRejectedError) return false;
              throw error;
            },
          );
          if (ended) {
            this.#stats.verdicts[verdict.outcome]++;
            if (ending!.end === "fault") this.#stats.slashes++;
            if (ending!.end === "unresolved") this.#stats.unresolved++;
            // The write that failed may have been the verdict's own: then it was never passed
            // on (a copy the peers had is taken once). Told now, it reaches the peers connected
            // now (this actor's restart); kept, it reaches those that connect later (the node's
            // first start, where the network comes after this actor).
            await this.#catchUp.add({ kind: "verdict", verdict }, record.pendingUntil);
            this.#tellNetwork(ctx, { type: "publish_verdict", verdict });
            if (ending!.end === "fault") {
              this.#tellNetwork(ctx, { type: "peer_convicted", key: record.worker });
            }
          }
        }
      }
      await this.#endings.remove(id);
    }
  }

  /**
   * The claimant (hex) of the takeover on `id` kept on disk as `value` (see
   * `TAKEN_OVER_CLAIMS_DIR`); undefined if none. The claim counts only if this ledger recorded
   * it (so verified it) before the takeover: a file written over cannot make a challenge this
   * validator drew end as a takeover, paid.
   */
  #claimantKept(id: string, value: unknown): string | undefined {
    const claim = (value as { claim?: Verdict } | undefined)?.claim;
    if (typeof claim !== "object" || claim === null) return undefined;
    if (
      claim.subject !== "inference" || claim.subjectId !== id || claim.outcome !== "invalid" ||
      claim.reason !== "proof_unavailable" || !(claim.validator instanceof Uint8Array)
    ) return undefined;
    try {
      return this.#ledger!.hasVerdict(verdictId(claim)) ? toHex(claim.validator) : undefined;
    } catch {
      return undefined; // not a verdict
    }
  }

  /** The ledger transition `end` of the challenge on `id`, for {@link ValidatorActor.#end}. */
  #transitionOf(id: string, end: ChallengeEndStep, reason: string): () => Promise<void> {
    const ledger = this.#ledger!;
    if (end === "cleared") return () => ledger.clearChallenge(id);
    if (end === "fault") {
      return () => ledger.settleFault(id, this.#options.identity.publicKey, reason);
    }
    return () => ledger.leaveUnresolved(id, reason);
  }

  /**
   * Waits for queued validations, keeps what still waits for a pledge or a receipt
   * (`_held_evidence.ts`) and closes the ledger.
   */
  async postStop(): Promise<void> {
    await this.#work.catch(() => {});
    if (this.#ledger !== undefined) await this.#keepHeld();
    await this.#ledger?.close();
  }

  /** What waits here for a pledge or a receipt, as kept across a stop. */
  #heldEvidence(): HeldEvidence {
    const { keptTaken, ...held } = this.#memory.waiting();
    held.proofs.push(...this.#pledgeHeld.all());
    // The proofs in flight kept above spend their checks again when they are taken up; those
    // not kept (past the memory's bound) keep theirs spent.
    return { ...held, unbacked: this.#unbacked.spentSettled(this.#now(), keptTaken) };
  }

  /** Keep what is held on disk, if it changed since the last keep (`_held_evidence.ts`). */
  async #keepHeld(): Promise<void> {
    await this.#heldFile?.keep(this.#heldEvidence()).catch((error) =>
      this.#log(`validator: could not keep held receipts and proofs: ${error.message}`)
    );
  }

  /** Handle one message (see {@link ValidatorMessage}). */
  async receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): Promise<unknown> {
    const ledger = this.#ledger!;
    switch (message.type) {
      case "receipt":
        return await this.#onReceipt(message, ctx);
      case "challenged":
        return await this.#onChallenged(message, ctx);
      case "fraud_proof":
        return this.#onFraudProof(message.proof, ctx, false, message.origin);
      case "fraud_checked":
        return await this.#onFraudChecked(message, ctx);
      case "challenge_failed": {
        // Every challenge ends in a message, and every failure in a verdict: this validator's
        // own gap, so the job is left unpaid (not finalized) and nobody is slashed.
        const { receipt, reason } = message;
        const id = receiptId(receipt);
        this.#log(`validator: challenge of receipt ${id.slice(0, 12)} failed: ${reason}`);
        const takeover = this.#held.claimantOf(id) !== undefined;
        const result = failedChallenge(receipt, reason, this.#options.identity, takeover);
        await this.#onChallenged({ type: "challenged", receipt, result }, ctx);
        return undefined;
      }
      case "verdict": {
        const fromPeer = message.origin !== undefined && message.origin !== "local";
        if (fromPeer && !this.#worthRecording(message.verdict)) {
          if (this.#awaitsEvidence(message.verdict)) {
            // A claim that outran its receipt or its author's pledge: held, taken again when
            // what it lacks comes.
            const staked = ledger.hasStaked(message.verdict.validator);
            this.#memory.holdClaim(message.verdict, message.origin, staked);
            return undefined;
          }
          this.#stats.refusedVerdicts++;
          return undefined;
        }
        try {
          const known = ledger.hasVerdict(verdictId(message.verdict));
          // One verdict per validator per receipt: the same claim re-signed (a new timestamp,
          // other details) is neither recorded, nor passed on, nor taken over again. An
          // honest validator signs one per receipt (one challenge each).
          const author = fromPeer ? judgedKey(message.verdict) : undefined;
          if (!known && author !== undefined && this.#memory.hasJudged(author)) {
            this.#stats.refusedVerdicts++;
            return undefined;
          }
          const id = await ledger.recordVerdict(message.verdict);
          // Only once it verified: a forged copy must not take the genuine verdict's place.
          if (author !== undefined) this.#memory.rememberJudged(author);
          if (!known) this.#tell({ kind: "verdict", verdict: message.verdict, own: false });
          if (fromPeer) {
            this.#stats.peerVerdicts++;
            if (!known) {
              // Gossip: new here, so passed on to every peer but the one it came from (who
              // pass it on in turn, once each): it reaches nodes not connected to its author.
              // A claim goes after the receipt and job it is about, as this validator remembers
              // them (before its takeover below forgets them): a ledger that forgot them takes
              // it over all the same (`ClaimEvidence`).
              const recent = this.#memory.recent(message.verdict.subjectId);
              this.#tellNetwork(ctx, {
                type: "publish_verdict",
                verdict: message.verdict,
                except: message.origin,
                evidence: claimEvidence(message.verdict, recent?.receipt, recent?.job),
              });
            }
            // Once per verdict: a replay of one already recorded (by anyone, any number of
            // times) must not make this validator challenge the receipt again.
            if (!known) await this.#takeOverWithheld(message.verdict, ctx);
          }
          return id;
        } catch (error) {
          // A peer's forged verdict is refused, not a reason to crash the ledger's owner.
          if (!fromPeer) throw error;
          this.#stats.refusedVerdicts++;
          return undefined;
        }
      }
      case "pledge": {
        // A key with stake here is answered before the ledger checks the signature: every
        // connection brings every pledge its peer holds (anti-entropy), so repeats are the
        // common case, and each would otherwise cost a signature check.
        if (ledger.hasStaked(message.pledge.key)) return false;
        const recorded = await ledger.recordPledge(message.pledge).catch(() => false);
        if (recorded) {
          this.#replayAwaitingStake(toHex(message.pledge.key), ctx);
          this.#takePledgeHeldProofs(toHex(message.pledge.key), ctx);
          this.#takeClaimsOf(toHex(message.pledge.key), ctx);
          // Its standing changed: the router weighs it again.
          this.#tellNetwork(ctx, { type: "peer_staked", key: toHex(message.pledge.key) });
        }
        if (recorded && message.origin !== undefined && message.origin !== "local") {
          // Gossip: ledgers that are not the pledger's direct peers need its stake too, or
          // they refuse its receipts (and, for a validator, its verdicts).
          this.#tellNetwork(ctx, {
            type: "publish_pledge",
            pledge: message.pledge,
            except: message.origin,
          });
        }
        return recorded;
      }
      case "training_receipt":
        return await recordTrainingReceipt(ledger, message);
      case "training_fraud":
        return await this.#onTrainingFraud(message, ctx);
      case "training_checking": {
        // A peer's training proof being checked by the training validator: held as a peer's
        // inference proof is (`#checking`), about a training receipt recorded here only.
        // Only for one taken inside the window: past it, it cannot settle the receipt.
        const { hold } = message;
        const takenAt = Math.min(hold?.takenAt ?? Infinity, this.#now());
        const record = hold && ledger.receipt(hold.receiptId);
        if (!hold || record?.kind !== "training" || !(takenAt <= record.pendingUntil)) {
          this.#checking.delete(message.fraudProofHash);
        } else {
          this.#checking.set(message.fraudProofHash, { receiptId: hold.receiptId, takenAt });
        }
        return undefined;
      }
      case "training_challenge":
        return await holdTrainingChallenge(ledger, message);
      case "training_challenged":
        return ledger.challenged().filter((id) => ledger.receipt(id)?.kind === "training");
      case "pledges": {
        const pledges = ledger.pledges(message);
        if (message.limit === undefined) return pledges;
        // The connect push: the accusers of the convictions a connecting peer is sent first
        // (`_catch_up.ts`); without its accuser's pledge a conviction is held there for good.
        // One pass over the pledges (a key's look-up is a scan of them all).
        const keys = new Set(this.#catchUp.accusers(this.#now()).map(toHex));
        const first = keys.size === 0
          ? []
          : ledger.pledges().filter((pledge) => keys.has(toHex(pledge.key)));
        const rest = pledges.filter((pledge) => !keys.has(toHex(pledge.key)));
        return [...first, ...rest].slice(0, Math.max(0, message.limit));
      }
      case "catch_up":
        return this.#catchUp.current(this.#now());
      case "deposit":
        await ledger.deposit(message.key, message.amount);
        this.#takePledgeHeldProofs(toHex(message.key), ctx);
        this.#takeClaimsOf(toHex(message.key), ctx);
        return undefined;
      case "finalize": {
        // A receipt whose challenge is open here is `challenged` in the ledger: not paid yet;
        // nor is one a peer's fraud proof is being checked against.
        const now = this.#now();
        // Peers' proofs whose check threw: checked again (their receipt still held).
        for (const [hash, { proof, origin, tries }] of [...this.#failedChecks]) {
          this.#failedChecks.delete(hash);
          this.#checkPeerProof(proof, hash, origin, ctx, tries);
        }
        const checked = new Set<string>();
        for (const [hash, { receiptId, takenAt }] of this.#checking) {
          // A check that never reported (its checker died and did not take it again) must not
          // keep an honest receipt unpaid for good: past the bound the hold lapses.
          if (now - takenAt > MAX_CHECK_HOLD_MS) this.#checking.delete(hash);
          else checked.add(receiptId);
        }
        const finalized = await ledger.finalizeDue((id) => checked.has(id));
        // Peers' receipts no longer open (paid, slashed, left unpaid, past their window) take
        // no claim over: forgotten, and no longer kept on disk (a copy left by a failed removal
        // goes at the next start).
        const closed = this.#memory.forgetRecentUnless((id) => this.#inWindow(ledger.receipt(id)));
        await this.#pending.removeAll(closed).catch((error) =>
          this.#log(`validator: could not remove closed receipts: ${error.message}`)
        );
        // At most one write a tick, however fast peers' messages come: a process killed outright
        // loses what arrived since.
        await this.#keepHeld();
        return finalized;
      }
      case "account":
        return ledger.account(message.key);
      case "receipt_status":
        return ledger.receipt(message.receiptId);
      case "convicted":
        return ledger.convicted(message.key);
      case "job_recorded": {
        if (
          message.worker !== undefined && this.#ownRefusedJobs.has(message.jobId) &&
          bytesEqual(message.worker, this.#options.identity.publicKey)
        ) {
          return true; // signed here, refused by this ledger, released (`#onReceipt`)
        }
        const id = ledger.receiptOfJob(message.jobId);
        if (id === undefined || message.worker === undefined) return id !== undefined;
        return ledger.receipt(id)?.worker === toHex(message.worker);
      }
      case "has_staked":
        return ledger.hasStaked(message.key);
      case "has_accused":
        return ledger.hasAccused(message.validator, message.receiptId);
      case "stats":
        return {
          ...structuredClone(this.#stats),
          openChallenges: this.#held.size,
          fraudProofsChecking: this.#memory.checking(),
        };
    }
  }

  async #onReceipt(
    message: ReceiptMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<ReceiptHandled> {
    const ledger = this.#ledger!;
    const origin = message.origin;
    this.#stats.received++;
    if (origin !== undefined && origin !== "local") this.#stats.fromPeers++;
    const refuse = (receiptId: string, refusal: string): ReceiptHandled => {
      this.#stats.refused++;
      return { receiptId, recorded: false, refusal, challenged: false, draw: 1 };
    };
    let receipt: Receipt;
    try {
      receipt = parseReceipt(message.receipt);
    } catch {
      // Garbage from a peer is a normal outcome, not a reason to crash the validator.
      return refuse("", "malformed_receipt");
    }
    const id = receiptId(receipt);
    // A receipt is recorded only bound to its job: one whose job nobody here can name is never
    // paid here (and a validator could not check it anyway).
    const job = message.job ?? await this.#options.source?.job?.(receipt).catch(() => undefined);
    if (job === undefined) return refuse(id, "job_unbound");
    let boundJobId: string | undefined;
    try {
      boundJobId = jobIdOf(job);
    } catch {
      // not a job
    }
    if (boundJobId !== receipt.jobId) return refuse(id, "job_mismatch");
    // The worker signed a receipt for this job that the job does not allow (more tokens than
    // maxTokens, another model or parameters): evidence on its face, checked on every receipt.
    const contradiction = receiptContradiction(receipt, job);
    const worker = toHex(receipt.worker);
    // Only a receipt new to this ledger is drawn for: the coin is fixed per receipt, so a copy
    // announced again (by the worker, a relay, anyone) must not buy another forward pass.
    const fresh = ledger.receipt(id) === undefined;
    // Its window would open now: only while its worker must still hold its proof data. (One
    // signed ahead of this clock is taken: its worker only makes itself answerable for longer.)
    const signedEnd = receipt.timings.startedAt + receipt.timings.totalMs;
    if (fresh && this.#now() - signedEnd > STALE_RECEIPT_AGE_MS) return refuse(id, "receipt_stale");
    if (fresh && this.#held.drawnOf(worker) >= MAX_OPEN_CHALLENGES_PER_WORKER) {
      // Not recorded, so not paid here: a worker that floods this validator faster than it can
      // check gets its excess refused, never waved through unchecked. Only this validator's own
      // draws count: peers' claims taken over must not get a worker's receipts refused.
      return refuse(id, "validator_busy");
    }
    let recorded = true;
    let refusal: string | undefined;
    const { assignment } = message;
    // Credit only what this ledger can check: a receipt on a model this validator cannot get
    // is recorded (locked, slashable, passed on) but earns nothing here, whatever the coin; the
    // ledgers of validators that hold the model pay it.
    const uncredited = await this.#holdsModel(receipt.model) ? undefined : "model_unavailable";
    const own = bytesEqual(receipt.worker, this.#options.identity.publicKey);
    const p = this.#options.challengeProbability ?? ledger.economics.challengeProbability;
    // The coin counts only for a receipt new here and recorded: one the ledger refused is not
    // paid here, so nothing is computed for it (and nothing about the coin ever leaves). One
    // earning nothing here for want of its model is not challenged on the coin: nothing here
    // could decide it (a contradiction needs no model, so it still is).
    const draw = fresh && !own ? challengeTicket(this.#options.identity, id).draw : 1;
    const owed = fresh && !own &&
      (contradiction !== null || (uncredited === undefined && draw < p));
    // Its challenge is opened by a second ledger write: kept first, a crash between the two
    // does not let it slip into payment unchecked (the start opens it, `#resumeDrawn`). Kept
    // only for a receipt the ledger takes (this actor alone writes it, so the answer holds for
    // the write below): the work of keeping one it refuses made that refusal take longer exactly
    // when the coin drew it, and anyone announcing a receipt it cannot get recorded (its stake
    // locked, its job held) learnt the coin of each variant without committing to any (review
    // s52). Asked whatever the coin, so asking takes no longer when it drew.
    const refused = fresh && !own
      ? ledger.receiptRefusal(receipt, { assignment, uncredited })
      : undefined;
    // A peer's receipt not drawn is kept too, until it leaves `pending` (`#pending`): a claim
    // that it was withheld, coming after a restart, is taken over on it. So every receipt the
    // ledger takes is written once here, whatever the coin.
    const kept = fresh && !own && refused === undefined;
    const keptIn = owed ? this.#drawn : this.#pending;
    if (kept) await keptIn.save(id, { receipt, job });
    try {
      if (fresh) await ledger.recordReceipt(receipt, { assignment, uncredited });
    } catch (e) {
      if (kept) await keptIn.remove(id);
      recorded = false;
      refusal = (e as { code?: string }).code ?? "refused";
      if (own && origin === "local" && refusal === "job_already_recorded") {
        // Its prover releases it all the same (`ProverActor`): the job is one this node signed a
        // receipt for, though this ledger holds none of its own (another key's took the job
        // first). Kept, or after a restart the job would be run again here, and a second
        // receipt with another output is equivocation where the first was recorded (review s49).
        await this.#ownRefused.save(id, { jobId: receipt.jobId });
        this.#ownRefusedJobs.add(receipt.jobId);
      }
      this.#stats.refused++;
      if (refusal === "insufficient_stake" && !ledger.hasStaked(receipt.worker)) {
        // Its pledge may just not have arrived yet (it comes on the worker's own connection,
        // the receipt on the requester's): taken again once it does.
        this.#memory.awaitStake(worker, message);
      }
      if (refusal === "equivocation") {
        this.#stats.slashes++;
        this.#tellNetwork(ctx, { type: "peer_convicted", key: worker });
        this.#log(`validator: worker ${worker.slice(0, 16)} equivocated on job ${receipt.jobId}`);
      }
    }
    if (fresh && recorded) {
      this.#takeHeldFraudProofs(receipt, ctx);
      this.#takeHeldClaims(id, ctx);
    }
    // Recorded before without its assignment (the worker's announcement, or a relay that
    // stripped it, came first): the assignment is attached now.
    let gotAssigned = false;
    if (!fresh && assignment !== undefined) {
      const before = ledger.receipt(id)?.requester;
      await ledger.recordReceipt(receipt, { assignment, uncredited }).catch(() => undefined);
      gotAssigned = before === undefined && ledger.receipt(id)?.requester !== undefined;
    }
    // The ledger checked the assignment when it recorded the receipt: a requester means a valid one.
    const assigned = recorded && ledger.receipt(id)?.requester !== undefined;
    const fromPeer = origin !== undefined && origin !== "local";
    if (
      (message.announce || fromPeer) && (fresh || gotAssigned) && assigned && job.kind === "text"
    ) {
      // Once, when it is new here as an assigned receipt (recorded now, or its assignment just
      // attached): a job we relayed, with the assignment we signed, or a peer's (gossip:
      // passed on to every other peer, so validators not connected to the relay see it too —
      // also when a relay stripped the assignment from the copy that came first). Work
      // nobody else requested earns nothing anywhere: not announced.
      this.#tellNetwork(ctx, {
        type: "announce_receipt",
        receipt,
        job,
        assignment: assignment as JobAssignment,
        except: fromPeer ? origin : undefined,
      });
    }
    const seen = (challenged: boolean) =>
      this.#tell({
        kind: "receipt",
        receiptId: id,
        jobId: receipt.jobId,
        worker,
        origin: origin ?? "local",
        recorded,
        challenged,
        tokens: receipt.tokenCount,
      });
    if (own) {
      // Our own work: others judge it.
      this.#stats.own++;
      seen(false);
      return { receiptId: id, recorded, refusal, uncredited, challenged: false, draw: 1 };
    }
    if (fresh && recorded) {
      // Those forgotten to make room (past 4096, or 64 MiB with their jobs: the oldest) are no
      // longer kept on disk either.
      await this.#pending.removeAll(this.#memory.remember(receipt, job));
      // Takeovers are paid for by traffic, at the coin's own rate (see `_takeover_budget.ts`).
      this.#takeovers.earn(p);
    } else if (!fresh && this.#forgottenPending(receipt, id)) {
      // A copy of a receipt recorded here, still open, that the memory forgot (pushed out by
      // others): remembered again, so the "proof withheld" claim it came ahead of is taken over
      // (`ClaimEvidence`). Nothing is recorded or credited again, no takeover budget earned.
      await this.#pending.save(id, { receipt, job });
      await this.#pending.removeAll(this.#memory.remember(receipt, job));
    }
    const challenged = owed && recorded;
    const handled: ReceiptHandled = {
      receiptId: id,
      recorded,
      refusal,
      uncredited,
      challenged,
      draw: fresh && recorded ? draw : 1,
    };
    seen(challenged);
    if (challenged) handled.result = (await this.#open(receipt, job, ctx)).result;
    return handled;
  }

  /**
   * Open a challenge on a recorded receipt: durably `challenged` in the ledger first (so not
   * even a crash lets it slip into payment), then the material is gathered and validated off
   * the mailbox. Resolves once its verdict is recorded and settled. `claim`: taken over on that
   * peer's "proof withheld" verdict, which is about availability (see `withheld_check.ts`); kept
   * on disk while the challenge is open, so that a stop ends it as a takeover
   * (`TAKEN_OVER_CLAIMS_DIR`).
   */
  async #open(
    receipt: Receipt,
    job: Job,
    ctx: ActorContext<ValidatorMessage>,
    claim?: Verdict,
  ): Promise<{ result: Promise<ValidationResult> }> {
    const id = receiptId(receipt);
    const claimant = claim === undefined ? undefined : toHex(claim.validator);
    if (claim !== undefined) await this.#takenOver.save(id, { claim });
    try {
      await this.#ledger!.openChallenge(id);
    } catch (error) {
      if (claim !== undefined) await this.#takenOver.remove(id);
      throw error;
    }
    // `challenged` in the ledger now: what its draw, or its intake, kept is done with.
    await this.#drawn.remove(id);
    await this.#pending.remove(id);
    this.#stats.challenged++;
    // Challenged here once: no peer's claim makes this validator ask the worker again (nor a
    // copy of the receipt that comes ahead of one, `#forgottenPending`).
    this.#memory.challenged(id);
    const waiting = Promise.withResolvers<ValidationResult>();
    waiting.promise.catch(() => {});
    this.#waiting.set(id, waiting);
    this.#held.hold(id, toHex(receipt.worker), claimant);
    // The job's requester was connected to the worker: it can relay the proof request when
    // this node is not (a sparse network; a worker reached only through its router).
    const requester = this.#ledger!.receipt(id)?.requester;
    const relay = requester === undefined ? undefined : fromHex(requester);
    this.#challenge(receipt, job, ctx.signal, relay, claimant !== undefined).then(
      (result) => ctx.self.tell({ type: "challenged", receipt, job, result }),
      (error) => ctx.self.tell({ type: "challenge_failed", receipt, reason: String(error) }),
    ).catch(() => {});
    return { result: waiting.promise };
  }

  /**
   * Whether this validator can get model `cid` to check a receipt on it, asked at intake:
   * cheaply through `ValidatorModelSource.has` when the source has it, else by `get`. A source
   * that throws counts as holding it: a model that fails to load is this validator's own gap,
   * judged in the challenge (unpaid, nobody slashed), not the worker's.
   */
  async #holdsModel(cid: string): Promise<boolean> {
    const { models } = this.#options;
    try {
      if (models.has !== undefined) return await models.has(cid);
      return (await models.get(cid))?.info.cid === cid;
    } catch {
      return true;
    }
  }

  /** A pledge arrived: the receipts that waited for it are taken again, in order. */
  #replayAwaitingStake(worker: string, ctx: ActorContext<ValidatorMessage>): void {
    const waiting = this.#memory.takeAwaitingStake(worker);
    if (waiting === undefined) return;
    for (const message of waiting) ctx.self.tell(message).catch(() => {});
  }

  /**
   * Whether a peer's verdict, refused for now, is a claim to hold until what it lacks comes in: a
   * signed "proof withheld" claim (what a takeover acts on), the first of its author about its
   * receipt, about a receipt this ledger has not recorded, or about one pending here (inside its
   * window) by a validator whose pledge has not reached this ledger yet. Gossip order is not
   * guaranteed (the claim comes on its author's connection or through any peer, the receipt on
   * the requester's, the pledge on whichever connection pushed it; a receipt may wait here for
   * its worker's pledge): refused, a claim that outran either left the worker that withheld paid
   * here, slashed by the ledgers that saw the claim last (review s56). Bounded per claimant and in
   * all (`_validator_memory.ts`), as fraud proofs waiting for their receipt or their accuser's
   * pledge are; no takeover budget is spent until the claim is taken.
   */
  #awaitsEvidence(verdict: Verdict): boolean {
    const ledger = this.#ledger!;
    if (verdict?.subject !== "inference" || typeof verdict.subjectId !== "string") return false;
    if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return false;
    if (!(verdict.validator instanceof Uint8Array)) return false;
    const record = ledger.receipt(verdict.subjectId);
    if (record !== undefined) {
      // Recorded here: it waits only for its author's stake, while it could still be taken.
      const open = record.status !== "final" && this.#now() <= record.pendingUntil;
      if (!open || ledger.hasStaked(verdict.validator)) return false;
    }
    // Checked last, the costly one: a forged copy must not take the genuine claim's place.
    return !this.#memory.hasJudged(judgedKey(verdict)) && verifyVerdict(verdict);
  }

  /**
   * Receipt `id` came in through the intake: the claims held for it go through the verdict intake
   * again, in order, after this message (as a claim that came after the receipt: recorded, passed
   * on, and taken over within the takeover budget and caps).
   */
  #takeHeldClaims(id: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { verdict, origin } of this.#memory.takeHeldClaims(id)) {
      ctx.self.tell({ type: "verdict", verdict, origin }).catch(() => {});
    }
  }

  /**
   * `claimant` (hex) has stake here now: the claims it made that were held go through the
   * verdict intake again, in order (held again if their receipt is still to come).
   */
  #takeClaimsOf(claimant: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { verdict, origin } of this.#memory.takeHeldClaimsBy(claimant)) {
      ctx.self.tell({ type: "verdict", verdict, origin }).catch(() => {});
    }
  }

  /**
   * A staked peer's verdict says the worker withheld its proof data from it. That cannot be
   * proven to a third party, so this validator asks for the data itself: a challenge passes on,
   * and the worker that withholds from this node too is slashed here; one that serves is judged
   * on what it served — with the model, fully; without it, on whether the data it served opens
   * its commitment (cleared if it does: the claim, not the inference, is what is checked).
   *
   * The claim costs its author nothing, so it is taken over only within this ledger's takeover
   * budget (`_takeover_budget.ts`: bounded, fair between claimants, none for a claimant found
   * false twice lately), and never at the worker's expense: a takeover that would take the
   * worker past its open-challenge cap is dropped, not the worker's receipts. A dropped claim
   * is still recorded and passed on; only this validator does not ask on its word.
   */
  async #takeOverWithheld(verdict: Verdict, ctx: ActorContext<ValidatorMessage>): Promise<void> {
    if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return;
    const id = verdict.subjectId;
    const record = this.#ledger!.receipt(id);
    const recent = this.#memory.recent(id);
    if (record?.status !== "pending" || recent === undefined || this.#held.has(id)) return;
    if (this.#held.openOf(record.worker) >= MAX_OPEN_CHALLENGES_PER_WORKER) return;
    const claimant = toHex(verdict.validator);
    const open = this.#held.takenOverFor(claimant);
    if (this.#takeovers.refusal(claimant, this.#now(), open) !== undefined) return;
    this.#takeovers.spend();
    await this.#open(recent.receipt, recent.job, ctx, verdict).catch(() => {});
  }

  /**
   * Whether `record` is pending inside its window: a peer's claim about it is recorded and may be
   * taken over (`#worthRecording`, `#takeOverWithheld`).
   */
  #inWindow(record: ReceiptRecord | undefined): record is ReceiptRecord {
    return record?.status === "pending" && this.#now() <= record.pendingUntil;
  }

  /**
   * Whether a copy of receipt `id`, recorded here before, is one to remember again (review s57):
   * pending here inside its window, neither remembered nor challenged here (ever: asked once, a
   * worker is not asked again on a peer's claim; `ValidatorMemory.challenged`), and the very
   * receipt recorded — same id (its job checked against it by the intake), signed by its worker
   * (the id leaves the signature out: a copy signed by anyone else must not stand in for it). The
   * signature is checked last, only for such a copy: any other copy costs a look-up.
   */
  #forgottenPending(receipt: Receipt, id: string): boolean {
    const record = this.#ledger!.receipt(id);
    if (!this.#inWindow(record) || record.kind !== "inference") return false;
    if (this.#memory.recent(id) !== undefined || this.#memory.wasChallenged(id)) return false;
    return record.worker === toHex(receipt.worker) && verifyReceipt(receipt).ok;
  }

  /** The ledger's clock (ms): injected by tests through the ledger options. */
  #now(): number {
    return (this.#options.ledger?.now ?? Date.now)();
  }

  /** A finished challenge: record, settle and spread its outcome. State changes only here. */
  async #onChallenged(
    message: ChallengedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { receipt, result } = message;
    const id = receiptId(receipt);
    const ledger = this.#ledger!;
    const { outcome, reason } = result.verdict;
    // Taken over on this peer's claim (hex); undefined when this validator drew the challenge.
    const claimant = this.#held.claimantOf(id);
    const served = outcome === "valid" || (outcome === "inconclusive" && reason === PROOF_SERVED);
    if (claimant !== undefined && served) {
      // The worker served valid proof data here: the claim was false here, held against it.
      this.#takeovers.foundFalse(claimant, this.#now() + ledger.economics.challengeWindowMs);
    }
    // How the challenge ends in the ledger, unless by its own fraud proof (settled from it):
    // valid, or a claim found false — cleared; withheld or steering — a fault; else unresolved.
    const end = result.fraudProof ? undefined : endOf(result.verdict);
    try {
      // Kept before the verdict is: a stop, or a ledger write that fails, between the two
      // settles it at the next start (`_receipt_files.ts`, `_challenge_endings.ts`).
      if (result.fraudProof) await this.#ownProofs.save(id, result.fraudProof);
      if (end !== undefined) {
        await this.#endings.keep(id, { end, reason, verdict: result.verdict }).catch((error) =>
          // The ledger is asked all the same: only a failure of that too loses the ending.
          this.#log(`validator: ending of ${id.slice(0, 12)} not kept: ${error.message}`)
        );
      }
      await ledger.recordVerdict(result.verdict);
      this.#stats.verdicts[outcome]++;
      const worker = toHex(receipt.worker);
      this.#tell({
        kind: "verdict",
        verdict: result.verdict,
        own: true,
        validationMs: result.stats.totalMs,
        fraudProof: result.fraudProof,
      });
      this.#tellNetwork(ctx, {
        type: "publish_verdict",
        verdict: result.verdict,
        evidence: claimEvidence(result.verdict, receipt, message.job),
      });
      let settled: Promise<unknown> | undefined;
      if (result.fraudProof) {
        // Checked and settled like anyone's, on the work queue: never inside this message. The
        // receipt stays `challenged` (unpaid) until then, and settles even after its window.
        const taken = this.#onFraudProof(result.fraudProof, ctx, true);
        settled = taken.result;
        if (!taken.queued) {
          await this.#end(id, () => this.#ownProofUndecided(id, "proof_skipped"));
          await this.#ownProofs.remove(id);
        }
        this.#tellNetwork(ctx, { type: "publish_fraud_proof", proof: result.fraudProof });
      } else if (end === "cleared") {
        // Valid; or, taken over without the model, the proof data the peer said was withheld
        // was served here and opens the commitment: the claim fails, the work stands. A takeover
        // undecided here (this validator's own error) proves nothing either: the work stands as
        // it would without the claim, and the claimant gains nothing. (A worker that delivers
        // nothing here by the deadline, by any route, withheld: a fault, below.)
        await this.#end(id, this.#transitionOf(id, end, reason));
      } else if (end === "fault") {
        // Withheld past the deadline — no answer, "none", unsigned data, or no route to the
        // worker through the deadline — or the receipt that convicts its worker of steering: the
        // worker's failure, and no fraud proof can carry it. Not paid; the locked slash is burned.
        if (await this.#end(id, this.#transitionOf(id, end, reason))) {
          this.#stats.slashes++;
          // The verdict is the claim other ledgers take over on: kept for the peers that connect
          // while the window is open, as a fault applied at the start is (`_catch_up.ts`).
          // Gossip alone reached only the peers connected now, and a ledger away meanwhile paid
          // the worker that withheld here (review s54).
          const until = ledger.receipt(id)?.pendingUntil;
          if (until !== undefined) {
            await this.#catchUp.add({ kind: "verdict", verdict: result.verdict }, until);
          }
          this.#tellNetwork(ctx, { type: "peer_convicted", key: worker });
        }
        if (reason === "steering") await this.#settleSteering(receipt.worker);
      } else {
        // Undecided here (no model, an error, anything else): not paid, nobody slashed.
        if (await this.#end(id, this.#transitionOf(id, "unresolved", reason))) {
          this.#stats.unresolved++;
        }
      }
      this.#log(
        `validator: challenged job ${receipt.jobId.slice(0, 12)} → ${outcome}` +
          ` (${reason}; ${result.stats.positions} positions re-checked in ${
            Math.round(result.stats.totalMs)
          } ms)`,
      );
      const waiting = this.#waiting.get(id);
      if (settled === undefined) waiting?.resolve(result);
      else settled.then(() => waiting?.resolve(result), (error) => waiting?.reject(error));
    } catch (error) {
      this.#waiting.get(id)?.reject(error);
      throw error;
    } finally {
      this.#waiting.delete(id);
    }
  }

  /** `key` is convicted of steering here: settled once (see `_steering_settlement.ts`). */
  async #settleSteering(key: Uint8Array): Promise<void> {
    const me = this.#options.identity.publicKey;
    await settleSteering(this.#ledger!, me, key, (line) => this.#log(line));
  }

  /**
   * End the challenge on `id` with one ledger transition, and release its hold. Once the ledger
   * answered, its kept ending is removed; a write that fails (a disk error: the ledger is
   * poisoned) leaves it kept, and crashes this actor: the restart applies it
   * (`_challenge_endings.ts`).
   */
  async #end(id: string, transition: () => Promise<void>): Promise<boolean> {
    const takeover = this.#held.claimantOf(id) !== undefined;
    let ended = true;
    try {
      await transition();
    } catch (error) {
      // Settled meanwhile by someone else's checked fraud proof: that outcome stands.
      if (!(error instanceof LedgerRejectedError && error.code === "wrong_status")) throw error;
      ended = false;
    } finally {
      this.#held.release(id);
    }
    await this.#endings.remove(id);
    if (takeover) await this.#takenOver.remove(id);
    return ended;
  }

  #tellNetwork(ctx: ActorContext<ValidatorMessage>, message: NetworkMessage): void {
    const name = this.#options.network;
    if (name === undefined) return;
    ctx.system.lookup<NetworkMessage>(name)?.tell(message).catch(() => {});
  }

  /** Serial work queue: one validation (one forward pass) at a time. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#work.then(task, task);
    this.#work = run.catch(() => {});
    return run;
  }

  /** A challenge's work, off the mailbox (see `_run_challenge.ts`). */
  async #challenge(
    receipt: Receipt,
    job: Job,
    signal: AbortSignal,
    relay: Uint8Array | undefined,
    takeover: boolean,
  ): Promise<ValidationResult> {
    const { models, identity, validation, network } = this.#options;
    const source = this.#options.source ?? {};
    return await runChallenge(receipt, job, {
      models,
      identity,
      validation,
      source,
      steering: this.#steering,
      enqueue: (task) => this.#enqueue(task),
      proof: () =>
        proofOf(receipt, {
          source,
          network: network === undefined
            ? undefined
            : () => this.#system?.lookup<NetworkMessage>(network),
          deadlineMs: this.#options.proofDeadlineMs ?? PROOF_DEADLINE_MS,
          signal,
          relay,
        }),
      signal,
      takeover,
    });
  }

  /**
   * Whether a peer's verdict concerns this ledger: an inference verdict about a receipt it
   * holds, inside the receipt's window here (not final), by a validator with stake here. A
   * peer's verdict moves no balance; what it can do — a takeover here, a takeover on the ledgers
   * it is passed on to — ends with the receipt's window. Anything else would be free disk and
   * memory, in every ledger, for anyone with a key. A receipt this ledger has already settled
   * (its own challenge ended undecided, or slashed) takes no takeover here, but the verdict is
   * still passed on: the ledgers behind this one may hold the receipt pending, and hear the
   * claim only through it (review s47: one verdict reached 1 of 20 ledgers, and a ledger behind
   * one that had settled paid the worker that withheld).
   */
  #worthRecording(verdict: Verdict): boolean {
    const ledger = this.#ledger!;
    if (verdict?.subject !== "inference" || typeof verdict.subjectId !== "string") return false;
    const record = ledger.receipt(verdict.subjectId);
    if (record === undefined || record.status === "final") return false;
    if (this.#now() > record.pendingUntil) return false;
    return verdict.validator instanceof Uint8Array && ledger.hasStaked(verdict.validator);
  }

  /**
   * Take a fraud proof: skip what costs nothing to refuse, queue the check otherwise. A proof
   * about a receipt this ledger has not recorded is held (bounded, see `_validator_memory.ts`)
   * and taken again once the receipt comes in through `#onReceipt`, the one intake that binds it
   * to its job and runs the contradiction check and the coin: a proof never records its
   * receipt, so an accuser cannot make a receipt skip them. A proof from a key with no pledge
   * here is held for the pledge (skipped for now, `awaitingPledge`), and taken again when it is
   * recorded. `held`: the resolver of a proof taken again after it was held for its receipt.
   * `takenAt`: when a peer's proof kept across a stop was first taken (now if later or absent).
   */
  #onFraudProof(
    value: unknown,
    ctx: ActorContext<ValidatorMessage>,
    own = false,
    origin?: string,
    held?: PromiseWithResolvers<FraudCheckResult>,
    takenAt?: number,
  ): FraudProofHandled {
    const ledger = this.#ledger!;
    const skip = (skipped: NonNullable<FraudProofHandled["skipped"]>): FraudProofHandled => {
      this.#stats.fraudProofsSkipped++;
      held?.reject(new Error(`fraud proof skipped: ${skipped}`));
      return { queued: false, skipped };
    };
    const parsed = FraudProofSchema.safeParse(value);
    if (!parsed.success) return skip("malformed");
    const proof = parsed.data;
    const hash = fraudProofHash(proof);
    const id = receiptId(proof.receipt);
    const taken = this.#memory.hasFraudProof(hash) || this.#memory.holdsFraudProof(id, hash);
    if (taken || this.#pledgeHeld.holds(hash)) {
      return skip("duplicate");
    }
    // A worker accusing its own receipt can only be shaping its own settlement (a refuted
    // accusation costs it a flat penalty, a confirmed one rewards it with its own slash).
    if (bytesEqual(proof.validator, proof.receipt.worker)) return skip("self_accusation");
    // The receipt it settles here: its own, or the variant of it its worker had recorded here
    // for the job (review s46: a worker sends each ledger another variant of one receipt).
    const record = ledger.fraudSubject(proof.receipt);
    const subject = record?.receiptId ?? id; // `#subjectId`, with its record
    const now = this.#now();
    if (record !== undefined && !worthFraudCheck(record, now)) return skip("not_pending");
    // Taken now, or when it was first taken before a stop: the window's test is on that time.
    const since = Math.min(now, takenAt ?? now);
    // A peer's stake must cover the penalty of this accusation and of those still being checked
    // or held here: else one key staked at the penalty buys any number of checks at once. This
    // validator's own proofs, from its own challenges, are not a peer's claims to bound: checked
    // whatever its stake (a refuted one costs it what stake it has), or a validator with none
    // would catch a cheat and leave it unslashed in its own ledger.
    const penalty = ledger.economics.falseAccusationPenalty;
    const accuser = toHex(proof.validator);
    // Its free stake (review s45): what its own receipts lock as a worker backs their slash, not
    // its accusations (the ledger charges a penalty out of free stake only).
    const backed = own ||
      freeStake(ledger.account(proof.validator)) >=
        penalty * (this.#memory.accusing(proof.validator) + 1);
    // Short of stake, a proof still settles the same way whatever came first (a worker's
    // conviction must not hang on the order a pledge, a refuted proof and this one arrived): from
    // a key with no pledge here yet it waits for the pledge (`_pledge_held_proofs.ts`: memory,
    // never a forward pass); from a key that pledged, it is checked all the same while it could
    // settle its receipt, within a budget per receipt (`_unbacked_checks.ts`). About a receipt
    // not recorded here, a pledged key's proof is held for the receipt, as a backed one is.
    const pledged = backed || ledger.hasStaked(proof.validator);
    const unbacked = !backed && pledged && record !== undefined;
    if (
      unbacked && !(since <= record.pendingUntil && this.#unbacked.available(subject, accuser))
    ) {
      return skip("unstaked_accuser");
    }
    // One accusation per accuser and receipt: refused once one settled or was left undecided
    // here, and while one is taken and not settled (being checked, or held for its receipt) —
    // else one key re-signs a claim into any number of checks in flight, each kept across a stop
    // (`_held_evidence.ts`). This validator's own proof is one per challenge already.
    const repeated = (!pledged && this.#pledgeHeld.accuses(accuser, id)) ||
      ledger.hasAccused(proof.validator, subject) ||
      this.#memory.undecided(proof.validator, subject) ||
      (!own && this.#memory.accusesNow(proof.validator, subject));
    if (repeated) return skip("repeated_accusation");
    // Checked before the proof takes its slot: a copy with a broken signature, arriving
    // first, must not make the genuine one a "duplicate".
    if (!verifyFraudProofSignature(proof)) return skip("bad_signature");
    // A receipt not recorded here is held only if signed (a forged or garbled one is refused at
    // once; any key can still sign a made-up one, which the holds' bounds take care of).
    if (record === undefined && !verifyReceipt(proof.receipt).ok) return skip("bad_signature");
    if (!pledged) {
      held?.reject(new Error("fraud proof held for its accuser's pledge"));
      this.#pledgeHeld.hold({ proof, hash, origin });
      this.#stats.fraudProofsSkipped++;
      return { queued: false, skipped: "unstaked_accuser", awaitingPledge: true };
    }
    const waiting = held ?? Promise.withResolvers<FraudCheckResult>();
    waiting.promise.catch(() => {});
    if (record === undefined) {
      // The proof outran the receipt's announcement: checked and settled once the receipt is
      // recorded here through the intake; never recorded from the proof.
      this.#memory.holdFraudProof(id, hash, { proof, origin, waiting });
      return { queued: false, awaitingReceipt: true, result: waiting.promise };
    }
    if (unbacked) this.#unbacked.take(subject, accuser, hash, record.pendingUntil);
    this.#memory.takeFraudProof(hash, { waiting, proof, origin, own, takenAt: since }, subject);
    // Held only for a proof that can still settle it: one taken after the window is refused
    // whatever its check says (its accuser risks nothing), and would only delay the pay.
    if (!own && since <= record.pendingUntil) {
      this.#checking.set(hash, { receiptId: subject, takenAt: since });
    }
    if (own) {
      this.#enqueue(() => this.#checkFraud(proof)).then(
        (check) => ctx.self.tell({ type: "fraud_checked", proof, check, own, origin }),
        // An own proof's challenge must end: undecided here, as a check without the model is.
        () => ctx.self.tell({ type: "fraud_checked", proof, check: failedCheck(hash), own }),
      ).catch(() => {});
    } else {
      this.#checkPeerProof(proof, hash, origin, ctx, 0);
    }
    return { queued: true, result: waiting.promise };
  }

  /**
   * Check a peer's proof taken here (`tries` checks of it threw before). A check that throws is
   * tried again at the next finalize tick, the proof still taken and its receipt held; past
   * {@link MAX_FRAUD_CHECK_TRIES} it is undecided here (`failedCheck`).
   */
  #checkPeerProof(
    proof: FraudProof,
    hash: string,
    origin: string | undefined,
    ctx: ActorContext<ValidatorMessage>,
    tries: number,
  ): void {
    this.#enqueue(() => this.#checkFraud(proof)).then(
      (check) => ctx.self.tell({ type: "fraud_checked", proof, check, origin }),
      () => {
        if (tries + 1 >= MAX_FRAUD_CHECK_TRIES) {
          return ctx.self.tell({ type: "fraud_checked", proof, check: failedCheck(hash), origin });
        }
        this.#failedChecks.set(hash, { proof, origin, tries: tries + 1 });
      },
    ).catch(() => {});
  }

  /** `accuser` (hex) has stake here now: the fraud proofs held for its pledge are taken again. */
  #takePledgeHeldProofs(accuser: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { proof, origin } of this.#pledgeHeld.take(accuser)) {
      this.#onFraudProof(proof, ctx, false, origin);
    }
  }

  /**
   * `receipt` came in through the intake: the fraud proofs held for it, or for another variant
   * its worker signed for the job (they settle against it, `Ledger.fraudSubject`), are taken
   * again.
   */
  #takeHeldFraudProofs(receipt: Receipt, ctx: ActorContext<ValidatorMessage>): void {
    const held = this.#memory.takeHeldFraudProofs(receipt.jobId, toHex(receipt.worker));
    for (const { proof, origin, waiting } of held) {
      this.#onFraudProof(proof, ctx, false, origin, waiting);
    }
  }

  /**
   * The id of the receipt a fraud proof about `proof.receipt` settles here: its own, or the
   * variant its worker had recorded here for the job (`Ledger.fraudSubject`). One accusation per
   * accuser and receipt is keyed on it, or an accuser re-signing its claim against each variant
   * of one receipt has each checked again (`tests/actors/review_s46_variant_restart_test.ts`).
   */
  #subjectId(proof: FraudProof): string {
    return this.#ledger!.fraudSubject(proof.receipt)?.receiptId ?? receiptId(proof.receipt);
  }

  /**
   * Recompute the cited positions. Runs outside `receive`; touches no actor state. A kind
   * checked without a model is checked without one when the model fails to load: that failure
   * must not leave a conviction anyone can check undecided (review s50: the cheat kept its
   * stake, or was paid).
   */
  async #checkFraud(proof: FraudProof): Promise<FraudCheckResult> {
    const model = await this.#options.models.get(proof.receipt.model).catch((error) => {
      if (fraudProofNeedsModel(proof)) throw error;
      return undefined;
    });
    return await checkFraudProof(proof, model, this.#options.validation);
  }

  /** A checked fraud proof: settle it in the ledger. State changes only here. */
  async #onFraudChecked(
    message: FraudCheckedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { proof, check } = message;
    const ledger = this.#ledger!;
    const id = receiptId(proof.receipt);
    const hash = check.proofHash || fraudProofHash(proof);
    const waiting = this.#memory.fraudProof(hash);
    this.#stats.fraudProofsChecked++;
    // This validator's own proof, from a challenge that holds the receipt `challenged`: the
    // challenge ends here, whatever the check says.
    const own = message.own === true && ledger.receipt(id)?.status === "challenged";
    /**
     * A ledger write failed: the proof stays kept (an own one in `own-fraud-proofs/`, a peer's
     * as taken and not settled, in the held evidence kept at the stop), and is settled at the
     * restart that follows.
     */
    let failed = false;
    try {
      if (check.reason === "malformed" || check.reason === "bad_signature") {
        // Unattributable: nothing to settle, nothing to pass on (and an own challenge is
        // undecided).
        if (own) await this.#ownProofUndecided(id, `fraud_check_${check.reason}`);
        waiting?.resolve(check);
        return;
      }
      if (!message.own) {
        // Gossip: a proof from a peer goes on to the other peers (each checks it itself, and
        // takes it once), so the whole network settles the same evidence — also one this node
        // could not decide (it lacks the model or its profile): the ledgers behind it, which the
        // receipt reached through this one, may hold them.
        this.#tellNetwork(ctx, { type: "publish_fraud_proof", proof, except: message.origin });
      }
      if (check.inconclusive) {
        // Undecidable here: nothing to settle (and an own challenge is undecided). Taken once
        // per accuser and receipt, as a settled accusation is: the same claim re-signed is
        // neither checked nor passed on again.
        this.#memory.rememberUndecided(proof.validator, this.#subjectId(proof));
        if (own) await this.#ownProofUndecided(id, `fraud_check_${check.reason}`);
        waiting?.resolve(check);
        return;
      }
      // Only a receipt recorded through the intake was checked (`#onFraudProof` holds the
      // others): a proof, confirmed or refuted, never records its receipt.
      const record = ledger.fraudSubject(proof.receipt);
      if (record !== undefined && takesFraudProofs(record.status)) {
        // Written ahead of the settlement (a `fraud` receipt takes no other conviction): a
        // process that dies right after it still has the conviction at its next start, where it
        // is read back only if the ledger settled it (`_catch_up.ts`).
        const conviction = { kind: "fraud_proof", proof } as const;
        if (check.confirmed && record.status !== "fraud") {
          await this.#catchUp.write(conviction, record.pendingUntil);
        }
        const settled = await ledger.settleFraud({
          receiptId: id,
          receipt: proof.receipt,
          fraudProofHash: check.proofHash,
          validator: proof.validator,
          confirmed: check.confirmed,
          reason: check.reason,
          takenAt: this.#checking.get(hash)?.takenAt,
        }).catch((error) => {
          // After the window (or raced by a copy): it changes nothing, and crashes nothing.
          if (error instanceof LedgerRejectedError) return undefined;
          throw error;
        });
        // Refused (a confirmed proof about a receipt already slashed here, one past the window):
        // its accuser's claim is still taken once per receipt, as a settled one is, or each
        // re-signed copy of it would be checked, and passed on, again.
        if (settled === undefined) {
          this.#memory.rememberUndecided(proof.validator, record.receiptId);
          if (check.confirmed) this.#catchUp.discard(id);
        }
        if (settled !== undefined) {
          this.#tell({ kind: "fraud", proof, confirmed: check.confirmed, reason: check.reason });
        }
        if (settled !== undefined && check.confirmed) {
          this.#stats.slashes++;
          // Gossip (above, and at the verdict for an own proof) reached the peers connected
          // then: kept for those that connect while the window is open, or a ledger the receipt
          // reached through others, offline now, pays the cheat every other ledger slashed.
          await this.#catchUp.add(conviction, record.pendingUntil);
          // Resumed after a stop, which may have come before the proof left this node: passed
          // on now to the peers connected (at a node's first start, none may be yet).
          if (message.own && this.#resumed.has(id)) {
            this.#tellNetwork(ctx, { type: "publish_fraud_proof", proof });
          }
          // The network routes no more jobs to it.
          this.#tellNetwork(ctx, { type: "peer_convicted", key: toHex(proof.receipt.worker) });
          this.#log(
            `validator: fraud on job ${proof.receipt.jobId.slice(0, 12)} confirmed; worker ` +
              `${toHexShort(proof.receipt.worker)} slashed ${record.locked}`,
          );
        }
        if (own && ledger.receipt(id)?.status === "challenged") {
          // Our own accusation did not hold up (its false-accusation charge is booked above):
          // the work stands, and is paid when its window closes.
          if (settled !== undefined) await ledger.clearChallenge(id);
          else await this.#ownProofUndecided(id, "fraud_unsettled");
        }
      }
      waiting?.resolve(check);
    } catch (error) {
      failed = true;
      waiting?.reject(error);
      throw error;
    } finally {
      this.#checking.delete(hash);
      if (!failed) {
        this.#memory.fraudProofDone(hash);
        this.#unbacked.done(hash);
      }
      if (message.own) {
        this.#held.release(id);
        this.#resumed.delete(id);
        // Removed once settled; after a failed write it is what the restart settles from (the
        // ledger, poisoned, crashes this actor): removed, the receipt would end unresolved and
        // the cheat this validator caught keep its stake.
        if (!failed) await this.#ownProofs.remove(id);
        if (!failed) await this.#takenOver.remove(id);
      }
    }
  }

  /**
   * At start: the challenge on `id`, open when this validator stopped, had caught its worker
   * with `value` (this validator's own fraud proof, as kept on disk): held again and the proof
   * checked and settled as it would have been. False when the kept bytes are not such a proof.
   * `claimant` (hex): the challenge was taken over on that peer's claim (kept on disk), so an
   * undecided ending clears it, as before the stop.
   */
  #resumeOwnProof(
    id: string,
    value: unknown,
    ctx: ActorContext<ValidatorMessage>,
    claimant: string | undefined,
  ): boolean {
    const parsed = FraudProofSchema.safeParse(value);
    if (!parsed.success) return false;
    const proof = parsed.data;
    const mine = bytesEqual(proof.validator, this.#options.identity.publicKey);
    if (!mine || receiptId(proof.receipt) !== id) return false;
    this.#held.hold(id, toHex(proof.receipt.worker), claimant);
    if (this.#onFraudProof(proof, ctx, true).queued) {
      this.#resumed.add(id);
      return true;
    }
    this.#held.release(id);
    return false;
  }

  /**
   * This validator's own fraud proof settled nothing (its check threw or was undecided, or the
   * ledger refused it): the challenge it holds ends undecided — unpaid, the lock released — or,
   * for a takeover, cleared: a peer's claim can only convict, and what this validator could not
   * decide leaves the work paid as it would have been without the claim (review s50: it was left
   * unpaid, an honest worker paying for a false claim and this validator's own gap).
   */
  async #ownProofUndecided(id: string, reason: string): Promise<void> {
    const ledger = this.#ledger!;
    if (this.#held.claimantOf(id) !== undefined) await ledger.clearChallenge(id);
    else await ledger.leaveUnresolved(id, reason);
  }

  /** Settle a checked training fraud proof; a conviction is told to the network and the log. */
  async #onTrainingFraud(
    message: TrainingFraudLedgerMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<{ settled: boolean; slashed: number }> {
    const { receipt } = message;
    const id = trainingReceiptId(receipt);
    const conviction = message.body === undefined
      ? undefined
      : { kind: "training_fraud_proof", body: message.body } as const;
    // Written ahead of the settlement, as an inference conviction is (`#onFraudChecked`); a
    // receipt not recorded here yet (the proof outran it) is recorded by the settlement, and its
    // conviction written after it.
    const before = this.#ledger!.receipt(id);
    if (message.confirmed && conviction !== undefined && before?.kind === "training") {
      if (before.status !== "fraud") await this.#catchUp.write(conviction, before.pendingUntil);
    }
    // Settled or refused, its check is over: the receipt is no longer held for it.
    const checking = this.#checking.get(message.fraudProofHash);
    const outcome = await settleTrainingFraud(this.#ledger!, {
      ...message,
      takenAt: message.takenAt ?? checking?.takenAt,
    }).finally(() => this.#checking.delete(message.fraudProofHash));
    if (!outcome.settled || !message.confirmed) {
      if (message.confirmed) this.#catchUp.discard(id);
      return outcome;
    }
    this.#stats.slashes++;
    // Gossip reached the peers connected then: kept for those that connect while the window is
    // open, or a ledger the receipt reached through others, away now, pays the lazy trainer
    // every other ledger slashed (`tests/training/training_catch_up_test.ts`).
    const until = this.#ledger!.receipt(id)?.pendingUntil;
    if (conviction !== undefined && until !== undefined) {
      await this.#catchUp.add(conviction, until);
    }
    this.#tellNetwork(ctx, { type: "peer_convicted", key: toHex(receipt.trainer) });
    this.#log(
      `validator: training fraud by trainer ${
        toHexShort(receipt.trainer)
      } in round ${receipt.round} ` +
        `confirmed (${message.reason}); slashed ${outcome.slashed}`,
    );
    return outcome;
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }

  /** Tell a watcher what happened; a watcher that throws never disturbs the ledger's owner. */
  #tell(activity: ValidatorActivity): void {
    try {
      this.#options.onActivity?.(activity);
    } catch {
      // A watcher's failure is its own.
    }
  }
}

/**
 * The receipt and job kept at a receipt's draw (`#resumeDrawn`), or undefined when the record
 * does not read back as the receipt `id` bound to its job.
 */
function readDrawn(id: string, kept: unknown): { receipt: Receipt; job: Job } | undefined {
  const record = kept as { receipt?: unknown; job?: Job } | undefined;
  try {
    const receipt = parseReceipt(record?.receipt);
    const job = record?.job;
    if (job === undefined || receiptId(receipt) !== id || jobIdOf(job) !== receipt.jobId) {
      return undefined;
    }
    return { receipt, job };
  } catch {
    return undefined;
  }
}

/**
 * What a check that threw (the model failed to load, an error in the pass) concluded: nothing,
 * as a check without the model (`fraud_check_error` when it ends an own challenge).
 */
function failedCheck(proofHash: string): FraudCheckResult {
  return {
    confirmed: false,
    inconclusive: true,
    reason: "error",
    proofHash,
    forwardTokens: 0,
    ms: 0,
  };
}

function toHexShort(key: Uint8Array): string {
  return Array.from(key.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

export type { Account, ReceiptRecord };
