/**
 * The checker of a stream claim (`protocols/stream_commitment.ts`, `docs/PROOF.md`, "A lost
 * worker's wrong tokens"): did a worker that streamed tokens and dropped sign a token the job's
 * sampling rule could not give? The validator calls it (`actors/_stream_claims.ts`) on a claim its
 * router hands it when every worker taking a job over refused the tokens delivered so far; any node
 * holding the model decides it the same way.
 *
 * The claim's sender — the requester, relaying what the takeover workers refused — is not the
 * evidence: its word counts for nothing (a refuser may be the liar). What convicts is the worker's
 * own signature over the tokens and a replay: one teacher-forced pass over the job's prompt and
 * the signed tokens, and the job's seeded sampling rule applied at every signed position (the
 * claim's position only says where the refusers' exact replay stopped: an honest takeover that
 * rounded a near-tie the other way, or a colluder, may name an earlier, honest one) with the
 * near-tie tolerance of the `sampling` fraud proof (`fraud_check.ts`), since a takeover's refusal
 * is exact and a conviction must not be: an honest machine may round a near-tie the other way. A
 * token streamed after the job had ended (an end token or a completed stop string earlier,
 * `maxTokens` reached, the context window full) is convicted by the job's stopping rule instead,
 * whatever the sampling rule says.
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import { JobInputError, jobPromptText } from "../protocols/job_input.ts";
import {
  type StreamClaim,
  StreamClaimSchema,
  verifyStreamClaim,
} from "../protocols/stream_commitment.ts";
import { MIN_LOGIT_EPS } from "./calibration.ts";
import { type ProofModel, terminationViolation, tolerancesOf } from "./_common.ts";
import { checkSampledToken } from "./sampling_check.ts";
import { CHECKER_SLACK } from "./fraud_check.ts";
import type { ValidationOptions } from "./validation.ts";

/** The checker's answer: the shape of `FraudCheckResult`, the claim's hash for the proof's. */
export interface StreamCheckResult {
  /** True when the claim holds: the worker signed a token the job could not give there. */
  confirmed: boolean;
  /**
   * True when the checker could not decide (it lacks the job's model or input, or its tolerances
   * are uncalibrated and only tighter ones convict); `confirmed` is then false.
   */
  inconclusive: boolean;
  /**
   * Stable reason code: `confirmed`, `not_reproduced` (refuted), `malformed`, `bad_position`,
   * `bad_signature`; inconclusive: `no_model`, `wrong_model`, `input_required`, `uncalibrated`,
   * `near_tolerance` (a token a checker with a slightly tighter profile would convict).
   */
  reason: string;
  /** {@link streamClaimHash} of the claim; empty for a malformed one. */
  claimHash: string;
  /**
   * The job's prompt tokens (its input's text and prompt) as the model's tokenizer encodes them:
   * set on every confirmed result, so the conviction's cut prices the prefill as the receipt
   * would have (`_ledger_stream_fraud.ts`); absent where the check stopped before the prompt.
   */
  promptTokens?: number;
  /** Tokens in the checker's forward passes (0 when none ran). */
  forwardTokens: number;
  /** Time spent (ms). */
  ms: number;
}

/**
 * Hex SHA-256 of the claim's canonical CBOR: what names it in logs and in the ledger's `stream_fraud` entry
 * (its position included, so two claims about one stream at two positions are two claims).
 *
 * @example
 * ```ts ignore
 * const result = await checkStreamClaim(claim, model);
 * result.claimHash === streamClaimHash(claim); // true for a well-formed claim
 * ```
 */
export function streamClaimHash(claim: StreamClaim): string {
  return sha256Hex(encodeCanonical(claim));
}

/**
 * Check a stream claim with `model` (the text model the claim's job names) under the checker's
 * own tolerances (`options.calibration`, overrides as in validation). A claim that does not hold
 * together (shape, position, signature, input bytes for a job that reads none) is refuted before
 * any replay; without the model, or the bytes of the stored input the job names (`claim.input`,
 * checked against its CID), it is inconclusive.
 *
 * @param value The claim as received (checked against `StreamClaimSchema` here).
 * @param model The job's model; undefined when the checker does not hold it.
 * @param options Tolerances and the abort signal, as for `checkFraudProof`.
 * @returns Whether the claim holds, and why.
 * @example
 * ```ts ignore
 * const result = await checkStreamClaim(claim, await models.get(claim.job.model), options);
 * if (result.confirmed) await ledger.settleStreamFraud({ ...from(claim), claimHash: result.claimHash });
 * ```
 */
