/**
 * What the ValidatorActor resumes at its start (`validator_actor.ts`, `preStart`): the challenge
 * endings kept before a ledger write that failed or a stop (`applyKeptEndings`,
 * `_challenge_endings.ts`); the challenges open at the stop, each settled from this validator's
 * own fraud proof kept on disk, cleared as a takeover the stop cut off, run again from the receipt
 * and job kept at its draw, or left undecided when that cannot be (`resumeChallenges`); the
 * challenges of receipts drawn before the stop and not opened yet; and
 * the peers' receipts kept at their intake, remembered again so that a claim that comes after
 * the restart is taken over (`restorePending`, `_receipt_files.ts`). The drawn challenges a failed
 * ledger write cut off are opened also when the ledger is reopened in place, without a start
 * (`resumeDrawnAfterReopen`, `_ledger_reopen.ts`). Owned by the actor, built in
 * its constructor on its {@link ValidatorCore}; used only at its start. Not part of the public
 * API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { type Job, jobId as jobIdOf } from "../protocols/job.ts";
import { parseReceipt, type Receipt, receiptId } from "../protocols/receipt.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import { FraudProofSchema } from "../protocols/fraud_proof.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import { LedgerRejectedError } from "../proof/ledger.ts";
import { OWN_TRAINING_FRAUD_PROOFS_DIR, ReceiptFiles } from "./_receipt_files.ts";
import { type Challenges, claimEvidence, endOf } from "./_challenges.ts";
import type { FraudProofs } from "./_fraud_proofs.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { ledgerWriteFailed } from "./_ledger_write_faults.ts";
import { LEDGER_WRITE_FAILED } from "./ledger_conditions.ts";
import { PROOF_DEADLINE_MS } from "../proof/challenge_timing.ts";
import { MAX_OPEN_CHALLENGES_PER_WORKER } from "./_receipt_intake.ts";
import type { ValidatorMessage } from "./validator_messages.ts";

/**
 * The reason a challenge open at a stop ends `unresolved` at the start when it is not run again
 * (`#reopenDrawn`) nor settled from what was kept: this validator's own gap, so unpaid here and
 * nobody slashed.
 */
export const VALIDATOR_RESTARTED = "validator_restarted";

/** What the validator resumes at its start (see the module doc). */
export class ValidatorRestart {
  readonly #core: ValidatorCore;
  readonly #challenges: Challenges;
  readonly #fraudProofs: FraudProofs;
  /** The receipts whose kept ending `applyKeptEndings` took: their draw's records go. */
  readonly #ended = new Set<string>();

  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   * @param challenges Where a challenge is opened, and how one ends in the ledger.
   * @param fraudProofs Where an own fraud proof kept across the stop is checked and settled.
   */
  constructor(core: ValidatorCore, challenges: Challenges, fraudProofs: FraudProofs) {
    this.#core = core;
    this.#challenges = challenges;
    this.#fraudProofs = fraudProofs;
  }

