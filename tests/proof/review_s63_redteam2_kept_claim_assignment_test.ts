/**
 * Stop 63 red team (R2): an assignment arriving with a worker's receipt is recorded on that
 * worker's record holding the job (`proof/_ledger_late_assignment.ts`), but not where the worker
 * holds no record, only a kept claim (`unrecorded_claim`: another worker's bare receipt holds the
 * job) and the receipt it comes with is the worker's other claim: that receipt is its
 * equivocation against the kept claim (`unrecordedEquivocation`), and the entry keeps nothing of
 * the assignment. The holder's own assignment coming later is then paid, where in the 23 other
 * orders of the same four receipts the job is a double assignment and neither worker is paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  seeded,
  WINDOW,
} from "./review_s62_convergence_world.ts";

const { w1, w2, w3 } = parties;

/** Every order of `items`. */
function orders<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((x, i) =>
    orders([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest])
  );
}

/** w1's, w2's and w3's accounts once `order` was handled (every window over), live and replayed. */
async function after(order: Evidence[]) {
  const ends: Record<string, unknown>[] = [];
  await withLedgerDir(async (dir, clock) => {
    const open = () =>
      Ledger.open(dir, seeded(94), {
        now: () => clock.t,
        economics: { challengeWindowMs: WINDOW },
      });
    let ledger = await open();
    await feed(ledger, clock, order);
    const read = () => ({
      w1: ledger.account(w1.publicKey),
      w2: ledger.account(w2.publicKey),
      w3: ledger.account(w3.publicKey),
    });
    ends.push(read());
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await open();
    ends.push(read());
    await ledger.close();
  });
  return { live: ends[0], replayed: ends[1] };
}

const pledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge w3", w3, 100_000),
];

/**
 * The orders of `items` (after the pledges) that do not end with nobody paid and w2 cut 14,000
 * (its equivocation), each with its accounts; each order replayed from its log ends as live.
 */
async function paidOrders(items: Evidence[]): Promise<string[]> {
  const stake = (amount: number) => ({ balance: 0, stake: amount, locked: 0 });
  const end = { w1: stake(100_000), w2: stake(100_000 - 14_000), w3: stake(100_000) };
  const differing: string[] = [];
  for (const order of orders(items)) {
    const { live, replayed } = await after([...pledges, ...order]);
    const name = order.map((e) => e.name).join(", ");
    if (JSON.stringify(live) !== JSON.stringify(end)) {
      differing.push(`${name}: ${JSON.stringify(live)}`);
    }
    assert.deepEqual(replayed, live, `${name}: replayed from the log`);
  }
  return differing;
}

Deno.test("R2 kept claim assignment: w2's other claim arriving assigned against its kept claim is a double assignment with w1's, in all 24 orders (w1 not paid)", async () => {
  // The requester assigned job 6381 to w1 and to w2. w1's receipt (7 tokens) and w2's (7
  // tokens) are announced bare and assigned; w2 also signed another claim for the job (700
  // tokens: its equivocation, 14,000 cut).
  const g1 = receipt(6381, 7, w1);
  const g2 = receipt(6381, 7, w2);
  const big = resigned(g2, { tokenCount: 700 }, w2);
  const items = [
    announce("w1 bare", g1, false),
    announce("w2 bare", g2, false),
    announce("w2 big, assigned", big, true),
    announce("w1 assigned", g1, true),
  ];
  const differing = await paidOrders(items);
  // Today: 1 of 24, "w1 bare, w2 bare, w2 big, assigned, w1 assigned": w1 paid 7 (w2's bare
  // receipt kept as its claim while w1's holds the job; its big claim, assigned, is its
  // equivocation and the assignment is dropped; w1's assignment then pays w1's record).
  assert.deepEqual(differing, [], "orders where the double-assigned job paid a worker");
});

