/**
 * The independent fraud-proof checker: any node with the model confirms or refutes a fraud
 * proof by recomputing only the cited positions — one forward pass over the prompt and the
 * output prefix up to the last cited position — under exactly the rules the validator used.
 *
 * A proof is *confirmed* only when everything holds: the validator's signature, the worker's
 * signature on a receipt for this very job, every chunk opening against the signed commitment,
 * and the claimed violation on recomputation. Anything else refutes it, which in the ledger
 * makes it a false accusation. `inconclusive` (the checker lacks the model) decides nothing.
 *
 * Tolerances come from the checker's own calibration profile for the model and the job's
 * precision (`calibration.ts`), as the validator's did. A fingerprint citation is confirmed a
 * little below the validator's limit ({@link CHECKER_SLACK}), so a checker whose profile
 * differs slightly from the validator's confirms an honest validator's proof. A checker without
 * a profile applies the loose defaults: a proof that violates only tighter, calibrated
 * tolerances is `inconclusive` there (reason `uncalibrated`), neither confirmed nor refuted.
 *
 * @module
 */
import { JobInputError, jobPromptText } from "../protocols/job_input.ts";
import { receiptContradiction, verifyReceipt } from "../protocols/receipt.ts";
import {
  FRAUD_PROOF_VERSION_WIDE_SETS,
  type FraudProof,
  fraudProofHash,
  FraudProofSchema,
  fraudProofSigningBytes,
} from "../protocols/fraud_proof.ts";
import { verifySignature } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { tensorOutputHash, textOutputHash } from "../protocols/receipt.ts";
import {
  assertOpens,
  chunkCount,
  CommitmentMismatchError,
  unpackTokens,
  verifyOpenings,
} from "./commitment.ts";
import { verifyServedProof } from "./served_proof.ts";
import {
  citedScoresViolate,
  type Fingerprint,
  FINGERPRINT_BYTES,
  FINGERPRINT_QUANTIZATION_RMS,
  fingerprintScore,
  type FingerprintTolerance,
  readFingerprint,
} from "./fingerprint.ts";
import { MIN_LOGIT_EPS } from "./calibration.ts";
import {
  LOGITS_PRECISIONS,
  type ProofModel,
  type ProofTensorModel,
  recomputePositions,
  reconstructOutput,
  terminationViolation,
  tolerancesOf,
} from "./_common.ts";
import { DEFAULT_TENSOR_TOLERANCE, tensorsDiffer, type ValidationOptions } from "./validation.ts";
import { promptTokensViolation } from "./prompt_token_check.ts";

/**
 * A checker confirms a fingerprint citation whose mean score exceeds 0.8 of the validator's
 * limit: room for two nodes' profiles of one model to differ (they measure the same rounding,
 * so by a few percent), far above honest noise (the limit allows four times the calibrated
 * variance).
 */
export const CHECKER_SLACK = 0.8;

/** The checker's answer. */
export interface FraudCheckResult {
  /** True when the proof holds: the worker cheated. */
  confirmed: boolean;
  /** True when the checker could not decide (it lacks the model); `confirmed` is then false. */
  inconclusive: boolean;
  /** Stable reason code (`confirmed`, `bad_signature`, `not_reproduced`, ...). */
  reason: string;
  /** Hex hash of the proof (what the ledger records). */
  proofHash: string;
  /** Tokens in the checker's forward pass (0 for token-only kinds). */
  forwardTokens: number;
  /** Time spent (ms). */
  ms: number;
}

/**
 * Whether checking `proof` needs the receipt's model: not for a receipt that contradicts its own
 * job (`receipt`) nor for served data that does not open its commitment (`commitment`), which
 * {@link checkFraudProof} decides without one. A checker whose model fails to load still
 * decides those, so the failure does not leave such a conviction undecided (review s50).
 *
 * @example
 * ```ts ignore
 * const model = await models.get(cid).catch((e) => {
 *   if (fraudProofNeedsModel(proof)) throw e;
 *   return undefined;
 * });
 * ```
 */
export function fraudProofNeedsModel(proof: Pick<FraudProof, "kind">): boolean {
  return proof.kind !== "receipt" && proof.kind !== "commitment";
}

/**
 * Check a fraud proof with `model` (the text or one-shot model the receipt names).
 *
 * @example
 * ```ts ignore
 * const result = await checkFraudProof(proof, model);
 * if (result.confirmed) await ledger.settleFraud({ ...from(result) });
 * ```
 */
