/**
 * The sampling check (`proof/sampling_check.ts`): which tokens an honest run of the sampler can
 * pick from a row a validator recomputes within tolerance. Honest workers are never refused
 * (also at tied top-k cuts, whichever tied ids their rounding keeps), and a cheating worker cannot
 * pick a token no honest run picks, at a tied top-k cut or at a top-p cut.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  admissibleTokens,
  checkSampledToken,
  DEFAULT_SAMPLING_TOLERANCE,
  type SamplingTolerance,
} from "../../proof/sampling_check.ts";
import { raceNoise, sampleToken } from "../../inference/sampler.ts";
import { MIN_SAMPLING_TEMPERATURE, type TextJob } from "../../protocols/job.ts";
import { gaussian } from "./_models.ts";
import { BUILTIN_VOCAB_SIZE } from "../../inference/byte_tokenizer.ts";
import { Identity } from "../../protocols/identity.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { generateChunks, scriptedModel } from "./_scripted_model.ts";

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

// The sampling check at a tied top-k cut: an honest run keeps the definitely kept ids and fills the
// remaining slots from the ids tied at the cut, so the check holds a token to the rival the most
// favourable run keeps. These tests pin down that no honest worker is refused for it, whichever
// tied ids its rounding keeps.

/** The calibrated ε of the built-in models (docs/PROOF.md, "Calibration"). */
const MODELS_CALIBRATED: SamplingTolerance = {
  logitEps: 0.0061,
  logitSigma: 0.00086,
  sigmas: 8,
  cdfMargin: 1e-6,
};
const EPS = MODELS_CALIBRATED.logitEps;
/** An honest worker's logits move by at most ε; 1 % below it leaves room for float32 rounding. */
const MOVE = 0.99 * EPS;
const V = 48;

/**
 * A row whose top-k cut is tied: `k − slots` ids well above the cut, `tied` ids (more than
 * `slots`) within 2ε of each other at it, and the rest well below. Returns the row and the tied
 * ids.
 */
function tiedCutRow(
  g: () => number,
  k: number,
  slots: number,
  tied: number,
): { row: Float32Array; tiedIds: number[] } {
  const ids = Array.from({ length: V }, (_, i) => i);
  // Shuffle by the same generator so the tied ids fall anywhere in the vocabulary.
  for (let i = V - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(uniform(g) * (i + 1)));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const cut = g();
  const row = new Float32Array(V);
  for (let r = 0; r < V; r++) {
    const id = ids[r];
    if (r < k - slots) row[id] = cut + 0.05 + Math.abs(g()); // surely kept
    else if (r < k - slots + tied) row[id] = cut + (uniform(g) * 2 - 1) * EPS; // tied at the cut
    else row[id] = cut - 0.05 - 2 * Math.abs(g()); // surely cut
  }
  return { row, tiedIds: ids.slice(k - slots, k - slots + tied) };
}

/** A uniform draw in [0, 1) from the Gaussian generator (its CDF, approximately enough). */
function uniform(g: () => number): number {
  const x = g();
  return 0.5 * (1 + Math.tanh(0.8 * x));
}

/** An honest worker's logits: each moved by at most ε, half of them by the full amount. */
function honest(row: Float32Array, g: () => number): Float32Array {
  return row.map((v) => {
    const u = uniform(g);
    const move = u < 0.25 ? -MOVE : u < 0.5 ? MOVE : (uniform(g) * 2 - 1) * MOVE;
    return v + move;
  });
}

Deno.test("sampling check at a tied top-k cut: an honest worker is accepted whichever tied ids it keeps", () => {
  const g = gaussian(44);
  let tiedTokens = 0;
  let otherTokens = 0;
  for (let r = 0; r < 240; r++) {
    const k = [2, 3, 4, 6][r % 4];
    const slots = 1 + (r % Math.min(k, 3));
    const tied = slots + 1 + (r % 3);
    const temperature = [0.4, 1, 1.7][r % 3];
    const { row, tiedIds } = tiedCutRow(g, k, slots, tied);
    for (let w = 0; w < 6; w++) {
      const worker = honest(row, g);
      // Rounding alone may decide which tied ids are kept: the exact extremes too.
      if (w === 0) { for (const id of tiedIds) worker[id] = row[id] + (id % 2 ? MOVE : -MOVE); }
      if (w === 1) { for (const id of tiedIds) worker[id] = row[id] + (id % 2 ? -MOVE : MOVE); }
      for (let t = 0; t < 8; t++) {
        const params = { temperature, topK: k, topP: 1, seed: r * 7919 + w };
        const token = sampleToken(worker, params, t).token;
        if (tiedIds.includes(token)) tiedTokens++;
        else otherTokens++;
        const check = checkSampledToken(row, token, t, params, MODELS_CALIBRATED);
        assert.ok(check.ok, `row ${r}, worker ${w}, position ${t}: honest token ${token} refused`);
        assert.ok(admissibleTokens(row, t, params, MODELS_CALIBRATED).includes(token));
      }
    }
  }
  // Both sides of the rule ran: tokens that took a tied slot, and tokens that had to beat one.
  assert.ok(tiedTokens > 500 && otherTokens > 500, `${tiedTokens} tied, ${otherTokens} other`);
});

