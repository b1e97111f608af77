import assert from "node:assert/strict";
import type { GptWeights } from "../../training/gpt_weights.ts";
import {
  decodeInt8Delta,
  dequantizeDelta,
  encodeInt8Delta,
  quantizeDelta,
} from "../../training/int8_delta.ts";
import { TrainingError } from "../../training/training_error.ts";
import { averageDeltas, outerStep, quantizeOuterUpdate } from "../../training/outer_step.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** A delta with rows of very different magnitudes, a zero row, and a 1-D tensor. */
function sampleDelta(): GptWeights {
  const m = new Float32Array(4 * 5);
  for (let i = 0; i < m.length; i++) m[i] = Math.sin(i * 1.7) * 10 ** (Math.floor(i / 5) - 3);
  m.fill(0, 10, 15);
  return new Map([
    ["a.weight", { shape: [4, 5], data: m }],
    ["a.bias", { shape: [3], data: Float32Array.of(0.5, -0.25, 1e-6) }],
  ]);
}

Deno.test("an int8 delta round-trips through its bytes within half a row scale of every value", () => {
  const delta = sampleDelta();
  const q = quantizeDelta(delta);
  const back = dequantizeDelta(decodeInt8Delta(encodeInt8Delta(q)));
  for (const [name, { shape, data }] of delta) {
    const t = q.find((x) => x.name === name)!;
    const width = data.length / t.scales.length;
    const got = back.get(name)!;
    assert.deepEqual(got.shape, shape);
    for (let i = 0; i < data.length; i++) {
      const bound = t.scales[Math.floor(i / width)] / 2 + 1e-12;
      assert.ok(Math.abs(got.data[i] - data[i]) <= bound, `${name}[${i}]`);
    }
  }
  // Per-row scales: the 1e-3 row keeps its precision next to the 1e0 row.
  const small = back.get("a.weight")!.data[1];
  assert.ok(Math.abs(small - delta.get("a.weight")!.data[1]) < 1e-5);
});

Deno.test("a whole model's int8 delta is about a quarter of its float32 size", () => {
  const delta = seededGptWeights(TEST_ARCH, 1);
  const floats = [...delta.values()].reduce((n, t) => n + t.data.length, 0);
  const bytes = encodeInt8Delta(quantizeDelta(delta)).length;
  assert.ok(bytes < floats * 4 * 0.3, `${bytes} bytes for ${floats} floats`);
});

Deno.test("malformed delta bytes are refused with bad_delta", () => {
  const good = encodeInt8Delta(quantizeDelta(sampleDelta()));
  for (
    const bad of [good.subarray(0, good.length - 1), Uint8Array.of(...good, 0), new Uint8Array(8)]
  ) {
    assert.throws(
      () => decodeInt8Delta(bad),
      (e) => e instanceof TrainingError && e.code === "bad_delta",
    );
  }
});

Deno.test("the outer step averages deltas and adds Nesterov momentum", () => {
  const w: GptWeights = new Map([["x", { shape: [2], data: Float32Array.of(1, 1) }]]);
  const d1: GptWeights = new Map([["x", { shape: [2], data: Float32Array.of(0.2, 0) }]]);
  const d2: GptWeights = new Map([["x", { shape: [2], data: Float32Array.of(0.4, 0.2) }]]);
  assert.deepEqual([...averageDeltas([d1, d2]).get("x")!.data], [
    0.30000001192092896,
    0.10000000149011612,
  ]);
  const hyper = { learningRate: 0.5, momentum: 0.9 };
  const first = outerStep(w, [d1, d2], undefined, hyper);
  // v = 0.3; θ = 1 − 0.5·(0.3 + 0.9·0.3) = 0.715
  assert.ok(Math.abs(first.weights.get("x")!.data[0] - 0.715) < 1e-6);
  const second = outerStep(first.weights, [d1, d2], first.momentum, hyper);
  // v = 0.9·0.3 + 0.3 = 0.57; θ = 0.715 − 0.5·(0.3 + 0.9·0.57) = 0.3085
  assert.ok(Math.abs(second.weights.get("x")!.data[0] - 0.3085) < 1e-6);
});

Deno.test("a row whose maximum is subnormal never wraps int8: no value comes back with its sign flipped, every q within ±127", () => {
  let flipped = 0;
  for (let k = 1; k < 5000; k++) {
    // Row maxima k·2^−149: every subnormal float32 up to ~7e−42, where fround(max / 127) loses
    // most of its bits and x / scale rounds past 127.
    const x = Math.fround(k * 2 ** -149);
    const delta = new Map([["w", { shape: [1, 2], data: Float32Array.of(x, -x) }]]);
    const [t] = quantizeDelta(delta);
    assert.ok(t.values.every((q) => Math.abs(q) <= 127), `k = ${k}: q ${[...t.values]}`);
    const back = dequantizeDelta([t]).get("w")!.data;
    if (back[0] < 0 || back[1] > 0) flipped++;
  }
  assert.equal(flipped, 0, "values whose sign flipped");
  // The outer update uses the same quantizer: its rebuilt step keeps the sign too.
  const x = Math.fround(189 * 2 ** -149);
  const start = new Map([["w", { shape: [1, 2], data: Float32Array.of(0, 0) }]]);
  const next = new Map([["w", { shape: [1, 2], data: Float32Array.of(-x, x) }]]);
  const rebuilt = quantizeOuterUpdate(start, next).weights.get("w")!.data;
  assert.ok(rebuilt[0] <= 0 && rebuilt[1] >= 0, `rebuilt ${[...rebuilt]}`);
});
