/**
 * One-shot (tensor) jobs: the validator re-executes and compares within tolerance, whatever the
 * outputs' float type; a wrong output is a fraud proof that an independent checker confirms, and
 * another machine's rounding is never one.
 *
 * @module
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
import { signFraudProof } from "../../protocols/fraud_proof.ts";

// One-shot (tensor) jobs: the validator re-executes and compares within tolerance; a wrong output
// is a fraud proof that an independent checker confirms.

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

// Accusations against an honest worker. A one-shot model's float32 outputs are compared within
// tolerance (another machine's rounding is not fraud), but outputs of any other float type —
// `float64` (a model computing in double), `float16` (a model whose outputs are cast to half) —
// were compared bit for bit. The requester, who receives the outputs, could sign them into a
// `tensor` fraud proof and have an honest worker slashed wherever the checker's machine rounded one
// element differently (and earn half of the slash).

const FLOAT_TYPES_CID = "bafkreis45tensormodel";
const requester = Identity.generate();

function encode(type: "float64" | "float16", values: number[]): TensorData {
  const size = type === "float64" ? 8 : 2;
  const data = new Uint8Array(values.length * size);
  const v = new DataView(data.buffer);
  values.forEach((x, i) =>
    type === "float64" ? v.setFloat64(i * 8, x, true) : v.setFloat16(i * 2, x, true)
  );
  return { type, dims: [values.length], data };
}

/** A model whose one output is `values` in `type`: what this machine computes. */
function modelGiving(type: "float64" | "float16", values: number[]): ProofTensorModel {
  return {
    info: { cid: FLOAT_TYPES_CID },
    run: () => Promise.resolve({ y: encode(type, values) }),
  };
}

const floatTypesJob: TensorJob = {
  kind: "tensor",
  model: FLOAT_TYPES_CID,
  inputs: { x: { type: "float32", dims: [1], data: new Uint8Array(4) } },
  nonce: "s45",
};

/** The requester signs the honest worker's outputs into a `tensor` accusation. */
function accusation(outputs: Record<string, TensorData>) {
  const receipt = signReceipt({
    v: 1,
    kind: "tensor",
    jobId: jobId(floatTypesJob),
    model: FLOAT_TYPES_CID,
    inputHash: inputHashOf(floatTypesJob),
    params: null,
    outputHash: tensorOutputHash(outputs),
    commitment: { scheme: "none", root: "00".repeat(32), chunkSize: 1, tokenBytes: 0 },
    tokenCount: 0,
    timings: { startedAt: 0, firstTokenMs: 0, totalMs: 1 },
  }, worker);
  return signFraudProof({
    v: 1,
    kind: "tensor",
    job: floatTypesJob,
    receipt,
    chunks: [],
    cited: [],
    tensorOutputs: outputs,
    issuedAt: 1,
  }, requester);
}

Deno.test("s45: honest float64 outputs one rounding away from the checker's are not fraud", async () => {
  // Summation order (threads): the last bit of a double differs between two honest machines.
  const mine = [0.1 + 0.2, 1 / 3];
  const theirs = [0.3, 1 / 3];
  assert.notEqual(mine[0], theirs[0]);
  const check = await checkFraudProof(
    accusation({ y: encode("float64", mine) }),
    modelGiving("float64", theirs),
  );
  assert.equal(check.confirmed, false, "an honest worker is not slashed for its last bit");
  assert.equal(check.reason, "not_reproduced");
});

Deno.test("s45: honest float16 outputs one half-precision step away from the checker's are not fraud", async () => {
  // A float32 result just either side of a half-precision midpoint rounds to neighbouring halves.
  const mine = [1.5 + 2 ** -10, -0.25];
  const theirs = [1.5, -0.25];
  const check = await checkFraudProof(
    accusation({ y: encode("float16", mine) }),
    modelGiving("float16", theirs),
  );
  assert.equal(check.confirmed, false, "an honest worker is not slashed for one rounding step");
  // A real difference is still fraud.
  const wrong = await checkFraudProof(
    accusation({ y: encode("float16", [1.75, -0.25]) }),
    modelGiving("float16", theirs),
  );
  assert.equal(wrong.confirmed, true);
});
