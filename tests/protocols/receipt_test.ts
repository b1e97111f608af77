import { SAMPLE_JOB, SAMPLE_OUTPUT, sampleReceipt } from "./_sample_receipt.ts";
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import {
  inputHashOf,
  MalformedReceiptError,
  parseReceipt,
  type Receipt,
  receiptContradiction,
  verifyReceipt,
} from "../../protocols/receipt.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";

const worker = Identity.generate();
const job = SAMPLE_JOB;
const output = SAMPLE_OUTPUT;

function make(overrides: Partial<Receipt> = {}): Receipt {
  return sampleReceipt(worker, overrides);
}

Deno.test("receipt: a signed receipt verifies against its job and output, also after a CBOR round trip", () => {
  const r = make();
  assert.ok(verifyReceipt(r, { job, output }).ok);
  const wire = decodeCbor(encodeCbor(r));
  assert.ok(verifyReceipt(wire, { job, output, worker: worker.publicKey }).ok);
  assert.deepEqual(parseReceipt(wire).jobId, r.jobId);
});

Deno.test("receipt: each mismatch is named", () => {
  const r = make();
  const check = (value: unknown, o = {}) => {
    const c = verifyReceipt(value, { job, output, ...o });
    return c.ok ? "ok" : c.reason;
  };
  assert.equal(check({ ...r, tokenCount: 6 }), "bad_signature");
  assert.equal(check(r, { worker: Identity.generate().publicKey }), "wrong_worker");
  assert.equal(check(r, { job: { ...job, nonce: "y" } }), "job_mismatch");
  assert.equal(check(r, { output: "hellO" }), "output_mismatch");
  assert.equal(check(make({ model: "bafkreiother" })), "model_mismatch");
  assert.equal(check(make({ inputHash: "00".repeat(32) })), "input_mismatch");
  assert.equal(check(make({ params: { ...job.params, seed: 1 } })), "params_mismatch");
  assert.equal(check(make({ tokenCount: 9 })), "token_count");
  assert.equal(check({ ...r, sig: "nope" }), "malformed");
  assert.throws(() => parseReceipt({}), MalformedReceiptError);
});

Deno.test("a receipt's input commitment is keyed by the job's nonce: a prompt dictionary alone cannot recover it", () => {
  const job: TextJob = {
    kind: "text",
    model: "bafkreimodel",
    prompt: "What is the capital of France?",
    params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: crypto.randomUUID(),
  };
  const committed = inputHashOf(job);
  const dictionary = ["What is the capital of Spain?", "What is the capital of France?"];
  // The unkeyed hash a dictionary attack would try, and the same input under another nonce.
  for (const guess of dictionary) {
    assert.notEqual(sha256Hex(new TextEncoder().encode(guess)), committed);
  }
  assert.notEqual(inputHashOf({ ...job, nonce: "another" }), committed);
  assert.equal(inputHashOf({ ...job }), committed, "whoever holds the job can check it");
});

Deno.test("receipt: verifyReceipt answers, never throws, when a string is not well-formed Unicode", () => {
  const r = make();
  const check = (value: unknown, o = {}) => {
    const c = verifyReceipt(value, o);
    return c.ok ? "ok" : c.reason;
  };
  // A receipt as JSON (how clients hand it over) can hold a lone surrogate: no signing bytes.
  const json = { ...r, worker: toHex(r.worker), sig: toHex(r.sig) };
  assert.equal(check(json), "ok");
  assert.equal(check({ ...json, model: "bafk\uD800" }), "malformed");
  assert.equal(
    check({ ...json, commitment: { ...r.commitment, scheme: "vf\uDC00" } }),
    "malformed",
  );
  // A job or tensor outputs with one have no id or hash, so the receipt is not for them.
  assert.equal(check(r, { job: { ...job, prompt: "hi\uD800" } }), "job_mismatch");
  assert.equal(
    check(r, { job: { ...job, params: { ...job.params, stop: ["\uDFFF"] } } }),
    "job_mismatch",
  );
  const tensor = { type: "float32", dims: [1], data: new Uint8Array(4) };
  assert.equal(check(r, { output: { "\uD800": tensor } }), "output_mismatch");
  assert.throws(() => parseReceipt({ ...json, model: "\uD800" }), MalformedReceiptError);
});

Deno.test("receipt: a contradiction is named only for the worker's validly signed receipt of that very job", () => {
  // The worker's own signature on a receipt the job does not allow is evidence on its face.
  assert.equal(receiptContradiction(make({ tokenCount: 9 }), job), "token_count");
  assert.equal(receiptContradiction(make({ model: "bafkreiother" }), job), "model_mismatch");
  assert.equal(
    receiptContradiction(make({ params: { ...job.params, seed: 1 } }), job),
    "params_mismatch",
  );
  assert.equal(receiptContradiction(make({ inputHash: "00".repeat(32) }), job), "input_mismatch");
  assert.equal(receiptContradiction(make({ kind: "tensor" }), job), "job_mismatch");
  const signed = make({ tokenCount: 9 });
  const json = { ...signed, worker: toHex(signed.worker), sig: toHex(signed.sig) };
  assert.equal(receiptContradiction(json, job), "token_count", "the JSON form too");
  // Not evidence: a receipt that agrees, one whose signature fails (anyone could have written
  // it), one for another job, a malformed one, or a job that has no id.
  assert.equal(receiptContradiction(make(), job), null);
  assert.equal(receiptContradiction({ ...signed, tokenCount: 10 }, job), null);
  assert.equal(receiptContradiction({ ...signed, sig: new Uint8Array(64) }, job), null);
  assert.equal(receiptContradiction(signed, { ...job, nonce: "y" }), null);
  assert.equal(receiptContradiction({ ...signed, v: 2 }, job), null);
  assert.equal(receiptContradiction(null, job), null);
  assert.equal(receiptContradiction(signed, { ...job, prompt: "hi\uD800" }), null);
  assert.equal(receiptContradiction(signed, { kind: "text" } as unknown as TextJob), null);
});
