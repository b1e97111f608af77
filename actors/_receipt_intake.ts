/**
 * The ValidatorActor's receipt intake (`validator_actor.ts`, the `receipt` message): the one way
 * a receipt enters the ledger. A receipt is recorded only bound to its job and backed by its
 * worker's stake, credited only if this validator can get its model, refused when stale
 * ({@link RECEIPT_STALE}), signed ahead of this clock ({@link RECEIPT_FROM_FUTURE}), or when
 * its worker already holds {@link MAX_OPEN_CHALLENGES_PER_WORKER} challenges drawn here; the
 * validator's coin decides whether it is challenged (`_challenges.ts`), except for what needs no
 * forward pass to see: a contradiction of its job, or a prompt-token count its prompt does not
 * have (`promptTokensAtIntake`) or that cannot be counted here, challenged whatever the coin
 * (re-counted only for a receipt the ledger would take, after its stake refusal); and what it is
 * kept on disk as meanwhile (`_receipt_files.ts`). What waited for the receipt (peers' fraud proofs,
 * `_fraud_proofs.ts`, and peers' claims, `_peer_verdicts.ts`) is taken again once it is recorded.
 * A write the ledger fails for another cause than a refusal (a disk error) leaves the receipt
 * unrecorded, answered `ledger_write_failed`, and is the ledger's condition, logged once and on
 * `/healthz` (`_ledger_write_faults.ts`), never the sender's refusal; so is a file kept beside the
 * ledger that cannot be written. One whose entry reached the log before the history index failed
 * (`ledger_index_failed`) is answered recorded, as it is: the condition is raised all the same. The ledger a failed write left poisoned is reopened by the actor
 * (`_ledger_reopen.ts`, which says what happens to such a receipt in each case). Owned by the
 * actor, built in its constructor on its {@link ValidatorCore}; read and written only inside its
 * `receive` (and its start). Not part of the public API.
 *
 * @module
 */
import { CLOCK_SKEW_MS, STALE_RECEIPT_AGE_MS } from "../proof/challenge_timing.ts";
import type { ActorContext } from "./actor.ts";
import { type Job, jobId as jobIdOf } from "../protocols/job.ts";
import {
  parseReceipt,
  type Receipt,
  receiptContradiction,
  receiptId,
  verifyReceipt,
} from "../protocols/receipt.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import { challengeTicket } from "../proof/challenge.ts";
import { type PromptCountingModel, promptTokensAtIntake } from "../proof/prompt_token_check.ts";
import type { ProofTensorModel } from "../proof/_common.ts";
import type { Challenges } from "./_challenges.ts";
import type { FraudProofs } from "./_fraud_proofs.ts";
import type { PeerVerdicts } from "./_peer_verdicts.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { isLedgerRefusal, ledgerWriteFailed, observedLedgerWrite } from "./_ledger_write_faults.ts";
import { LEDGER_WRITE_FAILED } from "./ledger_conditions.ts";
import type { LedgerError } from "../proof/ledger_errors.ts";
import { LedgerIndexFailedError } from "../proof/_ledger_disk_faults.ts";
import {
  INSUFFICIENT_STAKE_NOT_KEPT,
  type ReceiptHandled,
  type ReceiptMessage,
  type ValidatorMessage,
} from "./validator_messages.ts";

/**
 * Most open challenges per worker: beyond it, that worker's new receipts are refused here (not
 * paid) until its challenges drain. At the default p = 0.1 a worker reaches 16 only with about
 * 160 receipts in flight at once, far past an honest node's queue. Only the challenges this
 * validator drew count toward refusing receipts; a takeover (a peer's claim) that would take
 * the worker past the cap is dropped instead.
 */
export const MAX_OPEN_CHALLENGES_PER_WORKER = 16;

/**
 * Refusal of a receipt whose signed end is more than `STALE_RECEIPT_AGE_MS` (7.5 min) behind
 * this ledger's clock: its window would open after its worker may rightly have deleted its proof
 * data (`proof/challenge_timing.ts`).
 */
