/**
 * This ledger's own challenge of R ends in the worker's fault, then a peer's confirmed proof about
 * the worker's other claim R′ for the same job comes: that proves its equivocation, slashed as on
 * every ledger that heard no fault (the larger claim's lock, 800), and its accuser is paid its
 * claim's share once (review s79 vledger F1: the proof was paid out of the fault's slash, 40, the
 * equivocation never slashed: the worker kept 720, and a second proof of R′ slashed it then).
 * Each step is read again after the index is rebuilt from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EVENTS, prove, runOrder } from "./_ledger_order_run.ts";

Deno.test("ledger fault then variant: a proof of the worker's other claim after this ledger's fault slashes the equivocation, as without the fault", async () => {
  const noChallenge = await runOrder(10_000, [EVENTS.proveVariant], { rebuildEach: true });
  const faultFirst = await runOrder(10_000, [EVENTS.fault, EVENTS.proveVariant], {
    rebuildEach: true,
  });
  assert.equal(noChallenge.worker.stake, 9_200);
  assert.equal(noChallenge.a2.balance, 400);
  assert.deepEqual(faultFirst.codes, ["ok", "ok"]);
  assert.equal(faultFirst.worker.stake, 9_200, "the larger claim's 800 in all");
  assert.equal(faultFirst.a2.balance, 400, "its accuser's share of the claim it proved");
  assert.equal(faultFirst.status, "fraud");
});

Deno.test("ledger fault then variant: a second proof of the same other claim is refused, and R's own proof after it too", async () => {
  const again = (c: Parameters<typeof EVENTS.proveVariant>[0]) => prove(c, "variant", c.a1, "b2");
  const o = await runOrder(
    10_000,
    [EVENTS.fault, EVENTS.proveVariant, again, EVENTS.proveR],
    { rebuildEach: true },
  );
  assert.deepEqual(o.codes, ["ok", "ok", "not_pending", "not_pending"]);
  assert.equal(o.worker.stake, 9_200);
  assert.deepEqual([o.a1.balance, o.a2.balance], [0, 400]);
});

Deno.test("ledger fault then variant: with a stake short of the larger claim the worker loses all of it, in either order", async () => {
  const faultFirst = await runOrder(200, [EVENTS.fault, EVENTS.proveVariant]);
  const proofFirst = await runOrder(200, [EVENTS.proveVariant, EVENTS.fault]);
  assert.equal(proofFirst.worker.stake, 0);
  assert.deepEqual(faultFirst.worker, proofFirst.worker);
  assert.deepEqual(faultFirst.a2, proofFirst.a2);
  assert.equal(faultFirst.a2.balance, 100);
});
