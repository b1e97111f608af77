/**
 * A signed text receipt for tests of the receipt's wire form and checks (`receipt_test.ts`,
 * `receipt_errors_test.ts`, `receipt_entry_test.ts`): its job and output, and the receipt a worker
 * signs for them, with any field overridden.
 */
import type { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, signReceipt, textOutputHash } from "../../protocols/receipt.ts";

/** The job {@link sampleReceipt} is for, unless it is given another. */
export const SAMPLE_JOB: TextJob = {
  kind: "text",
  model: "bafkreiaic6elys7yxdtflkrp554tnfpwwr5es7rueyujkdigjkxakzqc2u",
  prompt: "hi",
  params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
  nonce: "x",
};

/** The output {@link sampleReceipt} commits to, unless it is given another. */
export const SAMPLE_OUTPUT = "hello";

/** `worker`'s signed receipt for `job` and `output` (5 tokens), fields in `overrides` replaced. */
export function sampleReceipt(
  worker: Identity,
  overrides: Partial<Receipt> = {},
  job: TextJob = SAMPLE_JOB,
  output: string = SAMPLE_OUTPUT,
): Receipt {
  return signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(output),
    commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 32, tokenBytes: 2 },
    tokenCount: 5,
    timings: { startedAt: 1, firstTokenMs: 2, totalMs: 3 },
    ...overrides,
  }, worker);
}