Deno.test("sampling check at a tied top-k cut: a token that beats one tied id but not the other is accepted", () => {
  // top-k 2: id 10 is surely kept, ids 11 and 12 tie for the second slot. At a seed where id 10
  // beats id 12 in the race but loses to id 11 by far, the worker whose rounding keeps id 12
  // honestly picks id 10: the rival is the tied id the most favourable run keeps, not the best.
  const row = new Float32Array(V).fill(-20);
  row[10] = 1;
  row[11] = 0.5;
  row[12] = 0.4995;
  const noiseOf = (seed: number) => raceNoise(seed, 0);
  const seed = Array.from({ length: 1000 }, (_, s) => s).find((s) => {
    const g = noiseOf(s);
    return g(11) + 0.5 > g(10) + 1 + 1 && g(10) + 1 > g(12) + 0.4995 + 1;
  });
  assert.ok(seed !== undefined);
  const params = { temperature: 1, topK: 2, topP: 1, seed };
  const worker = row.slice();
  worker[12] += 0.001; // within ε: this run keeps id 12, not id 11
  assert.equal(sampleToken(worker, params, 0).token, 10);
  assert.ok(checkSampledToken(row, 10, 0, params, MODELS_CALIBRATED).ok);
  assert.deepEqual(admissibleTokens(row, 0, params, MODELS_CALIBRATED).sort((a, b) => a - b), [
    10,
    11,
  ]);
});

// A cheating worker's token at a tied top-k cut. With top-k and two ids tied for the last slot, an
// honest run keeps exactly one of them; a token that both of them beat in the race is then never
// the rule's pick, whichever one an honest worker keeps.

const VOCAB = BUILTIN_VOCAB_SIZE;

Deno.test("at a top-k cut that two ids tie for, a token that loses to both is refused", () => {
  // top-k 2: id 10 is surely kept; ids 11 and 12 tie for the second place (0.0005 apart, inside
  // 2ε), so an honest worker keeps exactly one of them, and under seed 8 both beat id 10's race
  // score by more than 1. No honest noise makes the rule pick id 10 here.
  const row = new Float32Array(VOCAB).fill(-20);
  row[10] = 1;
  row[11] = 0.5;
  row[12] = 0.4995;
  const params = { temperature: 1, topK: 2, topP: 1, seed: 8 };
  for (const shift of [0, 0.0005]) {
    const worker = row.slice();
    worker[12] += shift; // either of the tied ids may be the one a worker keeps
    assert.notEqual(sampleToken(worker, params, 0).token, 10);
  }
  assert.equal(
    checkSampledToken(row, 10, 0, params, MODELS_CALIBRATED).ok,
    false,
    "id 10 is admitted: a worker may emit it wherever a top-k cut is tied",
  );
});

// The sampling check against a cheating worker at a top-p cut. Under top-p the kept ids are a
// prefix of the rule order, and an id that beats another by more than 2ε is before it in every
// honest order; the cut ends the prefix only once its mass reaches topP. The check compared a token
// only with the ids *definitely* kept, so at a cut inside a run of tied tail ids it accepted tokens
// no honest run can pick: a token whose better-scoring rival is surely before it (kept whenever it
// is), or one that wins only if honest runs drop ids carrying more mass than honest noise moves. A
// worker picks among them freely (the head token or any tail id it likes) and is never flagged.

/**
 * A logit row with a run of tied tail ids at the cut: id 0 at 2, ids 1–40 at −1, 41–80 at
 * −1.125, and the top-p that puts the cut at the end of the first run (of the mass top-k keeps):
 * every honest run keeps nearly all of ids 1–40.
 */
function tiedTailRow(topK = 0): { row: Float32Array; topP: number } {
  const row = new Float32Array(81);
  row[0] = 2;
  row.fill(-1, 1, 41);
  row.fill(-1.125, 41, 81);
  const w = Array.from(row, (v) => Math.exp(v));
  const sum = (n: number) => w.slice(0, n).reduce((a, b) => a + b);
  return { row, topP: sum(41) / sum(topK || row.length) };
}

const DEFAULT_EPS = DEFAULT_SAMPLING_TOLERANCE.logitEps;

Deno.test("at a top-p cut inside a tied tail, tokens no honest run picks are refused", () => {
  const { row, topP } = tiedTailRow();
  const params = { temperature: 1, topK: 0, topP, seed: 7 };
  const t = 5;
  // Ids 6, 5 and 29 score best among ids 1–40 here, and an honest run keeps at least 38 of those
  // 40 ids whatever its noise: one of the three is always kept and wins.
  assert.equal(sampleToken(row, params, t).token, 6);
  // The head id 0 (definitely kept, so the check's only rival before), ids 8 and 23 of the tied
  // run, and ids 51, 67, 70, 71 of the next run (every id 1–40 is surely before them).
  for (const token of [0, 8, 23, 51, 67, 70, 71]) {
    const check = checkSampledToken(row, token, t, params);
    assert.equal(check.ok, false, `token ${token} passed: ${check.lo} ≤ ${check.hi}`);
  }
  assert.deepEqual(admissibleTokens(row, t, params), [5, 6, 29]);
});