export async function checkStreamClaim(
  value: unknown,
  model: ProofModel | undefined,
  options: ValidationOptions = {},
): Promise<StreamCheckResult> {
  const started = performance.now();
  let claimHash = "";
  let forwardTokens = 0;
  /** The prompt's count, once the check has encoded it (`StreamCheckResult.promptTokens`). */
  const counted: { promptTokens?: number } = {};
  const done = (confirmed: boolean, reason: string, inconclusive = false): StreamCheckResult => ({
    confirmed,
    inconclusive,
    reason,
    claimHash,
    ...counted,
    forwardTokens,
    ms: performance.now() - started,
  });
  const parsed = StreamClaimSchema.safeParse(value);
  if (!parsed.success) return done(false, "malformed");
  const claim = parsed.data;
  claimHash = streamClaimHash(claim);
  const { job, tokenIds, at } = claim;
  // `verifyStreamClaim` refuses an out-of-range position too; named apart, it is the sender's
  // mistake, not the worker's signature.
  if (at >= tokenIds.length) return done(false, "bad_position");
  if (!verifyStreamClaim(claim, jobId(job))) return done(false, "bad_signature");
  if (!model) return done(false, "no_model", true);
  if (model.info.cid !== job.model) return done(false, "wrong_model", true);

  // Bytes the job does not read are not the worker's to answer for: the sender's mistake.
  if (claim.input !== undefined && job.input === undefined) return done(false, "malformed");
  let promptText: string;
  try {
    promptText = jobPromptText(job, claim.input);
  } catch (e) {
    // The job reads a stored input before its prompt, and the claim does not carry its bytes,
    // or carries other bytes than the job's CID names: undecidable here.
    if (e instanceof JobInputError) return done(false, e.code, true);
    throw e;
  }
  const promptIds = model.tokenizer.encode(promptText);
  counted.promptTokens = promptIds.length;
  // Every token the worker signed is checked, not only at `at`: the refusers name the first
  // position their own exact replay stopped at, and an honest takeover whose machine rounded a
  // near-tie the other way (or a colluder) names an earlier, honest one than the lie.
  const n = tokenIds.length;
  // No honest worker signs an id outside the vocabulary, wherever it stands; and one could not
  // be fed to the forward pass.
  if (tokenIds.some((id) => id >= model.info.vocabSize)) return done(true, "confirmed");
  // Had the job ended before its last signed token, no token was due after the end; and a head
  // signed final (its last token ends the job) that the job's ending rule does not end there cut
  // the job short. This also refuses an empty prompt or one that fills the context window (no
  // token is ever due), before a forward pass over them.
  const ended = claim.final === true ? tokenIds : tokenIds.slice(0, n - 1);
  if (terminationViolation(model, promptIds.length, ended, job.params, n)) {
    return done(true, "confirmed");
  }
  const tol = tolerancesOf(job, options);
  // One teacher-forced pass over the prompt and the signed tokens but the last: the logits at
  // every position, judged under the checker's tolerance, and, uncalibrated, the tightest one too
  // (on the same logits: a second forward pass doubled the replay, review s69's measurement).
  const input = [...promptIds, ...tokenIds.slice(0, n - 1)];
  const logits = await model.forward(input, { signal: options.signal });
  forwardTokens += input.length;
  const vocab = model.info.vocabSize;
  const sampledOk = (tolerance: typeof tol.sampling): boolean =>
    tokenIds.every((token, t) =>
      checkSampledToken(
        logits,
        token,
        t,
        job.params,
        tolerance,
        (promptIds.length - 1 + t) * vocab,
        vocab,
      ).ok
    );
  if (!sampledOk(tol.sampling)) return done(true, "confirmed");
  // A token a checker whose profile is a little tighter would convict (a liar can place one
  // between two calibrations a few percent apart) is not refuted here: undecided, so that the
  // accuser of a conviction a peer confirmed is not charged where calibrations differ (review
  // s69, third round: the router was charged, the liar convicted only in its ledger). As the
  // fingerprint citation's `CHECKER_SLACK` (`fraud_check.ts`), the other way round.
  const slack = {
    ...tol.sampling,
    logitEps: tol.sampling.logitEps * CHECKER_SLACK,
    logitSigma: tol.sampling.logitSigma * CHECKER_SLACK,
  };
  if (tol.calibrated) {
    return sampledOk(slack) ? done(false, "not_reproduced") : done(false, "near_tolerance", true);
  }
  // Uncalibrated here, as the `sampling` fraud proof's checker: the defaults admit near-ties a
  // calibrated checker rightly refuses, and the tightest tolerance a profile gives tells a token
  // this checker cannot judge from one no checker would convict.
  const tight = { ...tol.sampling, logitEps: MIN_LOGIT_EPS, logitSigma: MIN_LOGIT_EPS };
  return sampledOk(tight) ? done(false, "not_reproduced") : done(false, "uncalibrated", true);
}
