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
 * The actor composes private parts that share its state (`_validator_core.ts`): the receipt
 * intake (`_receipt_intake.ts`), the challenges (`_challenges.ts`), the fraud proofs
 * (`_fraud_proofs.ts`), peers' verdicts and claims (`_peer_verdicts.ts`), and what its start
 * resumes (`_validator_restart.ts`).
 *
 * @module
 */
import { PROOF_DEADLINE_MS } from "../proof/challenge_timing.ts";
import type { Actor, ActorContext } from "./actor.ts";
import type { ActorSystem } from "./actor_system.ts";
import type { Identity } from "../protocols/identity.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import { parseReceipt, type Receipt, receiptId } from "../protocols/receipt.ts";
import { jobId as jobIdOf } from "../protocols/job.ts";
import type { JobInputReader } from "../protocols/job_input.ts";
import { verifyAssignment } from "../protocols/assignment.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { SteeringRecord } from "../proof/steering.ts";
import type { ValidationOptions } from "../proof/validation.ts";
import { type Account, Ledger, type LedgerOptions, type ReceiptRecord } from "../proof/ledger.ts";
import type { NetworkMessage } from "../network/network_actor.ts";

export type * from "./validator_messages.ts";
import { failedChallenge } from "./_run_challenge.ts";
import { ChallengeHolds } from "./_challenge_holds.ts";
import { TakeoverBudget } from "./_takeover_budget.ts";
import { ValidatorMemory } from "./_validator_memory.ts";
import { type HeldEvidence, HeldEvidenceFile } from "./_held_evidence.ts";
import {
  DRAWN_CHALLENGES_DIR,
  OWN_REFUSED_RECEIPTS_DIR,
  PENDING_RECEIPTS_DIR,
  ReceiptFiles,
  TAKEN_OVER_CLAIMS_DIR,
} from "./_receipt_files.ts";
import { ChallengeEndings } from "./_challenge_endings.ts";
import { CatchUp } from "./_catch_up.ts";
import { holdTrainingChallenge, recordTrainingReceipt } from "./_validator_training.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { StreamClaims } from "./_stream_claims.ts";
import { FraudProofs } from "./_fraud_proofs.ts";
import { Challenges } from "./_challenges.ts";
import { MAX_OPEN_CHALLENGES_PER_WORKER, ReceiptIntake } from "./_receipt_intake.ts";
import { ValidatorRestart } from "./_validator_restart.ts";
import { PeerVerdicts } from "./_peer_verdicts.ts";
import { LedgerReopen } from "./_ledger_reopen.ts";
import { heldAnswer, ReadOnlyHold } from "./_validator_read_only.ts";
import { LaterReply } from "./actor.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import type {
  ChallengeSource,
  ReceiptHandled,
  ReceiptMessage,
  ValidatorActivity,
  ValidatorMessage,
  ValidatorModelSource,
  ValidatorStats,
} from "./validator_messages.ts";
import { emptyValidatorStats } from "./validator_messages.ts";

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
   * Reads a job's stored input (`protocols/job_input.ts`) by its CID: a stream claim about a job
   * that reads one is replayed on its bytes (checked against the CID), and passed on with them;
   * a receipt of a job that reads one has its prompt tokens counted exactly at intake when this
   * node's own store holds the bytes (asked `local`, `_receipt_intake.ts`). None: such a claim,
   * without the bytes, is undecided here, and such a receipt is held to the model's window.
   */
  readInput?: JobInputReader;
  /**
   * How long a challenged worker has to serve its proof data over the network, ms (default
   * {@link PROOF_DEADLINE_MS}). Past it the proof counts as withheld: the job is not paid and
   * the worker's locked stake is slashed.
   */
  proofDeadlineMs?: number;
  /**
   * How far ahead of this ledger's clock a receipt's signed end may be and still be recorded, ms
   * (default `CLOCK_SKEW_MS`, `proof/challenge_timing.ts`); past it the receipt is refused
   * `receipt_from_future` (`_receipt_intake.ts`). A test whose ledger clock is a fixed fake (it
   * starts in 1970) while its receipts are signed in real time sets it to `Infinity`.
   */
  maxReceiptLeadMs?: number;
  /**
   * The clock of the ledger's reopen after a failed write (`_ledger_reopen.ts`); default the real
   * timers (tests pass fake ones and fire them).
   */
  ledgerReopenTimers?: ConnectionTimers;
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
  /**
   * Where the counters are kept ({@link ValidatorStats}); default a fresh set. The node hands
   * every incarnation of the actor the same one, built outside the child spec's factory, so a
   * restart by the supervisor keeps the totals `/metrics`, the dashboard and `status` show
   * (review s71). What describes this incarnation (`ledgerWriteFault`, the open challenges) is
   * its own.
   */
  stats?: ValidatorStats;
  /**
   * Told this incarnation's ledger once it has started (`open` true) and again as it stops
   * (false), for reads that must not queue behind the intake in the mailbox: the node's
   * admission of a job by its free stake (`node/_stake_backed_port.ts`). Reads only: every write
   * stays in `receive`.
   */
  onLedger?: (ledger: Ledger, open: boolean) => void;
}

