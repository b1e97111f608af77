import assert from "node:assert/strict";
import {
  admissibleTokens,
  checkSampledToken,
  DEFAULT_SAMPLING_TOLERANCE,
  type SamplingTolerance,
} from "../../proof/sampling_check.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { MIN_SAMPLING_TEMPERATURE } from "../../protocols/job.ts";
import { gaussian } from "./_models.ts";

const rows = (n: number, seed: number) => {
  const g = gaussian(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: 260 }, () => 2.5 * g()));
};

/** A calibrated-looking tolerance: honest logits within 0.006 nats, RMS 0.002. */
const CALIBRATED: SamplingTolerance = {
  ...DEFAULT_SAMPLING_TOLERANCE,
  logitEps: 0.006,
  logitSigma: 0.002,
};

const SETTINGS = [
  { temperature: 0.7, topK: 0, topP: 1 },
  { temperature: 1, topK: 10, topP: 1 },
  { temperature: 1.2, topK: 0, topP: 0.8 },
  { temperature: 0.3, topK: 5, topP: 0.9 },
];

Deno.test("sampling check: greedy accepts the argmax and near-ties, rejects a clear loser", () => {
  const p = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const l = new Float32Array([1, 3, 2.95, -1]);
  assert.ok(checkSampledToken(l, 1, 0, p).ok);
  assert.ok(checkSampledToken(l, 2, 0, p).ok, "within 2ε of the max");
  assert.equal(checkSampledToken(l, 2, 0, p, CALIBRATED).ok, false, "not within a calibrated 2ε");
  assert.equal(checkSampledToken(l, 0, 0, p).ok, false);
  assert.equal(checkSampledToken(l, 9, 0, p).ok, false, "outside the vocabulary");
});

Deno.test("sampling check: near-zero temperatures accept the sampler's token (no ∞ − ∞)", () => {
  // At a denormal T, l/T is ±∞ for every logit: the deficit of the sampler's token was
  // ∞ − ∞ = NaN, and `NaN <= allowed` failed. Just above MIN_SAMPLING_TEMPERATURE, e^{ε/T}
  // overflowed the top-p bound (∞/∞). Both convicted an honest worker.
  for (const temperature of [5e-324, 1e-300, 1e-7, MIN_SAMPLING_TEMPERATURE, 2e-6, 1e-4]) {
    for (const s of [{ topK: 0, topP: 1 }, { topK: 5, topP: 0.9 }, { topK: 0, topP: 0.5 }]) {
      for (const tol of [DEFAULT_SAMPLING_TOLERANCE, CALIBRATED]) {
        for (const [i, row] of rows(20, 31).entries()) {
          const params = { ...s, temperature, seed: 9 };
          const { token } = sampleToken(row, params, i);
          const check = checkSampledToken(row, token, i, params, tol);
          assert.ok(check.ok, `T=${temperature} ${JSON.stringify(s)}: ${check.lo} > ${check.hi}`);
          assert.ok(admissibleTokens(row, i, params, tol).includes(token));
        }
      }
    }
  }
});

Deno.test("sampling check: equal infinite logits are a tie, greedy or sampled", () => {
  const l = new Float32Array([1, Infinity, Infinity, -Infinity]);
  for (const temperature of [0, 0.7]) {
    const params = { temperature, topK: 0, topP: 1, seed: 3 };
    for (let t = 0; t < 10; t++) {
      const { token } = sampleToken(l, params, t);
      assert.ok(token === 1 || token === 2, `one of the +∞ ids, got ${token}`);
      assert.ok(checkSampledToken(l, token, t, params).ok, `T=${temperature}`);
      assert.equal(checkSampledToken(l, 0, t, params).ok, false);
    }
  }
});