  /**
   * At start: end each challenge whose ending was kept before the ledger was asked (the ask
   * failed and crashed this actor, or a stop came first) as it was decided; one whose receipt is
   * no longer `challenged` has its ending in the ledger already, and is not applied twice. A
   * ledger write that fails again fails the start: the supervisor tries again after its backoff,
   * and the ending stays kept for the next start. First, the catch-up's verdicts whose ending
   * this ledger does not have are dropped (written ahead of a settlement a stop or a failed write
   * cut off: {@link endedAs}); one whose ending is applied below is kept again.
   */
  async applyKeptEndings(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    const ledger = this.#core.ledger();
    const me = this.#core.options.identity.publicKey;
    this.#core.catchUp().dropUnsettled((verdict) =>
      endedAs(verdict, ledger.receipt(verdict.subjectId))
    );
    for (const [id, ending] of await this.#core.endings().all()) {
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
          // The write that failed may have been the verdict's own: then it was never passed
          // on (a copy the peers had is taken once). Told now, it reaches the peers connected
          // now (this actor's restart); kept, it reaches those that connect later (the node's
          // first start, where the network comes after this actor).
          // A "proof withheld" one after its receipt and job, kept with its ending (review
          // s58): a peer that forgot the receipt, or never had it, takes the claim over.
          const kept = ending!.evidence === undefined ? undefined : readDrawn(id, ending!.evidence);
          const item = {
            kind: "verdict" as const,
            verdict,
            evidence: claimEvidence(verdict, kept?.receipt, kept?.job),
          };
          // Written ahead of the transition, as a fault decided in this life is (`_challenges.ts`):
          // after it, a stop in between lost it (the next start finds the receipt ended and
          // removes the ending; review s59).
          await this.#core.catchUp().write(item, record.pendingUntil);
          const ended = await this.#challenges.transitionOf(id, ending!.end, verdict.reason)().then(
            () => true,
            (error) => {
              if (error instanceof LedgerRejectedError) return false;
              throw error;
            },
          );
          if (ended) {
            this.#core.stats.verdicts[verdict.outcome]++;
            if (ending!.end === "fault") this.#core.stats.slashes++;
            if (ending!.end === "unresolved") this.#core.stats.unresolved++;
            await this.#core.catchUp().add(item, record.pendingUntil);
            const { evidence } = item;
            this.#core.tellNetwork(ctx, { type: "publish_verdict", verdict, evidence });
            if (ending!.end === "fault") {
              this.#core.tellNetwork(ctx, { type: "peer_convicted", key: record.worker });
            }
          } else {
            this.#core.catchUp().discard(verdictId(verdict));
          }
        }
      }
      await this.#core.endings().remove(id);
      // Ended (here or before the stop): its draw's record must not open it again
      // (`#resumeDrawn` opens the record of a receipt `pending`, and a cleared one is). Removed
      // in `resumeChallenges`: the records are not open yet.
      this.#ended.add(id);
    }
  }

  /**
   * At start: end or resume each challenge open when this validator last stopped (see the
   * comments below), open the challenges of receipts drawn before the stop (`#resumeDrawn`), and
   * remember the receipts challenged here before the stop that are open again.
   *
   * @param ctx The actor's context.
   * @param ownVerdicts This validator's own verdicts, as the start read them once from the ledger
   * for its steering record (`validator_actor.ts`), after the kept endings were applied: the
   * challenges they ended. A verdict recorded after that read is of a challenge opened since
   * (`#resumeDrawn`), remembered as challenged at its open.
   */
  async resumeChallenges(
    ctx: ActorContext<ValidatorMessage>,
    ownVerdicts: readonly Verdict[],
  ): Promise<void> {
    const kept = await this.#core.ownProofs().all();
    // Which of the challenges open at the stop were taken over on a peer's claim: those end as a
    // takeover undecided here does (review s54: ended unresolved, an honest worker lost its pay
    // to anyone's free claim and this validator's restart).
    const claims = await this.#core.takenOver().all();
    const keptTraining = this.#core.options.trainingProofsResumed
      ? await ReceiptFiles.in(this.#core.options.ledgerDir, OWN_TRAINING_FRAUD_PROOFS_DIR).all()
      : new Map<string, unknown>();
    // The receipts and jobs kept at their draw: an open challenge's stays until it ends
    // (`_challenges.ts`), so one the stop cut off is run again from it.
    await this.#core.drawn().removeAll(this.#ended);
    this.#ended.clear();
    const drawnKept = await this.#core.drawn().all();
    const reopen: Reopening[] = [];
    for (const id of this.#core.ledger().challenged()) {
      // The training validator's to settle from its kept proof (or end) when it starts.
      if (keptTraining.has(id) && this.#core.ledger().receipt(id)?.kind === "training") continue;
      if (this.#core.ledger().hasAccused(this.#core.options.identity.publicKey, id)) {
        // Its own accusation was booked before the stop, and did not hold (a confirmed one
        // ends the receipt as fraud): what the stop cut off is the clearing that follows it.
        // Re-checked, the proof would be refused a second settlement and the work left unpaid.
        await this.#core.ledger().clearChallenge(id);
        await this.#core.drawn().remove(id); // ended: not to be opened again (`#resumeDrawn`)
        continue;
      }
      const claimant = this.#claimantKept(id, claims.get(id));
      const proof = kept.get(id);
      if (proof !== undefined && this.#resumeOwnProof(id, proof, ctx, claimant)) {
        kept.delete(id);
        // Settled from its proof, never run again: a record of its draw left by a stop between
        // the proof's keeping and the record's removal (`_challenges.ts`) goes now.
        await this.#core.drawn().remove(id);
        continue;
      }
      if (claimant !== undefined) {
        // A takeover the stop cut off is undecided here, this validator's own gap: cleared, the
        // work stands as it would without the claim (see `TAKEOVER_DETAIL`).
        await this.#core.ledger().clearChallenge(id);
        continue;
      }
      // A kept proof that is not resumed (garbled, not this validator's, not checkable) ends
      // with its challenge: removed below. A challenge this validator drew and had not decided
      // is run again, once all those above are settled (`#reopenDrawn`).
      const record = drawnKept.has(id) ? readDrawn(id, drawnKept.get(id)) : undefined;
      if (record !== undefined) {
        reopen.push({ ...record, pendingUntil: this.#core.ledger().receipt(id)!.pendingUntil });
        continue;
      }
      await this.#leaveUnresolved(id);
    }
    await this.#reopenDrawn(reopen, ctx);
    for (const id of kept.keys()) await this.#core.ownProofs().remove(id);
    // Kept only while its takeover is open (one resumed from its fraud proof above); not beside a
    // challenge this validator drew, run again above (a file it never recorded the claim of).
    for (const id of claims.keys()) {
      if (
        this.#core.ledger().receipt(id)?.status !== "challenged" ||
        this.#core.held.claimantOf(id) === undefined
      ) {
        await this.#core.takenOver().remove(id);
      }
    }
    // After the challenges open at the stop have ended above: not one of those just opened.
    await this.#resumeDrawn(ctx, "validator_restarted");
    // Receipts challenged here before the stop that are open again (cleared: paid when their
    // window closes): a copy of one that comes ahead of a peer's claim must not have this
    // validator ask the worker again (`_receipt_intake.ts`, `#forgottenPending`). Each such
    // challenge ended in a verdict signed here (the start's one read of them), or was a takeover
    // the stop cut off (cleared above).
    for (const id of [...ownVerdicts.map((v) => v.subjectId), ...claims.keys()]) {
      if (this.#core.inWindow(this.#core.ledger().receipt(id))) this.#core.memory.challenged(id);
    }
  }

  /**
   * After the ledger was reopened in place (`_ledger_reopen.ts`): what {@link resumeChallenges}
   * does at a start for the draws a stop cut off, for the draws a failed ledger write cut off
   * (the receipt's entry reached the log, its challenge was not opened on the poisoned ledger:
   * `_receipt_intake.ts`). Without it such a receipt was paid unchallenged when its window
   * closed before the node's next start (review s72). One whose window closed before the reopen
   * is left unpaid with reason {@link LEDGER_WRITE_FAILED}, and said in one line. A write that
   * fails again is not thrown (a crash at each reopen on a disk still failing would have the
   * supervisor give up and take the node down): it is the ledger's condition, as a failed write
   * in the intake is, it arms the next reopen, and what is left stays kept for it.
   */
  async resumeDrawnAfterReopen(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    try {
      await this.#resumeDrawn(ctx, LEDGER_WRITE_FAILED);
    } catch (error) {
      ledgerWriteFailed(this.#core, error);
    }
  }

  /**
   * Open the challenge of each receipt drawn whose challenge a stop (at start) or a failed
   * ledger write (at the reopen) cut off (the receipt recorded, its challenge not opened yet),
   * from the receipt and job kept at its draw: judged as it would have been, a cheat slashed and
   * honest work paid. One whose window closed meanwhile, or whose kept record does not read back,
   * is left unpaid with `reason`: its draw was owed, and nothing here checked it. A record whose
   * receipt was never recorded, or is no longer `pending` (its challenge was opened), is removed.
   */
  async #resumeDrawn(ctx: ActorContext<ValidatorMessage>, reason: string): Promise<void> {
    const ledger = this.#core.ledger();
    for (const [id, kept] of await this.#core.drawn().all()) {
      const status = ledger.receipt(id)?.status;
      // Its challenge is open here (re-opened at this start, or running at a reopen): its record
      // stays until the challenge ends (`_challenges.ts`).
      if (status === "challenged" && this.#core.held.has(id)) continue;
      if (status !== "pending") {
        await this.#core.drawn().remove(id);
        continue;
      }
      const drawn = readDrawn(id, kept);
      const opened = drawn !== undefined &&
        await this.#challenges.open(drawn.receipt, drawn.job, ctx).then(() => true, (error) => {
          if (error instanceof LedgerRejectedError) return false;
          throw error;
        });
      if (opened) continue;
      await ledger.leaveUnresolved(id, reason);
      this.#core.stats.unresolved++;
      if (reason === LEDGER_WRITE_FAILED) {
        this.#core.log(
          `validator: receipt ${id} was drawn for a challenge while the ledger could not write; ` +
            `its window closed before the ledger was reopened: left unpaid (${reason})`,
        );
      }
      await this.#core.drawn().remove(id);
    }
  }

  /**
   * At start: run again each challenge this validator drew that was open and undecided at the
   * stop (review s79 crash F3: it was left `unresolved`, so the honest worker paid in every ledger
   * that did not restart was unpaid in this one, and two honest ledgers settled the same evidence
   * two ways). The same draw, its one `challenge` entry in the ledger (nothing written again),
   * and a fresh proof deadline, which must end inside the receipt's window (the worker keeps its
   * proof data for the window and a deadline more, `MIN_PROOF_RETENTION_MS`): one whose deadline
   * would end after its window is left unresolved, as before, and so is one past the cap of open
   * challenges per worker ({@link MAX_OPEN_CHALLENGES_PER_WORKER}, the intake's, which the draws
   * open at the stop kept to: only a cap lowered across the stop finds more), soonest windows
   * first. Forward passes run one at a time on the serial queue, as every challenge's.
   */
  async #reopenDrawn(
    reopen: Reopening[],
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const deadlineMs = this.#core.options.proofDeadlineMs ?? PROOF_DEADLINE_MS;
    reopen.sort((a, b) => a.pendingUntil - b.pendingUntil);
    for (const { receipt, job, pendingUntil } of reopen) {
      const id = receiptId(receipt);
      const fits = this.#core.now() + deadlineMs <= pendingUntil;
      const room = this.#core.held.drawnOf(toHex(receipt.worker)) < MAX_OPEN_CHALLENGES_PER_WORKER;
      if (fits && room) {
        this.#challenges.reopen(receipt, job, ctx);
        this.#core.log(
          `validator: challenge of receipt ${id.slice(0, 12)} was open at the stop: run again`,
        );
        continue;
      }
      await this.#leaveUnresolved(id);
      await this.#core.drawn().remove(id);
    }
  }

  /** The challenge on `id`, open at the stop, ends undecided: this validator's own gap, unpaid. */
  async #leaveUnresolved(id: string): Promise<void> {
    await this.#core.ledger().leaveUnresolved(id, VALIDATOR_RESTARTED);
    this.#core.stats.unresolved++;
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
   * no claim about it is recorded, `_peer_verdicts.ts`), or that does not read back, is removed.
   */
  async restorePending(): Promise<void> {
    const ledger = this.#core.ledger();
    const open: { receipt: Receipt; job: Job; pendingUntil: number }[] = [];
    const stale: string[] = [];
    for (const [id, kept] of await this.#core.pending().all()) {
      const record = ledger.receipt(id);
      const takeable = this.#core.inWindow(record) && !this.#core.memory.wasChallenged(id);
      const pending = takeable ? readDrawn(id, kept) : undefined;
      if (pending === undefined) stale.push(id);
      else open.push({ ...pending, pendingUntil: record!.pendingUntil });
    }
    open.sort((a, b) => a.pendingUntil - b.pendingUntil);
    for (const { receipt, job } of open) stale.push(...this.#core.memory.remember(receipt, job));
    await this.#core.pending().removeAll(stale);
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
      return this.#core.ledger().hasVerdict(verdictId(claim)) ? toHex(claim.validator) : undefined;
    } catch {
      return undefined; // not a verdict
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
    const mine = bytesEqual(proof.validator, this.#core.options.identity.publicKey);
    if (!mine || receiptId(proof.receipt) !== id) return false;
    this.#core.held.hold(id, toHex(proof.receipt.worker), claimant);
    if (this.#fraudProofs.onFraudProof(proof, ctx, true).queued) {
      this.#core.resumed.add(id);
      return true;
    }
    this.#core.held.release(id);
    return false;
  }
}

/** A challenge drawn here, open at the stop, to run again (`#reopenDrawn`). */
interface Reopening {
  receipt: Receipt;
  job: Job;
  /** When the receipt's window ends (the ledger's clock, ms). */
  pendingUntil: number;
}

/**
 * Whether `record`, the ledger's record of `verdict`'s receipt, is where the verdict's ending
 * (`endOf`) leaves it: a fault slashed (`fraud`), an undecided one `unpaid`, a cleared one open
 * or paid. A verdict is recorded before its ending is applied, so its being recorded alone does
 * not say the ending was: a fault written ahead of a settlement cut off would be sent, and its
 * worker claimed against, with nothing settled here.
 */
function endedAs(verdict: Verdict, record: { status: string } | undefined): boolean {
  const status = record?.status;
  switch (endOf(verdict)) {
    case "fault":
      return status === "fraud";
    case "unresolved":
      return status === "unpaid";
    default:
      return status === "pending" || status === "final";
  }
}

/**
 * The receipt and job kept at a receipt's draw (`#resumeDrawn`), at its intake, or with a
 * "proof withheld" ending (`applyKeptEndings`), or undefined when the record does not read back
 * as the receipt `id` bound to its job.
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
