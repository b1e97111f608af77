/**
 * One-shot (tensor) jobs: the validator re-executes and compares within tolerance; a wrong
 * output is a fraud proof that an independent checker confirms.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TensorData, type TensorJob } from "../../protocols/job.ts";
import { inputHashOf, signReceipt, tensorOutputHash } from "../../protocols/receipt.ts";
import {
  DEFAULT_TENSOR_TOLERANCE,
  tensorsDiffer,
  validateReceipt,
} from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import type { ProofTensorModel } from "../../proof/_common.ts";

const CID = "bafkreitensormodel";

function f32(values: number[]): TensorData {
  const data = new Uint8Array(values.length * 4);
  const v = new DataView(data.buffer);
  values.forEach((x, i) => v.setFloat32(i * 4, x, true));
  return { type: "float32", dims: [values.length], data };
}

/** y = 2x + 1, with optional relative noise (another machine's rounding). */
function model(noise = 0): ProofTensorModel {
  return {
    info: { cid: CID },
    run: (inputs) => {
      const x = inputs.x.data;
      const v = new DataView(x.buffer, x.byteOffset, x.byteLength);
      const out: number[] = [];
      for (let i = 0; i < x.length; i += 4) out.push((2 * v.getFloat32(i, true) + 1) * (1 + noise));
      return Promise.resolve({ y: f32(out) });
    },
  };
}

const worker = Identity.generate();
const validator = Identity.generate();
const job: TensorJob = {
  kind: "tensor",
  model: CID,
  inputs: { x: f32([1, 2, 3, -4]) },
  nonce: "t",
};

function receiptFor(outputs: Record<string, TensorData>, forJob: TensorJob = job) {
  return signReceipt({
    v: 1,
    kind: "tensor",
    jobId: jobId(forJob),
    model: CID,
    inputHash: inputHashOf(forJob),
    params: null,
    outputHash: tensorOutputHash(outputs),
    commitment: { scheme: "none", root: "00".repeat(32), chunkSize: 1, tokenBytes: 0 },
    tokenCount: 0,
    timings: { startedAt: 0, firstTokenMs: 0, totalMs: 1 },
  }, worker);
}

Deno.test("tensor job: honest output is valid even when re-executed with rounding noise", async () => {
  const output = await model().run(job.inputs);
  const receipt = receiptFor(output);
  const r = await validateReceipt({ job, receipt, output }, model(1e-5), validator);
  assert.equal(r.verdict.outcome, "valid");
});

Deno.test("tensor job: a wrong output is a fraud the independent checker confirms", async () => {
  const output = { y: f32([3, 5, 7, -7.5]) }; // last element should be -7
  const receipt = receiptFor(output);
  const r = await validateReceipt({ job, receipt, output }, model(), validator);
  assert.equal(r.verdict.outcome, "fraud");
  assert.equal(r.verdict.reason, "tensor_mismatch");
  const check = await checkFraudProof(r.fraudProof, model(1e-5));
  assert.equal(check.confirmed, true);
  // Against an honest output the same accusation does not check.
  const honest = await model().run(job.inputs);
  const forged = { ...r.fraudProof!, tensorOutputs: honest };
  assert.equal((await checkFraudProof(forged, model())).confirmed, false);
});

Deno.test("tensor job: an honest output with ±∞ or NaN elements is valid; a changed one is still fraud", async () => {
  // The requester picks the inputs: 2·3e38 + 1 overflows float32 to +∞ and 2·(−3e38) + 1 to −∞.
  // |∞ − ∞| is NaN, which counted as an infinite excess: the bit-identical honest output was
  // "fraud" and the checker confirmed it.
  const edge: TensorJob = { ...job, inputs: { x: f32([1, 3e38, -3e38, NaN]) }, nonce: "edge" };
  const output = await model().run(edge.inputs);
  const receipt = receiptFor(output, edge);
  const r = await validateReceipt({ job: edge, receipt, output }, model(), validator);
  assert.equal(r.verdict.outcome, "valid", r.verdict.reason);
  const tol = DEFAULT_TENSOR_TOLERANCE;
  assert.equal(tensorsDiffer({ y: f32([Infinity, NaN]) }, { y: f32([Infinity, NaN]) }, tol), false);
  for (
    const [claimed, actual] of [
      [-Infinity, Infinity],
      [3e38, Infinity],
      [Infinity, 3e38],
      [NaN, 1],
      [1, NaN],
    ]
  ) {
    assert.equal(
      tensorsDiffer({ y: f32([claimed]) }, { y: f32([actual]) }, tol),
      true,
      `${claimed} vs ${actual}`,
    );
  }
});

Deno.test("tensor job: without the worker's output the validator cannot proceed (invalid, unanswered)", async () => {
  const output = await model().run(job.inputs);
  const receipt = receiptFor(output);
  const r = await validateReceipt({ job, receipt }, model(), validator);
  assert.equal(r.verdict.outcome, "invalid");
  assert.equal(r.verdict.reason, "proof_unavailable");
});

Deno.test("non-float tensors must match byte for byte: tolerance does not apply to them", () => {
  const int32 = (bytes: number[]): TensorData => ({
    type: "int32",
    dims: [bytes.length / 4],
    data: new Uint8Array(bytes),
  });
  const a = int32([1, 0, 0, 0, 2, 0, 0, 0]);
  const tol = DEFAULT_TENSOR_TOLERANCE;
  assert.equal(tensorsDiffer({ y: a }, { y: int32([1, 0, 0, 0, 2, 0, 0, 0]) }, tol), false);
  assert.equal(tensorsDiffer({ y: a }, { y: int32([1, 0, 0, 0, 3, 0, 0, 0]) }, tol), true);
  const longer = { ...int32([1, 0, 0, 0, 2, 0, 0, 0, 0]), dims: [2] };
  assert.equal(tensorsDiffer({ y: a }, { y: longer }, tol), true);
});
