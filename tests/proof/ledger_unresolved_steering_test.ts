/**
 * This ledger's own challenge of R that ended undecided inside the window (held unpaid: its lock
 * kept, a peer's proof can still convict it) is still its worker's steering evidence: a steering
 * conviction heard after it cuts R's lock as one heard before it does (review s79 vledger F3: it
 * counted only pending and paid receipts, so the worker kept 80 where the challenge came first).
 * A receipt under challenge when the conviction comes is evidence too. Each step is read again
 * after the index is rebuilt from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { receiptId } from "../../protocols/receipt.ts";
import { EVENTS, type OrderEvent, runOrder, windowEnds } from "./_ledger_order_run.ts";

Deno.test("ledger unresolved then steering: an undecided challenge and a steering conviction end the same in either order", async () => {
  for (const stake of [1_000, 200]) {
    const unresolvedFirst = await runOrder(stake, [EVENTS.unresolved, EVENTS.steer, windowEnds], {
      rebuildEach: true,
    });
    const steerFirst = await runOrder(stake, [EVENTS.steer, EVENTS.unresolved, windowEnds], {
      rebuildEach: true,
    });
    assert.equal(steerFirst.worker.stake, stake - 80, `stake ${stake}: R's lock cut`);
    assert.deepEqual(unresolvedFirst.worker, steerFirst.worker, `stake ${stake}`);
  }
});

Deno.test("ledger unresolved then steering: a peer's proof of R after both is paid out of the cut, slashing nothing more", async () => {
  const o = await runOrder(1_000, [EVENTS.unresolved, EVENTS.steer, EVENTS.proveR, windowEnds], {
    rebuildEach: true,
  });
  assert.deepEqual(o.codes, ["ok", "ok", "ok", "ok"]);
  assert.equal(o.worker.stake, 920);
  assert.equal(o.a1.balance, 40);
});

Deno.test("ledger unresolved then steering: a receipt under challenge when the conviction comes is its evidence, cleared or not", async () => {
  const challenge: OrderEvent = (c) => c.ledger.openChallenge(receiptId(c.r));
  const clear: OrderEvent = (c) => c.ledger.clearChallenge(receiptId(c.r));
  const challengeFirst = await runOrder(1_000, [challenge, EVENTS.steer, clear, windowEnds]);
  const steerFirst = await runOrder(1_000, [EVENTS.steer, challenge, clear, windowEnds]);
  assert.deepEqual(challengeFirst.codes, ["ok", "ok", "ok", "ok"]);
  assert.equal(steerFirst.worker.stake, 920);
  assert.equal(steerFirst.worker.balance, 0, "its credit is not paid");
  assert.deepEqual(challengeFirst.worker, steerFirst.worker);
});
