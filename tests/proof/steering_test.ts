/**
 * The steering test (`proof/steering.ts`): the evidence is a fair martingale while a worker
 * passes and takes ends alike (so Ville's bound holds for honest workers), it convicts a worker
 * that only passes after 26 events, and one validator's record is rebuilt from its own verdicts
 * only.
 */
import assert from "node:assert/strict";
import {
  endChoicesOf,
  isSteering,
  STEERING_EVIDENCE_LIMIT,
  steeringEvidence,
  SteeringRecord,
} from "../../proof/steering.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";

Deno.test("steering evidence is a fair martingale under honest noise: its mean after one more event is its value", () => {
  for (const passed of [0, 1, 5, 20, 40]) {
    for (const taken of [0, 1, 5, 20, 40]) {
      const now = steeringEvidence({ passed, taken });
      const next = (steeringEvidence({ passed: passed + 1, taken }) +
        steeringEvidence({ passed, taken: taken + 1 })) / 2;
      assert.ok(Math.abs(next - now) <= 1e-9 * now, `${passed}/${taken}: ${next} vs ${now}`);
    }
  }
  assert.equal(steeringEvidence({ passed: 0, taken: 0 }), 1);
});

Deno.test("a worker that passes over every end is convicted at its 26th; taking ends as often clears it", () => {
  assert.equal(isSteering({ passed: 25, taken: 0 }), false);
  assert.equal(isSteering({ passed: 26, taken: 0 }), true);
  assert.ok(steeringEvidence({ passed: 26, taken: 0 }) >= STEERING_EVIDENCE_LIMIT);
  assert.equal(isSteering({ passed: 200, taken: 200 }), false);
  // A steerer that takes one end in four to hide is still convicted, later.
  const hiding = Array.from({ length: 400 }, (_, n) => n).find((n) =>
    isSteering({ passed: 3 * n, taken: n })
  );
  assert.ok(hiding !== undefined && 3 * hiding > 26, `convicted at ${hiding}`);
});

Deno.test("honest workers (a fair coin per event) are never convicted over 2,000 paths of 2,000 events", () => {
  // Ville's bound gives ≤ 10⁻⁶ per path; a seeded run makes the check repeatable.
  let s = 0x2545f491;
  const coin = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % 2 === 0;
  };
  let highest = 0;
  for (let path = 0; path < 2000; path++) {
    const c = { passed: 0, taken: 0 };
    for (let i = 0; i < 2000; i++) {
      if (coin()) c.passed++;
      else c.taken++;
      highest = Math.max(highest, steeringEvidence(c));
    }
  }
  assert.ok(highest < STEERING_EVIDENCE_LIMIT, `highest evidence ${highest}`);
  assert.ok(highest > 1, "some path drifted up, as a fair walk does");
});

function verdict(
  by: Identity,
  target: Uint8Array,
  details: Verdict["details"],
  subject = "inference",
) {
  return signVerdict({
    v: 1,
    subject,
    subjectId: crypto.randomUUID(),
    target,
    outcome: "valid",
    reason: "ok",
    details,
    issuedAt: 0,
  }, by);
}

Deno.test("a validator's record sums its own inference verdicts' end choices per worker, and nobody else's", () => {
  const me = Identity.generate();
  const peer = Identity.generate();
  const a = Identity.generate().publicKey;
  const b = Identity.generate().publicKey;
  const record = SteeringRecord.fromVerdicts([
    verdict(me, a, { endPassed: 2, endTaken: 1 }),
    verdict(me, a, { endPassed: 3, endTaken: 0 }),
    verdict(me, b, { endPassed: 0, endTaken: 4 }),
    verdict(peer, a, { endPassed: 50, endTaken: 0 }), // a peer's claim: not counted here
    verdict(me, a, { endPassed: 50, endTaken: 0 }, "storage"),
    verdict(me, a, { endPassed: -1, endTaken: 0 }), // malformed: ignored
    verdict(me, a, {}), // before end choices were counted
  ], me.publicKey);
  assert.deepEqual(record.of(toHex(a)), { passed: 5, taken: 1 });
  assert.deepEqual(record.of(toHex(b)), { passed: 0, taken: 4 });
  assert.deepEqual(record.of("00"), { passed: 0, taken: 0 });
  assert.equal(endChoicesOf(verdict(me, a, { endPassed: 1.5, endTaken: 0 })), undefined);
});

Deno.test("a full record forgets the least recently seen worker, but never a convicted one", () => {
  const record = new SteeringRecord(2);
  record.add("convicted", { passed: 30, taken: 0 });
  record.add("old", { passed: 1, taken: 0 });
  record.add("new", { passed: 1, taken: 1 });
  assert.deepEqual(record.of("convicted"), { passed: 30, taken: 0 });
  assert.deepEqual(record.of("old"), { passed: 0, taken: 0 });
  assert.deepEqual(record.of("new"), { passed: 1, taken: 1 });
  record.add("newer", { passed: 0, taken: 0 }); // nothing to add: nothing forgotten
  assert.equal(record.size, 2);
});
