/**
 * Sampling (`inference/sampler.ts`) and the top log-probabilities a job may ask for
 * (`inference/top_logprobs.ts`).
 */
import assert from "node:assert/strict";
import {
  argmax,
  raceNoise,
  sampleToken,
  samplingDistribution,
  type SamplingParams,
  validateSamplingParams,
} from "../../inference/sampler.ts";
import { counterUniform } from "../../inference/counter_rng.ts";
import { InvalidGenerationParamsError } from "../../inference/errors.ts";
import { sha256 } from "../../protocols/hash.ts";
import { GENERATION_LIMITS, MIN_SAMPLING_TEMPERATURE } from "../../protocols/job.ts";
import { MAX_TOP_LOGPROBS, topLogprobsOf } from "../../inference/top_logprobs.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { prng } from "../_prng.ts";

const P = (p: Partial<SamplingParams> = {}): SamplingParams => ({
  temperature: 1,
  topK: 0,
  topP: 1,
  seed: 7,
  ...p,
});

Deno.test("counterUniform is a pure function of (seed, position) in [0, 1)", () => {
  const seen = new Set<number>();
  for (let t = 0; t < 1000; t++) {
    const u = counterUniform(123, t);
    assert.ok(u >= 0 && u < 1);
    assert.equal(u, counterUniform(123, t));
    seen.add(u);
  }
  assert.equal(seen.size, 1000);
  assert.notEqual(counterUniform(1, 0), counterUniform(2, 0));
});

Deno.test("counterUniform matches its documented SHA-256 definition", () => {
  const msg = new Uint8Array([
    ...new TextEncoder().encode("veriflow/counter-rng/v1"),
    ...[0, 0, 0, 0, 0, 0, 0, 42],
    ...[0, 0, 0, 0, 0, 0, 0, 5],
  ]);
  const d = sha256(msg);
  let bits = 0n;
  for (let i = 0; i < 8; i++) bits = (bits << 8n) | BigInt(d[i]);
  const expected = Number(bits >> 11n) / 2 ** 53;
  assert.equal(counterUniform(42, 5), expected);
  // Negative seeds are their 64-bit two's complement, distinct from the positive ones.
  assert.notEqual(counterUniform(-1, 0), counterUniform(1, 0));
});

Deno.test("counterUniform draws are roughly uniform (mean and decile counts)", () => {
  const n = 20_000;
  const bins = new Array(10).fill(0);
  let sum = 0;
  for (let t = 0; t < n; t++) {
    const u = counterUniform(99, t);
    sum += u;
    bins[Math.floor(u * 10)]++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01);
  for (const b of bins) assert.ok(Math.abs(b - n / 10) < 0.1 * (n / 10), `bin ${b}`);
});

Deno.test("counterUniform rejects non-integer seeds and negative positions with a typed error", () => {
  assert.throws(() => counterUniform(1.5, 0), InvalidGenerationParamsError);
  assert.throws(() => counterUniform(1, -1), InvalidGenerationParamsError);
});

Deno.test("greedy picks the largest logit and breaks ties by the position's race noise: each tied id about half the time, favouring none, the same for the same seed and position", () => {
  const logits = new Float32Array([1, 3, 3, 2]);
  assert.equal(argmax(logits), 1, "argmax (benches) keeps the smallest id");
  const picks = { 1: 0, 2: 0 } as Record<number, number>;
  for (let t = 0; t < 400; t++) {
    const { token } = sampleToken(logits, P({ temperature: 0 }), t);
    assert.ok(token === 1 || token === 2, `token ${token}`);
    assert.equal(sampleToken(logits, P({ temperature: 0 }), t).token, token, "deterministic");
    const noise = raceNoise(P({}).seed, t);
    assert.equal(token, noise(1) > noise(2) ? 1 : 2, "the larger race noise wins");
    picks[token]++;
  }
  // A fair coin over 400 positions: each side well inside [150, 250] (5 standard deviations).
  assert.ok(picks[1] > 150 && picks[2] > 150, JSON.stringify(picks));
  // A unique maximum is never a tie: no noise decides it.
  assert.equal(sampleToken(new Float32Array([1, 3, 2.999, 2]), P({ temperature: 0 }), 0).token, 1);
});

Deno.test("a temperature below MIN_SAMPLING_TEMPERATURE is greedy; the token is always a kept id", () => {
  // l/T overflows float64 for a denormal T: every score is ±∞. The sampler used to start its
  // race at −∞ and, with every logit negative, returned token −1.
  const negative = new Float32Array([-1, -2, -0.5, -3]);
  const positive = new Float32Array([0.2, 3, 1, 2.5]);
  for (const temperature of [5e-324, 1e-300, MIN_SAMPLING_TEMPERATURE / 2]) {
    for (let t = 0; t < 20; t++) {
      assert.equal(sampleToken(negative, P({ temperature }), t).token, 2, `T=${temperature}`);
      assert.equal(sampleToken(positive, P({ temperature }), t).token, 1, `T=${temperature}`);
      assert.equal(sampleToken(negative, P({ temperature, topK: 2, topP: 0.5 }), t).token, 2);
    }
  }
  // From the bound up it samples, and picks a kept id whatever the logits' sign.
  for (const temperature of [MIN_SAMPLING_TEMPERATURE, 1e-3, 1]) {
    for (let t = 0; t < 50; t++) {
      const { token } = sampleToken(negative, P({ temperature }), t);
      assert.ok(token >= 0 && token < negative.length, `T=${temperature}: token ${token}`);
    }
  }
});

