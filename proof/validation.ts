/**
 * Validating a challenged receipt: one teacher-forced forward pass, every position checked,
 * a signed verdict, and a fraud proof when a computation check fails.
 *
 * Order of checks (cheapest first; each failure ends the validation):
 * 1. the receipt itself — shape, signature, that it is for this job, and that it matches the
 *    output the requester got (`invalid`: no recomputation needed to see it);
 * 2. the proof data opens the signed commitment (`invalid`, reason `commitment_mismatch`);
 * 3. the committed tokens decode to the signed output, and end where generation would have
 *    stopped (`fraud` of kind `output` / `termination`, checkable from tokens alone; a prompt
 *    that fills the context window, which generation refuses, is `termination` at position 0,
 *    and so is a signed prompt-token count the prompt does not have, `prompt_token_check.ts`);
 * 4. one forward pass over prompt ‖ output: the fingerprints pass the statistical test (no
 *    single position and no prefix beyond the honest noise calibrated for the model and the
 *    job's precision, `fingerprint.ts`) and each token is consistent with the job's sampling
 *    rule (`fraud` of kind `fingerprint` / `sampling`);
 * 5. for a receipt that passed all of that, its end choices (`end_choices.ts`: where the worker
 *    passed over or took an end the validator's own pick differs on) are counted into the
 *    verdict (unless {@link ValidationOptions.countEndChoices} is false), and when they bring the
 *    worker's record with this validator ({@link ValidationOptions.steering}) to a conviction
 *    (`steering.ts`), a receipt that passed over an end is `invalid`, reason `steering`.
 *
 * Tolerances come from the model's calibration profile (`calibration.ts`), found by CID through
 * {@link ValidationOptions.calibration}, for the precision the job declares; without one, the
 * defaults (loose: they catch another model, not a quantized copy).
 *
 * Among the failures found in step 4 the validator cites the cheapest to check: the set whose
 * last position is earliest, since the checker's forward pass runs up to it.
 *
 * Tensor jobs are re-executed once and compared element-wise within `rtol`/`atol`.
 *
 * @module
 */
import type { Identity } from "../protocols/identity.ts";
import type { Job, TensorData, TextJob } from "../protocols/job.ts";
import {
  parseReceipt,
  type Receipt,
  type ReceiptCheck,
  receiptContradiction,
  receiptId,
  textOutputHash,
  verifyReceipt,
} from "../protocols/receipt.ts";
import { signVerdict, type Verdict, type VerdictOutcome } from "../protocols/verdict.ts";
import {
  type CitedPosition,
  type FraudKind,
  type FraudProof,
  signFraudProof,
} from "../protocols/fraud_proof.ts";
import {
  FRAUD_PROOF_VERSION,
  FRAUD_PROOF_VERSION_WIDE_SETS,
  fraudProofHash,
} from "../protocols/fraud_proof.ts";
import {
  assertOpens,
  chunkCount,
  CommitmentMismatchError,
  openChunks,
  type ProofData,
  ProofDataSchema,
  unpackTokens,
} from "./commitment.ts";
import {
  fingerprintDistance,
  fingerprintScore,
  type FingerprintTolerance,
  fingerprintViolation,
  isTestedSet,
  readFingerprint,
} from "./fingerprint.ts";
import type { SamplingTolerance } from "./sampling_check.ts";
import type { CalibrationLookup } from "./calibration.ts";
import {
  LOGITS_PRECISIONS,
  type ProofModel,
  type ProofTensorModel,
  recomputePositions,
  reconstructOutput,
  tensorExcess,
  terminationViolation,
  tolerancesOf,
} from "./_common.ts";
import { verifyServedProof } from "./served_proof.ts";
import { JobInputError, jobPromptText } from "../protocols/job_input.ts";
import { type EndChoices, endChoicesPlayedOut } from "./end_choices.ts";
import { END_CHOICE_DETAILS, isSteering } from "./steering.ts";
import { promptTokensViolation } from "./prompt_token_check.ts";

