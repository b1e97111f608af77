/**
 * The ValidatorActor's stream claims (`docs/PROOF.md`, "A lost worker's wrong tokens"): this node's
 * router lost a worker that had streamed tokens of a job, signed, and every worker that took the
 * job over refused them (`network/failover.ts`). The claim is checked off the mailbox, one forward
 * pass in the serial work queue (`proof/stream_check.ts`), and a confirmed one is settled in the
 * ledger: the worker's stake is cut, this validator rewarded (`Ledger.settleStreamFraud`), and the
 * network routes around the worker from then on. A refuted one convicts nobody and costs nobody
 * anything. The claim is the router's own: its validator earns a share of a conviction it
 * settles, but only of one its replay confirms, the worker's own signature being the evidence
 * (the refusers' word in it is not). Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import { type StreamClaim, StreamClaimSchema } from "../protocols/stream_commitment.ts";
import {
  checkStreamClaim,
  type StreamCheckResult,
  streamClaimHash,
} from "../proof/stream_check.ts";
import { LedgerRejectedError } from "../proof/ledger_errors.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import type {
  StreamCheckedMessage,
  StreamClaimHandled,
  ValidatorMessage,
} from "./validator_messages.ts";

/**
 * Claims taken and not settled at once, at most: each waits for a forward pass in the work
 * queue. They come only from this node's router, one per lost worker of a job its own client
 * ran, so the bound is against a flood of them, not their normal number.
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

/** A claim taken: who waits for its check, and how many of its checks threw. */
interface TakenClaim {
  claim: StreamClaim;
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
    const ledger = this.#core.ledger();
    // This node convicting itself would only move its own stake to itself, less the burn.
    if (bytesEqual(claim.worker, this.#core.options.identity.publicKey)) {
      return { queued: false, skipped: "self_accusation" };
    }
    if (ledger.streamFraudSettled(jobId(claim.job), claim.worker)) {
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
    this.#taken.set(hash, { claim, waiting, tries: 0 });
    this.#checkLater(hash, ctx);
    return { queued: true, result: waiting.promise };
  }

  /** The claims taken and not settled yet, kept across a stop (`_held_evidence.ts`). */
  pending(): StreamClaim[] {
    return [...this.#taken.values()].map((taken) => taken.claim);
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
      (check) => ctx.self.tell({ type: "stream_checked", claim: taken.claim, check }),
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
   * A checked claim: a confirmed one is settled in the ledger, and the network told to route
   * around the worker, as for a slashed receipt. State changes only here.
   */
  async onStreamChecked(
    message: StreamCheckedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { claim, check } = message;
    const waiting = this.#taken.get(check.claimHash)?.waiting;
    this.#taken.delete(check.claimHash);
    const worker = toHex(claim.worker).slice(0, LOG_CHARS);
    const job = jobId(claim.job);
    const { stats } = this.#core;
    if (!check.confirmed) {
      stats.streamClaims[check.inconclusive ? "undecided" : "refuted"]++;
      this.#core.log(
        `validator: stream claim against ${worker} (job ${job.slice(0, LOG_CHARS)}, token ` +
          `${claim.at}) ${check.inconclusive ? "undecided" : "refuted"}: ${check.reason}`,
      );
      waiting?.resolve(check);
      return;
    }
    try {
      const slashed = await this.#core.ledger().settleStreamFraud({
        jobId: job,
        worker: claim.worker,
        model: claim.job.model,
        tokens: claim.tokenIds.length,
        claimHash: check.claimHash,
      });
      this.#core.log(
        `validator: worker ${worker} convicted of streaming token ${claim.at} of job ` +
          `${job.slice(0, LOG_CHARS)} against the job's sampling rule: ${slashed} slashed`,
      );
      stats.streamClaims.confirmed++;
      stats.slashes++;
      this.#core.tellNetwork(ctx, { type: "peer_convicted", key: toHex(claim.worker) });
    } catch (error) {
      // Settled already (a second claim for the job), or a receipt of the worker's for the job
      // is recorded here (its own fraud proof settles it): nothing more to do.
      if (!(error instanceof LedgerRejectedError)) throw error;
      this.#core.log(`validator: stream claim against ${worker} not settled: ${error.code}`);
    }
    waiting?.resolve(check);
  }
}
