import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  MalformedVerdictError,
  parseVerdict,
  signVerdict,
  verdictId,
  verifyVerdict,
} from "../../protocols/verdict.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";

Deno.test("verdict: signed verdicts verify after a round trip; any edit breaks them", () => {
  const v = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: "ab".repeat(32),
    target: new Uint8Array(32),
    outcome: "fraud",
    reason: "fingerprint_mismatch",
    fraudProof: "cd".repeat(32),
    details: { positions: 3 },
    issuedAt: 10,
  }, Identity.generate());
  const wire = decodeCbor(encodeCbor(v));
  assert.ok(verifyVerdict(wire));
  assert.equal(verdictId(parseVerdict(wire)), verdictId(v));
  assert.equal(verifyVerdict({ ...v, outcome: "valid" }), false);
  assert.equal(verifyVerdict({ ...v, details: { positions: 4 } }), false);
  assert.equal(verifyVerdict({ ...v, sig: new Uint8Array(64) }), false);
  assert.equal(verifyVerdict({}), false);
});

Deno.test("verdict: a string that is not well-formed Unicode makes it malformed; verifyVerdict answers false", () => {
  const v = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: "ab".repeat(32),
    target: new Uint8Array(32),
    outcome: "invalid",
    reason: "bad_stop",
    details: { "clé": "é", positions: 3 },
    issuedAt: 10,
  }, Identity.generate());
  assert.ok(verifyVerdict(v));
  for (
    const bad of [
      { ...v, details: { "cl\uD800": "é" } },
      { ...v, details: { "clé": "\uDC00" } },
      { ...v, reason: "bad\uD800" },
      { ...v, subject: "\uDBFF" },
      { ...v, subjectId: "x\uDFFF" },
    ]
  ) {
    assert.equal(verifyVerdict(bad), false, JSON.stringify(bad.details));
    assert.throws(() => parseVerdict(bad), MalformedVerdictError);
  }
});
