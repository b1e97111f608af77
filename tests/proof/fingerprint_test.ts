import assert from "node:assert/strict";
import {
  chiSquareUpper,
  citedScoresViolate,
  DEFAULT_FINGERPRINT_TOLERANCE,
  FINGERPRINT_BYTES,
  FINGERPRINT_QUANTIZATION_RMS,
  FINGERPRINT_SET_FAMILIES,
  FINGERPRINT_STEP,
  fingerprintDistance,
  fingerprintOf,
  fingerprintScore,
  type FingerprintTolerance,
  fingerprintViolation,
  isTestedSet,
  meanScoreLimit,
  projectionSigns,
  readFingerprint,
  writeFingerprint,
} from "../../proof/fingerprint.ts";
import { gaussian } from "./_models.ts";

function logits(seed: number, n = 260): Float32Array {
  const g = gaussian(seed);
  return Float32Array.from({ length: n }, () => 2 * g());
}

/** A calibrated-looking tolerance: 1e-3 nats of honest noise per component. */
const TOL: FingerprintTolerance = {
  ...DEFAULT_FINGERPRINT_TOLERANCE,
  logProbSigma: 1e-3,
  projectionSigma: 1e-3,
};

Deno.test("fingerprint: logProb is the token's log-softmax and is shift invariant", () => {
  const l = new Float32Array([1, 2, 3, 4]);
  const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4));
  assert.ok(Math.abs(fingerprintOf(l, 2).logProb - (3 - lse)) < 1e-6);
  const shifted = l.map((v) => v + 10);
  const a = fingerprintOf(l, 2), b = fingerprintOf(shifted, 2);
  assert.ok(Math.abs(a.logProb - b.logProb) < 1e-5 && Math.abs(a.projection - b.projection) < 1e-5);
});

Deno.test("fingerprint: masked (−∞, NaN) logits are left out of the projection, as the sampler leaves them out", () => {
  // A −∞ logit made the mean −∞ and the projection NaN: the worker's codes read NaN as 0, the
  // validator's score read it as ∞, and every honest position of a masked model was "fraud".
  const l = logits(7);
  const masked = l.slice();
  masked[3] = -Infinity;
  masked[200] = NaN;
  const signs = projectionSigns(masked.length);
  /** The projection as defined, over the logits `use` admits. */
  const projection = (row: Float32Array, use: (v: number) => boolean) => {
    let sum = 0, n = 0;
    for (const v of row) if (use(v)) (sum += v, n++);
    let p = 0;
    row.forEach((v, i) => use(v) && (p += signs[i] * (v - sum / n)));
    return p / Math.sqrt(row.length);
  };
  const kept = [...masked].filter((v) => v > -Infinity);
  const lse = Math.log(kept.reduce((a, v) => a + Math.exp(v), 0));
  for (const token of [0, 5, 259]) {
    const fp = fingerprintOf(masked, token);
    assert.ok(Math.abs(fp.projection - projection(masked, Number.isFinite)) < 1e-9);
    // logProb is the log-softmax over the kept ids: masked ids have probability 0.
    assert.ok(Math.abs(fp.logProb - (masked[token] - lse)) < 1e-6, `token ${token}`);
  }
  // A masked token has probability 0: −∞, which the codes clamp like any value out of range.
  for (const token of [3, 200]) {
    const fp = fingerprintOf(masked, token);
    assert.equal(fp.logProb, -Infinity);
    const out = new Uint8Array(FINGERPRINT_BYTES);
    writeFingerprint(out, 0, fp);
    assert.ok(fingerprintScore(readFingerprint(out, 0), fp, TOL) < 1);
  }
  // A row without masked ids is fingerprinted exactly as before; one with none finite, 0.
  assert.equal(fingerprintOf(l, 5).projection, projection(l, () => true));
  assert.equal(fingerprintOf(new Float32Array([-Infinity, NaN]), 1).projection, 0);
});

Deno.test("fingerprint: quantized round trip stays within half a step; 4 bytes per position", () => {
  assert.equal(FINGERPRINT_BYTES, 4);
  const out = new Uint8Array(50 * FINGERPRINT_BYTES);
  for (let t = 0; t < 50; t++) {
    const l = logits(t);
    const fp = fingerprintOf(l, t % 260);
    writeFingerprint(out, t, fp);
    const back = readFingerprint(out, t);
    assert.ok(Math.abs(back.logProb - fp.logProb) <= FINGERPRINT_STEP / 2 + 1e-9);
    assert.ok(Math.abs(back.projection - fp.projection) <= FINGERPRINT_STEP / 2 + 1e-9);
  }
});

Deno.test("fingerprint: values beyond the 16-bit range are compared clamped, not flagged", () => {
  const out = new Uint8Array(FINGERPRINT_BYTES);
  const far = { logProb: -100, projection: 50 };
  writeFingerprint(out, 0, far);
  const back = readFingerprint(out, 0);
  assert.ok(back.logProb > -70 && back.projection < 40, "the codes clamp");
  assert.ok(fingerprintDistance(back, far) <= FINGERPRINT_STEP, "and so does the comparison");
  assert.ok(fingerprintScore(back, far, TOL) < 1);
});