/** Element-wise tolerance of tensor re-execution: |a − b| ≤ atol + rtol·|b|. */
export interface TensorTolerance {
  /** Relative tolerance (default 1e-3: far above CPU thread-order noise in float32). */
  rtol: number;
  /** Absolute tolerance (default 1e-4, for values near zero). */
  atol: number;
}

/** Default {@link TensorTolerance}. */
export const DEFAULT_TENSOR_TOLERANCE: Readonly<TensorTolerance> = Object.freeze({
  rtol: 1e-3,
  atol: 1e-4,
});

/** Tolerances and hooks of a validation (the fraud checker takes the same). */
export interface ValidationOptions {
  /**
   * Calibration profiles by model CID (`CalibrationStore.lookup`): the fingerprint and sampling
   * tolerances for the job's model and precision. Default: none, so the defaults below apply.
   */
  calibration?: CalibrationLookup;
  /** Fingerprint tolerances, overriding the profile's; default `DEFAULT_FINGERPRINT_TOLERANCE`. */
  fingerprint?: FingerprintTolerance;
  /** Sampling tolerances, overriding the profile's; default `DEFAULT_SAMPLING_TOLERANCE`. */
  sampling?: SamplingTolerance;
  /** Tensor tolerances; default {@link DEFAULT_TENSOR_TOLERANCE}. */
  tensor?: TensorTolerance;
  /** Clock in unix ms; default `Date.now`. */
  now?: () => number;
  /** Abort the forward pass. */
  signal?: AbortSignal;
  /**
   * The worker's end choices in this validator's earlier verdicts (`SteeringRecord`): with this
   * receipt's, tested for steering. Default none (the receipt is judged on its own).
   */
  steering?: EndChoices;
  /**
   * Whether to count the receipt's end choices into the verdict (default true). False for a
   * receipt this validator did not draw by its own coin (a peer's claim taken over): whoever
   * chose it could have chosen it for its end choices, so it must not feed a steering record.
   */
  countEndChoices?: boolean;
  /**
   * Details signed into the verdict beside the validation's own figures (which win on a clash);
   * default none. The ValidatorActor marks with them a challenge taken over on a peer's claim,
   * whose undecided ending differs from that of one it drew (`_run_challenge.ts`).
   */
  details?: Record<string, string | number | boolean>;
}

/** What the validator gathered for one challenge. */
export interface ChallengeMaterial {
  /** The job (for private jobs: after opening the sealed input). */
  job: Job;
  /** The worker's receipt (untrusted). */
  receipt: unknown;
  /** The worker's proof data (text jobs), as served on challenge. */
  proof?: ProofData;
  /**
   * The worker's signature on `proof` as served. With it, data that does
   * not open the commitment is a fraud proof of kind `commitment`; without it, only `invalid`.
   * (See `ServedProof` in `served_proof.ts`.)
   */
  proofSig?: Uint8Array;
  /** The output the requester received, when known (required for tensor jobs). */
  output?: string | Record<string, TensorData>;
  /**
   * No proof data because this validator had no route at all for the whole deadline (no
   * connection to the worker nor to any peer that could relay): its own isolation,
   * `inconclusive`, not the worker's failure. With any route up, a missing answer is withheld.
   */
  workerUnreachable?: boolean;
  /**
   * No proof data, asked for only when its worker may rightly have deleted it by its own clock
   * (`proofMayBeExpired`, `challenge_timing.ts`): `inconclusive / proof_expired`, nobody pays, not
   * the worker's withholding (review s75, F1).
   */
  proofExpired?: boolean;
}

/**
 * Reason of the `inconclusive` verdict on proof data missing when its worker may rightly have
 * deleted it ({@link ChallengeMaterial.proofExpired}): not withheld, so nobody is slashed.
 */
export const PROOF_EXPIRED = "proof_expired";

/**
 * Reason of the `inconclusive` verdict on a text job whose precision class this validator's
 * calibration profile lacks, with no coarser class to stand in (`Tolerances.classMissing`): a
 * receipt that passes the default tolerances may still come from cheaper work the class would
 * catch, so it is not paid on them; nor is the worker slashed for the validator's gap.
 */
