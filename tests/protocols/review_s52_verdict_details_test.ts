/**
 * Review s52 (wire): a verdict's `details` take at most `MAX_VERDICT_DETAILS_BYTES` (1 KiB), so
 * a `validation.verdict` whose details hold a frame's worth of entries is refused on their count,
 * before the schema reads (and canonically encodes) each of them: one 1 MiB frame of ~95,000
 * entries cost ~0.7 s of schema work before its refusal, and a peer is refused 100 times in 10 s
 * before it is cut off.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { VerdictAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { InvalidBodyError } from "../../protocols/protocol_errors.ts";
import {
  MAX_VERDICT_DETAILS_BYTES,
  signVerdict,
  type UnsignedVerdict,
  verifyVerdict,
} from "../../protocols/verdict.ts";

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
