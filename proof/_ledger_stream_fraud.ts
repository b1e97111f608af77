/**
 * Settling a stream conviction: this ledger's owner checked a stream claim
 * (`protocols/stream_commitment.ts`, `proof/stream_check.ts`) and found that a worker signed tokens
 * of a job that the job's sampling rule could not give, then dropped (`docs/PROOF.md`, "A lost
 * worker's wrong tokens"). The claim is the owner's own (its router lost the worker) or a peer's
 * stream proof (`protocols/stream_proof.ts`), whose accuser signed it. A partial stream has no
 * receipt, so no stake was locked for it: like a steering conviction (`_ledger_steering.ts`), the
 * cut comes from the worker's whole stake, and the accuser earns `validatorRewardShare` of it (the
 * rest burned). A peer's proof the owner's replay refutes costs its accuser the false-accusation
 * penalty, as a refuted fraud proof does. {@link streamFraudEntry} decides, in the writer's turn,
 * the `stream_fraud` or `false_accusation` entry; the index remembers a conviction under
 * `streamFraudKey` (`ledger_index.ts`), once per job and worker, and an accusation under the same
 * key, once per accuser. `Ledger.settleStreamFraud` and `Ledger.streamFraudSettled` (`ledger.ts`)
 * use them. Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import { LedgerRejectedError } from "./ledger_errors.ts";
import { streamFraudKey } from "./ledger_index.ts";
import { roundCredits } from "./ledger_state.ts";
import { freeStake, type LedgerView, lockOf, rewardOf } from "./_ledger_amounts.ts";

/** What a caller proves when settling a stream conviction (`Ledger.settleStreamFraud`). */
export interface StreamFraudSettlement {
  /** Hex id of the job the worker streamed (the claim's job's hash). */
  jobId: string;
  /** The convicted worker's public key (the stream's signer). */
  worker: Uint8Array;
  /** CID of the job's model (`claim.job.model`): its price per token prices the cut. */
  model: string;
  /** Tokens the worker's signed head covers (the claim's `tokenIds.length`). */
  tokens: number;
  /**
   * The job's prompt tokens as the model's tokenizer counts them (input text included): the
   * checker's own count from its replay (`StreamCheckResult.promptTokens`). Every ledger that
   * settles a conviction replayed the claim with the model and the input (without them it is
   * undecided and settles nothing), so each counts the same. Absent: the output alone is priced.
   */
  promptTokens?: number;
  /**
   * Hex hash of what this ledger's owner checked, kept for the record: its own claim's
   * (`streamClaimHash`), or a peer's stream proof's (`streamProofHash`).
   */
  claimHash: string;
  /**
   * Who accused: the key rewarded for a conviction and charged for a refutation (a peer's stream
   * proof's accuser). Default this ledger's owner (a claim of its own router's).
   */
  accuser?: Uint8Array;
  /**
   * Whether the owner's replay confirmed the claim (default true). A refuted one is settled only
   * for a peer's accuser: it is charged the false-accusation penalty (a `false_accusation` entry).
   */
  confirmed?: boolean;
  /** Why the replay refuted it (`StreamCheckResult.reason`), kept with a refutation. */
  reason?: string;
}

/**
 * The body of `settlement`'s entry, decided in the writer's turn: a `stream_fraud` entry for a
 * confirmed claim, a `false_accusation` entry for a refuted one ({@link streamEntryKind}).
 *
 * @throws {RangeError} for a settlement that names no job, key, claim or token count (a caller's
 *   bug: the checked claim gives each), or a refutation of the owner's own claim (its router's
 *   claims are not accusations: a refuted one is passed on to nobody and costs nothing).
 * @throws {LedgerRejectedError} `self_accusation` (a worker accusing its own stream would only
 *   move its stake to itself, less the burn), `already_settled` (this job and worker are settled
 *   here), `repeated_accusation` (this accuser accused this job and worker here before: one
 *   accusation each, as for a receipt, or a refuted accuser re-rolls the position). A receipt of
 *   the worker's for the job does not stop it (stop 68's review: a liar that announced one, with
 *   an honest output, before the claim's check shielded its stream): the receipt is judged on
 *   its own and earns nothing, recorded before the conviction (`uncredited`) or after
 *   (`_ledger_receipts.ts`).
 */