export const CLASS_UNCALIBRATED = "class_uncalibrated";

/** Numbers of one validation. */
export interface ValidationStats {
  /** Positions checked. */
  positions: number;
  /** Largest fingerprint distance seen (nats; each position's smaller over logits precisions). */
  maxDistance: number;
  /** Mean fingerprint distance. */
  meanDistance: number;
  /**
   * Largest per-position fingerprint score (`fingerprint.ts`: about 1 for honest noise), each
   * position under the logits precision it matches best.
   */
  maxScore: number;
  /** Mean of those scores over all positions. */
  meanScore: number;
  /** Whether the tolerances came from a calibration profile. */
  calibrated: boolean;
  /** Positions failing the sampling check. */
  samplingFailures: number;
  /** Positions where the worker passed over an end the validator's own pick took. */
  endPassed: number;
  /** Positions where the worker took an end the validator's own pick passed over. */
  endTaken: number;
  /**
   * Branch play-outs the end choices ran (`end_choices.ts`, at most `MAX_BRANCH_PLAYOUTS`): where
   * the worker left the validator's pick at a near-tie that ends nothing right away.
   */
  branchPlayOuts: number;
  /** Tokens in the forward pass. */
  forwardTokens: number;
  /** Time in the forward pass (ms). */
  forwardMs: number;
  /** Whole validation (ms). */
  totalMs: number;
}

/** The outcome: a signed verdict, and a signed fraud proof when the verdict is `fraud`. */
export interface ValidationResult {
  /** Signed verdict. */
  verdict: Verdict;
  /** Signed fraud proof, for outcome `fraud`. */
  fraudProof?: FraudProof;
  /** Measurements. */
  stats: ValidationStats;
}

/**
 * Fresh all-zero {@link ValidationStats}, for a validation that is filled in as it runs or
 * that ended before any recomputation (for example an inconclusive verdict).
 *
 * @example
 * ```ts
 * import { emptyValidationStats } from "./validation.ts";
 * const stats = emptyValidationStats();
 * stats.positions += 1;
 * ```
 */
export function emptyValidationStats(): ValidationStats {
  return {
    positions: 0,
    maxDistance: 0,
    meanDistance: 0,
    maxScore: 0,
    meanScore: 0,
    calibrated: false,
    samplingFailures: 0,
    endPassed: 0,
    endTaken: 0,
    branchPlayOuts: 0,
    forwardTokens: 0,
    forwardMs: 0,
    totalMs: 0,
  };
}

/** What {@link signValidationResult} signs. */
export interface ValidationOutcome {
  /** The validator that signs. */
  validator: Identity;
  /** The receipt's id. */
  subjectId: string;
  /** The worker's key. */
  target: Uint8Array;
  /** The verdict's outcome. */
  outcome: VerdictOutcome;
  /** The verdict's reason. */
  reason: string;
  /** For a fraud verdict: the fraud proof's claim, signed beside the verdict. */
  fraud?: Omit<FraudProof, "sig" | "validator" | "issuedAt" | "v">;
  /** The verdict's details (finite numbers, strings, booleans). */
  details: Record<string, string | number | boolean>;
  /** Clock for both signatures' `issuedAt`. */
  now: () => number;
  /** The validation's figures, returned as they are. */
  stats: ValidationStats;
}

/**
 * The fraud-proof version a claim needs: 2 for a fingerprint citation that version-1 checkers
 * would refute (a suffix or a stride-2 set), so they read it as malformed and decide nothing
 * instead of charging the validator; 1 for everything else, which every checker confirms alike.
 */
function fraudProofVersionOf(fraud: Pick<FraudProof, "kind" | "cited">): number {
  const positions = fraud.cited.map((c) => c.position);
  return fraud.kind === "fingerprint" && !isTestedSet(positions)
    ? FRAUD_PROOF_VERSION_WIDE_SETS
    : FRAUD_PROOF_VERSION;
}