export async function checkFraudProof(
  value: unknown,
  model: ProofModel | ProofTensorModel | undefined,
  options: ValidationOptions = {},
): Promise<FraudCheckResult> {
  const started = performance.now();
  let proofHash = "";
  let forwardTokens = 0;
  const done = (confirmed: boolean, reason: string, inconclusive = false): FraudCheckResult => ({
    confirmed,
    inconclusive,
    reason,
    proofHash,
    forwardTokens,
    ms: performance.now() - started,
  });
  const parsed = FraudProofSchema.safeParse(value);
  if (!parsed.success) return done(false, "malformed");
  const proof: FraudProof = parsed.data;
  proofHash = fraudProofHash(proof);
  if (!verifySignature(proof.validator, fraudProofSigningBytes(proof), proof.sig)) {
    return done(false, "bad_signature");
  }
  const { receipt, job } = proof;
  if (proof.kind === "receipt") {
    const contradiction = receiptContradiction(receipt, job);
    return done(contradiction !== null, contradiction === null ? "not_reproduced" : "confirmed");
  }
  const rc = verifyReceipt(receipt, { job });
  if (!rc.ok) return done(false, `receipt_${rc.reason}`);

  if (proof.kind === "commitment") {
    if (!verifyServedProof(proof.served, rc.receiptId, receipt.worker)) {
      return done(false, "served_not_signed");
    }
    try {
      assertOpens(proof.served.proof, receipt.commitment, receipt.tokenCount);
      return done(false, "not_reproduced");
    } catch (e) {
      if (e instanceof CommitmentMismatchError) return done(true, "confirmed");
      throw e;
    }
  }
  if (proof.kind === "tensor") {
    // Past the signature, a claim that does not fit its receipt is the accuser's signed word, a
    // false one: refuted (charged), never `malformed` (unattributable, so free to repeat).
    if (job.kind !== "tensor") return done(false, "wrong_kind");
    if (!proof.tensorOutputs) return done(false, "outputs_missing");
    if (tensorOutputHash(proof.tensorOutputs) !== receipt.outputHash) {
      return done(false, "outputs_not_signed");
    }
    if (!model || model.info.cid !== receipt.model) return done(false, "model_unavailable", true);
    const actual = await (model as ProofTensorModel).run(job.inputs);
    const differ = tensorsDiffer(
      proof.tensorOutputs,
      actual,
      options.tensor ?? DEFAULT_TENSOR_TOLERANCE,
    );
    return done(differ, differ ? "confirmed" : "not_reproduced");
  }
  if (job.kind !== "text") return done(false, "wrong_kind");
  const { chunkSize, tokenBytes, root } = receipt.commitment;
  // Openings must be the contiguous chunks 0..c, each proven against the signed root.
  if (proof.chunks.some((c, i) => c.index !== i)) return done(false, "chunks_not_contiguous");
  if (!verifyOpenings(proof.chunks, root, receipt.tokenCount, chunkSize, tokenBytes)) {
    return done(false, "opening_invalid");
  }
  const prefix: number[] = [];
  for (const c of proof.chunks) prefix.push(...unpackTokens(c.tokens, tokenBytes));
  const allOpened = proof.chunks.length === chunkCount(receipt.tokenCount, chunkSize);
  if (!model || model.info.cid !== receipt.model) return done(false, "model_unavailable", true);
  const textModel = model as ProofModel;

  if (proof.kind === "output") {
    if (!allOpened) return done(false, "needs_all_chunks");
    const differs =
      textOutputHash(reconstructOutput(textModel, prefix, receipt.end)) !== receipt.outputHash;
    return done(differs, differs ? "confirmed" : "not_reproduced");
  }
  // The input's bytes come with the proof (checked against the job's CID): without them, or with
  // others, nothing can be re-run, and the proof does not hold up.
  let promptText: string;
  try {
    promptText = jobPromptText(job as TextJob, proof.input);
  } catch (e) {
    if (e instanceof JobInputError) return done(false, "input_mismatch");
    throw e;
  }
  const promptIds = textModel.tokenizer.encode(promptText);
  if (proof.kind === "termination") {
    // A signed prompt-token count the prompt does not have needs the job alone, no opening.
    if (promptTokensViolation(receipt, promptIds.length)) return done(true, "confirmed");
    // An overrun needs the openings up to its stop only: the receipt signs how many tokens
    // follow; a prompt empty or too long for the context window needs none. A truncation (no stop
    // anywhere) needs them all.
    const v = terminationViolation(
      textModel,
      promptIds.length,
      prefix,
      (job as TextJob).params,
      receipt.tokenCount,
      receipt.end, // a cancelled receipt is never `truncated`
    );
    if (v === null && !allOpened) return done(false, "needs_all_chunks");
    return done(v !== null, v ? "confirmed" : "not_reproduced");
  }

  const positions = proof.cited.map((c) => c.position);
  if (positions.length === 0) return done(false, "nothing_cited");
  if (new Set(positions).size !== positions.length) return done(false, "duplicate_positions");
  if (positions.some((p) => p >= prefix.length)) return done(false, "cited_outside_openings");
  const vocab = textModel.info.vocabSize;
  // Tokens before the last cited one feed the forward pass and must be valid ids.
  const last = Math.max(...positions);
  if (prefix.slice(0, last).some((t) => t >= vocab)) return done(false, "invalid_prefix");
  if (proof.kind === "sampling" && prefix[last] >= vocab && positions.length === 1) {
    return done(true, "confirmed"); // an id outside the vocabulary is never a legal sample
  }
  if (positions.some((p) => prefix[p] >= vocab)) return done(false, "malformed");
  const tol = tolerancesOf(job as TextJob, options);
  const r = await recomputePositions(
    textModel,
    promptIds,
    prefix,
    positions,
    (job as TextJob).params,
    tol.sampling,
    { signal: options.signal },
  );
  forwardTokens = r.forwardTokens;
  if (proof.kind === "sampling") {
    if (r.results.every((x) => !x.sampling.ok)) return done(true, "confirmed");
    if (tol.calibrated) return done(false, "not_reproduced");
    // Uncalibrated here: the defaults admit near-ties a calibrated validator rightly refuses.
    // A second pass under the tightest tolerance a profile gives tells the two cases apart.
    const tight = await recomputePositions(
      textModel,
      promptIds,
      prefix,
      positions,
      (job as TextJob).params,
      { ...tol.sampling, logitEps: MIN_LOGIT_EPS, logitSigma: MIN_LOGIT_EPS },
      { signal: options.signal },
    );
    forwardTokens += tight.forwardTokens;
    const failsTightly = tight.results.every((x) => !x.sampling.ok);
    return failsTightly ? done(false, "uncalibrated", true) : done(false, "not_reproduced");
  }
  // fingerprint: the cited chunks must carry their fingerprints.
  const claimed: Fingerprint[] = [];
  for (const x of r.results) {
    const chunk = proof.chunks[Math.floor(x.position / chunkSize)];
    if (!chunk.fingerprints) return done(false, "fingerprints_not_opened");
    const within = x.position - chunk.index * chunkSize;
    if ((within + 1) * FINGERPRINT_BYTES > chunk.fingerprints.length) {
      return done(false, "fingerprints_short");
    }
    claimed.push(readFingerprint(chunk.fingerprints, within));
  }
  const violates = (t: FingerprintTolerance) =>
    citedScoresViolate(
      positions,
      LOGITS_PRECISIONS.map((_, h) =>
        r.results.map((x, i) => fingerprintScore(claimed[i], x.fingerprints[h], t))
      ),
      t,
      // Version 1 proofs keep version 1's sets (single positions and prefixes), so a checker of
      // either version settles them alike.
      proof.v >= FRAUD_PROOF_VERSION_WIDE_SETS ? receipt.tokenCount : undefined,
    );
  const checking = { ...tol.fingerprint, headroom: tol.fingerprint.headroom * CHECKER_SLACK };
  if (violates(checking)) return done(true, "confirmed");
  if (!tol.calibrated && violates(tightestFingerprintTolerance(checking))) {
    return done(false, "uncalibrated", true);
  }
  return done(false, "not_reproduced");
}

/**
 * The tightest fingerprint tolerance any calibration could give: noise no larger than the
 * quantization's. A proof that violates only this far is one an uncalibrated checker can
 * neither confirm nor refute.
 */
function tightestFingerprintTolerance(t: FingerprintTolerance): FingerprintTolerance {
  return {
    ...t,
    logProbSigma: FINGERPRINT_QUANTIZATION_RMS,
    projectionSigma: FINGERPRINT_QUANTIZATION_RMS,
  };
}
