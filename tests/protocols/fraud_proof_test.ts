import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import {
  FRAUD_PROOF_VERSION,
  MalformedFraudProofError,
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
