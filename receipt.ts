/**
 * Checking what a Veriflow node hands back, alone: the package's `./receipt` entry point. A
 * requester verifies the receipt that came with its job's end (signature, that it is for *its*
 * job, that it matches the output it received) and anyone checks a verdict's or a fraud proof's
 * signature, without a model. It loads no model runtime and no native module: it needs only
 * `--allow-env` (its CBOR encoder reads the environment at import), where the main entry point
 * (`mod.ts`, which loads onnxruntime's native addon) also needs `--allow-read` and `--allow-ffi`.
 *
 * @example Check a receipt you were given
 * ```ts ignore
 * import { StreamClient } from "@veriflow/node/client";
 * import { verifyReceipt } from "@veriflow/node/receipt";
 *
 * using client = await StreamClient.connect("ws://127.0.0.1:8080");
 * const job = client.infer({ prompt: "The history of", max_tokens: 16 });
 * let text = "";
 * for await (const token of job.tokens) text += token.text;
 * const { receipt } = await job.done;
 * // Signature and output only; pass `job` (the TextJob you asked for, docs/API.md says how to
 * // rebuild it) to bind the receipt to your prompt, nonce and params too.
 * const check = verifyReceipt(receipt, { output: text });
 * if (!check.ok) throw new Error(`${check.reason}: ${check.message}`);
 * ```
 *
 * @module
 */
export { VeriflowError } from "./protocols/errors.ts";
export {
  type GenerationParams,
  type Job,
  jobId,
  type JobPrecision,
  type TensorData,
  type TensorJob,
  type TextJob,
} from "./protocols/job.ts";
export {
  inputHashOf,
  MalformedReceiptError,
  parseReceipt,
  type Receipt,
  type ReceiptCheck,
  type ReceiptCommitment,
  type ReceiptFailure,
  receiptId,
  type ReceiptTimings,
  tensorOutputHash,
  textOutputHash,
  type UnsignedReceipt,
  verifyReceipt,
  type VerifyReceiptOptions,
} from "./protocols/receipt.ts";
export {
  MalformedVerdictError,
  parseVerdict,
  type Verdict,
  verdictId,
  type VerdictOutcome,
  verifyVerdict,
} from "./protocols/verdict.ts";
export {
  type CitedPosition,
  type FraudChunk,
  type FraudKind,
  type FraudProof,
  fraudProofHash,
  MalformedFraudProofError,
  parseFraudProof,
  verifyFraudProofSignature,
} from "./protocols/fraud_proof.ts";
export type { ServedProof } from "./proof/served_proof.ts";
export type { ProofData } from "./proof/commitment.ts";