/**
 * Sign a validation's result: the verdict on an inference receipt and, when `fraud` is given,
 * the fraud proof it names (both stamped with one `now()`). Every path that judges a receipt
 * ends here, with or without the model.
 */
export function signValidationResult(o: ValidationOutcome): ValidationResult {
  const issuedAt = o.now();
  const fraudProof = o.fraud
    ? signFraudProof({ v: fraudProofVersionOf(o.fraud), ...o.fraud, issuedAt }, o.validator)
    : undefined;
  const verdict = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: o.subjectId,
    target: o.target,
    outcome: o.outcome,
    reason: o.reason,
    ...(fraudProof ? { fraudProof: fraudProofHash(fraudProof) } : {}),
    details: o.details,
    issuedAt,
  }, o.validator);
  return { verdict, fraudProof, stats: o.stats };
}

/**
 * Validate one challenged receipt with `model` (a text model for text jobs, a one-shot model
 * for tensor jobs) and sign the verdict as `validator`. Without the model (undefined, or
 * another CID) only what needs none is decided; the rest is `inconclusive`.
 *
 * @example
 * ```ts ignore
 * const { verdict, fraudProof } = await validateReceipt(
 *   { job, receipt, proof }, model, validatorIdentity,
 * );
 * ```
 */
export async function validateReceipt(
  material: ChallengeMaterial,
  model: ProofModel | ProofTensorModel | undefined,
  validator: Identity,
  options: ValidationOptions = {},
): Promise<ValidationResult> {
  const now = options.now ?? Date.now;
  const countEnds = options.countEndChoices ?? true;
  const started = performance.now();
  const stats = emptyValidationStats();
  let target: Uint8Array = new Uint8Array(32);
  let subjectId = "unknown";
  try {
    const r = parseReceipt(material.receipt);
    target = r.worker;
    subjectId = receiptId(r);
  } catch {
    // reported below by verifyReceipt as `malformed`
  }
  // The coarser class a text job's tolerances came from, when its own is not in the profile.
  const classDetails: Record<string, string> = {};
  const finish = (
    outcome: VerdictOutcome,
    reason: string,
    fraud?: Omit<FraudProof, "sig" | "validator" | "issuedAt" | "v">,
    details: Record<string, string | number | boolean> = {},
  ): ValidationResult => {
    stats.totalMs = performance.now() - started;
    return signValidationResult({
      validator,
      subjectId,
      target,
      outcome,
      reason,
      fraud,
      details: finiteDetails({
        ...options.details,
        ...details,
        ...classDetails,
        positions: stats.positions,
        maxDistance: round6(stats.maxDistance),
        meanScore: round6(stats.meanScore),
        calibrated: stats.calibrated,
        samplingFailures: stats.samplingFailures,
        ...(countEnds
          ? {
            [END_CHOICE_DETAILS.passed]: stats.endPassed,
            [END_CHOICE_DETAILS.taken]: stats.endTaken,
          }
          : {}),
      }),
      now,
      stats,
    });
  };

  const check: ReceiptCheck = verifyReceipt(material.receipt, {
    job: material.job,
    output: material.output,
  });
  if (!check.ok) {
    if (receiptContradiction(material.receipt, material.job) !== null) {
      // The worker signed a receipt for this job that the job does not allow.
      return finish("fraud", check.reason, {
        job: material.job,
        receipt: material.receipt as Receipt,
        kind: "receipt",
        chunks: [],
        cited: [],
      }, { message: check.message });
    }
    return finish("invalid", check.reason, undefined, { message: check.message });
  }
  const receipt = material.receipt as Receipt;
  if (model?.info.cid !== receipt.model) {
    // Whether served proof data holds the job's input needs no model (the CID is its hash): a
    // validator without it (one taking over a "withheld" claim, `withheld_check.ts`) finds the
    // same fault as one with it, rather than clearing data that cannot be re-run.
    const missing = servedWithoutInput(material, receipt);
    return missing === undefined
      ? finish("inconclusive", "model_unavailable")
      : finish("invalid", "proof_unavailable", undefined, { message: missing });
  }

  if (material.job.kind === "tensor") {
    return await validateTensor(material, receipt, model as ProofTensorModel, options, finish);
  }
  const job = material.job as TextJob;
  const textModel = model as ProofModel;
  if (!material.proof) {
    if (material.workerUnreachable) return finish("inconclusive", "worker_unreachable");
    return material.proofExpired
      ? finish("inconclusive", PROOF_EXPIRED)
      : finish("invalid", "proof_unavailable");
  }
  const parsedProof = ProofDataSchema.safeParse(material.proof);
  if (!parsedProof.success) return finish("invalid", "commitment_mismatch");
  const proof = parsedProof.data;
  try {
    assertOpens(proof, receipt.commitment, receipt.tokenCount);
  } catch (e) {
    if (e instanceof CommitmentMismatchError) {
      const served = { proof, sig: material.proofSig };
      if (verifyServedProof(served, subjectId, receipt.worker)) {
        // Signed by the worker as what it served: a mismatch anyone can check.
        return finish("fraud", "commitment_mismatch", {
          job,
          receipt,
          kind: "commitment",
          chunks: [],
          cited: [],
          served,
        }, { message: e.message });
      }
      return finish("invalid", "commitment_mismatch", undefined, { message: e.message });
    }
    throw e;
  }
  const tokens = unpackTokens(proof.tokens, proof.tokenBytes);
  // A job that names an input is re-run on the input's bytes as the worker served them with its
  // proof data, checked against the CID: served without them (or others), the proof data is not
  // whole, and that is the worker's fault as withheld data is.
  let promptText: string;
  try {
    promptText = jobPromptText(job, proof.input);
  } catch (e) {
    if (!(e instanceof JobInputError)) throw e;
    return finish("invalid", "proof_unavailable", undefined, { message: notHeld(e) });
  }
  // Generation refuses an empty prompt, so no honest receipt exists for one: termination fraud
  // (below), whatever the output.
  const promptIds = textModel.tokenizer.encode(promptText);
  const allChunks = chunkCount(tokens.length, proof.chunkSize) - 1;
  // Every fraud proof of an input job carries its bytes, so any node can re-run it.
  const base = job.input === undefined ? { job, receipt } : { job, receipt, input: proof.input };

  if (textOutputHash(reconstructOutput(textModel, tokens, receipt.end)) !== receipt.outputHash) {
    return finish("fraud", "output_mismatch", {
      ...base,
      kind: "output",
      chunks: openChunks(proof, allChunks, new Set()),
      cited: [],
    });
  }
  // A cancelled receipt (`end`) may end without a stop; positions 0 … k−1 are checked below.
  const term = terminationViolation(
    textModel,
    promptIds.length,
    tokens,
    job.params,
    tokens.length,
    receipt.end,
  );
  if (term) {
    // An overrun is proven by the tokens up to its stop (the receipt signs how many follow), a
    // prompt empty or too long for the context by the job alone; only a truncation needs every
    // token.
    // With one position per chunk, all of a long output's openings are more than a frame can
    // carry to the other nodes.
    const lastChunk = term.reason === "truncated"
      ? allChunks
      : Math.min(allChunks, Math.floor(term.position / proof.chunkSize));
    return finish("fraud", term.reason, {
      ...base,
      kind: "termination",
      chunks: openChunks(proof, lastChunk, new Set()),
      cited: [{ position: term.position }],
    });
  }
  // The prefill the worker is paid for: its signed count against the prompt re-tokenized here.
  const prompted = promptTokensViolation(receipt, promptIds.length);
  if (prompted) {
    // Proven by the job (and the input's bytes) alone, as a prompt too long for the context is:
    // the first chunk is opened only because a termination proof's openings start there.
    return finish("fraud", prompted.reason, {
      ...base,
      kind: "termination",
      chunks: openChunks(proof, 0, new Set()),
      cited: [{ position: prompted.position }],
    }, { promptTokensSigned: prompted.signed, promptTokensCounted: prompted.counted });
  }
  const vocab = textModel.info.vocabSize;
  const badToken = tokens.findIndex((t) => t >= vocab);
  const checkable = badToken < 0 ? tokens.length : badToken;
  const positions = Array.from({ length: checkable }, (_, t) => t);
  const tol = tolerancesOf(job, options);
  stats.calibrated = tol.calibrated;
  if (tol.standIn) classDetails.standIn = tol.standIn;
  const f0 = performance.now();
  const { results, forwardTokens } = await recomputePositions(
    textModel,
    promptIds,
    tokens,
    positions,
    job.params,
    tol.sampling,
    { signal: options.signal, winners: countEnds },
  );
  stats.forwardMs = performance.now() - f0;
  stats.forwardTokens = forwardTokens;
  stats.positions = results.length;

  // Scores under each logits precision an honest worker may have sampled from.
  const scores: number[][] = LOGITS_PRECISIONS.map(() => []);
  let distanceSum = 0;
  let scoreSum = 0;
  for (const r of results) {
    const claimed = readFingerprint(proof.fingerprints, r.position);
    let distance = Infinity;
    let score = Infinity;
    r.fingerprints.forEach((fp, h) => {
      const q = fingerprintScore(claimed, fp, tol.fingerprint);
      scores[h].push(q);
      distance = Math.min(distance, fingerprintDistance(claimed, fp));
      score = Math.min(score, q);
    });
    distanceSum += distance;
    scoreSum += score;
    stats.maxDistance = Math.max(stats.maxDistance, distance);
    stats.maxScore = Math.max(stats.maxScore, score);
  }
  stats.meanDistance = results.length ? distanceSum / results.length : 0;
  stats.meanScore = results.length ? scoreSum / results.length : 0;
  const samplingFails = results.filter((r) => !r.sampling.ok).map((r) => r.position);
  if (badToken >= 0) samplingFails.push(badToken);
  stats.samplingFailures = samplingFails.length;

  // Candidate citations; the cheapest to check is the one whose last position is earliest.
  const candidates: { kind: FraudKind; reason: string; cited: number[] }[] = [];
  const violation = fingerprintViolation(scores, tol.fingerprint, receipt.tokenCount);
  // An out-of-vocabulary token is a sampling failure any checker confirms, whatever its
  // tolerances, while the fingerprints were scored only before it: cite it, never a set.
  if (violation && badToken < 0) {
    candidates.push({ kind: "fingerprint", reason: "fingerprint_mismatch", cited: violation });
  }
  if (samplingFails.length > 0) {
    candidates.push({ kind: "sampling", reason: "sampling_rule", cited: [samplingFails[0]] });
  }
  if (candidates.length === 0) {
    // No fault found: paid, unless no class of the profile could have found one (review s80, F1).
    const passed = () =>
      tol.classMissing ? finish("inconclusive", CLASS_UNCALIBRATED) : finish("valid", "ok");
    if (!countEnds) return passed();
    const ends = await endChoicesPlayedOut(
      textModel,
      promptIds,
      tokens,
      results.map((r) => r.winners ?? []),
      job.params,
      { signal: options.signal },
    );
    stats.endPassed = ends.passed;
    stats.endTaken = ends.taken;
    stats.branchPlayOuts = ends.playOuts;
    const record = options.steering ?? { passed: 0, taken: 0 };
    // A worker convicted before stays convicted: its receipts that pass over an end are
    // steering, whatever ends they also take.
    const steering = ends.passed > 0 &&
      (isSteering(record) ||
        isSteering({ passed: record.passed + ends.passed, taken: record.taken + ends.taken }));
    return steering ? finish("invalid", "steering") : passed();
  }
  candidates.sort((a, b) => Math.max(...a.cited) - Math.max(...b.cited));
  const pick = candidates[0];
  const byPos = new Map(results.map((r) => [r.position, r]));
  // A prefix citation names its positions only: the checker recomputes them all anyway.
  const withValues = pick.cited.length <= CITED_VALUES_MAX;
  const cited: CitedPosition[] = pick.cited.map((position) => {
    const r = byPos.get(position);
    return r && withValues
      ? {
        position,
        logProb: finiteOr(r.fingerprint.logProb),
        projection: finiteOr(r.fingerprint.projection),
        lo: finiteOr(r.sampling.lo),
        hi: finiteOr(r.sampling.hi),
      }
      : { position };
  });
  const last = Math.max(...pick.cited);
  const citedChunks = pick.kind === "fingerprint"
    ? new Set(pick.cited.map((p) => Math.floor(p / proof.chunkSize)))
    : new Set<number>();
  return finish("fraud", pick.reason, {
    ...base,
    kind: pick.kind,
    chunks: openChunks(proof, Math.floor(last / proof.chunkSize), citedChunks),
    cited,
  });
}