export function streamFraudEntry(
  view: LedgerView,
  settlement: StreamFraudSettlement,
): Record<string, unknown> {
  checkShape(settlement);
  const { jobId, model, tokens, claimHash } = settlement;
  const worker = toHex(settlement.worker);
  const accuser = settlement.accuser === undefined ? view.owner : toHex(settlement.accuser);
  const subject = streamFraudKey(jobId, worker);
  if (worker === accuser) {
    throw new LedgerRejectedError("self_accusation", "a worker accusing its own stream");
  }
  if (view.index.proofSettled(subject)) {
    throw new LedgerRejectedError("already_settled", "this worker's stream of the job is settled");
  }
  if (view.index.hasAccused(accuser, subject)) {
    throw new LedgerRejectedError(
      "repeated_accusation",
      "this accuser has already accused this worker's stream of the job",
    );
  }
  if (settlement.confirmed === false) {
    if (accuser === view.owner) {
      throw new RangeError("a refuted claim of the owner's own settles nothing");
    }
    // What the accuser has free, at most, as for a refuted fraud proof (`fraudDecision`).
    return {
      receiptId: subject,
      fraudProof: claimHash,
      validator: accuser,
      penalty: roundCredits(Math.min(
        view.economics.falseAccusationPenalty,
        freeStake(view.state.account(accuser)),
      )),
      reason: settlement.reason ?? "refuted",
      stream: { jobId, worker },
    };
  }
  // What a receipt for these tokens would have earned (`rewardOf`: output tokens × the model's
  // price, plus the prompt tokens × its prompt price) and locked (`lockOf`), the liability its
  // worker dropped. The prompt is counted by the replay that convicted: a stream claim signs no
  // count, and every ledger that settles one replayed it with the model's tokenizer and the
  // input, so each cuts the same (review s78 vprompt F5: the output alone was priced, 40 against
  // a receipt's 540 for a 200-token prompt). The stream alone earns nothing; a receipt the
  // worker signed for the job is judged on its own, and its slash covers the count it signs.
  const { promptTokens } = settlement;
  const owed = lockOf(
    view,
    rewardOf(view, { model, kind: "text", tokenCount: tokens, promptTokens }),
  );
  // From the whole stake, the part other open receipts lock included: no lock backs a stream,
  // and a worker keeping its stake at its locks must not stream wrong tokens for free (as a
  // steerer). A slash of those receipts later takes what is left (`slashable`). A key convicted
  // of pledge equivocation keeps only its locks, already forfeited as each is released or
  // slashed: a cut would be undone by its hold (`ledger_state.ts`), and its share minted.
  const stake = view.state.pledgeEquivocated(worker) === undefined
    ? Math.max(0, view.state.account(worker).stake)
    : 0;
  const slashed = Math.min(stake, owed);
  // Its receipt for the job, recorded here and open, is not paid, assigned or not, now or when
  // its assignment comes (a worker whose connection dropped after a last token it made up got
  // its assignment, and the router asks for its receipt later). The receipt is judged on its
  // own all the same: its fraud proof, if any, slashes it for the claim it signed.
  const recordedId = view.index.jobReceipt(jobId);
  const recorded = recordedId === undefined ? undefined : view.record(recordedId);
  const open = recorded?.worker === worker &&
    (recorded.status === "pending" || recorded.status === "challenged");
  return {
    jobId,
    worker,
    validator: accuser,
    model,
    claim: claimHash,
    tokens,
    slashed,
    reward: roundCredits(slashed * view.economics.validatorRewardShare),
    ...(open ? { uncredited: [recorded.receiptId] } : {}),
  };
}

/** The entry kind `settlement` writes: `stream_fraud`, or `false_accusation` for a refutation. */
export function streamEntryKind(
  settlement: StreamFraudSettlement,
): "stream_fraud" | "false_accusation" {
  return settlement.confirmed === false ? "false_accusation" : "stream_fraud";
}

/** A hex SHA-256: what names a job and a claim. */
const HASH_HEX = /^[0-9a-f]{64}$/;

/** Refuse a settlement that could not come from a checked claim. */
function checkShape(s: StreamFraudSettlement): void {
  if (!HASH_HEX.test(s.jobId) || !HASH_HEX.test(s.claimHash)) {
    throw new RangeError("jobId and claimHash must be hex SHA-256");
  }
  if (!(s.worker instanceof Uint8Array) || s.worker.length !== 32) {
    throw new RangeError("worker must be a 32-byte public key");
  }
  if (!Number.isSafeInteger(s.tokens) || s.tokens < 1) {
    throw new RangeError("tokens must be a positive integer");
  }
  if (typeof s.model !== "string" || s.model.length === 0) {
    throw new RangeError("model must name the job's model");
  }
  if (
    s.promptTokens !== undefined && (!Number.isSafeInteger(s.promptTokens) || s.promptTokens < 0)
  ) {
    throw new RangeError("promptTokens must be a non-negative integer");
  }
}
