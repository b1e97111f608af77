import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  samplesRootOf,
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  verifyTrainingReceipt,
} from "../../training/training_receipt.ts";

const delta = new TextEncoder().encode("VFD1 pretend delta");
const MODEL = "bafkreiabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu";

function receipt(identity = Identity.generate()): TrainingReceipt {
  return signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: 3,
    startModel: MODEL,
    steps: 2,
    dataSeed: 42,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, batchSize: 2 },
    samplesRoot: samplesRootOf(["ca01:0", "ca01:65", "cb02:130", "ca01:0"]),
    sampleCount: 4,
    checkpointsRoot: sha256Hex(new TextEncoder().encode("states")),
    shardRoot: sha256Hex(new TextEncoder().encode("shard")),
    shardSize: 100,
    losses: [5.5, 5.1],
    deltaHash: sha256Hex(delta),
    deltaBytes: delta.length,
  }, identity);
}

Deno.test("a signed training receipt verifies against its start model and its delta", () => {
  const r = receipt();
  const check = verifyTrainingReceipt(r, { startModel: MODEL, delta });
  assert.ok(check.ok, JSON.stringify(check));
});

Deno.test("a tampered training receipt fails: each signed field, the delta, the model", () => {
  const r = receipt();
  const tampered: [string, unknown][] = [
    ["losses", [5.5, 4.0]],
    ["round", 4],
    ["dataSeed", 43],
    ["samplesRoot", samplesRootOf(["ca01:0"])],
    ["checkpointsRoot", sha256Hex(new Uint8Array(2))],
    ["shardRoot", sha256Hex(new Uint8Array(3))],
    ["shardSize", 101],
    ["hyper", { ...r.hyper, learningRate: 1e-2 }],
    ["deltaHash", sha256Hex(new Uint8Array(1))],
    ["trainer", Identity.generate().publicKey],
  ];
  for (const [field, value] of tampered) {
    const check = verifyTrainingReceipt({ ...r, [field]: value });
    assert.equal(check.ok ? "ok" : check.reason, "bad_signature", field);
  }
  // Control: the same receipt, copied field by field, still verifies.
  assert.ok(verifyTrainingReceipt({ ...r }).ok);
  const other = verifyTrainingReceipt(r, { delta: Uint8Array.of(...delta, 0) });
  assert.equal(other.ok ? "ok" : other.reason, "delta_mismatch");
  const model = verifyTrainingReceipt(r, { startModel: MODEL + "x" });
  assert.equal(model.ok ? "ok" : model.reason, "model_mismatch");
});

Deno.test("a receipt whose loss trace or sample count does not match H is malformed", () => {
  const r = receipt();
  for (
    const bad of [{ ...r, losses: [5.5] }, { ...r, sampleCount: 5 }, {
      ...r,
      sig: new Uint8Array(3),
    }]
  ) {
    const check = verifyTrainingReceipt(bad);
    assert.equal(check.ok ? "ok" : check.reason, "malformed");
  }
});

Deno.test("the samples root commits to order and ids", () => {
  assert.notEqual(samplesRootOf(["a:0", "b:0"]), samplesRootOf(["b:0", "a:0"]));
  assert.notEqual(samplesRootOf(["a:0"]), samplesRootOf(["a:1"]));
});
