/**
 * The ValidatorActor's stream claims (`docs/PROOF.md`, "A lost worker's wrong tokens"): this node's
 * router lost a worker that had streamed tokens of a job, signed, and every worker that took the
 * job over refused them (`network/failover.ts`). The claim is checked off the mailbox, one forward
 * pass in the serial work queue (`proof/stream_check.ts`), and a confirmed one is settled in the
 * ledger: the worker's stake is cut, this validator rewarded (`Ledger.settleStreamFraud`), and the
 * network routes around the worker from then on. A refuted one convicts nobody and costs nobody
 * anything. The claim is the router's own: its validator earns a share of a conviction it
 * settles, but only of one its replay confirms, the worker's own signature being the evidence
 * (the refusers' word in it is not).
 *
 * A confirmed claim is then signed by this node as a stream proof (`protocols/stream_proof.ts`)
 * and passed on to every ledger-keeping peer (`publish_stream_proof`), after this node's pledge,
 * as a fraud proof is. A peer's stream proof is taken here as a peer's fraud proof is
 * (`_fraud_proofs.ts`): from an accuser whose free stake here covers the false-accusation penalty
 * of it and of the accusations it has being checked, once per accuser, job and worker; checked
 * with this node's own replay; settled: confirmed, the worker's stake cut and the accuser paid
 * its share; refuted, the accuser charged the penalty; undecided (no model here), nobody charged.
 * Whatever the outcome it is passed on to the other peers, each of which checks it itself. Not
 * part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import { type StreamClaim, StreamClaimSchema } from "../protocols/stream_commitment.ts";
import {
  signStreamProof,
  type StreamProof,
  streamProofHash,
  StreamProofSchema,
  verifyStreamProofSignature,
} from "../protocols/stream_proof.ts";
import { freeStake } from "../proof/ledger.ts";
import { streamFraudKey } from "../proof/ledger_index.ts";
import {
  checkStreamClaim,
  type StreamCheckResult,
  streamClaimHash,
} from "../proof/stream_check.ts";
import { LedgerRejectedError } from "../proof/ledger_errors.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { idOf } from "./_catch_up_items.ts";
import type {
  StreamCheckedMessage,
  StreamClaimHandled,
  StreamProofHandled,
  ValidatorMessage,
} from "./validator_messages.ts";

/**
 * Claims taken and not settled at once, at most: each waits for a forward pass in the work
 * queue. This node's router's come one per lost worker of a job its own client ran; a peer's
 * proofs are bounded per accuser by its stake here. The bound is against a flood of them, not
 * their normal number.
 */
const MAX_CLAIMS_CHECKING = 1024;

/**
 * Tries of a claim's check that throws (the model failed to load, an error of this node's): it
 * is tried again at the next finalize tick, as a peer's fraud proof is, and past the last the
 * claim is dropped, said in the log.
 */
const MAX_CLAIM_CHECK_TRIES = 3;

/** Hex characters of a key or job in log lines. */
const LOG_CHARS = 12;

/**
 * A claim taken: a peer's proof of it with the peer it came from (none for this node's router's
 * own claim), who waits for its check, and how many of its checks threw.
 */
interface TakenClaim {
  claim: StreamClaim;
  proof?: StreamProof;
  origin?: string;
  waiting: PromiseWithResolvers<StreamCheckResult>;
  tries: number;
}

/** The stream claims a validator checks and settles (see the module doc). */
export class StreamClaims {
  readonly #core: ValidatorCore;
  /** Claims taken and not settled yet, by hash. */
  readonly #taken = new Map<string, TakenClaim>();
  /** Those whose last check threw, waiting for the next finalize tick. */
  readonly #failed = new Set<string>();

  constructor(core: ValidatorCore) {
    this.#core = core;
  }