export const RECEIPT_STALE = "receipt_stale";
/**
 * Refusal of a receipt whose signed end is more than `CLOCK_SKEW_MS` (2.5 min) ahead of this
 * ledger's clock: a clock that far behind its worker's would hold the worker answerable after it
 * rightly deleted the proof data, by its own clock (review s75, F1). Not paid here; the ledgers
 * with clocks in step pay it.
 */
export const RECEIPT_FROM_FUTURE = "receipt_from_future";

/**
 * Longest a validator's intake waits for a job's input from its own store: one local block of at
 * most 256 KiB reads in milliseconds, and the wait holds the mailbox, so a store that stalls
 * costs each receipt of an input job this much at most, and the receipt is then held to the
 * model's window as one whose input is not held here.
 */
export const LOCAL_INPUT_READ_TIMEOUT_MS = 2_000;

/** The validator's receipt intake (see the module doc). */
export class ReceiptIntake {
  readonly #core: ValidatorCore;
  readonly #challenges: Challenges;
  readonly #fraudProofs: FraudProofs;
  readonly #peerVerdicts: PeerVerdicts;

  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   * @param challenges Where a receipt drawn is challenged.
   * @param fraudProofs Where the fraud proofs held for a receipt are taken again.
   * @param peerVerdicts Where the claims held for a receipt are taken again.
   */
  constructor(
    core: ValidatorCore,
    challenges: Challenges,
    fraudProofs: FraudProofs,
    peerVerdicts: PeerVerdicts,
  ) {
    this.#core = core;
    this.#challenges = challenges;
    this.#fraudProofs = fraudProofs;
    this.#peerVerdicts = peerVerdicts;
  }

