/**
 * Verdicts (`protocols/verdict.ts`): signed, and bounded in what their details may carry.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  MalformedVerdictError,
  MAX_VERDICT_DETAILS_BYTES,
  parseVerdict,
  signVerdict,
  type UnsignedVerdict,
  verdictId,
  verifyVerdict,
} from "../../protocols/verdict.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { VerdictAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { InvalidBodyError } from "../../protocols/protocol_errors.ts";

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

// A verdict's `details` take at most `MAX_VERDICT_DETAILS_BYTES` (1 KiB), so a `validation.verdict`
// whose details hold a frame's worth of entries is refused on their count, before the schema reads
// (and canonically encodes) each of them: one 1 MiB frame of ~95,000 entries cost ~0.7 s of schema
// work before its refusal, and a peer is refused 100 times in 10 s before it is cut off.

const ENTRIES = 100_000;

/** `entries` details whose every value read is counted (a decoded map is a plain object). */
function countedDetails(entries: number): { details: Record<string, number>; reads: () => number } {
  let reads = 0;
  const details: Record<string, number> = {};
  for (let i = 0; i < entries; i++) {
    Object.defineProperty(details, `k${i}`, {
      enumerable: true,
      get: () => {
        reads++;
        return i;
      },
    });
  }
  return { details, reads: () => reads };
}

function unsigned(details?: Record<string, number | string | boolean>): UnsignedVerdict {
  return {
    v: 1,
    subject: "storage",
    subjectId: "audit-1",
    target: new Uint8Array(32),
    outcome: "valid",
    reason: "ok",
    details,
    issuedAt: 1,
  };
}

Deno.test("a validation.verdict whose details hold 100,000 entries is refused on their count, before any entry is read", () => {
  const registry = createCoreRegistry().register(VerdictAnnouncementMessage);
  const { details, reads } = countedDetails(ENTRIES);
  const verdict = {
    ...unsigned(),
    details,
    validator: new Uint8Array(32),
    sig: new Uint8Array(64),
  };
  assert.throws(
    () => registry.parseBody(VerdictAnnouncementMessage.type, { verdict }),
    (error) =>
      error instanceof InvalidBodyError && error.code === "invalid_body" &&
      /details/.test(error.message),
  );
  // Each entry takes two bytes at least: more than half of the limit's bytes in entries cannot
  // fit, and counting them reads none.
  assert.ok(reads() <= MAX_VERDICT_DETAILS_BYTES / 2, `${reads()} entries read`);
});

Deno.test("details within the limit still verify, and details over it by bytes (not count) are still refused", () => {
  const validator = Identity.generate();
  const small = signVerdict(unsigned({ positions: 3, note: "é", ok: true }), validator);
  assert.equal(verifyVerdict(small), true);
  const big = signVerdict(unsigned({ note: "x".repeat(MAX_VERDICT_DETAILS_BYTES) }), validator);
  assert.equal(verifyVerdict(big), false);
});
