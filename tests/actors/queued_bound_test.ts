/**
 * The bound on proofs queued in all (`MAX_QUEUED_ACCUSATIONS`, `actors/_queued_accusations.ts`)
 * never pushes out one accuser's only queued proof for another key's of its class, and a proof its
 * accuser's stake does not cover goes before a covered one. Review s77 F2: at the bound the
 * accuser queuing the most went, the first in order at a tie, so 64 keys pledging 1 unit each —
 * each with one proof held for a receipt that is never recorded (no forward pass) and one queued
 * behind it — pushed out the honest accuser's queued confirmed proof, and the cheat was paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  MAX_QUEUED_ACCUSATIONS,
  type QueuedAccusation,
  QueuedAccusations,
} from "../../actors/_queued_accusations.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import { Identity } from "../../protocols/identity.ts";
import { falseProof, proveOn, textJob } from "./_validator_fixture.ts";
import {
  accuser,
  assertSlashedAndCharged,
  cheat,
  confirmed,
  ending,
  outcomes,
  pledge,
  queueLedger,
  requester,
  send,
  START,
} from "./_queued_accusation_fixture.ts";

/** Never pledges: its receipt is never recorded, so a proof of it is held for it for good. */
const unpledged = Identity.generate();
const never = await proveOn(textJob(requester, "queued-bound-never", { prompt: "x" }), unpledged);
const flooders = Array.from({ length: MAX_QUEUED_ACCUSATIONS }, () => Identity.generate());

/**
 * The accuser's refuted proof is being checked and its confirmed one queued behind it; 64 keys
 * pledging 1 unit each queue one proof each, `before` or after the confirmed one.
 */
async function flooded(before: boolean) {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `queued-bound-${before}` });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const v = await queueLedger(system, "v/validator", `${root}/v`, clock, gate.promise);
    const [first] = await send(v, [falseProof(cheat.receipt, accuser, 1)]);
    assert.equal(first.queued, true, "the refuted proof is being checked");
    const flood = async () => {
      for (const key of flooders) {
        await pledge(v, key, 1);
        const [held, queued] = await send(v, [
          falseProof(never.receipt, key, 1),
          falseProof(never.receipt, key, 2),
        ]);
        assert.equal(held.awaitingReceipt, true, "a flooder's first is held for its receipt");
        assert.equal(queued.awaitingAccusation, true, "its second is queued behind it");
      }
    };
    if (before) await flood();
    const [second] = await send(v, [confirmed]);
    assert.equal(second.awaitingAccusation, true, "the confirmed proof waits behind the first");
    if (!before) await flood();
    gate.resolve();
    assert.deepEqual(await outcomes(v, [first, second]), ["checked:false", "checked:true"]);
    return await ending(v, clock);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("64 keys pledging 1 unit each, each queuing one proof before or after the accuser's queued confirmed proof, do not push it out: the worker slashed and the accuser charged and rewarded alike", async () => {
  const ends = [];
  for (const before of [false, true]) {
    const end = await flooded(before);
    assertSlashedAndCharged(end, before ? "flood before" : "flood after");
    ends.push(end);
  }
  assert.deepEqual(ends[0], ends[1], "the same ledger whenever the flood came");
});

/** A queued proof of `by` (hex), named `hash`, covered by its accuser's stake or not. */
function item(hash: string, backed: boolean): QueuedAccusation {
  const waiting = Promise.withResolvers<FraudCheckResult>();
  waiting.promise.catch(() => {});
  return { proof: confirmed, hash, arrivedAt: START, backed, waiting };
}

Deno.test("at the bound, the newcomer goes at a tie of accusers queuing one proof each, the key queuing the most gives its oldest, and an uncovered proof goes before a covered one", () => {
  const keys = Array.from(
    { length: MAX_QUEUED_ACCUSATIONS + 1 },
    (_, i) => `${i}`.padStart(4, "k"),
  );
  // A tie: 64 accusers one proof each, then a 65th: the newcomer is refused.
  const tie = new QueuedAccusations();
  for (const [i, key] of keys.entries()) tie.queue(key, "r", item(`h${i}`, true));
  assert.equal(tie.size, MAX_QUEUED_ACCUSATIONS);
  assert.ok(tie.holds("h0"), "the first accuser's only proof stays");
  assert.ok(!tie.holds(`h${MAX_QUEUED_ACCUSATIONS}`), "the newcomer's only proof goes");
  // One key queuing two (of two receipts) gives its oldest for a newcomer's one.
  const most = new QueuedAccusations();
  most.queue("many", "r1", item("m1", true));
  most.queue("many", "r2", item("m2", true));
  for (let i = 0; i < MAX_QUEUED_ACCUSATIONS - 1; i++) {
    most.queue(keys[i], "r", item(`h${i}`, true));
  }
  assert.ok(!most.holds("m1") && most.holds("m2"), "the key queuing the most gives its oldest");
  assert.ok(most.holds(`h${MAX_QUEUED_ACCUSATIONS - 2}`), "the newcomer stays");
  // Uncovered proofs fill the queue first; a covered newcomer pushes out the latest of them.
  const cover = new QueuedAccusations();
  for (let i = 0; i < MAX_QUEUED_ACCUSATIONS; i++) cover.queue(keys[i], "r", item(`u${i}`, false));
  cover.queue("honest", "r", item("covered", true));
  assert.ok(cover.holds("covered"), "the covered newcomer stays");
  assert.ok(cover.holds("u0"), "the first uncovered stays");
  assert.ok(!cover.holds(`u${MAX_QUEUED_ACCUSATIONS - 1}`), "the latest uncovered goes");
});