  /**
   * Take `message` in (see the module doc).
   *
   * @param options.resubmitted The start hands in again a receipt this validator received before
   * its restart and held for its worker's stake (`_held_evidence.ts`): counted when it was
   * received, it counts again only if it is recorded now, as a reception (as the pledge's replay
   * counts in a running validator), never as a copy or a refusal. With counters kept across
   * restarts (`ValidatorActorOptions.stats`), each start grew `received` and `refused` by every
   * receipt held, and `received − copies − refused` must stay what the ledger recorded
   * (`recorded_receipts.ts`).
   */
  async onReceipt(
    message: ReceiptMessage,
    ctx: ActorContext<ValidatorMessage>,
    options?: { resubmitted?: boolean },
  ): Promise<ReceiptHandled> {
    const ledger = this.#core.ledger();
    const origin = message.origin;
    const fromPeer = origin !== undefined && origin !== "local";
    const counted = options?.resubmitted !== true;
    const countReceived = () => {
      this.#core.stats.received++;
      if (fromPeer) this.#core.stats.fromPeers++;
    };
    if (counted) countReceived();
    const countRefused = () => {
      if (!counted) return;
      this.#core.stats.refused++;
      if (fromPeer) this.#core.stats.refusedFromPeers++;
    };
    const refuse = (receiptId: string, refusal: string): ReceiptHandled => {
      countRefused();
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
    const job = message.job ??
      await this.#core.options.source?.job?.(receipt).catch(() => undefined);
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
    if (!fresh && counted) {
      // Counted apart: the heartbeat's receipts are jobs, not announcements of them.
      this.#core.stats.copies++;
      if (fromPeer) this.#core.stats.copiesFromPeers++;
    }
    // Its window would open now: only while its worker must still hold its proof data, which it
    // deletes by its own clock. One signed more than the skew ahead of this clock is refused too:
    // taken, a ledger whose clock is behind held its worker answerable after the data was rightly
    // gone, and slashed it (review s75, F1). Every path a receipt enters this ledger by comes here
    // (announcements, gossip, a fraud proof's or a claim's evidence, the held receipts at a start).
    const signedEnd = receipt.timings.startedAt + receipt.timings.totalMs;
    if (fresh && this.#core.now() - signedEnd > STALE_RECEIPT_AGE_MS) {
      return refuse(id, RECEIPT_STALE);
    }
    const maxLead = this.#core.options.maxReceiptLeadMs ?? CLOCK_SKEW_MS;
    if (fresh && signedEnd - this.#core.now() > maxLead) {
      return refuse(id, RECEIPT_FROM_FUTURE);
    }
    if (fresh && this.#core.held.drawnOf(worker) >= MAX_OPEN_CHALLENGES_PER_WORKER) {
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
    const own = bytesEqual(receipt.worker, this.#core.options.identity.publicKey);
    const p = this.#core.options.challengeProbability ?? ledger.economics.challengeProbability;
    // The coin counts only for a receipt new here and recorded: one the ledger refused is not
    // paid here, so nothing is computed for it (and nothing about the coin ever leaves). One
    // earning nothing here for want of its model is not challenged on the coin: nothing here
    // could decide it (a contradiction needs no model, so it still is).
    const draw = fresh && !own ? challengeTicket(this.#core.options.identity, id).draw : 1;
    // Its challenge is opened by a second ledger write: kept first, a crash between the two
    // does not let it slip into payment unchecked (the start opens it, `_validator_restart.ts`). Kept
    // only for a receipt the ledger takes (this actor alone writes it, so the answer holds for
    // the write below): the work of keeping one it refuses made that refusal take longer exactly
    // when the coin drew it, and anyone announcing a receipt it cannot get recorded (its stake
    // locked, its job held) learnt the coin of each variant without committing to any (review
    // s52). Asked whatever the coin, so asking takes no longer when it drew. Asked before the
    // re-count below: it writes nothing and reads the worker's stake and free lock, so a stranger
    // with no stake is refused without its prompt being tokenized (review s78 vfinal F3).
    const refused = fresh && !own
      ? ledger.receiptRefusal(receipt, { assignment, uncredited })
      : undefined;
    // A prompt-token count re-counted on every receipt the ledger takes, whatever the coin: the
    // count is paid, and checking it costs a tokenization, no forward pass (review s78 vprompt
    // F1). A wrong one, or one this validator cannot count now, is challenged as a contradiction
    // is, and the challenge proves the same `prompt_tokens` fraud.
    const miscounted = fresh && !own && uncredited === undefined && refused === undefined &&
      await this.#promptCountOwesChallenge(receipt, job);
    // This node's router asks for one whatever the coin where the receipt's worker's word blames
    // another (`ReceiptMessage.challenge`): it acts on that word only on a `valid` verdict.
    const asked = message.challenge === true;
    const owed = fresh && !own &&
      (contradiction !== null || miscounted || (uncredited === undefined && (draw < p || asked)));
    // A peer's receipt not drawn is kept too, until it leaves `pending` (`pending`): a claim
    // that it was withheld, coming after a restart, is taken over on it. So every receipt the
    // ledger takes is written once here, whatever the coin.
    const kept = fresh && !own && refused === undefined;
    const keptIn = owed ? this.#core.drawn() : this.#core.pending();
    if (kept) {
      try {
        await keptIn.save(id, { receipt, job });
      } catch (error) {
        // Kept beside the ledger, on its disk: a file that cannot be written (a full disk) is the
        // ledger's condition as its own write is, and the receipt refused so; thrown, it crashed
        // this validator at every receipt until its supervisor gave up and took the node down.
        ledgerWriteFailed(this.#core, error);
        return refuse(id, LEDGER_WRITE_FAILED);
      }
    }
    // The record of this worker's that holds the job before this receipt: a cancelled pair's
    // finished one (`pairAssigned` below), looked up only for an assigned cancelled receipt.
    const pairable = receipt.end === "cancelled" && assignment !== undefined;
    const holderBefore = pairable ? this.#jobHolder(receipt.jobId, worker) : undefined;
    // Its entry reached the log, then the history index failed (`ledger_index_failed`).
    let indexFailed = false;
    try {
      if (fresh) {
        await observedLedgerWrite(
          this.#core,
          () => ledger.recordReceipt(receipt, { assignment, uncredited }),
        );
      }
    } catch (e) {
      if (e instanceof LedgerIndexFailedError) {
        // Recorded: the receipt is in the log (synced) and in the ledger's state, and counts, now
        // and after the reopen. Answered "not recorded" (review s72), its sender took a counted
        // receipt for a lost one. The fault is the ledger's all the same: `observedLedgerWrite`
        // raised the condition and armed the reopen. What was kept for it stays kept: a draw is
        // opened when the ledger is reopened (`_ledger_reopen.ts`), or at the next start if that
        // comes first (`_validator_restart.ts`), not now on a poisoned ledger.
        indexFailed = true;
      } else {
        // A draw's record stays after a write that failed (not a refusal): the entry may have
        // reached the log before the failure (its fsync failed), and the reopen, or the next
        // start, then opens the challenge it owes; one whose receipt the ledger does not hold is
        // removed there (`_validator_restart.ts`). Removed, such a receipt was paid unchallenged.
        if (kept && !(owed && !isLedgerRefusal(e))) await keptIn.remove(id);
        recorded = false;
        // The ledger's refusal, by its code; a write that failed otherwise (a disk error) is the
        // machine's condition, logged and on `/healthz` (`_ledger_write_faults.ts`), not the sender's.
        refusal = isLedgerRefusal(e) ? (e as LedgerError).code : LEDGER_WRITE_FAILED;
        if (own && origin === "local" && refusal === "job_already_recorded") {
          // Its prover releases it all the same (`ProverActor`): the job is one this node signed a
          // receipt for, though this ledger holds none of its own (another key's took the job
          // first). Kept, or after a restart the job would be run again here, and a second
          // receipt with another output is equivocation where the first was recorded (review s49).
          await this.#core.ownRefused().save(id, { jobId: receipt.jobId });
          this.#core.ownRefusedJobs.add(receipt.jobId);
        }
        countRefused();
        if (refusal === "insufficient_stake" && !ledger.hasStaked(receipt.worker)) {
          // Its pledge may just not have arrived yet (it comes on the worker's own connection,
          // the receipt on the requester's): taken again once it does. Past the bounds of what
          // waits, not kept, and the refusal says so: its sender sends it again after the pledge.
          if (!this.#core.memory.awaitStake(worker, id, message)) {
            refusal = INSUFFICIENT_STAKE_NOT_KEPT;
          }
        }
        if (refusal === "equivocation") {
          this.#core.stats.slashes++;
          this.#core.tellNetwork(ctx, { type: "peer_convicted", key: worker });
          this.#core.log(
            `validator: worker ${worker.slice(0, 16)} equivocated on job ${receipt.jobId}`,
          );
        }
      }
    }
    if (fresh && recorded) {
      // A held receipt recorded at last, at the start: counted as the replay of a running one is.
      if (!counted) countReceived();
      this.#fraudProofs.takeHeldFraudProofs(receipt, ctx);
      this.#peerVerdicts.takeHeldClaims(id, ctx);
    }
    // Recorded before without its assignment (the worker's announcement, or a relay that
    // stripped it, came first): the assignment is attached now.
    let gotAssigned = false;
    if (!fresh && assignment !== undefined) {
      const before = ledger.receipt(id)?.requester;
      // A refusal changes nothing here (another worker's receipt holds the job's assignment); a
      // write that failed is the ledger's condition (`_ledger_write_faults.ts`).
      await observedLedgerWrite(
        this.#core,
        () => ledger.recordReceipt(receipt, { assignment, uncredited }),
      ).catch(() => undefined);
      gotAssigned = before === undefined && ledger.receipt(id)?.requester !== undefined;
    }
    // The ledger checked the assignment when it recorded the receipt: a requester means a valid one.
    const assigned = recorded && ledger.receipt(id)?.requester !== undefined;
    // The cancelled receipt of a worker's cancelled pair whose finished one holds the job here
    // (`proof/_ledger_receipts.ts`, `cancelledPair`): the ledger wrote the assignment on that
    // record, paying the job k tokens, and refused this one `job_already_recorded`. Passed on all
    // the same, once (when it changed the record: assigned it, or cut its credit), as an assigned
    // receipt is: a ledger that holds no receipt of the job records it and pays k, one that holds
    // the finished one does as this one did; not passed on, every other ledger paid nothing, or
    // the n of a finished receipt the worker's race assigned there (review s80 bill F1).
    const holderAfter = pairable && !recorded && refusal === "job_already_recorded"
      ? this.#jobHolder(receipt.jobId, worker)
      : undefined;
    const pairAssigned = holderAfter !== undefined && holderAfter.receiptId !== id &&
      holderAfter.requester !== undefined &&
      (holderBefore?.requester !== holderAfter.requester ||
        holderBefore?.credit !== holderAfter.credit);
    // A worker convicted here of streaming this job's tokens wrong is paid nothing for it here
    // (`stream_fraud`): its receipt is not passed on with an assignment for other ledgers to pay.
    const convicted = ledger.streamFraudSettled(receipt.jobId, receipt.worker);
    if (
      (message.announce || fromPeer) && ((fresh || gotAssigned) && assigned || pairAssigned) &&
      !convicted && job.kind === "text"
    ) {
      // Once, when it is new here as an assigned receipt (recorded now, or its assignment just
      // attached): a job we relayed, with the assignment we signed, or a peer's (gossip:
      // passed on to every other peer, so validators not connected to the relay see it too —
      // also when a relay stripped the assignment from the copy that came first). Work
      // nobody else requested earns nothing anywhere: not announced.
      this.#core.tellNetwork(ctx, {
        type: "announce_receipt",
        receipt,
        job,
        assignment: assignment as JobAssignment,
        except: fromPeer ? origin : undefined,
      });
    }
    const seen = (challenged: boolean) =>
      this.#core.tell({
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
      // Our own work: others judge it. Counted once recorded, as every view counts receipts
      // (`recorded_receipts.ts`): not a copy, nor one the ledger refused or failed to write.
      if (fresh && recorded) this.#core.stats.own++;
      seen(false);
      return { receiptId: id, recorded, refusal, uncredited, challenged: false, draw: 1 };
    }
    if (fresh && recorded) {
      // Those forgotten to make room (past 4096, or 64 MiB with their jobs: the oldest) are no
      // longer kept on disk either.
      await this.#core.pending().removeAll(this.#core.memory.remember(receipt, job));
      // Takeovers are paid for by traffic, at the coin's own rate (see `_takeover_budget.ts`).
      this.#core.takeovers.earn(p);
    } else if (!fresh && this.#forgottenPending(receipt, id)) {
      // A copy of a receipt recorded here, still open, that the memory forgot (pushed out by
      // others): remembered again, so the "proof withheld" claim it came ahead of is taken over
      // (`ClaimEvidence`), and so is one recorded here before it, held for it (it reached this
      // ledger first without its evidence, review s58). Nothing is recorded or credited again,
      // no takeover budget earned.
      await this.#core.pending().save(id, { receipt, job });
      await this.#core.pending().removeAll(this.#core.memory.remember(receipt, job));
      await this.#peerVerdicts.takeRecordedClaims(id, ctx);
    }
    // Not on a ledger its index failure left poisoned: kept in `drawn`, opened at the next start.
    const challenged = owed && recorded && !indexFailed;
    const handled: ReceiptHandled = {
      receiptId: id,
      recorded,
      refusal,
      uncredited,
      challenged,
      draw: fresh && recorded ? draw : 1,
    };
    seen(challenged);
    if (challenged) handled.result = (await this.#challenges.open(receipt, job, ctx)).result;
    return handled;
  }

  /**
   * Whether this validator can get model `cid` to check a receipt on it, asked at intake:
   * cheaply through `ValidatorModelSource.has` when the source has it, else by `get`. A source
   * that throws counts as holding it: a model that fails to load is this validator's own gap,
   * judged in the challenge (unpaid, nobody slashed), not the worker's.
   */
  async #holdsModel(cid: string): Promise<boolean> {
    const { models } = this.#core.options;
    try {
      if (models.has !== undefined) return await models.has(cid);
      return (await models.get(cid))?.info.cid === cid;
    } catch {
      return true;
    }
  }

  /**
   * Whether `receipt`'s signed prompt-token count owes a challenge whatever the coin: its text
   * job's prompt does not have that count by the model's tokenizer (`promptTokensAtIntake`), or
   * this validator cannot count it now. Counted with the tokenizer alone where the source gives it
   * (`ValidatorModelSource.promptCounting`), else with the model (loaded once, as a challenge
   * would). Asked only for a receipt that signs a count.
   *
   * A count that cannot be checked here (the tokenizer's read failed and waits out its back-off,
   * the model failed to load, or it has no tokenizer) is challenged, not paid on the coin alone:
   * the count is paid as signed, so waving it through paid a 100,000-token claim on an 11-token
   * job 6,258 credits where a validator that could count slashed it (review s78 vfinal F2). The
   * challenge loads the model and counts the prompt itself; an honest count is paid on its
   * `valid` verdict, and a model this validator cannot load is its own gap there (unpaid, nobody
   * slashed), as the design asks of every validator-side gap.
   */
  async #promptCountOwesChallenge(receipt: Receipt, job: Job): Promise<boolean> {
    if (receipt.promptTokens === undefined || job.kind !== "text") return false;
    const { models } = this.#core.options;
    let model: PromptCountingModel | ProofTensorModel | undefined;
    try {
      model = models.promptCounting !== undefined
        ? await models.promptCounting(receipt.model)
        : await models.get(receipt.model);
    } catch {
      return true;
    }
    if (model === undefined || !("tokenizer" in model)) return true;
    try {
      const input = await this.#heldInput(job);
      return promptTokensAtIntake(receipt, job, model, input) !== null;
    } catch {
      // Bytes by the job's CID that are not text or overflow its room: no honest worker ran on
      // them, and nothing here can count them; the challenge judges it.
      return true;
    }
  }

