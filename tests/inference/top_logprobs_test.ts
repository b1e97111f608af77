import assert from "node:assert/strict";
import { MAX_TOP_LOGPROBS, topLogprobsOf } from "../../inference/top_logprobs.ts";
import { argmax } from "../../inference/sampler.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { prng } from "../_prng.ts";

/** The reference: every finite id, sorted by logit descending then id, with log-softmax. */
function reference(row: Float32Array, k: number) {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return [...row.keys()]
    .filter((i) => row[i] > -Infinity)
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k)
    .map((tokenId) => ({ tokenId, logprob: row[tokenId] - lse }));
}

Deno.test("topLogprobsOf lists the k most likely ids, log-probabilities ≤ 0 and descending, the argmax first with its fingerprint's logProb bit for bit", () => {
  const random = prng(7);
  for (const vocab of [1, 5, 260, 4096]) {
    const row = Float32Array.from({ length: vocab }, () => (random() - 0.5) * 20);
    for (const k of [1, 3, MAX_TOP_LOGPROBS]) {
      const top = topLogprobsOf(row, k);
      assert.deepEqual(top, reference(row, k), `vocab ${vocab}, k ${k}`);
      assert.equal(top.length, Math.min(k, vocab));
      assert.equal(top[0].tokenId, argmax(row));
      assert.equal(top[0].logprob, fingerprintOf(row, argmax(row)).logProb);
      for (let j = 0; j < top.length; j++) {
        assert.ok(top[j].logprob <= 0);
        if (j > 0) assert.ok(top[j].logprob <= top[j - 1].logprob);
      }
    }
  }
});

Deno.test("topLogprobsOf breaks ties by the smaller id (as greedy decoding does) and never lists −∞ or NaN logits", () => {
  const row = new Float32Array([1, 3, -Infinity, 3, NaN, 1, 0]);
  assert.deepEqual(topLogprobsOf(row, 4).map((t) => t.tokenId), [1, 3, 0, 5]);
  // Fewer finite logits than asked for: only those.
  const masked = new Float32Array([-Infinity, 2, NaN, -Infinity]);
  assert.deepEqual(topLogprobsOf(masked, 3).map((t) => t.tokenId), [1]);
  assert.deepEqual(topLogprobsOf(new Float32Array([0, 0]), 2).map((t) => t.logprob), [
    Math.log(0.5),
    Math.log(0.5),
  ]);
});

Deno.test("topLogprobsOf with k 0 returns nothing without reading the row; a bad k is a RangeError", () => {
  const untouchable = new Proxy(new Float32Array(4), {
    get() {
      throw new Error("the row was read");
    },
  });
  assert.deepEqual(topLogprobsOf(untouchable, 0), []);
  assert.throws(() => topLogprobsOf(new Float32Array(4), -1), RangeError);
  assert.throws(() => topLogprobsOf(new Float32Array(4), 1.5), RangeError);
});
