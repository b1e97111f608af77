/**
 * The loss gate's bounded judging (`training/_delta_attribution.ts`, review s74 verify3): the solo
 * judgments stop at a time budget on an injected clock, in an order drawn from the round, and the
 * largest passing prefix of a ranking is found in ⌈log₂ n⌉ evaluations.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import {
  largestPassing,
  SOLO_JUDGING_BUDGET_FRACTION,
  soloLosses,
} from "../../training/_delta_attribution.ts";
import { seededOrder } from "../../training/_round_run.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** A delta of `value` everywhere, the start's shape. */
function flat(start: GptWeights, value: number): GptWeights {
  return new Map([...start].map(([name, t]) => [name, {
    shape: [...t.shape],
    data: new Float32Array(t.data.length).fill(value),
  }]));
}

Deno.test("solo judging stops once its time budget is spent: the deltas after it are left unjudged, in the drawn order", async () => {
  const start = seededGptWeights(TEST_ARCH, 0);
  const deltas = [0, 1, 2, 3, 4].map((i) => flat(start, i * 1e-4));
  // Each evaluation takes 10 ms on the test's clock; nothing sleeps.
  const clock = { t: 1_000 };
  let evaluations = 0;
  const evaluate = (_w: GptWeights) => {
    evaluations++;
    clock.t += 10;
    return Promise.resolve(5 + evaluations);
  };
  const order = [3, 0, 4, 1, 2];
  const losses = await soloLosses(start, deltas, evaluate, {
    order,
    budgetMs: 25,
    now: () => clock.t,
  });
  // The start (10 ms), then 3 (20 ms) and 0 (30 ms, started at 20 ≤ 25); at 30 > 25 it stops.
  assert.equal(evaluations, 3);
  assert.deepEqual(losses.judged, [true, false, false, true, false]);
  assert.equal(losses.start, 6);
  assert.deepEqual(losses.solo, [8, undefined, undefined, 7, undefined]);
  // Without a budget every delta is judged.
  const all = await soloLosses(start, deltas, evaluate, { order, now: () => clock.t });
  assert.deepEqual(all.judged, [true, true, true, true, true]);
  assert.ok(SOLO_JUDGING_BUDGET_FRACTION > 0 && SOLO_JUDGING_BUDGET_FRACTION < 1);
});

Deno.test("the judging order is drawn from the round and the keys: the same for every node, another each round, a permutation", () => {
  const keys = Array.from({ length: 20 }, (_, i) => i.toString(16).padStart(64, "0"));
  const a = seededOrder(7, keys);
  assert.deepEqual(seededOrder(7, keys), a, "reproducible");
  assert.deepEqual([...a].sort((x, y) => x - y), keys.map((_k, i) => i), "a permutation");
  assert.notDeepEqual(seededOrder(8, keys), a, "another round, another order");
  assert.notDeepEqual(a, keys.map((_k, i) => i), "not the seats' order");
});

Deno.test("the largest passing prefix is found by binary search: at most ⌈log₂ n⌉ evaluations, whatever the number of griefers", async () => {
  for (const n of [1, 2, 3, 32, 256]) {
    for (const best of [0, 1, Math.floor(n / 2), n - 1]) {
      if (best >= n) continue;
      const asked: number[] = [];
      const k = await largestPassing(n, (k) => {
        asked.push(k);
        return Promise.resolve(k <= best);
      });
      assert.equal(k, best, `n ${n}, passing up to ${best}`);
      assert.ok(asked.length <= Math.ceil(Math.log2(n)), `n ${n}: ${asked.length} evaluations`);
      assert.ok(!asked.includes(0) && !asked.includes(n), "never 0 (nothing) or n (known to fail)");
    }
  }
});
