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
 * and passed on to every ledger-keeping peer (`publish_stream_proof`), after the worker's pledge
 * and this node's, as a fraud proof is. A peer's stream proof is taken here as a peer's fraud
 * proof is (`_fraud_proofs.ts`), refused at once when it costs nothing to refuse: from the job's
 * requester only (the router whose client the worker cheated), about a worker with stake here,
 * from an accuser whose free stake here covers the false-accusation penalty of it and of the
 * accusations it has being checked or left undecided here, once per accuser, job and worker, and
 * within the bounds of `_stream_proof_bounds.ts`; then checked with this node's own replay and
 * settled (`_stream_settlement.ts`, who pays in each ending). A job that reads a stored input is
 * replayed on its bytes, carried by the claim or read here (`ValidatorActorOptions.readInput`).
 * Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import {
  type StreamClaim,
  StreamClaimSchema,
  verifyStreamClaim,
} from "../protocols/stream_commitment.ts";
import {
  fitsOneFrame,
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
import type { ValidatorCore } from "./_validator_core.ts";
import { StreamProofBounds } from "./_stream_proof_bounds.ts";
import { StreamPledgeHold } from "./_stream_pledge_hold.ts";
import { publishOwnConviction, settleStreamCheck, short } from "./_stream_settlement.ts";
import type {
  StreamCheckedMessage,
  StreamClaimHandled,
  StreamProofHandled,
  ValidatorMessage,
} from "./validator_messages.ts";

/**
 * This node's router's own claims taken and not settled at once, at most: each waits for a
 * forward pass in the work queue. They come one per lost worker of a job its own client ran, so
 * the bound is against a flood of them, not their normal number. Peers' proofs are bounded apart
 * (`_stream_proof_bounds.ts`): none takes their room.
 */
const MAX_OWN_CLAIMS_CHECKING = 1024;

/**
 * Claims and proofs kept across a stop (the held-evidence file), at most: this node's router's
 * first, then peers' proofs being checked, then those held for a pledge, the oldest first. Each is
 * about a frame (the job and its input, and the tokens), so the file stays within tens of MiB;
 * past the bound the rest are lost at the stop (peers' proofs being checked were passed on
 * already; those held for a pledge were not).
 */
export const MAX_KEPT_STREAM_CLAIMS = 64;

/**
 * Tries of a claim's check that throws (the model failed to load, an error of this node's): it
 * is tried again at the next finalize tick, as a peer's fraud proof is; past the last it is left
 * undecided here (a peer's proof remembered and passed on, as one this node lacks the model for).
 */
const MAX_CLAIM_CHECK_TRIES = 3;

/**
 * Longest a stream claim's stored input is read for (ms): a job's input is one chunk, read from
 * this node's store or a storage peer's; past it the claim is checked without it (undecided).
 */
const INPUT_READ_TIMEOUT_MS = 30_000;

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

/** A peer's stream proof as kept across a stop, with the peer it came from (not sent back there). */
export interface KeptStreamProof {
  proof: StreamProof;
  origin?: string;
}

/** The stream claims a validator checks and settles (see the module doc). */
export class StreamClaims {
  readonly #core: ValidatorCore;
  /** Claims taken and not settled yet, by hash (a claim's, or its peer's proof's). */
  readonly #taken = new Map<string, TakenClaim>();
  /** Those whose last check threw, waiting for the next finalize tick. */
  readonly #failed = new Set<string>();
  /** Peers' proofs being checked and left undecided here, and their bounds. */
  readonly #bounds: StreamProofBounds;
  /** Peers' proofs held for the worker's or the accuser's pledge. */
  readonly #pledgeHeld = new StreamPledgeHold();
  /** This node's router's claims taken. */
  #own = 0;

  constructor(core: ValidatorCore) {
    this.#core = core;
    this.#bounds = new StreamProofBounds((accuser, delta) =>
      core.memory.countAccusation(accuser, delta)
    );
  }

  /** Take `value` for a check, unless it is malformed, a duplicate or settled already. */
  onStreamClaim(value: unknown, ctx: ActorContext<ValidatorMessage>): StreamClaimHandled {
    const parsed = StreamClaimSchema.safeParse(value);
    if (!parsed.success || !fitsOneFrame(parsed.data)) {
      return { queued: false, skipped: "malformed" };
    }
    const claim = parsed.data;
    const hash = streamClaimHash(claim);
    if (this.#taken.has(hash)) return { queued: false, skipped: "duplicate" };
    // This node convicting itself would only move its own stake to itself, less the burn.
    if (bytesEqual(claim.worker, this.#core.options.identity.publicKey)) {
      return { queued: false, skipped: "self_accusation" };
    }
    if (this.#core.ledger().streamFraudSettled(jobId(claim.job), claim.worker)) {
      return { queued: false, skipped: "already_settled" };
    }
    if (this.#own >= MAX_OWN_CLAIMS_CHECKING) {
      this.#core.log(
        `validator: stream claim against ${short(claim.worker)} dropped: ` +
          `${MAX_OWN_CLAIMS_CHECKING} claims are waiting for their check`,
      );
      return { queued: false, skipped: "busy" };
    }
    this.#own++;
    return this.#take(hash, { claim }, ctx);
  }

  /**
   * Take a peer's stream proof for a check (see the module doc), unless it costs nothing to
   * refuse. `origin`: the peer it came from (not passed back there).
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
    // A job no network job could be (past one frame with its input): no router forwarded it.
    if (!parsed.success || !fitsOneFrame(parsed.data.claim)) return skip("malformed");
    const proof = parsed.data;
    const { claim, accuser } = proof;
    const hash = streamProofHash(proof);
    if (this.#taken.has(hash) || this.#pledgeHeld.holds(hash)) return skip("duplicate");
    // This node's own claims come in-process; one signed with its key and refuted here would
    // have no one to charge.
    if (bytesEqual(accuser, this.#core.options.identity.publicKey)) return skip("own_proof");
    // A worker accusing its own stream would only shape its own settlement.
    if (bytesEqual(accuser, claim.worker)) return skip("self_accusation");
    // Only the job's requester — the router whose client the worker cheated, named in the job
    // it signed its stream for — accuses: else the liar's own second key settles first, over the
    // shortest head holding the lie, and earns the share of its cut (a conviction settles once
    // per job and worker), or a relay re-signs the router's proof and takes its reward (review
    // s69).
    if (claim.job.requester !== toHex(accuser)) return skip("not_requester");
    const ledger = this.#core.ledger();
    const job = jobId(claim.job);
    if (ledger.streamFraudSettled(job, claim.worker)) return skip("already_settled");
    // One accusation per accuser, job and worker: settled here (confirmed or refuted), left
    // undecided here, or being checked — else one key re-signs its claim, at another position or
    // time, into any number of checks.
    const subject = streamFraudKey(job, toHex(claim.worker));
    const accuserHex = toHex(accuser);
    if (ledger.hasAccused(accuser, subject) || this.#bounds.accused(accuserHex, subject)) {
      return skip("repeated_accusation");
    }
    if (!verifyStreamProofSignature(proof)) return skip("bad_signature");
    // The worker's signature over its stream, whatever pledges are here: a peer that lacks the
    // worker's pledge checks it at its intake, answers `bad_signature` and charges whoever sent
    // it (`network/peer_services.ts`), so this node passes on only a proof whose every signature
    // it verified. Checked only while awaiting a pledge, a proof with a broken claim signature
    // was taken, refuted and passed on, and the peer cut this node off as its forger (review s80
    // vgfx F4). A position past the stream is the sender's mistake, checkable by anyone:
    // `malformed`, charged the same way.
    if (claim.at >= claim.tokenIds.length) return skip("malformed");
    if (!verifyStreamClaim(claim, job)) return skip("bad_signature");
    // The worker's pledge and the accuser's go ahead of the proof (`PledgeSync.sendAhead`), but
    // only while the connection's pledge budget allows: a proof that outran one is held for it
    // (bounded, `_stream_pledge_hold.ts`), and taken again when it is recorded (review s69:
    // refused, the liar kept its stake here).
    const awaiting = !ledger.hasStaked(claim.worker)
      ? claim.worker
      : !ledger.hasStaked(accuser)
      ? accuser
      : undefined;
    if (awaiting !== undefined) {
      // Only a proof worth its place (its signatures checked above), one per accuser and stream
      // (review s69, third round).
      const staked = ledger.hasStaked(accuser);
      const held = { proof, origin, staked };
      if (!this.#pledgeHeld.hold(hash, toHex(awaiting), accuserHex, subject, held)) {
        return skip("repeated_accusation");
      }
      this.#core.stats.streamProofs.skipped++;
      const skipped = awaiting === claim.worker ? "unstaked_worker" : "unstaked_accuser";
      return { queued: false, skipped, awaitingPledge: true };
    }
    // A worker with no stake left here loses nothing to a conviction: an accuser's own fresh
    // keys, signing wrong streams for it to accuse, would buy forward passes in every ledger for
    // free (review s69).
    if (!(ledger.account(claim.worker).stake > 0)) return skip("unstaked_worker");
    // Its free stake covers the penalty of this accusation and of those it has being checked or
    // left undecided here (fraud proofs counted with stream proofs): else one key staked at the
    // penalty buys any number of forward passes at once.
    const penalty = ledger.economics.falseAccusationPenalty;
    if (freeStake(ledger.account(accuser)) < penalty * (this.#core.memory.accusing(accuser) + 1)) {
      return skip("unstaked_accuser");
    }
    const room = this.#bounds.room(accuserHex);
    if (room === false) return skip("busy");
    if (room !== true) this.#giveWay(room);
    this.#bounds.take(hash, accuserHex, subject);
    return this.#take(hash, { claim, proof, origin }, ctx);
  }

  /** Queue a claim taken (a peer's proof of it, or none) for its check. */
  #take(
    hash: string,
    taken: Pick<TakenClaim, "claim" | "proof" | "origin">,
    ctx: ActorContext<ValidatorMessage>,
  ): StreamClaimHandled {
    const waiting = Promise.withResolvers<StreamCheckResult>();
    waiting.promise.catch(() => {});
    this.#taken.set(hash, { ...taken, waiting, tries: 0 });
    this.#checkLater(hash, ctx);
    return { queued: true, result: waiting.promise };
  }

  /** A peer's proof gives way to another accuser's (`StreamProofBounds.room`): dropped unchecked. */
  #giveWay(hash: string): void {
    const taken = this.#taken.get(hash);
    this.#forget(hash);
    this.#core.stats.streamProofs.skipped++;
    taken?.waiting.reject(new Error("stream proof dropped: its accuser holds the most checks"));
  }

  /** Forget taken claim `hash` (its check over, or dropped), releasing what bounds it. */
  #forget(hash: string, undecided = false): void {
    const taken = this.#taken.get(hash);
    if (taken === undefined) return;
    this.#taken.delete(hash);
    this.#failed.delete(hash);
    if (taken.proof === undefined) this.#own--;
    else this.#bounds.done(hash, undecided);
  }

  /**
   * The claims taken and not settled yet, kept across a stop (`_held_evidence.ts`): this node's
   * router's as claims first, then peers' as their stream proofs, at most
   * {@link MAX_KEPT_STREAM_CLAIMS}.
   */
  pending(): (StreamClaim | KeptStreamProof)[] {
    const taken = [...this.#taken.values()];
    const kept = ({ proof, origin }: KeptStreamProof) => origin ? { proof, origin } : { proof };
    return [
      ...taken.flatMap((t) => t.proof === undefined ? [t.claim] : []),
      ...taken.flatMap((t) => t.proof === undefined ? [] : [kept({ ...t, proof: t.proof })]),
      ...this.#pledgeHeld.all().map(kept),
    ].slice(0, MAX_KEPT_STREAM_CLAIMS);
  }

  /** `key` (hex) has stake here now: the peers' proofs held for its pledge are taken again. */
  takePledgeHeld(key: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { proof, origin } of this.#pledgeHeld.take(key)) {
      this.onStreamProof(proof, ctx, origin);
    }
  }

  /** The accusations left undecided here, kept across a stop (`StreamProofBounds.undecided`). */
  undecided(): { accuser: string; subject: string }[] {
    return this.#bounds.undecided();
  }

  /** Remember again the accusations left undecided before a stop. */
  restoreUndecided(kept: readonly unknown[]): void {
    this.#bounds.restoreUndecided(kept);
  }

  /**
   * Take again a claim or peer's proof kept across a stop ({@link pending}). An own claim whose
   * stream the ledger convicted before the stop (its settlement written, what followed it cut
   * off) is signed and passed on now, and kept for the peers that connect later.
   */
  async resume(kept: unknown, ctx: ActorContext<ValidatorMessage>): Promise<void> {
    // A bare proof: kept by a version that did not keep its origin.
    const { proof, origin } = StreamProofSchema.safeParse(kept).success
      ? { proof: kept, origin: undefined }
      : (kept ?? {}) as Partial<KeptStreamProof>;
    if (proof !== undefined) {
      const from = typeof origin === "string" ? origin : undefined;
      const handled = this.onStreamProof(proof, ctx, from);
      // Settled before the stop, what followed cut off (a write after it failed): the worker is
      // routed around all the same.
      if (handled.skipped === "already_settled") {
        this.#core.tellNetwork(ctx, {
          type: "peer_convicted",
          key: toHex(StreamProofSchema.parse(proof).claim.worker),
        });
      }
      return;
    }
    const handled = this.onStreamClaim(kept, ctx);
    if (handled.skipped !== "already_settled") return;
    await publishOwnConviction(this.#core, ctx, StreamClaimSchema.parse(kept));
  }

  /** At the finalize tick: the claims whose last check threw are checked again. */
  retryFailedChecks(ctx: ActorContext<ValidatorMessage>): void {
    for (const hash of [...this.#failed]) {
      this.#failed.delete(hash);
      if (this.#taken.has(hash)) this.#checkLater(hash, ctx);
    }
  }

  /** Queue the check of taken claim `hash`; its result comes back as `stream_checked`. */
  #checkLater(hash: string, ctx: ActorContext<ValidatorMessage>): void {
    const taken = this.#taken.get(hash)!;
    // One given way meanwhile (`#giveWay`) is not checked: its place in the queue costs nothing.
    // The stored input is read first, outside the serial work queue (a read that waits on peers
    // must not hold every other check up).
    this.#withInput(taken.claim).then((claim) =>
      this.#core.enqueue(() =>
        this.#taken.has(hash) ? this.#check(claim) : Promise.resolve(undefined)
      )
    ).then(
      (result) => {
        if (result === undefined) return;
        ctx.self.tell({ type: "stream_checked", claim: result.claim, check: result.check, hash });
      },
      (error) => {
        // Outside `receive`: the maps are this actor's, changed here as the fraud proofs' are.
        if (++taken.tries < MAX_CLAIM_CHECK_TRIES) {
          this.#failed.add(hash);
          this.#core.log(
            `validator: stream claim against ${short(taken.claim.worker)} not checked (try ` +
              `${taken.tries}): ${error}`,
          );
          return;
        }
        // Past the last try: undecided here, as a check without the model is.
        const check: StreamCheckResult = {
          confirmed: false,
          inconclusive: true,
          reason: "error",
          claimHash: streamClaimHash(taken.claim),
          forwardTokens: 0,
          ms: 0,
        };
        ctx.self.tell({ type: "stream_checked", claim: taken.claim, check, hash });
      },
    ).catch(() => {});
  }

  /**
   * `claim` with the bytes of the stored input its job reads, read here if it does not carry them
   * (`ValidatorActorOptions.readInput`, within {@link INPUT_READ_TIMEOUT_MS}); as it is when the
   * job reads none, or the read fails (checked without them: undecided). Never rejects.
   */
  async #withInput(claim: StreamClaim): Promise<StreamClaim> {
    const read = this.#core.options.readInput;
    const cid = claim.job.input;
    if (cid === undefined || claim.input !== undefined || read === undefined) return claim;
    const input = await read(cid, AbortSignal.timeout(INPUT_READ_TIMEOUT_MS)).catch(() =>
      undefined
    );
    return input === undefined ? claim : { ...claim, input };
  }

  /**
   * Replay the claim with the job's model (none held here: inconclusive): the claim checked, with
   * the input bytes it was checked on.
   */
  async #check(claim: StreamClaim): Promise<{ claim: StreamClaim; check: StreamCheckResult }> {
    const model = await this.#core.options.models.get(claim.job.model);
    // A one-shot (tensor) model under a text job's id streams nothing: no text model here.
    const text = model !== undefined && "tokenizer" in model ? model : undefined;
    return { claim, check: await checkStreamClaim(claim, text, this.#core.options.validation) };
  }

  /**
   * A checked claim, settled (`_stream_settlement.ts`). Its taken entry is forgotten only once
   * the settlement is written or refused: a ledger write that fails crashes the actor with the
   * claim still taken, kept across the restart in the held evidence and settled then (review s69:
   * it was forgotten first, and the liar kept its stake in every ledger).
   */
  async onStreamChecked(
    message: StreamCheckedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const hash = message.hash ?? message.check.claimHash;
    const taken = this.#taken.get(hash);
    if (taken === undefined) return; // given way, or settled by a copy
    const { check } = message;
    // This node's own claim goes on with the input bytes it was checked on.
    if (taken.proof === undefined) taken.claim = message.claim;
    await settleStreamCheck(this.#core, ctx, { ...taken, check, hash });
    this.#forget(hash, check.inconclusive);
    taken.waiting.resolve(check);
  }
}