/** Default finalize timer period: a fraction of the default 10-minute window. */
export const DEFAULT_FINALIZE_INTERVAL_MS = 10_000;
// Declared beside the receipt intake that refuses past it; public here (`mod.ts` exports it).
export { MAX_OPEN_CHALLENGES_PER_WORKER };

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
   * settled here, the faults decided here, the verdicts the start applied. One per ledger
   * directory in the process, so it outlives this actor's restarts; kept on disk too (convictions
   * and verdicts), and read back at the first start in a process.
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
  /** Credit for taking over peers' "proof withheld" claims, and false claimants held back. */
  readonly #takeovers = new TakeoverBudget();
  /** Totals, kept across restarts by whoever gave them ({@link ValidatorActorOptions.stats}). */
  readonly #stats: ValidatorStats;
  /** What the parts below share (`_validator_core.ts`). */
  readonly #core: ValidatorCore;
  /** Fraud proofs: taken, checked and settled (`_fraud_proofs.ts`). */
  readonly #fraudProofs: FraudProofs;
  readonly #streamClaims: StreamClaims;
  /** Challenges: opened, run and ended (`_challenges.ts`). */
  readonly #challenges: Challenges;
  /** Peers' verdicts: recorded, passed on, held as claims, taken over (`_peer_verdicts.ts`). */
  readonly #peerVerdicts: PeerVerdicts;
  /** The one way a receipt enters the ledger (`_receipt_intake.ts`). */
  readonly #intake: ReceiptIntake;
  /** What the start resumes (`_validator_restart.ts`). */
  readonly #restart: ValidatorRestart;
  /** The ledger reopened from disk after a failed write (`_ledger_reopen.ts`). */
  readonly #reopen: LedgerReopen;
  /** What writes, held while the ledger refuses writes: a full disk (`_validator_read_only.ts`). */
  readonly #readOnly: ReadOnlyHold;

  /**
   * Create the actor (the factory of its ChildSpec calls this).
   * @param options Identity, ledger, sources.
   */
  constructor(options: ValidatorActorOptions) {
    this.#options = options;
    this.#stats = options.stats ?? emptyValidatorStats();
    // The fault was the last incarnation's ledger's: this one opens the ledger anew from disk, and
    // a write of its own that fails holds the fault again (`_ledger_write_faults.ts`).
    delete this.#stats.ledgerWriteFault;
    this.#core = {
      options,
      ledger: () => this.#ledger!,
      catchUp: () => this.#catchUp,
      ownProofs: () => this.#ownProofs,
      endings: () => this.#endings,
      drawn: () => this.#drawn,
      pending: () => this.#pending,
      ownRefused: () => this.#ownRefused,
      takenOver: () => this.#takenOver,
      ownRefusedJobs: this.#ownRefusedJobs,
      resumed: this.#resumed,
      system: () => this.#system,
      held: this.#held,
      memory: this.#memory,
      takeovers: this.#takeovers,
      ledgerReopen: () => this.#reopen,
      stats: this.#stats,
      now: () => this.#now(),
      log: (line) => this.#log(line),
      tell: (activity) => this.#tell(activity),
      tellNetwork: (ctx, message) => this.#tellNetwork(ctx, message),
      enqueue: (task) => this.#enqueue(task),
      inWindow: (record): record is ReceiptRecord => this.#inWindow(record),
    };
    this.#fraudProofs = new FraudProofs(this.#core);
    this.#streamClaims = new StreamClaims(this.#core);
    this.#challenges = new Challenges(this.#core, this.#fraudProofs);
    this.#peerVerdicts = new PeerVerdicts(this.#core, this.#challenges);
    this.#intake = new ReceiptIntake(
      this.#core,
      this.#challenges,
      this.#fraudProofs,
      this.#peerVerdicts,
    );
    this.#restart = new ValidatorRestart(this.#core, this.#challenges, this.#fraudProofs);
    this.#reopen = new LedgerReopen(this.#core, options.ledgerReopenTimers);
    this.#readOnly = new ReadOnlyHold((line) => this.#log(line));
  }

  /** Opens the ledger (verifying it) and starts the finalize timer. */
  async preStart(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    this.#system = ctx.system;
    this.#reopen.start(ctx);
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
      // A verdict kept on disk is read back only if the ledger recorded it, until its receipt's
      // window here closes; one written ahead of a settlement a stop cut off is dropped at the
      // start's kept endings (`_validator_restart.ts`, `endedAs`).
      recorded: (verdict) =>
        ledger.hasVerdict(verdictId(verdict))
          ? ledger.receipt(verdict.subjectId)?.pendingUntil
          : undefined,
      // A stream proof written ahead of its settlement: kept if the ledger convicted the stream.
      streamSettled: (proof) =>
        ledger.streamFraudSettled(jobIdOf(proof.claim.job), proof.claim.worker),
      // An announcement of a receipt this node assigned, while it is pending here.
      assignedPending: (id) => this.#assignedPending(id),
    });
    // Challenges decided before a failed ledger write (or a stop) cut them off: ended as
    // decided, before anything else reads the ledger (`_challenge_endings.ts`).
    this.#endings = ChallengeEndings.in(this.#options.ledgerDir);
    // A read-only node (a full disk) writes nothing: the endings stay kept, applied at the next
    // start with room; applied now, the refusal would fail this start (node/disk_room.ts).
    const readOnly = ledger.writeRefusal() !== undefined;
    if (!readOnly) await this.#restart.applyKeptEndings(ctx);
    // This validator's own verdicts, read once (2 to 3 s on a ledger of 200,000 verdicts): its
    // steering record, and the receipts it challenged before the stop (`resumeChallenges`).
    const ownVerdicts = this.#ledger.verdictsBy(this.#options.identity.publicKey);
    this.#challenges.steering = SteeringRecord.fromVerdicts(
      ownVerdicts,
      this.#options.identity.publicKey,
    );
    // A conviction whose claw-back a crash interrupted is settled now (read-only: at the next
    // start with room, as the endings above).
    for (const worker of readOnly ? [] : this.#challenges.steering.convicted()) {
      await this.#challenges.settleSteering(fromHex(worker));
    }
    this.#ownProofs = ReceiptFiles.in(this.#options.ledgerDir);
    this.#drawn = ReceiptFiles.in(this.#options.ledgerDir, DRAWN_CHALLENGES_DIR);
    this.#pending = ReceiptFiles.in(this.#options.ledgerDir, PENDING_RECEIPTS_DIR, {
      durable: false,
    });
    this.#ownRefused = ReceiptFiles.in(this.#options.ledgerDir, OWN_REFUSED_RECEIPTS_DIR);
    this.#takenOver = ReceiptFiles.in(this.#options.ledgerDir, TAKEN_OVER_CLAIMS_DIR);
    for (const kept of (await this.#ownRefused.all()).values()) {
      const jobId = (kept as { jobId?: unknown } | undefined)?.jobId;
      if (typeof jobId === "string") this.#ownRefusedJobs.add(jobId);
    }
    // Challenges open when this validator last stopped (a crash, a restart): one that had
    // caught its worker cheating is settled from its fraud proof, kept on disk for this; the
    // others' material is gone, so they end undecided — the job is not paid — rather than slip
    // into payment.
    // Read-only: they stay challenged (unpaid), resumed from the ledger at the next start with room.
    if (!readOnly) await this.#restart.resumeChallenges(ctx, ownVerdicts);
    // Before the held evidence below: a claim held for its receipt may be about one of these.
    await this.#restart.restorePending();
    // What waited here at the last keep for a pledge or a receipt goes through the intake again.
    const { file, held } = await HeldEvidenceFile.open(this.#options.ledgerDir);
    this.#heldFile = file;
    // Spent before the stop: still spent (before the held proofs below may spend more).
    this.#fraudProofs.unbacked.restore(held.unbacked);
    // Received before the stop, and counted then (`ReceiptIntake.onReceipt`'s `resubmitted`).
    for (const message of held.receipts) {
      // Read-only: held again, recorded once the ledger takes writes (`_validator_read_only.ts`).
      if (ledger.writeRefusal() !== undefined) this.#readOnly.hold(message, true);
      else await this.#onReceipt(message, ctx, { resubmitted: true }).catch(() => {});
    }
    // Each with the time it was first taken (kept: a restart after the window closed must not
    // make a proof taken inside it too late), before the finalize timer below can pay its receipt.
    for (const { proof, origin, takenAt } of held.proofs) {
      const from = typeof origin === "string" ? origin : undefined;
      const at = typeof takenAt === "number" && Number.isFinite(takenAt) ? takenAt : undefined;
      this.#fraudProofs.onFraudProof(proof, ctx, false, from, undefined, at);
    }
    // Peers' "proof withheld" claims held for their receipt: through the verdict intake again
    // (taken over now if a receipt replayed above recorded theirs, else held again). One recorded
    // here and held for its receipt's evidence is held again as it was: the verdict intake would
    // find it known, and never take it over (review s58).
    for (const { verdict, origin, recorded } of held.claims ?? []) {
      if (typeof origin !== "string" || origin === "local") continue;
      const restored = recorded === true
        ? this.#peerVerdicts.restoreRecordedClaim(verdict as Verdict, origin, ctx)
        : this.receive({ type: "verdict", verdict: verdict as Verdict, origin }, ctx);
      await Promise.resolve(restored).catch(() => {});
    }
    // Stream claims taken and not settled at the stop: taken again (checked, then settled).
    this.#streamClaims.restoreUndecided(held.streamUndecided ?? []);
    for (const kept of held.streamClaims ?? []) await this.#streamClaims.resume(kept, ctx);
    const every = this.#options.finalizeIntervalMs ?? DEFAULT_FINALIZE_INTERVAL_MS;
    if (every > 0) {
      const timer = setInterval(() => {
        ctx.self.tell({ type: "finalize" }).catch(() => {});
      }, every);
      ctx.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
    const told = this.#options.onLedger;
    if (told !== undefined) {
      told(ledger, true);
      ctx.signal.addEventListener("abort", () => told(ledger, false), { once: true });
    }
  }

  /**
   * Waits for queued validations, keeps what still waits for a pledge or a receipt
   * (`_held_evidence.ts`) and closes the ledger.
   */
  async postStop(): Promise<void> {
    await this.#work.catch(() => {});
    // What the catch-up queued for disk (an assigned receipt's announcement kept as it was
    // recorded) is there before the process may end.
    await this.#catchUp?.written();
    if (this.#ledger !== undefined) await this.#keepHeld();
    await this.#ledger?.close();
  }

  /** What waits here for a pledge or a receipt, as kept across a stop. */
  #heldEvidence(): HeldEvidence {
    const { keptTaken, ...held } = this.#memory.waiting();
    held.proofs.push(...this.#fraudProofs.pledgeHeld.all());
    // After every proof they may wait behind (taken, held for a receipt or a pledge): at the
    // start each queues behind its kept predecessor again, as of when it came (review s77 F5:
    // lost at a stop, a confirmed proof queued behind a refuted one was gone, the cheat paid).
    held.proofs.push(...this.#fraudProofs.queued.all());
    // Held while read-only (a full disk): taken again at the start (`_validator_read_only.ts`).
    const readOnly = this.#readOnly.kept();
    held.receipts.push(...readOnly.receipts);
    held.claims = [...(held.claims ?? []), ...readOnly.claims];
    // The proofs in flight kept above spend their checks again when they are taken up; those
    // not kept (past the memory's bound) keep theirs spent.
    return {
      ...held,
      unbacked: this.#fraudProofs.unbacked.spentSettled(this.#now(), keptTaken),
      streamClaims: this.#streamClaims.pending(),
      streamUndecided: this.#streamClaims.undecided(),
    };
  }

  /** Keep what is held on disk, if it changed since the last keep (`_held_evidence.ts`). */
  async #keepHeld(): Promise<void> {
    await this.#heldFile?.keep(this.#heldEvidence()).catch((error) =>
      this.#log(`validator: could not keep held receipts and proofs: ${error.message}`)
    );
  }

  /**
   * Handle one message (see {@link ValidatorMessage}). While the ledger refuses writes (a
   * read-only node on a full disk) a message that writes is held, or a local one refused
   * `disk_full` without a crash (`_validator_read_only.ts`); what was held is taken first once
   * the ledger takes writes again.
   */
  receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): unknown {
    const refused = this.#ledger!.writeRefusal();
    if (refused === undefined) return this.#receive(message, ctx);
    const kind = ReadOnlyHold.kind(message);
    if (kind === "served") return this.#receive(message, ctx);
    // A later reply that rejects: the asker gets the refusal, and the actor does not crash.
    if (kind === "refused") return new LaterReply(Promise.reject(refused));
    return this.#hold(message, refused);
  }

  /** Hold `message` while read-only; its answer (a receipt's: refused with `refused`'s code). */
  async #hold(message: ValidatorMessage, refused: Error): Promise<unknown> {
    // Its ending (or own fraud proof) kept on disk first: a stop before the ledger takes writes
    // applies it at the next start with room (`_validator_restart.ts`).
    // (Not kept, as a disk with no room at all may refuse it: the stop then ends it undecided.)
    if (message.type === "challenged") {
      await this.#challenges.keepEnding(message).catch((error) =>
        this.#log(`validator: ending not kept while read-only: ${error.message}`)
      );
    }
    this.#readOnly.hold(message);
    const code = (refused as { code?: unknown }).code;
    return heldAnswer(message, typeof code === "string" ? code : "disk_full");
  }

  /**
   * The messages held while the ledger refused writes, oldest first, now that it takes them: in
   * this turn, before the message that found room (a finalize must not pay a receipt whose
   * fraud proof's settlement was held). One that finds the ledger refusing again is held again.
   */
  async #takeHeld(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    const held = this.#readOnly.take();
    this.#log(`validator: the ledger takes writes again: ${held.length} held messages taken`);
    for (const { message, resubmitted } of held) {
      if (this.#ledger!.writeRefusal() !== undefined) this.#readOnly.hold(message, resubmitted);
      else if (message.type === "receipt") {
        await this.#onReceipt(message, ctx, { resubmitted }).catch(() => {});
      } else await this.#receive(message, ctx);
    }
  }

  async #receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): Promise<unknown> {
    if (this.#readOnly.size > 0 && this.#ledger!.writeRefusal() === undefined) {
      await this.#takeHeld(ctx);
    }
    const ledger = this.#ledger!;
    switch (message.type) {
      case "receipt":
        return await this.#onReceipt(message, ctx);
      case "challenged":
        return await this.#challenges.onChallenged(message, ctx);
      case "fraud_proof":
        return this.#fraudProofs.onFraudProof(message.proof, ctx, false, message.origin);
      case "fraud_checked":
        return await this.#fraudProofs.onFraudChecked(message, ctx);
      case "stream_claim":
        return this.#streamClaims.onStreamClaim(message.claim, ctx);
      case "stream_proof":
        return this.#streamClaims.onStreamProof(message.proof, ctx, message.origin);
      case "stream_checked":
        return await this.#streamClaims.onStreamChecked(message, ctx);
      case "challenge_failed": {
        // Every challenge ends in a message, and every failure in a verdict: this validator's
        // own gap, so the job is left unpaid (not finalized) and nobody is slashed.
        const { receipt, reason } = message;
        const id = receiptId(receipt);
        this.#log(`validator: challenge of receipt ${id.slice(0, 12)} failed: ${reason}`);
        const takeover = this.#held.claimantOf(id) !== undefined;
        const result = failedChallenge(receipt, reason, this.#options.identity, takeover);
        await this.#challenges.onChallenged({ type: "challenged", receipt, result }, ctx);
        return undefined;
      }
      case "verdict":
        return await this.#peerVerdicts.onVerdict(message, ctx);
      case "pledge": {
        // A pledge that adds nothing here is answered before the ledger checks the signature:
        // every connection brings every pledge its peer holds (anti-entropy), so repeats are the
        // common case, and each would otherwise cost a signature check.
        const { pledge } = message;
        if (ledger.knowsPledge(pledge)) return false;
        // A new key's pledge from a peer, past its address group's or the node's room: not
        // recorded (a key is free; `network/peer_services.ts`).
        if (message.newKeys && !ledger.hasStaked(pledge.key) && !message.newKeys.take()) {
          this.#stats.newKeyPledgesRefused++;
          return false;
        }
        const recorded = await ledger.recordPledge(pledge).catch(() => false);
        if (!recorded) return false;
        const key = toHex(pledge.key);
        // Recorded: the key's first pledge (its stake), or a second, different one that convicts
        // it of pledge equivocation (its stake forfeited: nothing it held waits for that).
        const convicted = ledger.pledgeEquivocated(pledge.key);
        if (!convicted) {
          this.#replayAwaitingStake(key, ctx);
          this.#fraudProofs.takePledgeHeldProofs(key, ctx);
          this.#streamClaims.takePledgeHeld(key, ctx);
          this.#peerVerdicts.takeClaimsOf(key, ctx);
        }
        // Its standing changed: the router weighs it again.
        this.#tellNetwork(ctx, { type: "peer_staked", key });
        if (convicted) {
          // Said, and counted as a slash (`/metrics`, the heartbeat): the key's stake is gone here,
          // and its operator may not know it signed twice (a pledge file lost, review s70).
          this.#stats.slashes++;
          this.#log(
            `validator: pledge equivocation: key ${key} signed two different stake pledges; ` +
              `its stake and balance are forfeited in this ledger`,
          );
          // Every ledger that holds either pledge must come to hold both: the first goes to every
          // peer (the one the second came from may lack it: gossip passes on what is new), the
          // second to all but where it came from. A ledger that holds a pledge already passes
          // nothing on, so this ends; each send is out of the peer's budget (`pledge_budget.ts`),
          // the reserve included, and owed to a peer with no room, not dropped (review s80, F1).
          const [first] = ledger.pledges({ key: pledge.key });
          this.#tellNetwork(ctx, { type: "publish_pledge", pledge: first, conviction: true });
        }
        const fromPeer = message.origin !== undefined && message.origin !== "local";
        if (fromPeer || convicted) {
          // Gossip: ledgers that are not the pledger's direct peers need its stake too, or
          // they refuse its receipts (and, for a validator, its verdicts).
          const except = fromPeer ? message.origin : undefined;
          this.#tellNetwork(ctx, { type: "publish_pledge", pledge, except, conviction: convicted });
        }
        return true;
      }
      case "training_receipt":
        return await recordTrainingReceipt(ledger, message);
      case "training_fraud":
        return await this.#fraudProofs.onTrainingFraud(message, ctx);
      case "training_checking": {
        // A peer's training proof being checked by the training validator: held as a peer's
        // inference proof is (`FraudProofs.checking`), about a training receipt recorded here only.
        // Only for one taken inside the window: past it, it cannot settle the receipt.
        const { hold } = message;
        const takenAt = Math.min(hold?.takenAt ?? Infinity, this.#now());
        const record = hold && ledger.receipt(hold.receiptId);
        if (!hold || record?.kind !== "training" || !(takenAt <= record.pendingUntil)) {
          this.#fraudProofs.checking.delete(message.fraudProofHash);
        } else {
          this.#fraudProofs.checking.set(message.fraudProofHash, {
            receiptId: hold.receiptId,
            takenAt,
          });
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
        // Then the workers of the receipts this node assigned that the catch-up carries: a peer
        // lacking one is sent it when it refuses the receipt, but only as far as the room kept
        // for that goes (review s61). One pass over the pledges (a key's look-up is a scan of
        // them all).
        const now = this.#now();
        const keys = [...this.#catchUp.accusers(now), ...this.#catchUp.workers(now)].map(toHex);
        // (Both pledges of a key convicted of pledge equivocation: a peer holding one needs the
        // other to convict it too.)
        const wanted = new Map(keys.map((key) => [key, [] as StakePledge[]]));
        if (wanted.size > 0) {
          for (const pledge of ledger.pledges()) wanted.get(toHex(pledge.key))?.push(pledge);
        }
        const first = [...wanted.values()].flat();
        const rest = pledges.filter((pledge) => !wanted.has(toHex(pledge.key)));
        return [...first, ...rest].slice(0, Math.max(0, message.limit));
      }
      case "catch_up":
        return this.#catchUp.current(
          this.#now(),
          (id) => this.#assignedPending(id),
          (id) => this.#assignedPending(id, true),
        );
      case "deposit":
        await ledger.deposit(message.key, message.amount);
        this.#fraudProofs.takePledgeHeldProofs(toHex(message.key), ctx);
        this.#streamClaims.takePledgeHeld(toHex(message.key), ctx);
        this.#peerVerdicts.takeClaimsOf(toHex(message.key), ctx);
        return undefined;
      case "ledger_reopen":
        // Reopened: the draws a failed write cut off are challenged now, in this turn, before a
        // finalize can pay them unchallenged (`_ledger_reopen.ts`).
        if (await this.#reopen.onReopen()) await this.#restart.resumeDrawnAfterReopen(ctx);
        return undefined;
      case "finalize": {
        // A receipt whose challenge is open here is `challenged` in the ledger: not paid yet;
        // nor is one a peer's fraud proof is being checked against.
        const now = this.#now();
        // Peers' proofs whose check threw: checked again (their receipt still held); so are
        // stream claims whose check threw.
        this.#fraudProofs.retryFailedChecks(ctx);
        this.#streamClaims.retryFailedChecks(ctx);
        const checked = this.#fraudProofs.checkedReceipts(now);
        // A poisoned ledger's receipts due wait for its reopen (`_ledger_reopen.ts`): asked now,
        // its `ledger_poisoned` would crash this actor at every tick while the disk stays full,
        // until its supervisor gave up and took the node down.
        const finalized = ledger.poisoned ? [] : await ledger.finalizeDue((id) => checked.has(id));
        // Peers' receipts no longer open (paid, slashed, left unpaid, past their window) take
        // no claim over: forgotten, and no longer kept on disk (a copy left by a failed removal
        // goes at the next start).
        const closed = this.#memory.forgetRecentUnless((id) => this.#inWindow(ledger.receipt(id)));
        // Nor a claim held for one's evidence (`HeldClaim.recorded`).
        this.#memory.forgetRecordedClaimsUnless((id) => this.#inWindow(ledger.receipt(id)));
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
        // A training fraud proof's receipt: the record the proof would settle (the receipt's, or
        // the one its trainer had recorded for the round, where this one was its equivocation).
        return message.trainingReceipt !== undefined &&
            trainingReceiptId(message.trainingReceipt) === message.receiptId
          ? ledger.trainingFraudSubject(message.trainingReceipt)
          : ledger.receipt(message.receiptId);
      case "verdicts":
        return ledger.verdicts().filter((verdict) => verdict.subjectId === message.receiptId);
      case "convicted":
        return ledger.convicted(message.key);
      case "job_recorded": {
        if (
          message.worker !== undefined && this.#ownRefusedJobs.has(message.jobId) &&
          bytesEqual(message.worker, this.#options.identity.publicKey)
        ) {
          return true; // signed here, refused by this ledger, released (`ReceiptIntake.onReceipt`)
        }
        const id = ledger.receiptOfJob(message.jobId);
        if (id === undefined || message.worker === undefined) return id !== undefined;
        // Its receipt recorded first, then the job taken by another worker's assigned one (review
        // s77 F2: a cancelled receipt, then the client's retry finished elsewhere): kept as its
        // claim, so a second receipt of this worker for the job is still its equivocation.
        return ledger.receipt(id)?.worker === toHex(message.worker) ||
          ledger.keepsClaim(message.jobId, message.worker);
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

  /** A pledge arrived: the receipts that waited for it are taken again, in order. */
  #replayAwaitingStake(worker: string, ctx: ActorContext<ValidatorMessage>): void {
    const waiting = this.#memory.takeAwaitingStake(worker);
    if (waiting === undefined) return;
    for (const message of waiting) ctx.self.tell(message).catch(() => {});
  }

  /**
   * Whether `record` is pending inside its window: a peer's claim about it is recorded and may be
   * taken over (`_peer_verdicts.ts`: `#worthRecording`, `#takeOverWithheld`).
   */
  #inWindow(record: ReceiptRecord | undefined): record is ReceiptRecord {
    return record?.status === "pending" && this.#now() <= record.pendingUntil;
  }

  /** The ledger's clock (ms): injected by tests through the ledger options. */
  #now(): number {
    return (this.#options.ledger?.now ?? Date.now)();
  }

  /**
   * Hand `message` to the NetworkActor, with a `tell`: one lost with a NetworkActor that is down
   * (stopped, or crashed with it queued), or that reached no ledger-keeping peer, reaches each
   * that connects afterwards in its catch-up (`_catch_up.ts`). A receipt's announcement
   * (`announce_receipt`) with this node's own assignment (it forwarded the job: no other node
   * holds the assignment) is kept in the catch-up first, on disk, while the receipt is pending
   * here: lost, the assignment reached no other ledger, and the honest worker was paid in this
   * node's ledger and in no other (review s60,
   * `tests/network/validator_down_test.ts`; kept in memory only, it was
   * lost with a restart of the process before a peer connected,
   * `tests/network/catch_up_receipts_test.ts`). Its file was written ahead of the
   * ledger's record ({@link ValidatorActor.#writeAhead}, review s61): kept here, it is not written
   * again. A peer's assigned receipt passed on is kept too, in memory, bounded apart
   * (`CatchUp.addRelayed`): passed on to no ledger, it reached none past this node, and a ledger
   * that connected to this node only never heard of the job (review s62,
   * `tests/network/catch_up_receipts_test.ts`; its requester's catch-up reaches only
   * the requester's peers).
   */
  #tellNetwork(ctx: ActorContext<ValidatorMessage>, message: NetworkMessage): void {
    if (message.type === "announce_receipt" && message.assignment !== undefined) {
      const id = receiptId(message.receipt);
      const { receipt, job, assignment } = message;
      const item = { kind: "assigned_receipt", receipt, job, assignment } as const;
      const until = this.#assignedPending(id);
      if (until !== undefined) void this.#catchUp.add(item, until);
      const relayedUntil = until === undefined ? this.#assignedPending(id, true) : undefined;
      if (relayedUntil !== undefined) this.#catchUp.addRelayed(item, relayedUntil);
    }
    const name = this.#options.network;
    if (name === undefined) return;
    ctx.system.lookup<NetworkMessage>(name)?.tell(message).catch(() => {});
  }

  /**
   * A receipt through the intake (`_receipt_intake.ts`), the announcement of one this node
   * assigned written ahead of its record ({@link ValidatorActor.#writeAhead}).
   */
  async #onReceipt(
    message: ReceiptMessage,
    ctx: ActorContext<ValidatorMessage>,
    options?: { resubmitted?: boolean },
  ): Promise<ReceiptHandled> {
    const ahead = await this.#writeAhead(message);
    const handled = await this.#intake.onReceipt(message, ctx, options);
    // Not recorded as assigned here, or not announced (not kept by `#tellNetwork`): its file goes.
    // (A throw leaves it to the next start, which asks the ledger: `CatchUp.of`.)
    if (ahead !== undefined) this.#catchUp.discardAssigned(ahead);
    return handled;
  }

  /**
   * Before the intake: the announcement of a receipt that comes with this node's own assignment
   * (valid, for its job and worker), which the ledger does not hold assigned yet, is written to
   * the catch-up's disk ahead of the ledger's record (`CatchUp.write`): a process killed between
   * the record (durable once the ledger answers) and a file written after it lost the
   * announcement, and no peer that connected afterwards heard of the assignment (review s61,
   * `tests/network/catch_up_restart_test.ts`). Its receipt id if written; a file whose
   * receipt the ledger then does not hold assigned here is removed (`CatchUp.discardAssigned`),
   * or at the next start if the process dies first. The assignment's signature is checked only
   * for one naming this node as its requester: any other message costs a comparison of keys.
   */
  async #writeAhead(message: ReceiptMessage): Promise<string | undefined> {
    const { assignment, job } = message;
    const requester = (assignment as { requester?: unknown } | undefined)?.requester;
    if (job?.kind !== "text" || !(requester instanceof Uint8Array)) return undefined;
    if (!bytesEqual(requester, this.#options.identity.publicKey)) return undefined;
    let receipt: Receipt;
    let bound: boolean;
    try {
      receipt = parseReceipt(message.receipt);
      bound = jobIdOf(job) === receipt.jobId;
    } catch {
      return undefined; // garbage: the intake refuses it
    }
    const id = receiptId(receipt);
    const ledger = this.#ledger!;
    if (!bound || ledger.receipt(id)?.requester !== undefined) return undefined;
    if (!verifyAssignment(assignment, { jobId: receipt.jobId, worker: receipt.worker })) {
      return undefined;
    }
    const until = this.#now() + ledger.economics.challengeWindowMs;
    await this.#catchUp.write({ kind: "assigned_receipt", receipt, job, assignment }, until);
    return id;
  }

  /**
   * The end of receipt `id`'s window if this ledger holds it pending, assigned by this node (by
   * any node, `byAnyone`: a peer's this node passed on), inside the window (what the catch-up
   * carries the announcement of).
   */
  #assignedPending(id: string, byAnyone = false): number | undefined {
    const record = this.#ledger?.receipt(id);
    const requester = record?.requester;
    const assigned = byAnyone
      ? requester !== undefined
      : requester === toHex(this.#options.identity.publicKey);
    return assigned && this.#inWindow(record) ? record.pendingUntil : undefined;
  }

  /** Serial work queue: one validation (one forward pass) at a time. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#work.then(task, task);
    this.#work = run.catch(() => {});
    return run;
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

export type { Account, ReceiptRecord };