Deno.test("sampling check: a token drawn from logits within the tolerance of the validator's always passes", () => {
  const g = gaussian(5);
  let t = 0;
  for (const tol of [DEFAULT_SAMPLING_TOLERANCE, CALIBRATED]) {
    // The worker's logits: each moved independently, by at most ε, with RMS at most σ.
    const sigma = Math.min(tol.logitSigma, tol.logitEps);
    for (const s of SETTINGS) {
      for (const row of rows(150, t + 1)) {
        const params = { ...s, seed: 77 };
        const worker = row.map((v) =>
          v + Math.max(-tol.logitEps, Math.min(tol.logitEps, 1.2 * sigma * g()))
        );
        const { token } = sampleToken(worker, params, t);
        const check = checkSampledToken(row, token, t, params, tol);
        assert.ok(check.ok, `t=${t} ${JSON.stringify(s)}: ${check.lo} > ${check.hi}`);
        t++;
      }
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

Deno.test("sampling check: with calibrated ε the accepted set is one token except at near-ties", () => {
  let positions = 0, multiCalibrated = 0, multiDefault = 0;
  for (const s of SETTINGS) {
    rows(100, 900 + positions).forEach((row, t) => {
      const params = { ...s, seed: 3 };
      const honest = sampleToken(row, params, t).token;
      const calibrated = admissibleTokens(row, t, params, CALIBRATED);
      assert.ok(calibrated.includes(honest), "the honest token is always admissible");
      if (calibrated.length > 1) multiCalibrated++;
      if (admissibleTokens(row, t, params).length > 1) multiDefault++;
      positions++;
    });
  }
  assert.ok(multiCalibrated <= 0.03 * positions, `${multiCalibrated}/${positions} ambiguous`);
  assert.ok(multiDefault > multiCalibrated, `defaults ${multiDefault} vs ${multiCalibrated}`);
});

Deno.test("sampling check: an id at the top-k cut is possibly kept only within 2ε of the k-th", () => {
  // Ids 0..3 at 3, 2, 1, 1 − δ: with top-2, id 2 or 3 is never kept; with top-3, id 3 only
  // when δ ≤ 2ε.
  const near = new Float32Array([3, 2, 1, 1 - 0.004]);
  const far = new Float32Array([3, 2, 1, 1 - 0.05]);
  let nearOk = 0, farOk = 0;
  for (let t = 0; t < 400; t++) {
    const p = { temperature: 1, topK: 3, topP: 1, seed: 9 };
    if (checkSampledToken(near, 3, t, p, CALIBRATED).ok) nearOk++;
    if (checkSampledToken(far, 3, t, p, CALIBRATED).ok) farOk++;
    assert.equal(
      checkSampledToken(near, 3, t, { ...p, topK: 2 }, CALIBRATED).ok,
      false,
      "two ids beat it by more than 2ε",
    );
  }
  assert.ok(nearOk > 0, "a near-tie at the cut can win the race");
  assert.equal(farOk, 0, "an id surely cut never passes");
});

Deno.test("sampling check: rows with ±0, exact ties, NaN and infinities accept the sampler's token at zero tolerance", () => {
  // The check sorts each row in the rule's order (logit descending, NaN and −∞ left out) by
  // packing each logit's bits with its id into one number: an order that is not the rule's
  // moves the top-k and top-p cuts, and the token the sampler drew from this very row fails.
  const exact: SamplingTolerance = { ...DEFAULT_SAMPLING_TOLERANCE, logitEps: 0 };
  const values = [0, -0, 0.5, -0.5, 1, 1, -1, 2, Infinity, -Infinity, NaN];
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let trial = 0; trial < 400; trial++) {
    const row = Float32Array.from(
      { length: 12 },
      () => values[Math.floor(next() * (trial % 2 ? values.length : 7))],
    );
    if (!row.some((v) => v > -Infinity)) continue;
    for (const s of [...SETTINGS, { temperature: 1, topK: 3, topP: 1 }]) {
      const params = { ...s, seed: trial };
      const { token } = sampleToken(row, params, trial);
      const check = checkSampledToken(row, token, trial, params, exact);
      assert.ok(check.ok, `row [${Array.from(row)}] ${JSON.stringify(s)}: token ${token} failed`);
      for (let id = 0; id < row.length; id++) {
        if (!(row[id] > -Infinity)) {
          assert.equal(checkSampledToken(row, id, trial, params, exact).ok, false, `id ${id}`);
        }
      }
    }
  }
});