Deno.test("sampling order is by logit descending with ties by id ascending, -Infinity dropped", () => {
  const logits = new Float32Array([0, 5, -Infinity, 5, 1]);
  const { ids, probs } = samplingDistribution(logits, P());
  assert.deepEqual([...ids], [1, 3, 4, 0]);
  assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  for (let j = 1; j < probs.length; j++) assert.ok(probs[j] <= probs[j - 1]);
});

Deno.test("top-k keeps exactly the k most likely tokens", () => {
  const logits = new Float32Array([0.5, 2, 1, 3, -1]);
  const { ids } = samplingDistribution(logits, P({ topK: 2 }));
  assert.deepEqual([...ids], [3, 1]);
  for (let t = 0; t < 200; t++) {
    assert.ok([3, 1].includes(sampleToken(logits, P({ topK: 2 }), t).token));
  }
});

Deno.test("top-p keeps the smallest prefix whose mass reaches p, including the crossing token", () => {
  // Probabilities 0.5, 0.3, 0.2 (temperature 1 on log-probabilities).
  const logits = new Float32Array([Math.log(0.2), Math.log(0.5), Math.log(0.3)]);
  assert.deepEqual([...samplingDistribution(logits, P({ topP: 0.5 })).ids], [1]);
  assert.deepEqual([...samplingDistribution(logits, P({ topP: 0.6 })).ids], [1, 2]);
  assert.deepEqual([...samplingDistribution(logits, P({ topP: 0.81 })).ids], [1, 2, 0]);
  const { probs } = samplingDistribution(logits, P({ topP: 0.6 }));
  // The logits are float32, so the probabilities are exact only to ~1e-7.
  assert.ok(Math.abs(probs[0] - 0.5 / 0.8) < 1e-6);
});

Deno.test("temperature sharpens and flattens the distribution", () => {
  const logits = new Float32Array([2, 1, 0]);
  const mass = (temperature: number) => samplingDistribution(logits, P({ temperature })).probs[0];
  assert.ok(mass(0.5) > mass(1));
  assert.ok(mass(1) > mass(2));
  assert.ok(Math.abs(mass(1) - Math.exp(2) / (Math.exp(2) + Math.exp(1) + 1)) < 1e-12);
});

Deno.test("sampled token is the kept id with the largest l/T + race noise", () => {
  const logits = new Float32Array([0.3, 1.2, -0.4, 0.9, 0.0, 2.1]);
  const params = P({ topK: 4, topP: 0.95, temperature: 0.8 });
  const kept = [...samplingDistribution(logits, params).ids];
  for (let t = 0; t < 300; t++) {
    const { token } = sampleToken(logits, params, t);
    const g = raceNoise(params.seed, t);
    const score = (id: number) => logits[id] / params.temperature + g(id);
    assert.ok(kept.includes(token), `token ${token} is kept`);
    for (const id of kept) assert.ok(score(token) >= score(id), `t=${t}: ${id} beats ${token}`);
  }
});

Deno.test("race noise matches its documented definition (murmur3 fmix32 over the position's draw)", () => {
  const fmix = (x: number) => {
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    return (x ^ (x >>> 16)) >>> 0;
  };
  const K = BigInt(counterUniform(42, 5) * 2 ** 53);
  const kh = Number(K >> 21n), kl = Number(K & 0x1fffffn);
  const h = (s: number, i: number) => fmix(fmix(fmix(s ^ kh) ^ kl) ^ i);
  for (const id of [0, 1, 257, 150_000]) {
    const u = (h(0x243f6a88, id) * 2 ** 21 + (h(0x85a308d3, id) >>> 11) + 0.5) / 2 ** 53;
    assert.equal(raceNoise(42, 5)(id), -Math.log(-Math.log(u)));
  }
  assert.notEqual(raceNoise(42, 5)(3), raceNoise(42, 6)(3), "positions draw anew");
  assert.notEqual(raceNoise(42, 5)(3), raceNoise(43, 5)(3), "seeds draw anew");
});

Deno.test("sampling frequencies follow the kept distribution", () => {
  const logits = new Float32Array([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);
  const counts = [0, 0, 0];
  const n = 5000;
  for (let t = 0; t < n; t++) counts[sampleToken(logits, P({ seed: 3 }), t).token]++;
  assert.ok(Math.abs(counts[0] / n - 0.6) < 0.03);
  assert.ok(Math.abs(counts[2] / n - 0.1) < 0.03);
});

Deno.test("invalid sampling params are rejected with invalid_generation_params", () => {
  const logits = new Float32Array([1, 2]);
  for (
    const bad of [{ temperature: -0.1 }, { topK: 1.5 }, { topP: 1.2 }, { topP: 0 }, {
      seed: 0.5,
    }]
  ) {
    assert.throws(
      () => sampleToken(logits, P(bad), 0),
      (e: unknown) => (e as { code?: string }).code === "invalid_generation_params",
    );
  }
});

Deno.test("validateSamplingParams takes its bounds from GENERATION_LIMITS: the limits pass, one past them fails", () => {
  const { maxTemperature, maxTopK, minSeed, maxSeed } = GENERATION_LIMITS;
  for (
    const ok of [
      { temperature: maxTemperature },
      { topK: maxTopK },
      { seed: minSeed },
      { seed: maxSeed },
    ]
  ) {
    validateSamplingParams(P(ok));
  }
  for (
    const bad of [
      { temperature: maxTemperature * 1.01 },
      { temperature: Infinity },
      { topK: maxTopK + 1 },
      { seed: maxSeed + 2 },
    ]
  ) {
    assert.throws(() => validateSamplingParams(P(bad)), InvalidGenerationParamsError);
  }
});

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
