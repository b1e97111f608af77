/**
 * The ValidatorActor's stream claims (`docs/PROOF.md`, "A lost worker's wrong tokens"): this node's
 * router lost a worker that had streamed tokens of a job, signed, and every worker that took the
 * job over refused them (`network/failover.ts`). The claim is checked off the mailbox, one forward
 * pass in the serial work queue (`proof/stream_check.ts`), and a confirmed one is settled in the
 * ledger: the worker's stake is cut, this validator rewarded (`Ledger.settleStreamFraud`), and the
 * network routes around the worker from then on. A refuted one convicts nobody and costs nobody
 * anything: the claim is the router's own, which gains nothing by it, and the refusers' word in it
 * is not evidence. Not part of the public API.
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

/** Claims being checked at once, at most: each waits for a forward pass in the work queue. */
const MAX_CLAIMS_CHECKING = 64;

/** Hex characters of a key or job in log lines. */
const LOG_CHARS = 12;

/** The stream claims a validator checks and settles (see the module doc). */
export class StreamClaims {
  readonly #core: ValidatorCore;
  /** Claims taken and not settled yet, by hash, with who waits for each. */
  readonly #checking = new Map<string, PromiseWithResolvers<StreamCheckResult>>();

  constructor(core: ValidatorCore) {
    this.#core = core;
  }

  /** Take `value` for a check, unless it is malformed, a duplicate or settled already. */
  onStreamClaim(value: unknown, ctx: ActorContext<ValidatorMessage>): StreamClaimHandled {
    const parsed = StreamClaimSchema.safeParse(value);
    if (!parsed.success) return { queued: false, skipped: "malformed" };
    const claim = parsed.data;
    const hash = streamClaimHash(claim);
    if (this.#checking.has(hash)) return { queued: false, skipped: "duplicate" };
    if (this.#checking.size >= MAX_CLAIMS_CHECKING) return { queued: false, skipped: "busy" };
    const ledger = this.#core.ledger();
    // This node convicting itself would only move its own stake to itself, less the burn.
    if (bytesEqual(claim.worker, this.#core.options.identity.publicKey)) {
      return { queued: false, skipped: "self_accusation" };
    }
    if (ledger.streamFraudSettled(jobId(claim.job), claim.worker)) {
      return { queued: false, skipped: "already_settled" };
    }
    const waiting = Promise.withResolvers<StreamCheckResult>();
    waiting.promise.catch(() => {});
    this.#checking.set(hash, waiting);
    this.#core.enqueue(() => this.#check(claim)).then(
      (check) => ctx.self.tell({ type: "stream_checked", claim, check }),
      (error) => {
        this.#checking.delete(hash);
        this.#core.log(`validator: stream claim ${hash.slice(0, LOG_CHARS)} not checked: ${error}`);
        waiting.reject(error);
      },
    ).catch(() => {});
    return { queued: true, result: waiting.promise };
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
    const waiting = this.#checking.get(check.claimHash);
    this.#checking.delete(check.claimHash);
    const worker = toHex(claim.worker).slice(0, LOG_CHARS);
    const job = jobId(claim.job);
    if (!check.confirmed) {
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
