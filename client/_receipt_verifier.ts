/**
 * The receipt check (`verifyReceipt`, `protocols/receipt.ts`) for a program that streams with the
 * client and runs with `--allow-net` alone, as `cli.ts infer` does: the check's CBOR encoder
 * (cbor-x) reads an environment variable as it loads, so it is loaded only where the process may
 * read that variable, and never made to ask for it (on a terminal Deno would stop and prompt; in a
 * pipe it would throw). Not part of the public API: a program of its own imports
 * `@veriflow/node/receipt`.
 *
 * @module
 */
import type { ReceiptCheck } from "../protocols/receipt.ts";

/** The environment variable the check's CBOR encoder reads as it loads. */
export const RECEIPT_CHECK_ENV_VARIABLE = "CBOR_NATIVE_ACCELERATION_DISABLED";

/**
 * What a client that streamed a job knows of it without rebuilding it (its nonce may be the
 * node's): the job id its `done` named, the model its `start` named, and the `max_tokens` it
 * asked for (or the node's default). A receipt for another job, model or bound signs someone
 * else's work, however well it signs the text (review s77 vclient, F3).
 */
export interface ReceiptJobFacts {
  /** The `done`'s (and `start`'s) `job_id`. */
  jobId: string;
  /** The `start`'s `model` (its CID). */
  model: string;
  /** The job's `max_tokens`, as the node filled it in. */
  maxTokens: number;
}

/**
 * Checks a receipt as it came (JSON form) against the text it should sign and, when `job` is
 * given, against what the client knows of the job.
 */
export type ReceiptVerifier = (
  receipt: unknown,
  output: string,
  job?: ReceiptJobFacts,
) => ReceiptCheck;

/**
 * The receipt check, or undefined when the process may not read
 * {@link RECEIPT_CHECK_ENV_VARIABLE} (run without `--allow-env`): then the receipt is not checked
 * here, and the caller says so.
 *
 * @example
 * ```ts ignore
 * const verify = await loadReceiptVerifier();
 * console.log(verify === undefined ? "not checked" : verify(done.receipt, text));
 * ```
 */
export async function loadReceiptVerifier(): Promise<ReceiptVerifier | undefined> {
  const allowed = Deno.permissions.querySync({ name: "env", variable: RECEIPT_CHECK_ENV_VARIABLE });
  if (allowed.state !== "granted") return undefined;
  const { verifyReceipt } = await import("../protocols/receipt.ts");
  return (receipt, output, job) => {
    const check = verifyReceipt(receipt, { output });
    return !check.ok || job === undefined ? check : receiptJobCheck(receipt, job) ?? check;
  };
}

/**
 * Where a receipt that passed `verifyReceipt` (so its shape is a receipt's) contradicts `job`:
 * the failure, named as `verifyReceipt` names it when given the whole job; undefined where it
 * agrees. Hex ids are compared as the wire writes them (lower case).
 */
export function receiptJobCheck(receipt: unknown, job: ReceiptJobFacts): ReceiptCheck | undefined {
  const signed = receipt as { jobId: string; model: string; params: { maxTokens: number } | null };
  if (signed.jobId !== job.jobId) {
    return {
      ok: false,
      reason: "job_mismatch",
      message: `the receipt is for job ${signed.jobId}, not this job (${job.jobId})`,
    };
  }
  if (signed.model !== job.model) {
    return {
      ok: false,
      reason: "model_mismatch",
      message: `the receipt names model ${signed.model}, not the job's (${job.model})`,
    };
  }
  if (signed.params?.maxTokens !== job.maxTokens) {
    return {
      ok: false,
      reason: "params_mismatch",
      message: `the receipt's maxTokens is ${signed.params?.maxTokens ?? "absent"}, not the ` +
        `job's ${job.maxTokens}`,
    };
  }
  return undefined;
}