  /** Take `value` for a check, unless it is malformed, a duplicate or settled already. */
  onStreamClaim(value: unknown, ctx: ActorContext<ValidatorMessage>): StreamClaimHandled {
    const parsed = StreamClaimSchema.safeParse(value);
    if (!parsed.success) return { queued: false, skipped: "malformed" };
    const claim = parsed.data;
    const hash = streamClaimHash(claim);
    if (this.#taken.has(hash)) return { queued: false, skipped: "duplicate" };
    // This node convicting itself would only move its own stake to itself, less the burn.
    if (bytesEqual(claim.worker, this.#core.options.identity.publicKey)) {
      return { queued: false, skipped: "self_accusation" };
    }
    return this.#take(hash, { claim }, ctx);
  }

  /**
   * Take a peer's stream proof for a check (see the module doc), unless it costs nothing to
   * refuse: malformed, badly signed, a duplicate, settled already, its accuser's accusation of the
   * stream taken before, or its accuser short of stake here. `origin`: the peer it came from (not
   * passed back there).
   */
  onStreamProof(
    value: unknown,
    ctx: ActorContext<ValidatorMessage>,
    origin?: string,
  ): StreamProofHandled {
    const skip = (skipped: NonNullable<StreamProofHandled["skipped"]>): StreamProofHandled => {
      this.#core.stats.streamProofs.skipped++;
      return { queued: false, skipped };
    };
    const parsed = StreamProofSchema.safeParse(value);
    if (!parsed.success) return skip("malformed");
    const proof = parsed.data;
    const { claim, accuser } = proof;
    const hash = streamProofHash(proof);
    if (this.#taken.has(hash)) return skip("duplicate");
    // A worker accusing its own stream would only shape its own settlement.
    if (bytesEqual(accuser, claim.worker)) return skip("self_accusation");
    const ledger = this.#core.ledger();
    const job = jobId(claim.job);
    if (ledger.streamFraudSettled(job, claim.worker)) return skip("already_settled");
    // One accusation per accuser, job and worker: settled here (confirmed or refuted), left
    // undecided here, or being checked — else one key re-signs its claim, at another position or
    // time, into any number of checks.
    const subject = streamFraudKey(job, toHex(claim.worker));
    const repeated = ledger.hasAccused(accuser, subject) ||
      this.#core.memory.undecided(accuser, subject) ||
      [...this.#taken.values()].some((t) =>
        t.proof !== undefined && bytesEqual(t.proof.accuser, accuser) &&
        streamFraudKey(jobId(t.claim.job), toHex(t.claim.worker)) === subject
      );
    if (repeated) return skip("repeated_accusation");
    if (!verifyStreamProofSignature(proof)) return skip("bad_signature");
    // Its free stake covers the penalty of this accusation and of those it has being checked
    // here (fraud proofs counted with stream proofs): else one key staked at the penalty buys any
    // number of forward passes at once. Its pledge goes ahead of its proof (`PledgeSync`).
    const penalty = ledger.economics.falseAccusationPenalty;
    if (freeStake(ledger.account(accuser)) < penalty * (this.#core.memory.accusing(accuser) + 1)) {
      return skip("unstaked_accuser");
    }
    const handled = this.#take(hash, { claim, proof, origin }, ctx);
    if (!handled.queued) this.#core.stats.streamProofs.skipped++;
    else this.#core.memory.countAccusation(accuser, 1);
    return handled;
  }

  /** Take a claim (a peer's proof of it, or none) for its check, unless settled or busy. */
  #take(
    hash: string,
    taken: Pick<TakenClaim, "claim" | "proof" | "origin">,
    ctx: ActorContext<ValidatorMessage>,
  ): StreamClaimHandled {
    const { claim } = taken;
    if (this.#core.ledger().streamFraudSettled(jobId(claim.job), claim.worker)) {
      return { queued: false, skipped: "already_settled" };
    }
    if (this.#taken.size >= MAX_CLAIMS_CHECKING) {
      this.#core.log(
        `validator: stream claim against ${toHex(claim.worker).slice(0, LOG_CHARS)} dropped: ` +
          `${MAX_CLAIMS_CHECKING} claims are waiting for their check`,
      );
      return { queued: false, skipped: "busy" };
    }
    const waiting = Promise.withResolvers<StreamCheckResult>();
    waiting.promise.catch(() => {});
    this.#taken.set(hash, { ...taken, waiting, tries: 0 });
    this.#checkLater(hash, ctx);
    return { queued: true, result: waiting.promise };
  }

  /**
   * The claims taken and not settled yet, kept across a stop (`_held_evidence.ts`): this node's
   * router's as claims, peers' as their stream proofs.
   */
  pending(): (StreamClaim | StreamProof)[] {
    return [...this.#taken.values()].map((taken) => taken.proof ?? taken.claim);
  }

  /** Take again a claim or peer's proof kept across a stop ({@link pending}). */
  resume(kept: unknown, ctx: ActorContext<ValidatorMessage>): void {
    if (StreamProofSchema.safeParse(kept).success) this.onStreamProof(kept, ctx);
    else this.onStreamClaim(kept, ctx);
  }

  /** At the finalize tick: the claims whose last check threw are checked again. */
  retryFailedChecks(ctx: ActorContext<ValidatorMessage>): void {
    for (const hash of [...this.#failed]) {
      this.#failed.delete(hash);
      this.#checkLater(hash, ctx);
    }
  }

  /** Queue the check of taken claim `hash`; its result comes back as `stream_checked`. */
  #checkLater(hash: string, ctx: ActorContext<ValidatorMessage>): void {
    const taken = this.#taken.get(hash)!;
    this.#core.enqueue(() => this.#check(taken.claim)).then(
      (check) => ctx.self.tell({ type: "stream_checked", claim: taken.claim, check, hash }),
      (error) => {
        // Outside `receive`: the maps are this actor's, changed here as the fraud proofs' are.
        const who = toHex(taken.claim.worker).slice(0, LOG_CHARS);
        if (++taken.tries < MAX_CLAIM_CHECK_TRIES) {
          this.#failed.add(hash);
          this.#core.log(
            `validator: stream claim against ${who} not checked (try ${taken.tries}): ${error}`,
          );
          return;
        }
        this.#taken.delete(hash);
        if (taken.proof !== undefined) this.#core.memory.countAccusation(taken.proof.accuser, -1);
        this.#core.log(
          `validator: stream claim against ${who} dropped after ${taken.tries} failed checks: ` +
            `${error}`,
        );
        taken.waiting.reject(error);
      },
    ).catch(() => {});
  }

