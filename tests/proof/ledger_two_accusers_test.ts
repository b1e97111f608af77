/**
 * Two accusers proving one worker's fraud about one job (stop 80, ledger item 3): the worker
 * loses the same in every order and the accusers together earn the same, each paid at most once.
 * Who is paid what is by arrival, as docs/PROOF.md says ("A fraud proof's reward goes to whichever
 * accuser a ledger settles first"; for proofs of R and of its worker's other claim R′, "Finality
 * and the ledger"): these pin that it is only the split that moves.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  EVENTS,
  type OrderEvent,
  orders,
  prove,
  runOrder,
  windowEnds,
} from "./_ledger_order_run.ts";

/** A second accuser's (a2's) own confirmed proof about R: the same fraud, another proof. */
const proveRByA2: OrderEvent = (c) => prove(c, "r", c.a2, "b2");

for (const stake of [10_000, 200]) {
  Deno.test(`ledger two accusers: two proofs of the same receipt slash it once and pay the one settled first, stake ${stake}`, async () => {
    const ends = [];
    for (const order of orders<OrderEvent>([EVENTS.proveR, proveRByA2])) {
      const o = await runOrder(stake, [...order, windowEnds]);
      // R's lock (80), once; its share (40) to one accuser; the other refused `not_pending`.
      assert.deepEqual(o.codes, ["ok", "not_pending", "ok"]);
      assert.deepEqual(o.worker, { balance: 0, stake: stake - 80, locked: 0 });
      assert.deepEqual([o.a1.balance, o.a2.balance].sort(), [0, 40]);
      ends.push(o.a1.balance);
    }
    // Whichever settled first is paid: a1 in one order, a2 in the other (documented).
    assert.deepEqual(ends, [40, 0]);
  });

  Deno.test(`ledger two accusers: proofs of R and of its worker's other claim R′ take the larger claim's slash once and pay its share once in either order, stake ${stake}`, async () => {
    const lost = Math.min(800, stake);
    const share = DEFAULT_ECONOMICS.validatorRewardShare;
    const splits = [];
    for (const order of orders<OrderEvent>([EVENTS.proveR, EVENTS.proveVariant])) {
      const o = await runOrder(stake, [...order, windowEnds]);
      assert.deepEqual(o.worker, { balance: 0, stake: stake - lost, locked: 0 });
      assert.equal(o.a1.balance + o.a2.balance, lost * share);
      splits.push([o.a1.balance, o.a2.balance]);
    }
    // R first: its share of R's lock (40), R′'s accuser the share of what the equivocation adds;
    // R′ first: its share of R′'s lock, R's proof then refused (`not_pending`). By arrival.
    assert.deepEqual(splits, [[40, lost * share - 40], [0, lost * share]]);
  });
}
