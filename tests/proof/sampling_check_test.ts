import assert from "node:assert/strict";
import { checkSampledToken } from "../../proof/sampling_check.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { gaussian } from "./_models.ts";

const rows = (n: number, seed: number) => {
  const g = gaussian(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: 260 }, () => 2.5 * g()));
};

Deno.test("sampling check: greedy accepts the argmax and near-ties, rejects a clear loser", () => {
  const p = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const l = new Float32Array([1, 3, 2.95, -1]);
  assert.ok(checkSampledToken(l, 1, 0, p).ok);
  assert.ok(checkSampledToken(l, 2, 0, p).ok, "within 2ε of the max");
  assert.equal(checkSampledToken(l, 0, 0, p).ok, false);
  assert.equal(checkSampledToken(l, 9, 0, p).ok, false, "outside the vocabulary");
});

Deno.test("sampling check: every token the sampler draws passes, also with perturbed logits", () => {
  const g = gaussian(5);
  const settings = [
    { temperature: 0.7, topK: 0, topP: 1 },
    { temperature: 1, topK: 10, topP: 1 },
    { temperature: 1.2, topK: 0, topP: 0.8 },
    { temperature: 0.3, topK: 5, topP: 0.9 },
  ];
  let t = 0;
  for (const s of settings) {
    for (const row of rows(150, t + 1)) {
      const params = { ...s, seed: 77 };
      const { token } = sampleToken(row, params, t);
      const noisy = row.map((v) => v + 0.01 * Math.max(-1, Math.min(1, g())));
      assert.ok(checkSampledToken(noisy, token, t, params).ok, `t=${t} ${JSON.stringify(s)}`);
      t++;
    }
  }
});

Deno.test("sampling check: tokens drawn with another seed fail at most positions", () => {
  const params = { temperature: 0.8, topK: 0, topP: 1, seed: 1 };
  let failed = 0;
  const all = rows(200, 42);
  all.forEach((row, t) => {
    const { token } = sampleToken(row, { ...params, seed: 2 }, t);
    if (!checkSampledToken(row, token, t, params).ok) failed++;
  });
  assert.ok(failed > 100, `only ${failed}/200 caught`);
});
