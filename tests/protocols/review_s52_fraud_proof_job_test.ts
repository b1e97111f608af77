/**
 * Review s52 (wire): a fraud proof carries its job loosely (the checker re-derives the job's id
 * from it, so fields a later version adds must pass), but a job can honestly hold only so many
 * values. Unbounded, a `validation.fraud_proof` whose job held ~100,000 extra fields passed the
 * schema, and its checker encoded and hashed all of them before finding the job's id wrong, each
 * time a peer sent it. Now the job's values are counted before its schema reads them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FraudProofSchema, MAX_FRAUD_PROOF_JOB_VALUES } from "../../protocols/fraud_proof.ts";

/** A text job as a fraud proof carries it, with `extra` more fields. */
function job(extra: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    kind: "text",
    model: "bafkmodel",
    nonce: "n",
    prompt: "The history of",
    params: { maxTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stop: ["\n\n"] },
  };
  for (let i = 0; i < extra; i++) out[`f${i}`] = i;
  return out;
}

/** The schema's complaints about the proof's `job` (the rest of this stand-in proof is empty). */
function jobIssues(value: Record<string, unknown>): string[] {
  const parsed = FraudProofSchema.safeParse({ v: 1, kind: "receipt", job: value });
  assert.equal(parsed.success, false, "the stand-in proof has no receipt: never valid");
  return parsed.error!.issues.filter((i) => i.path[0] === "job").map((i) => i.message);
}

Deno.test("review s52: a fraud proof whose job holds 100,000 extra fields is refused at the job, before its values are read", () => {
  const issues = jobIssues(job(100_000));
  assert.equal(issues.length, 1, `the job is refused: ${JSON.stringify(issues)}`);
  assert.match(issues[0], /at most \d+ values/);
});

Deno.test("review s52: a fraud proof's job with a later version's few extra fields still passes its schema", () => {
  assert.deepEqual(jobIssues(job(10)), []);
  assert.ok(MAX_FRAUD_PROOF_JOB_VALUES >= 256, "room for an honest job's values");
});