  /** Replay the claimed position with the job's model (none held here: inconclusive). */
  async #check(claim: StreamClaim): Promise<StreamCheckResult> {
    const model = await this.#core.options.models.get(claim.job.model);
    // A one-shot (tensor) model under a text job's id streams nothing: no text model here.
    const text = model !== undefined && "tokenizer" in model ? model : undefined;
    return await checkStreamClaim(claim, text, this.#core.options.validation);
  }

  /**
   * A checked claim: settled in the ledger (a confirmed one; a peer's refuted one, charged to its
   * accuser), a peer's proof passed on whatever the outcome, this node's own confirmed claim
   * signed and passed on, and the network told to route around a convicted worker. State
   * changes only here.
   */
  async onStreamChecked(
    message: StreamCheckedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { claim, check } = message;
    const hash = message.hash ?? check.claimHash;
    const taken = this.#taken.get(hash);
    this.#taken.delete(hash);
    const proof = taken?.proof;
    if (proof !== undefined) this.#core.memory.countAccusation(proof.accuser, -1);
    const worker = toHex(claim.worker).slice(0, LOG_CHARS);
    const job = jobId(claim.job);
    const outcome = check.confirmed ? "confirmed" : check.inconclusive ? "undecided" : "refuted";
    const { stats } = this.#core;
    stats[proof === undefined ? "streamClaims" : "streamProofs"][outcome]++;
    // A peer's proof goes on to the other peers, whatever the outcome here (each checks it
    // itself and takes it once), so the whole network settles the same evidence — also one this
    // node could not decide: the ledgers behind it may hold the model.
    if (proof !== undefined) {
      this.#core.tellNetwork(ctx, { type: "publish_stream_proof", proof, except: taken?.origin });
    }
    const whose = proof === undefined ? "stream claim" : `stream proof by ${short(proof.accuser)}`;
    const about = `against ${worker} (job ${job.slice(0, LOG_CHARS)}, token ${claim.at})`;
    if (check.inconclusive) {
      if (proof !== undefined) {
        this.#core.memory.rememberUndecided(
          proof.accuser,
          streamFraudKey(job, toHex(claim.worker)),
        );
      }
      this.#core.log(`validator: ${whose} ${about} undecided: ${check.reason}`);
      taken?.waiting.resolve(check);
      return;
    }
    if (!check.confirmed && proof === undefined) {
      // This node's own claim: nobody accused anyone, nothing to charge.
      this.#core.log(`validator: ${whose} ${about} refuted: ${check.reason}`);
      taken?.waiting.resolve(check);
      return;
    }
    // A conviction is kept for the peers that connect later (`_catch_up.ts`), for one challenge
    // window: written ahead of its settlement (a process that dies right after it still has it),
    // kept once settled, its file removed if the ledger refuses it. This node's own claim goes as
    // the stream proof it signs.
    const ledger = this.#core.ledger();
    const kept = check.confirmed
      ? {
        kind: "stream_proof" as const,
        proof: proof ?? signStreamProof(claim, this.#core.options.identity, this.#core.now()),
      }
      : undefined;
    const until = this.#core.now() + ledger.economics.challengeWindowMs;
    if (kept !== undefined) await this.#core.catchUp().write(kept, until);
    try {
      const amount = await ledger.settleStreamFraud({
        jobId: job,
        worker: claim.worker,
        model: claim.job.model,
        tokens: claim.tokenIds.length,
        claimHash: proof === undefined ? check.claimHash : hash,
        ...(proof === undefined ? {} : { accuser: proof.accuser }),
        confirmed: check.confirmed,
        reason: check.reason,
      });
      if (kept === undefined) {
        this.#core.log(`validator: ${whose} ${about} refuted (${check.reason}): ${amount} charged`);
      } else {
        this.#core.log(
          `validator: worker ${worker} convicted of streaming token ${claim.at} of job ` +
            `${job.slice(0, LOG_CHARS)} against the job's sampling rule` +
            `${proof === undefined ? "" : ` (${whose})`}: ${amount} slashed`,
        );
        stats.slashes++;
        await this.#core.catchUp().add(kept, until);
        this.#core.tellNetwork(ctx, { type: "peer_convicted", key: toHex(claim.worker) });
        // This node's own conviction: signed and passed on, for every ledger to replay.
        if (proof === undefined) {
          this.#core.tellNetwork(ctx, { type: "publish_stream_proof", proof: kept.proof });
        }
      }
    } catch (error) {
      // Settled already (a second claim for the job, another accuser's proof first), or this
      // accuser's accusation of it settled before: nothing more to do.
      if (!(error instanceof LedgerRejectedError)) throw error;
      if (kept !== undefined) this.#core.catchUp().discard(idOf(kept));
      this.#core.log(`validator: ${whose} ${about} not settled: ${error.code}`);
    }
    taken?.waiting.resolve(check);
  }
}

/** The first hex characters of `key`, for log lines. */
function short(key: Uint8Array): string {
  return toHex(key).slice(0, LOG_CHARS);
}