/** The message of an `invalid / proof_unavailable` verdict on proof data without its input. */
function notHeld(e: JobInputError): string {
  return `the proof data served does not hold the job's input: ${e.message}`;
}

/**
 * For a text job that names an input and proof data served that opens the receipt's commitment:
 * why the data does not hold the input (missing, other bytes, over the job's room), else
 * undefined. Data that does not open the commitment is judged as such elsewhere (`commitment`).
 */
function servedWithoutInput(material: ChallengeMaterial, receipt: Receipt): string | undefined {
  if (material.job.kind !== "text" || material.job.input === undefined) return undefined;
  const parsed = ProofDataSchema.safeParse(material.proof);
  if (!parsed.success) return undefined;
  try {
    assertOpens(parsed.data, receipt.commitment, receipt.tokenCount);
    jobPromptText(material.job, parsed.data.input);
  } catch (e) {
    if (e instanceof JobInputError) return notHeld(e);
    if (e instanceof CommitmentMismatchError) return undefined;
    throw e;
  }
  return undefined;
}

async function validateTensor(
  material: ChallengeMaterial,
  receipt: Receipt,
  model: ProofTensorModel,
  options: ValidationOptions,
  finish: (
    o: VerdictOutcome,
    r: string,
    f?: Omit<FraudProof, "sig" | "validator" | "issuedAt" | "v">,
  ) => ValidationResult,
): Promise<ValidationResult> {
  const claimed = material.output;
  if (!claimed || typeof claimed === "string") return finish("invalid", "proof_unavailable");
  const tol = options.tensor ?? DEFAULT_TENSOR_TOLERANCE;
  const job = material.job as Extract<Job, { kind: "tensor" }>;
  const actual = await model.run(job.inputs);
  if (tensorsDiffer(claimed, actual, tol)) {
    return finish("fraud", "tensor_mismatch", {
      job,
      receipt,
      kind: "tensor",
      chunks: [],
      cited: [],
      tensorOutputs: claimed,
    });
  }
  return finish("valid", "ok");
}

/** True when two sets of named tensors differ beyond tolerance (or in names). */
export function tensorsDiffer(
  claimed: Record<string, TensorData>,
  actual: Record<string, TensorData>,
  tol: TensorTolerance,
): boolean {
  const names = Object.keys(actual).sort();
  if (names.join("\0") !== Object.keys(claimed).sort().join("\0")) return true;
  return names.some((n) => tensorExcess(claimed[n], actual[n], tol.rtol, tol.atol) > 1);
}

/** Cited positions beyond this many carry no recomputed values (a prefix of the mean test). */
const CITED_VALUES_MAX = 8;

/**
 * A recomputed value as a fraud proof may carry it: finite, or left out. The schemas refuse
 * NaN and ±∞, so one such number made the whole signed proof malformed (the accuser refuted).
 */
function finiteOr(x: number): number | undefined {
  return Number.isFinite(x) ? x : undefined;
}

/** A verdict's details without NaN or ±∞ (left out): the verdict schema refuses them. */
function finiteDetails(
  details: Record<string, string | number | boolean>,
): Record<string, string | number | boolean> {
  return Object.fromEntries(
    Object.entries(details).filter(([, v]) => typeof v !== "number" || Number.isFinite(v)),
  );
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
