/**
 * What a validator that lacks a receipt's model can still decide when it takes over a peer's
 * "proof withheld" claim (`invalid / proof_unavailable`): whether the worker serves its proof
 * data. That claim is about availability, and availability needs no model: signed proof data
 * that opens the receipt's commitment answers it (the challenge is cleared, the job paid when
 * its window closes), signed data that does not open it is a `commitment` fraud proof (checked
 * without a model anywhere), and no data by the deadline is the same withholding a validator
 * with the model would find. Used by `validator_actor.ts`.
 *
 * @module
 */
import type { Identity } from "../protocols/identity.ts";
import type { Receipt } from "../protocols/receipt.ts";
import { receiptId } from "../protocols/receipt.ts";
import type { VerdictOutcome } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import { assertOpens, CommitmentMismatchError } from "../proof/commitment.ts";
import {
  type ChallengeMaterial,
  emptyValidationStats,
  PROOF_EXPIRED,
  signValidationResult,
  validateReceipt,
  type ValidationOptions,
  type ValidationResult,
} from "../proof/validation.ts";

/**
 * Reason of the verdict a model-less validator signs when the worker served proof data that
 * opens its commitment: the inference itself is not judged (`inconclusive`), but the claim
 * that the data was withheld is answered, so the challenge is cleared.
 */
export const PROOF_SERVED = "proof_served";

/**
 * Check only that the worker served its proof data, without the model. `material.proof` /
 * `proofSig` must be what the worker served, already checked to be signed by it for this
 * receipt (`verifyServedProof`); absent means withheld, or — with `workerUnreachable` — this
 * validator had no route to anyone for the whole deadline.
 *
 * @returns the signed verdict: `inconclusive / proof_served` (served and opens),
 * `fraud / commitment_mismatch` with a `commitment` fraud proof (served, does not open),
 * `invalid / proof_unavailable` (withheld), `inconclusive / worker_unreachable` (this validator
 * was cut off), `inconclusive / proof_expired` (asked after the worker may rightly have deleted it); a receipt that fails its model-free checks gets what {@link validateReceipt} says.
 */
export async function checkServed(
  material: ChallengeMaterial,
  validator: Identity,
  options: ValidationOptions = {},
): Promise<ValidationResult> {
  // The receipt's own checks (binding to its job, a delivered output's hash) need no model:
  // anything but "no model" from them is their outcome.
  const first = await validateReceipt(material, undefined, validator, options);
  if (first.verdict.outcome !== "inconclusive" || first.verdict.reason !== "model_unavailable") {
    return first;
  }
  const started = performance.now();
  const receipt = material.receipt as Receipt;
  const subjectId = receiptId(receipt);
  const now = options.now ?? Date.now;
  const finish = (
    outcome: VerdictOutcome,
    reason: string,
    fraud?: Omit<FraudProof, "sig" | "validator" | "issuedAt" | "v">,
    details: Record<string, string | number | boolean> = {},
  ): ValidationResult => {
    const stats = emptyValidationStats();
    stats.totalMs = performance.now() - started;
    return signValidationResult({
      validator,
      subjectId,
      target: receipt.worker,
      outcome,
      reason,
      fraud,
      details: { ...options.details, ...details, modelChecked: false },
      now,
      stats,
    });
  };
  if (material.job.kind === "tensor") {
    // A tensor job's "proof" is its delivered output (its hash was checked above).
    const output = material.output;
    return output && typeof output !== "string"
      ? finish("inconclusive", PROOF_SERVED)
      : finish("invalid", "proof_unavailable");
  }
  const { proof, proofSig } = material;
  if (proof === undefined || proofSig === undefined) {
    if (material.workerUnreachable) return finish("inconclusive", "worker_unreachable");
    return material.proofExpired
      ? finish("inconclusive", PROOF_EXPIRED)
      : finish("invalid", "proof_unavailable");
  }
  try {
    assertOpens(proof, receipt.commitment, receipt.tokenCount);
  } catch (e) {
    if (!(e instanceof CommitmentMismatchError)) throw e;
    // Signed by the worker as what it served: a mismatch anyone can check, model or not.
    return finish("fraud", "commitment_mismatch", {
      job: material.job,
      receipt,
      kind: "commitment",
      chunks: [],
      cited: [],
      served: { proof, sig: proofSig },
    }, { message: e.message });
  }
  return finish("inconclusive", PROOF_SERVED);
}