Deno.test("R2 kept claim assignment: w3's assigned receipt does not take over w1's bare one after w2's assignment came with its other claim, in all 24 orders (w3 not paid)", async () => {
  // The requester assigned job 6382 to w2 and to w3; w1 announced a receipt of its own bare.
  const g1 = receipt(6382, 7, w1);
  const g2 = receipt(6382, 7, w2);
  const big = resigned(g2, { tokenCount: 700 }, w2);
  const g3 = receipt(6382, 7, w3);
  const differing = await paidOrders([
    announce("w1 bare", g1, false),
    announce("w2 bare", g2, false),
    announce("w2 big, assigned", big, true),
    announce("w3 assigned", g3, true),
  ]);
  // Today: 1 of 24, "w1 bare, w2 bare, w2 big, assigned, w3 assigned": w3 paid 7 (w2's
  // assignment dropped with its equivocation, w3's assigned receipt takes w1's bare job over).
  assert.deepEqual(differing, [], "orders where the double-assigned job paid a worker");
});

Deno.test("R2 kept claim assignment: the bare holder's worker's own other claim is still its equivocation once the job passed to w2's convicted claim, in all 24 orders", async () => {
  // The requester assigned job 6383 to w2 only; w1 announced a receipt of its own bare, and
  // another claim for the job (700 tokens: its equivocation, 14,000 cut, as w2's).
  const g1 = receipt(6383, 7, w1);
  const big1 = resigned(g1, { tokenCount: 700 }, w1);
  const g2 = receipt(6383, 7, w2);
  const big2 = resigned(g2, { tokenCount: 700 }, w2);
  const end = {
    w1: { balance: 0, stake: 100_000 - 14_000, locked: 0 },
    w2: { balance: 0, stake: 100_000 - 14_000, locked: 0 },
    w3: { balance: 0, stake: 100_000, locked: 0 },
  };
  const differing: string[] = [];
  for (
    const order of orders([
      announce("w1 bare", g1, false),
      announce("w2 bare", g2, false),
      announce("w2 big, assigned", big2, true),
      announce("w1 big", big1, false),
    ])
  ) {
    const { live, replayed } = await after([...pledges, ...order]);
    const name = order.map((e) => e.name).join(", ");
    if (JSON.stringify(live) !== JSON.stringify(end)) {
      differing.push(`${name}: ${JSON.stringify(live)}`);
    }
    assert.deepEqual(replayed, live, `${name}: replayed from the log`);
  }
  assert.deepEqual(differing, [], "orders where a worker's two claims were not both slashed");
});

Deno.test("R2 kept claim assignment: an index of format 6 (the job's equivocation mark kept when w2's assigned receipt took the job from w1's) is rebuilt from the log, and w2's other claim is its equivocation", async () => {
  const g1 = receipt(6384, 7, w1);
  const big1 = resigned(g1, { tokenCount: 700 }, w1);
  const g2 = receipt(6384, 7, w2);
  const big2 = resigned(g2, { tokenCount: 700 }, w2);
  await withLedgerDir(async (dir, clock) => {
    const open = () =>
      Ledger.open(dir, seeded(95), {
        now: () => clock.t,
        economics: { challengeWindowMs: WINDOW },
      });
    let ledger = await open();
    for (
      const item of [
        ...pledges,
        announce("w1 bare", g1, false),
        announce("w1 big", big1, false),
        announce("w2 big, assigned", big2, true),
      ]
    ) {
      clock.t += 1;
      await item.deliver(ledger);
    }
    await ledger.close();
    // As an index of format 6 has it: the job still marked equivocated (w1's equivocation).
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("UPDATE jobs SET equivocated = 1; UPDATE meta SET v = 6 WHERE k = 'format';");
    db.close();
    ledger = await open();
    assert.equal(await announce("w2 bare", g2, false).deliver(ledger), "equivocation");
    assert.equal(ledger.account(w2.publicKey).stake, 100_000 - 14_000);
    await ledger.close();
  });
});
