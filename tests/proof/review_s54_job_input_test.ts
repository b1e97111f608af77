/**
 * Review s54 (job input by CID): the checks a job's input needs hold wherever its proof data is
 * judged — the job and its input within one network job's bytes (so any fraud proof about it
 * reaches every ledger), and proof data served without the input is withheld data for a
 * validator that lacks the model too (the input is checked by its hash, no model needed).
 */
import assert from "node:assert/strict";
import { checkServed } from "../../actors/withheld_check.ts";
import { cidOf } from "../../protocols/cid.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobBytes, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { jobPromptText } from "../../protocols/job_input.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { proveJob, type ProverChunk } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { loadFixture } from "./_models.ts";

const PARAMS = { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] };

/** A job whose bytes and input's bytes together pass `MAX_NETWORK_JOB_BYTES`, each within its own bound. */
function oversizeJob(model: string): { job: TextJob; input: Uint8Array } {
  const input = new Uint8Array(200 * 1024).fill(0x61); // "aaa…": text, under one chunk
  const job: TextJob = {
    kind: "text",
    model,
    prompt: "b".repeat(300 * 1024),
    params: PARAMS,
    nonce: "oversize-1",
    input: cidOf(input),
  };
  assert.ok(jobBytes(job) <= MAX_NETWORK_JOB_BYTES, "the job alone may cross nodes");
  assert.ok(jobBytes(job) + input.length > MAX_NETWORK_JOB_BYTES);
  return { job, input };
}

/** One token with a logits row of `vocab` (what a worker that ran nothing can still sign). */
async function* oneToken(vocab: number): AsyncIterable<ProverChunk> {
  yield { index: 0, tokenId: 65, text: "A", logits: new Float32Array(vocab) };
}

Deno.test("review s54: jobPromptText refuses an input that with its job passes MAX_NETWORK_JOB_BYTES (input_too_large)", () => {
  const { job, input } = oversizeJob("m");
  let code = "accepted";
  try {
    jobPromptText(job, input);
  } catch (e) {
    code = (e as VeriflowError).code;
  }
  assert.equal(code, "input_too_large");
});

Deno.test("review s54: a receipt for a job whose input passes the network job bound is not a fraud proof no frame carries, but withheld-invalid", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const { job, input } = oversizeJob(cid);
  const worker = Identity.generate();
  // A cheat skips the worker's refusal (local_port's room) and signs a receipt anyway.
  const { receipt, proof } = await proveJob(job, oneToken(f.honest.info.vocabSize), worker, {
    input,
  });
  const served = signServedProof(receiptId(receipt), proof, worker);
  const result = await validateReceipt(
    { job, receipt, proof: served.proof, proofSig: served.sig, output: "A" },
    f.honestThreads,
    Identity.generate(),
  );
  assert.deepEqual(
    [result.verdict.outcome, result.verdict.reason],
    ["invalid", "proof_unavailable"],
    `a fraud proof of ${
      result.fraudProof ? jobBytes(job) + input.length : 0
    }+ bytes of job and input`,
  );
  assert.equal(result.fraudProof, undefined);
});

Deno.test("review s54: a validator without the model does not clear proof data served without the job's input", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const stored = new TextEncoder().encode("Notes: the river rose.\n");
  const job: TextJob = {
    kind: "text",
    model: cid,
    prompt: "Then ",
    params: PARAMS,
    nonce: "served-1",
    input: cidOf(stored),
  };
  const worker = Identity.generate();
  const { receipt, proof } = await proveJob(job, oneToken(f.honest.info.vocabSize), worker, {
    input: stored,
  });
  const validator = Identity.generate();
  const whole = signServedProof(receiptId(receipt), proof, worker);
  const cleared = await checkServed(
    { job, receipt, proof: whole.proof, proofSig: whole.sig, output: "A" },
    validator,
  );
  assert.equal(cleared.verdict.reason, "proof_served", "whole proof data clears the claim");
  const { input: _input, ...bare } = proof;
  const stripped = signServedProof(receiptId(receipt), bare, worker);
  const withheld = await checkServed(
    { job, receipt, proof: stripped.proof, proofSig: stripped.sig, output: "A" },
    validator,
  );
  assert.deepEqual(
    [withheld.verdict.outcome, withheld.verdict.reason],
    ["invalid", "proof_unavailable"],
    "what a validator with the model finds",
  );
  const other = new TextEncoder().encode("other bytes");
  const wrong = signServedProof(receiptId(receipt), { ...proof, input: other }, worker);
  const mismatched = await checkServed(
    { job, receipt, proof: wrong.proof, proofSig: wrong.sig, output: "A" },
    validator,
  );
  assert.deepEqual(
    [mismatched.verdict.outcome, mismatched.verdict.reason],
    ["invalid", "proof_unavailable"],
  );
});
