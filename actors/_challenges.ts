/**
 * The ValidatorActor's challenges (`validator_actor.ts`): how one is opened on a recorded
 * receipt (`open`: durably `challenged` in the ledger first, then the material gathered and
 * validated off the mailbox, `_run_challenge.ts`), and how a finished one is recorded, settled
 * and spread (`onChallenged`), ending in one ledger transition (`transitionOf`, `#end`): cleared,
 * a fault, unresolved, or — when it caught a fraud — settled from its own fraud proof
 * (`_fraud_proofs.ts`). Also the steering record over this validator's own verdicts and its
 * settlement (`_steering_settlement.ts`), and how a signed verdict alone ends a challenge
 * (`endOf`, also what a kept ending is checked against at the start). Owned by the actor, built
 * in its constructor on its {@link ValidatorCore}; read and written only inside its `receive`
 * (and its start). Not part of the public API.
 *
 * @module
 */
import { PROOF_DEADLINE_MS } from "../proof/challenge_timing.ts";
import type { ActorContext } from "./actor.ts";
import type { Job } from "../protocols/job.ts";
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { SteeringRecord } from "../proof/steering.ts";
import type { ValidationResult } from "../proof/validation.ts";
import { LedgerRejectedError } from "../proof/ledger.ts";
import type { ClaimEvidence, NetworkMessage } from "../network/network_actor.ts";
import { PROOF_SERVED } from "./withheld_check.ts";
import { proofOf } from "./_proof_fetch.ts";
import { isTakeover, runChallenge } from "./_run_challenge.ts";
import { settleSteering } from "./_steering_settlement.ts";
import type { ChallengeEndStep } from "./_challenge_endings.ts";
import type { FraudProofs } from "./_fraud_proofs.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import type { ChallengedMessage, ValidatorMessage } from "./validator_messages.ts";

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
export function endOf(verdict: Verdict): ChallengeEndStep {
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
export function claimEvidence(
  verdict: Verdict,
  receipt: Receipt | undefined,
  job: Job | undefined,
): ClaimEvidence | undefined {
  if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return undefined;
  if (receipt === undefined || job?.kind !== "text") return undefined;
  if (verdict.subjectId !== receiptId(receipt)) return undefined;
  return { receipt, job };
}

/** The validator's challenges: opened, run and ended (see the module doc). */
export class Challenges {
  readonly #core: ValidatorCore;
  readonly #fraudProofs: FraudProofs;
  /** End choices per worker over this validator's own verdicts (`proof/steering.ts`). */
  steering = new SteeringRecord();
  /** Resolvers of in-process `result` promises, by receipt id. */
  readonly #waiting = new Map<string, PromiseWithResolvers<ValidationResult>>();
  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   * @param fraudProofs Where a challenge's own fraud proof is checked and settled.
   */
  constructor(core: ValidatorCore, fraudProofs: FraudProofs) {
    this.#core = core;
    this.#fraudProofs = fraudProofs;
  }

  /**
   * Open a challenge on a recorded receipt: durably `challenged` in the ledger first (so not
   * even a crash lets it slip into payment), then the material is gathered and validated off
   * the mailbox. Resolves once its verdict is recorded and settled. `claim`: taken over on that
   * peer's "proof withheld" verdict, which is about availability (see `withheld_check.ts`); kept
   * on disk while the challenge is open, so that a stop ends it as a takeover
   * (`TAKEN_OVER_CLAIMS_DIR`).
   */
  async open(
    receipt: Receipt,
    job: Job,
    ctx: ActorContext<ValidatorMessage>,
    claim?: Verdict,
  ): Promise<{ result: Promise<ValidationResult> }> {
    const id = receiptId(receipt);
    const claimant = claim === undefined ? undefined : toHex(claim.validator);
    if (claim !== undefined) await this.#core.takenOver().save(id, { claim });
    try {
      await this.#core.ledger().openChallenge(id);
    } catch (error) {
      if (claim !== undefined) await this.#core.takenOver().remove(id);
      throw error;
    }
    // `challenged` in the ledger now: what its intake kept is done with. What its draw kept
    // stays until the challenge ends (`#end`): a stop before then re-opens it from that record at
    // the start (`_validator_restart.ts`, review s79 crash F3), as the job is kept nowhere else.
    await this.#core.pending().remove(id);
    this.#core.stats.challenged++;
    return this.#run(receipt, job, ctx, claimant);
  }

  /**
   * At the start: run again the challenge on `receipt`, drawn here and open in the ledger when
   * this validator stopped (`_validator_restart.ts`), with the same draw and a fresh proof
   * deadline. Nothing is written to the ledger: its one `challenge` entry stands, so a log that
   * holds a re-opened challenge replays as one that held it open, after any number of stops.
   * Counted as challenged when it was opened, not again. Resolves as {@link open} does.
   */
  reopen(
    receipt: Receipt,
    job: Job,
    ctx: ActorContext<ValidatorMessage>,
  ): { result: Promise<ValidationResult> } {
    return this.#run(receipt, job, ctx, undefined);
  }

  /**
   * Hold the challenge on `receipt`, open in the ledger, and run it off the mailbox; its end
   * comes back as a `challenged` (or `challenge_failed`) message.
   */
  #run(
    receipt: Receipt,
    job: Job,
    ctx: ActorContext<ValidatorMessage>,
    claimant: string | undefined,
  ): { result: Promise<ValidationResult> } {
    const id = receiptId(receipt);
    // Challenged here once: no peer's claim makes this validator ask the worker again (nor a
    // copy of the receipt that comes ahead of one, `_receipt_intake.ts`).
    this.#core.memory.challenged(id);
    const waiting = Promise.withResolvers<ValidationResult>();
    waiting.promise.catch(() => {});
    this.#waiting.set(id, waiting);
    this.#core.held.hold(id, toHex(receipt.worker), claimant);
    // The job's requester was connected to the worker: it can relay the proof request when
    // this node is not (a sparse network; a worker reached only through its router).
    const requester = this.#core.ledger().receipt(id)?.requester;
    const relay = requester === undefined ? undefined : fromHex(requester);
    this.#challenge(receipt, job, ctx.signal, relay, claimant !== undefined).then(
      (result) => ctx.self.tell({ type: "challenged", receipt, job, result }),
      (error) => ctx.self.tell({ type: "challenge_failed", receipt, reason: String(error) }),
    ).catch(() => {});
    return { result: waiting.promise };
  }

  /** A finished challenge: record, settle and spread its outcome. State changes only here. */
  async onChallenged(
    message: ChallengedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { receipt, result } = message;
    const id = receiptId(receipt);
    const ledger = this.#core.ledger();
    const { outcome, reason } = result.verdict;
    // Taken over on this peer's claim (hex); undefined when this validator drew the challenge.
    const claimant = this.#core.held.claimantOf(id);
    const served = outcome === "valid" || (outcome === "inconclusive" && reason === PROOF_SERVED);
    if (claimant !== undefined && served) {
      // The worker served valid proof data here: the claim was false here, held against it.
      this.#core.takeovers.foundFalse(
        claimant,
        this.#core.now() + ledger.economics.challengeWindowMs,
      );
    }
    // How the challenge ends in the ledger, unless by its own fraud proof (settled from it):
    // valid, or a claim found false — cleared; withheld or steering — a fault; else unresolved.
    const end = result.fraudProof ? undefined : endOf(result.verdict);
    try {
      await this.keepEnding(message);
      await ledger.recordVerdict(result.verdict);
      this.#core.stats.verdicts[outcome]++;
      const worker = toHex(receipt.worker);
      this.#core.tell({
        kind: "verdict",
        verdict: result.verdict,
        own: true,
        validationMs: result.stats.totalMs,
        fraudProof: result.fraudProof,
      });
      this.#core.tellNetwork(ctx, {
        type: "publish_verdict",
        verdict: result.verdict,
        evidence: claimEvidence(result.verdict, receipt, message.job),
      });
      let settled: Promise<unknown> | undefined;
      if (result.fraudProof) {
        // Kept (`keepEnding`): a stop from now on settles it from that proof, not by running it
        // again, so what its draw kept is done with.
        await this.#core.drawn().remove(id);
        // Checked and settled like anyone's, on the work queue: never inside this message. The
        // receipt stays `challenged` (unpaid) until then, and settles even after its window.
        const taken = this.#fraudProofs.onFraudProof(result.fraudProof, ctx, true);
        settled = taken.result;
        if (!taken.queued) {
          await this.#end(id, () => this.#fraudProofs.ownProofUndecided(id, "proof_skipped"));
          await this.#core.ownProofs().remove(id);
        }
        this.#core.tellNetwork(ctx, { type: "publish_fraud_proof", proof: result.fraudProof });
      } else if (end === "cleared") {
        // Valid; or, taken over without the model, the proof data the peer said was withheld
        // was served here and opens the commitment: the claim fails, the work stands. A takeover
        // undecided here (this validator's own error) proves nothing either: the work stands as
        // it would without the claim, and the claimant gains nothing. (A worker that delivers
        // nothing here by the deadline, by any route, withheld: a fault, below.)
        await this.#end(id, this.transitionOf(id, end, reason));
      } else if (end === "fault") {
        // Withheld past the deadline — no answer, "none", unsigned data, or no route to the
        // worker through the deadline — or the receipt that convicts its worker of steering: the
        // worker's failure, and no fraud proof can carry it. Not paid; the locked slash is burned.
        // The verdict is the claim other ledgers take over on: kept for the peers that connect
        // while the window is open, as a fault applied at the start is (`_catch_up.ts`). Gossip
        // alone reached only the peers connected now, and a ledger away meanwhile paid the worker
        // that withheld here (review s54). A "proof withheld" one with its receipt and job: sent
        // ahead of it (review s58).
        const until = ledger.receipt(id)?.pendingUntil;
        const kept = until === undefined ? undefined : {
          kind: "verdict" as const,
          verdict: result.verdict,
          evidence: claimEvidence(result.verdict, receipt, message.job),
        };
        // Written ahead of the settlement, sent only after it: written after it, a process that
        // died in between (or a write that failed) lost it for good — the next start finds the
        // receipt settled — and a ledger that met this validator only later paid the worker
        // slashed here (review s59, `tests/actors/catch_up_kept_test.ts`).
        if (kept !== undefined) await this.#core.catchUp().write(kept, until!);
        if (await this.#end(id, this.transitionOf(id, end, reason))) {
          this.#core.stats.slashes++;
          if (kept !== undefined) await this.#core.catchUp().add(kept, until!);
          this.#core.tellNetwork(ctx, { type: "peer_convicted", key: worker });
        } else if (kept !== undefined) {
          // Settled meanwhile otherwise (a checked fraud proof): not this fault's to send.
          this.#core.catchUp().discard(verdictId(result.verdict));
        }
        if (reason === "steering") await this.settleSteering(receipt.worker);
      } else {
        // Undecided here (no model, an error, anything else): not paid, nobody slashed.
        if (await this.#end(id, this.transitionOf(id, "unresolved", reason))) {
          this.#core.stats.unresolved++;
        }
      }
      this.#core.log(
        `validator: challenged job ${receipt.jobId.slice(0, 12)} → ${outcome}, worker ${
          toHex(receipt.worker).slice(0, 16)
        }` +
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

  /**
   * Keep how a finished challenge ends on disk, before the ledger is asked: a stop, or a ledger
   * write that fails or is refused (a read-only node on a full disk, `_validator_read_only.ts`),
   * between the two settles it at the next start with room (`_receipt_files.ts`,
   * `_challenge_endings.ts`). Its own fraud proof, else its ending.
   */
  async keepEnding(message: ChallengedMessage): Promise<void> {
    const { receipt, result } = message;
    const id = receiptId(receipt);
    if (result.fraudProof) return await this.#core.ownProofs().save(id, result.fraudProof);
    const end = endOf(result.verdict);
    // A "proof withheld" fault with its receipt and job: the start sends it after them, as
    // `onChallenged` does (review s58; a takeover's job is kept nowhere else once it opened).
    const evidence = claimEvidence(result.verdict, receipt, message.job);
    const ending = {
      end,
      reason: result.verdict.reason,
      verdict: result.verdict,
      ...(evidence && { evidence }),
    };
    await this.#core.endings().keep(id, ending).catch((error) =>
      // The ledger is asked all the same: only a failure of that too loses the ending.
      this.#core.log(`validator: ending of ${id.slice(0, 12)} not kept: ${error.message}`)
    );
  }

  /** `key` is convicted of steering here: settled once (see `_steering_settlement.ts`). */
  async settleSteering(key: Uint8Array): Promise<void> {
    const me = this.#core.options.identity.publicKey;
    await settleSteering(this.#core.ledger(), me, key, (line) => this.#core.log(line));
  }

  /**
   * End the challenge on `id` with one ledger transition, and release its hold. Once the ledger
   * answered, its kept ending is removed; a write that fails (a disk error: the ledger is
   * poisoned) leaves it kept, and crashes this actor: the restart applies it
   * (`_challenge_endings.ts`).
   */
  async #end(id: string, transition: () => Promise<void>): Promise<boolean> {
    const takeover = this.#core.held.claimantOf(id) !== undefined;
    let ended = true;
    try {
      await transition();
    } catch (error) {
      // Settled meanwhile by someone else's checked fraud proof: that outcome stands.
      if (!(error instanceof LedgerRejectedError && error.code === "wrong_status")) throw error;
      ended = false;
    } finally {
      this.#core.held.release(id);
    }
    await this.#core.endings().remove(id);
    // Ended in the ledger: not to be re-opened at a start (see `open`).
    await this.#core.drawn().remove(id);
    if (takeover) await this.#core.takenOver().remove(id);
    return ended;
  }

  /** The ledger transition `end` of the challenge on `id`, for `#end`. */
  transitionOf(id: string, end: ChallengeEndStep, reason: string): () => Promise<void> {
    const ledger = this.#core.ledger();
    if (end === "cleared") return () => ledger.clearChallenge(id);
    if (end === "fault") {
      return () => ledger.settleFault(id, this.#core.options.identity.publicKey, reason);
    }
    return () => ledger.leaveUnresolved(id, reason);
  }

  /** A challenge's work, off the mailbox (see `_run_challenge.ts`). */
  async #challenge(
    receipt: Receipt,
    job: Job,
    signal: AbortSignal,
    relay: Uint8Array | undefined,
    takeover: boolean,
  ): Promise<ValidationResult> {
    const { models, identity, validation, network } = this.#core.options;
    const source = this.#core.options.source ?? {};
    return await runChallenge(receipt, job, {
      models,
      identity,
      validation,
      source,
      steering: this.steering,
      enqueue: (task) => this.#core.enqueue(task),
      proof: () =>
        proofOf(receipt, {
          source,
          network: network === undefined
            ? undefined
            : () => this.#core.system()?.lookup<NetworkMessage>(network),
          deadlineMs: this.#core.options.proofDeadlineMs ?? PROOF_DEADLINE_MS,
          signal,
          relay,
        }),
      signal,
      takeover,
      now: () => this.#core.now(),
    });
  }
}
