/**
 * The sampling check at a tied top-k cut: an honest run keeps the definitely kept ids and fills
 * the remaining slots from the ids tied at the cut, so the check holds a token to the rival the
 * most favourable run keeps. These tests pin down that no honest worker is refused for it,
 * whichever tied ids its rounding keeps.
 */
import assert from "node:assert/strict";
import { raceNoise, sampleToken } from "../../inference/sampler.ts";
import {
  admissibleTokens,
  checkSampledToken,
  type SamplingTolerance,
} from "../../proof/sampling_check.ts";
import { gaussian } from "./_models.ts";

/** The calibrated ε of the built-in models (docs/PROOF.md, "Calibration"). */
const CALIBRATED: SamplingTolerance = {
  logitEps: 0.0061,
  logitSigma: 0.00086,
  sigmas: 8,
  cdfMargin: 1e-6,
};
const EPS = CALIBRATED.logitEps;
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
        const check = checkSampledToken(row, token, t, params, CALIBRATED);
        assert.ok(check.ok, `row ${r}, worker ${w}, position ${t}: honest token ${token} refused`);
        assert.ok(admissibleTokens(row, t, params, CALIBRATED).includes(token));
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
  assert.ok(checkSampledToken(row, 10, 0, params, CALIBRATED).ok);
  assert.deepEqual(admissibleTokens(row, 0, params, CALIBRATED).sort((a, b) => a - b), [10, 11]);
});