  /**
   * The bytes of `job`'s input when this node's own store holds them (`readInput` with `local`,
   * no storage peer asked: this runs in the mailbox, and a peer's read could hold every receipt
   * behind it), so a receipt of an input job is counted exactly, not only held to the model's
   * window (a worker could claim up to `contextLength − 1` prompt tokens unchecked, review s78
   * vprompt F1). Undefined for a job without one, with no reader, or one that does not answer
   * within {@link LOCAL_INPUT_READ_TIMEOUT_MS}.
   */
  async #heldInput(job: Job): Promise<Uint8Array | undefined> {
    const read = this.#core.options.readInput;
    if (job.kind !== "text" || job.input === undefined || read === undefined) return undefined;
    return await read(job.input, AbortSignal.timeout(LOCAL_INPUT_READ_TIMEOUT_MS), { local: true })
      .catch(() => undefined);
  }

  /**
   * The record that holds job `jobId` in the ledger when it is `worker`'s (hex): its requester
   * and credit, copied (the record may be replaced); undefined when none holds it, or another's.
   */
  #jobHolder(
    jobId: string,
    worker: string,
  ): { receiptId: string; requester?: string; credit: number } | undefined {
    const ledger = this.#core.ledger();
    const holderId = ledger.receiptOfJob(jobId);
    const record = holderId === undefined ? undefined : ledger.receipt(holderId);
    if (record === undefined || record.worker !== worker) return undefined;
    return { receiptId: record.receiptId, requester: record.requester, credit: record.credit };
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
    const record = this.#core.ledger().receipt(id);
    if (!this.#core.inWindow(record) || record.kind !== "inference") return false;
    if (this.#core.memory.recent(id) !== undefined || this.#core.memory.wasChallenged(id)) {
      return false;
    }
    return record.worker === toHex(receipt.worker) && verifyReceipt(receipt).ok;
  }
}
