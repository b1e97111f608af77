import assert from "node:assert/strict";
import {
  citedDistancesViolate,
  DEFAULT_FINGERPRINT_TOLERANCE,
  FINGERPRINT_BYTES,
  FINGERPRINT_STEP,
  fingerprintOf,
  fingerprintViolation,
  readFingerprint,
  writeFingerprint,
} from "../../proof/fingerprint.ts";
import { gaussian } from "./_models.ts";

function logits(seed: number, n = 260): Float32Array {
  const g = gaussian(seed);
  return Float32Array.from({ length: n }, () => 2 * g());
}

Deno.test("fingerprint: logProb is the token's log-softmax and is shift invariant", () => {
  const l = new Float32Array([1, 2, 3, 4]);
  const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4));
  assert.ok(Math.abs(fingerprintOf(l, 2).logProb - (3 - lse)) < 1e-6);
  const shifted = l.map((v) => v + 10);
  const a = fingerprintOf(l, 2), b = fingerprintOf(shifted, 2);
  assert.ok(Math.abs(a.logProb - b.logProb) < 1e-5 && Math.abs(a.projection - b.projection) < 1e-5);
});

Deno.test("fingerprint: quantized round trip stays within half a step; 4 bytes per position", () => {
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

Deno.test("fingerprint: small independent noise moves it far less than a different distribution", () => {
  const g = gaussian(99);
  let noiseMax = 0, otherMin = Infinity;
  for (let t = 0; t < 200; t++) {
    const l = logits(t);
    const noisy = l.map((v) => v + 1e-3 * g());
    const other = logits(t + 1000);
    const a = fingerprintOf(l, 7), b = fingerprintOf(noisy, 7), c = fingerprintOf(other, 7);
    noiseMax = Math.max(
      noiseMax,
      Math.abs(a.logProb - b.logProb),
      Math.abs(a.projection - b.projection),
    );
    otherMin = Math.min(
      otherMin,
      Math.max(Math.abs(a.logProb - c.logProb), Math.abs(a.projection - c.projection)),
    );
  }
  assert.ok(noiseMax < 0.01, `noise ${noiseMax}`);
  assert.ok(otherMin > DEFAULT_FINGERPRINT_TOLERANCE.hard, `other ${otherMin}`);
});

Deno.test("fingerprint: violation rules — one hard outlier, or 8 positions averaging over soft", () => {
  const tol = DEFAULT_FINGERPRINT_TOLERANCE;
  const small = Array.from({ length: 20 }, (_, i) => ({ position: i, distance: 0.01 }));
  assert.equal(fingerprintViolation(small), null);
  const hard = small.map((d) => d.position === 13 ? { ...d, distance: tol.hard * 2 } : d);
  assert.deepEqual(fingerprintViolation(hard), [13]);
  const soft = small.map((d) => d.position % 2 === 0 ? { ...d, distance: tol.soft * 1.5 } : d);
  assert.deepEqual(fingerprintViolation(soft), [0, 2, 4, 6, 8, 10, 12, 14]);
  assert.equal(
    citedDistancesViolate(Array(7).fill(tol.soft * 1.5)),
    false,
    "too few for the soft rule",
  );
  assert.equal(citedDistancesViolate(Array(8).fill(tol.soft * 1.5)), true);
  assert.equal(citedDistancesViolate([tol.hard * 1.01]), true);
  assert.equal(citedDistancesViolate([]), false);
});
