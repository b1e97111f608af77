/**
 * Review s45: accusations against an honest worker. A one-shot model's float32 outputs are
 * compared within tolerance (another machine's rounding is not fraud), but outputs of any other
 * float type — `float64` (a model computing in double), `float16` (a model whose outputs are cast
 * to half) — were compared bit for bit. The requester, who receives the outputs, could sign them
 * into a `tensor` fraud proof and have an honest worker slashed wherever the checker's machine
 * rounded one element differently (and earn half of the slash).
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TensorData, type TensorJob } from "../../protocols/job.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { inputHashOf, signReceipt, tensorOutputHash } from "../../protocols/receipt.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import type { ProofTensorModel } from "../../proof/_common.ts";

const CID = "bafkreis45tensormodel";
const worker = Identity.generate();
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
  return { info: { cid: CID }, run: () => Promise.resolve({ y: encode(type, values) }) };
}

const job: TensorJob = {
  kind: "tensor",
  model: CID,
  inputs: { x: { type: "float32", dims: [1], data: new Uint8Array(4) } },
  nonce: "s45",
};

/** The requester signs the honest worker's outputs into a `tensor` accusation. */
function accusation(outputs: Record<string, TensorData>) {
  const receipt = signReceipt({
    v: 1,
    kind: "tensor",
    jobId: jobId(job),
    model: CID,
    inputHash: inputHashOf(job),
    params: null,
    outputHash: tensorOutputHash(outputs),
    commitment: { scheme: "none", root: "00".repeat(32), chunkSize: 1, tokenBytes: 0 },
    tokenCount: 0,
    timings: { startedAt: 0, firstTokenMs: 0, totalMs: 1 },
  }, worker);
  return signFraudProof({
    v: 1,
    kind: "tensor",
    job,
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