Deno.test("fingerprint: small independent noise moves it far less than a different distribution", () => {
  const g = gaussian(99);
  let noiseMax = 0, otherMin = Infinity;
  for (let t = 0; t < 200; t++) {
    const l = logits(t);
    const noisy = l.map((v) => v + 1e-3 * g());
    const other = logits(t + 1000);
    const a = fingerprintOf(l, 7), b = fingerprintOf(noisy, 7), c = fingerprintOf(other, 7);
    noiseMax = Math.max(noiseMax, fingerprintDistance(a, b));
    otherMin = Math.min(otherMin, fingerprintDistance(a, c));
  }
  assert.ok(noiseMax < 0.01, `noise ${noiseMax}`);
  assert.ok(otherMin > 0.1, `other ${otherMin}`);
});

Deno.test("χ² quantiles: exact for 2 degrees of freedom, continuous where the approximation takes over", () => {
  assert.ok(Math.abs(chiSquareUpper(2, 1e-12) - -2 * Math.log(1e-12)) < 1e-9);
  assert.ok(Math.abs(chiSquareUpper(8, 0.05) - 15.507) < 1e-3, "table value");
  const below = chiSquareUpper(256, 1e-12), above = chiSquareUpper(258, 1e-12);
  assert.ok(above > below && above - below < 5, `${below} → ${above}`);
  // Limits fall with n towards the headroom (a mean of many honest scores is close to its mean).
  assert.ok(meanScoreLimit(1) > meanScoreLimit(8) && meanScoreLimit(8) > meanScoreLimit(128));
  assert.ok(meanScoreLimit(4096) > DEFAULT_FINGERPRINT_TOLERANCE.headroom);
});

Deno.test("fingerprint test: honest Gaussian noise at the calibrated level is never flagged", () => {
  const g = gaussian(7);
  let flagged = 0;
  for (let receipt = 0; receipt < 400; receipt++) {
    const scores = Array.from({ length: 4 + (receipt % 200) }, () => {
      const a = g(), b = g();
      return (a * a + b * b) / 2;
    });
    if (fingerprintViolation([scores], TOL) !== null) flagged++;
  }
  assert.equal(flagged, 0);
});

Deno.test("fingerprint test: a single outlier is cited alone; a small shift everywhere, by a prefix", () => {
  const honest = Array(64).fill(1);
  assert.equal(fingerprintViolation([honest], TOL), null);
  const outlier = honest.map((q, t) => t === 13 ? meanScoreLimit(1, TOL) * 1.01 : q);
  assert.deepEqual(fingerprintViolation([outlier], TOL), [13]);
  // Every position 3σ off: q = 9, under the single-position limit, over the mean limit soon.
  const shifted = Array(64).fill(9);
  const cited = fingerprintViolation([shifted], TOL);
  assert.ok(cited && cited.length > 1, "a prefix");
  assert.deepEqual(cited, Array.from({ length: cited.length }, (_, i) => i));
  assert.ok(9 > meanScoreLimit(cited.length, TOL) && 9 <= meanScoreLimit(cited.length - 1, TOL));
});

Deno.test("fingerprint test: a citation is one position or a whole prefix; cherry-picked sets prove nothing", () => {
  const high = meanScoreLimit(8, TOL) * 2;
  const prefix = Array.from({ length: 8 }, (_, i) => i);
  assert.equal(citedScoresViolate(prefix, [Array(8).fill(high)], TOL), true);
  const picked = [0, 3, 4, 9, 10, 12, 13, 14];
  assert.equal(citedScoresViolate(picked, [Array(8).fill(high)], TOL, 64), false, "picked");
  // Version-1 rules (no token count): the even positions are not a prefix.
  const evens = [0, 2, 4, 6, 8, 10, 12, 14];
  assert.equal(citedScoresViolate(evens, [Array(8).fill(high)], TOL), false, "not a prefix");
  assert.equal(citedScoresViolate([5], [[meanScoreLimit(1, TOL) * 1.01]], TOL), true);
  assert.equal(citedScoresViolate([5], [[meanScoreLimit(1, TOL) * 0.99]], TOL), false);
  assert.equal(citedScoresViolate([], [[]], TOL), false);
});

Deno.test("fingerprint test: a set violates only if it does under every logits precision", () => {
  const high = Array(32).fill(meanScoreLimit(1, TOL) * 2);
  const low = Array(32).fill(1);
  assert.deepEqual(fingerprintViolation([high, high], TOL), [0]);
  assert.equal(fingerprintViolation([high, low], TOL), null, "honest under fp16 logits");
  assert.equal(fingerprintViolation([low, high], TOL), null, "honest under fp32 logits");
  assert.equal(citedScoresViolate([0], [[high[0]], [low[0]]], TOL), false);
  assert.equal(citedScoresViolate([0], [[high[0]], [high[0]]], TOL), true);
});

