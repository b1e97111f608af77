/**
 * Fraud proofs (`protocols/fraud_proof.ts`): their encoding, and the job they carry loosely but
 * within bounds.
 */
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import {
  FRAUD_PROOF_VERSION,
  FraudProofSchema,
  MalformedFraudProofError,
  MAX_FRAUD_PROOF_JOB_VALUES,
  parseFraudProof,
  signFraudProof,
  verifyFraudProofSignature,
} from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS, jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";

const job: TextJob = {
  kind: "text",
  model: "bafkreimodel",
  prompt: "é 😀",
  params: { ...DEFAULT_GENERATION_PARAMS, stop: ["ü"] },
  nonce: "n1",
};

const receipt = signReceipt({
  v: 1,
  kind: "text",
  jobId: jobId(job),
  model: job.model,
  inputHash: inputHashOf(job),
  params: job.params,
  outputHash: textOutputHash("out"),
  commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 32, tokenBytes: 2 },
  tokenCount: 3,
  timings: { startedAt: 1, firstTokenMs: 2, totalMs: 3 },
}, Identity.generate());

const proof = signFraudProof({
  v: FRAUD_PROOF_VERSION,
  kind: "output",
  job,
  receipt,
  chunks: [],
  cited: [],
  issuedAt: 10,
}, Identity.generate());

Deno.test("fraud proof: a proof about a non-ASCII job verifies after a CBOR round trip", () => {
  assert.ok(verifyFraudProofSignature(proof));
  assert.ok(verifyFraudProofSignature(decodeCbor(encodeCbor(proof))));
});

Deno.test("fraud proof: a lone surrogate anywhere in the loosely checked job makes it malformed, not a throw", () => {
  for (
    const bad of [
      { ...proof, job: { ...job, prompt: "hi \uD800" } },
      { ...proof, job: { ...job, params: { ...job.params, stop: ["\uDC00"] } } },
      { ...proof, job: { ...job, smuggled: { "\uD800": 1 } } },
      {
        ...proof,
        tensorOutputs: { "\uD800": { type: "float32", dims: [1], data: new Uint8Array(4) } },
      },
    ]
  ) {
    assert.equal(verifyFraudProofSignature(bad), false);
    assert.throws(() => parseFraudProof(bad), MalformedFraudProofError);
  }
});

// A fraud proof carries its job loosely (the checker re-derives the job's id from it, so fields a
// later version adds must pass), but a job can honestly hold only so many values. Unbounded, a
// `validation.fraud_proof` whose job held ~100,000 extra fields passed the schema, and its checker
// encoded and hashed all of them before finding the job's id wrong, each time a peer sent it. Now
// the job's values are counted before its schema reads them.
//
// @module

/** A text job as a fraud proof carries it, with `extra` more fields. */
function jobFraudProof(extra: number): Record<string, unknown> {
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

Deno.test("a fraud proof whose job holds 100,000 extra fields is refused at the job, before its values are read", () => {
  const issues = jobIssues(jobFraudProof(100_000));
  assert.equal(issues.length, 1, `the job is refused: ${JSON.stringify(issues)}`);
  assert.match(issues[0], /at most \d+ values/);
});

Deno.test("a fraud proof's job with a later version's few extra fields still passes its schema", () => {
  assert.deepEqual(jobIssues(jobFraudProof(10)), []);
  assert.ok(MAX_FRAUD_PROOF_JOB_VALUES >= 256, "room for an honest job's values");
});
