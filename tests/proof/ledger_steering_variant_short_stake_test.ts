/**
 * This ledger's steering conviction of a worker (R among its pending evidence) and a peer's
 * confirmed proof about the worker's other claim R′ for R's job, with a stake short of the larger
 * claim: the worker loses the same and the accuser earns the same in either order (review s79
 * vledger F2: heard after the conviction, the proof counted R's lock as still backed by stake the
 * cut had already taken, and took 40 of the 120 left, where heard before it took all). Each step
 * is read again after the index is rebuilt from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EVENTS, runOrder, windowEnds } from "./_ledger_order_run.ts";

Deno.test("ledger steering then variant: a stake short of the larger claim ends the same in either order", async () => {
  for (const stake of [10_000, 200, 100]) {
    const proofFirst = await runOrder(stake, [EVENTS.proveVariant, EVENTS.steer, windowEnds], {
      rebuildEach: true,
    });
    const steerFirst = await runOrder(stake, [EVENTS.steer, EVENTS.proveVariant, windowEnds], {
      rebuildEach: true,
    });
    assert.deepEqual(steerFirst.worker, proofFirst.worker, `stake ${stake}: worker`);
    assert.deepEqual(steerFirst.a2, proofFirst.a2, `stake ${stake}: accuser`);
  }
  const o = await runOrder(200, [EVENTS.steer, EVENTS.proveVariant, windowEnds]);
  assert.equal(o.worker.stake, 0, "all 200: 80 by the cut, 120 by the equivocation");
  assert.equal(o.a2.balance, 100);
});

Deno.test("ledger steering then variant: every pending evidence lock the cut took is free for the larger claim, not only the proved receipt's", async () => {
  // R (lock 80) and another receipt of the worker (lock 80), both the conviction's evidence;
  // stake 240. Proof first: R's 80 and 80 of the larger claim's part (the other lock backs its
  // own), then the cut takes the other receipt's 80: all 240. Steering first must end the same.
  const options = { extra: [4] };
  const proofFirst = await runOrder(240, [EVENTS.proveVariant, EVENTS.steer, windowEnds], options);
  const steerFirst = await runOrder(240, [EVENTS.steer, EVENTS.proveVariant, windowEnds], options);
  assert.equal(proofFirst.worker.stake, 0);
  assert.deepEqual(steerFirst.worker, proofFirst.worker);
  assert.deepEqual(steerFirst.a2, proofFirst.a2);
  assert.equal(steerFirst.a2.balance, 80);
});