Deno.test("fingerprint score: the calibrated noise sets the scale; quantization is the floor", () => {
  const a = { logProb: -1, projection: 0.5 };
  const b = { logProb: -1 + 3e-3, projection: 0.5 - 4e-3 };
  // (3² + 4²)/2 = 12.5 at 1e-3 nats of noise per component.
  assert.ok(Math.abs(fingerprintScore(a, b, TOL) - 12.5) < 1e-9);
  assert.ok(FINGERPRINT_QUANTIZATION_RMS < 1e-3, "the step's rounding is below fp16-logit noise");
  assert.equal(fingerprintScore(a, { logProb: NaN, projection: 0 }, TOL), Infinity);
});

Deno.test("fingerprint test: a cheat on the tail only is cited by a suffix", () => {
  // Honest (q = 1) for 144 positions, 4σ off in both components (q = 16) on the last 48: the
  // whole receipt's mean (4.75) is under every prefix's limit.
  const q = Array.from({ length: 192 }, (_, t) => t < 144 ? 1 : 16);
  const cited = fingerprintViolation([q], TOL);
  assert.ok(cited && cited.length > 1, `cited ${cited}`);
  assert.equal(cited.at(-1), 191, "a suffix ends at the last position");
  assert.deepEqual(cited, Array.from({ length: cited.length }, (_, i) => 192 - cited.length + i));
  assert.ok(cited[0] >= 144, "no honest position is needed");
  const scores = cited.map((t) => q[t]);
  assert.equal(citedScoresViolate(cited, [scores], TOL, 192), true);
  assert.equal(citedScoresViolate(cited, [scores], TOL, 256), false, "not a suffix of 256");
  assert.equal(citedScoresViolate(cited, [scores], TOL), false, "version 1 cites no suffix");
});

Deno.test("fingerprint test: no suffix of a window shorter than the receipt is cited", () => {
  // The tail cheat above, scored on 191 positions of a 192-token receipt (the last one out of
  // vocabulary): a suffix of the window is no suffix of the receipt, and a checker refutes it.
  const q = Array.from({ length: 191 }, (_, t) => t < 144 ? 1 : 16);
  const window = fingerprintViolation([q], TOL, 191);
  assert.ok(window && window.at(-1) === 190, `the whole window is scored: cited ${window}`);
  assert.equal(fingerprintViolation([q], TOL, 192), null);
  // Prefixes and single positions still are: they do not depend on the receipt's length.
  const outlier = q.map((x, t) => t === 13 ? 1e6 : x);
  assert.deepEqual(fingerprintViolation([outlier], TOL, 192), [13]);
});

Deno.test("fingerprint test: a cheat on every other position is cited by a stride-2 set", () => {
  // q = 12 at odd positions: the mean over all positions (6.5) stays under L(192) and every
  // prefix's limit, the odd positions' own mean does not.
  const q = Array.from({ length: 192 }, (_, t) => t % 2 ? 12 : 1);
  const cited = fingerprintViolation([q], TOL);
  assert.ok(cited && cited.length > 1, `cited ${cited}`);
  assert.ok(cited.every((t) => t % 2 === 1), "odd positions only");
  assert.ok(cited.every((t, i) => i === 0 || t - cited[i - 1] === 2), "every other position");
  assert.equal(cited[0], 1, "a prefix of the odd positions");
  assert.equal(citedScoresViolate(cited, [cited.map((t) => q[t])], TOL, 192), true);
  assert.equal(isTestedSet([1, 4, 7], 192), false, "stride 3 is not tested");
  assert.equal(isTestedSet([101, 103, 105], 192), false, "inside, neither prefix nor suffix");
  assert.equal(isTestedSet([187, 189, 191], 192), true, "a suffix of the odd positions");
  assert.equal(isTestedSet([186, 188, 190], 192), true, "a suffix of the even positions");
  assert.equal(isTestedSet([190, 191, 192], 192), false, "beyond the receipt");
});

Deno.test("fingerprint test: more sets keep the false-alarm budget the docs state", () => {
  // Singles, and prefixes and suffixes for strides 1 and 2, at most 4096 sets each: the per-set
  // α times every set tested on the longest receipt is the old 2 × 4096 × 1e-12.
  assert.equal(FINGERPRINT_SET_FAMILIES, 5);
  const perSet = DEFAULT_FINGERPRINT_TOLERANCE.falseAlarm;
  assert.ok(Math.abs(perSet * FINGERPRINT_SET_FAMILIES * 4096 - 2 * 4096 * 1e-12) < 1e-20);
  // Honest Gaussian noise at the full headroom (q = 4 × Exp(1)) over every family: none trips.
  const g = gaussian(11);
  let flagged = 0;
  for (let receipt = 0; receipt < 200; receipt++) {
    const scores = Array.from({ length: 64 + receipt }, () => {
      const a = g(), b = g();
      return 4 * (a * a + b * b) / 2;
    });
    if (fingerprintViolation([scores], TOL) !== null) flagged++;
  }
  assert.equal(flagged, 0);
});
