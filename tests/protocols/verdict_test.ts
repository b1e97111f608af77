import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { parseVerdict, signVerdict, verdictId, verifyVerdict } from "../../protocols/verdict.ts";
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