Deno.test("with top-k and top-p, the head and the ids after the tied run are refused there too", () => {
  // Top-45 keeps id 0, ids 1–40 and four of ids 41–80, top-60 nineteen of them; the cut is again
  // at the end of ids 1–40 (of the mass top-k keeps).
  for (const topK of [45, 60]) {
    const { row, topP } = tiedTailRow(topK);
    const params = { temperature: 1, topK, topP, seed: 7 };
    assert.equal(sampleToken(row, params, 5).token, 6);
    assert.ok(checkSampledToken(row, 6, 5, params).ok);
    for (const token of [0, 8, 23, 51, 67, 70, 71]) {
      const check = checkSampledToken(row, token, 5, params);
      assert.equal(
        check.ok,
        false,
        `top-${topK}: token ${token} passed: ${check.lo} ≤ ${check.hi}`,
      );
    }
  }
});

Deno.test("under top-p, a token beaten by an id surely before it is refused", () => {
  const { row, topP } = tiedTailRow();
  const params = { temperature: 1, topK: 0, topP, seed: 7 };
  // Position 6: id 26 (tied run, 0.125 above id 69) beats id 69 in the race by 0.55, more than
  // 2ε = 0.1; any honest run that keeps 69 keeps 26 first.
  assert.equal(sampleToken(row, params, 6).token, 26);
  const check = checkSampledToken(row, 69, 6, params);
  assert.equal(check.ok, false, `${check.lo} ≤ ${check.hi}`);
});

Deno.test("honest workers at that cut are still accepted, logits moved by up to ε", () => {
  const { row, topP } = tiedTailRow();
  let seed = 1;
  const uniform = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  // Each logit moved within ±ε: random, all to one edge, or each run pushed the other way (what
  // moves the cut most).
  const moves = [
    () => (2 * uniform() - 1) * DEFAULT_EPS,
    () => (uniform() < 0.5 ? -1 : 1) * DEFAULT_EPS * 0.999,
    (v: number) => (v > -1.06 ? -1 : 1) * DEFAULT_EPS * 0.999,
    (v: number) => (v > -1.06 ? 1 : -1) * DEFAULT_EPS * 0.999,
  ];
  let checked = 0;
  const settings = [
    { topK: 0, topP },
    { topK: 0, topP: 0.5 },
    { topK: 0, topP: 0.9 },
    { topK: 45, topP: tiedTailRow(45).topP },
    { topK: 60, topP: tiedTailRow(60).topP },
    { topK: 30, topP: 0.8 },
  ];
  for (const s of settings) {
    const params = { temperature: 1, ...s, seed: 7 };
    for (let t = 0; t < 60; t++) {
      for (const move of moves) {
        const worker = row.map((v) => v + move(v));
        const { token } = sampleToken(worker, params, t);
        const check = checkSampledToken(row, token, t, params);
        assert.ok(
          check.ok,
          `${JSON.stringify(s)} t=${t}: token ${token}, ${check.lo} > ${check.hi}`,
        );
        checked++;
      }
    }
  }
  assert.equal(checked, settings.length * 60 * moves.length);
});

Deno.test("a worker that emits the head token at such a cut is convicted, and any node confirms it", async () => {
  // A scripted model whose row at output position 5 is the tied-tail row (every other id
  // masked); the worker emits id 0 there instead of the race's pick, with the true fingerprint.
  const { row: tail, topP } = tiedTailRow();
  const prompt = "Hello";
  const model = scriptedModel("bafy-s50-tied-tail", {
    patch: (row, position) => {
      if (position !== model.tokenizer.encode(prompt).length - 1 + 5) return;
      row.fill(-Infinity);
      row.set(tail);
    },
  });
  const params = { maxTokens: 8, temperature: 1, topK: 0, topP, seed: 7, stop: [] };
  const job: TextJob = { kind: "text", model: model.info.cid, prompt, params, nonce: "s50" };
  const chunks = generateChunks(model, model.tokenizer.encode(prompt), params, {
    replace: (t, token) => (t === 5 ? 0 : token),
  });
  assert.equal(chunks.length, 8);
  const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate());
  const res = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    model,
    Identity.generate(),
  );
  assert.equal(res.verdict.outcome, "fraud", res.verdict.reason);
  assert.equal(res.fraudProof?.kind, "sampling");
  assert.deepEqual(res.fraudProof?.cited.map((c) => c.position), [5]);
  const check = await checkFraudProof(res.fraudProof, model);
  assert.ok(check.confirmed, check.reason);
});
