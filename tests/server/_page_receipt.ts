/**
 * A text job, its output and a signed receipt for them as the node sends it to the dashboard page
 * (JSON: worker and signature in hex), for the tests of the page's in-browser receipt check
 * (`server/dashboard/receipt_check.js`): `dashboard_receipt_check_test.ts`,
 * `dashboard_prompt_tokens_test.ts`.
 *
 * @module
 */
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, receiptSigningBytes, textOutputHash } from "../../protocols/receipt.ts";

/** The job the receipts are for. */
export const JOB = {
  kind: "text",
  model: "bafkmodel",
  prompt: "hello",
  params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
  nonce: "00112233445566778899aabbccddeeff",
} as unknown as TextJob;
/** The job's output. */
export const OUTPUT = "abc";

/** A receipt for JOB and OUTPUT with `change` applied, signed over what it then says. */
export function receiptWith(
  change: (body: Record<string, unknown>) => void,
): Record<string, unknown> {
  const identity = Identity.generate();
  const body: Record<string, unknown> = {
    v: 1,
    kind: "text",
    jobId: jobId(JOB),
    model: JOB.model,
    inputHash: inputHashOf(JOB),
    params: JOB.params,
    outputHash: textOutputHash(OUTPUT),
    commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 16, tokenBytes: 4 },
    tokenCount: 3,
    worker: identity.publicKey,
    timings: { startedAt: 1, firstTokenMs: 2, totalMs: 3 },
  };
  change(body);
  // deno-lint-ignore no-explicit-any
  const sig = identity.sign(receiptSigningBytes(body as any));
  // As the node sends it to the page: JSON, worker and sig in hex.
  return { ...body, worker: toHex(identity.publicKey), sig: toHex(sig) };
}
