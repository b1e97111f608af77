/**
 * Assignments in the ledger: an assignment names a job and a worker, not a receipt, so it is
 * recorded on that worker's record holding the job whichever receipt it comes with; a receipt its
 * owner could not check or left undecided earns nothing when its assignment comes later.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { LedgerRejectedError } from "../../proof/ledger_errors.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { assigned, receipt, requester, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./_convergence_world.ts";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";

const { v1, w1, w2, w3 } = parties;

// An assignment names a job and a worker, not a receipt, so it is recorded on the record of that
// worker's that holds the job without one, whichever of the worker's receipts it comes with
// (`proof/_ledger_late_assignment.ts`). Before, only the very receipt recorded took its assignment,
// while open: the assignment coming with the worker's other receipt (its variant's record holding
// the job, or its own record convicted) left no trace, and another worker's assigned receipt then
// took the job over and was paid, where in every other order the job was a double assignment and
// neither was. And the same claim signed again, assigned, left its bare record holding the job
// unpaid, where in the other order it was paid: it is paid now, once.

const pledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
];

/** An account as `Ledger.account` reports it. */
const account = (balance: number, stake: number) => ({ balance, stake, locked: 0 });

/** Opens the ledger in `dir` on the test clock (`model` "bafkreidear" costs 3 a token). */
function open(dir: string, clock: { t: number }) {
  return Ledger.open(dir, seeded(91), {
    now: () => clock.t,
    economics: { challengeWindowMs: WINDOW },
    tokenPrice: (model) => model === "bafkreidear" ? 3 : 1,
  });
}

/** The accounts of the parties on `ledger`. */
function accounts(ledger: Ledger) {
  return {
    w1: ledger.account(w1.publicKey),
    w2: ledger.account(w2.publicKey),
    v1: ledger.account(v1.publicKey),
  };
}

/** Where `order` ends on a fresh ledger (every window closed), live and replayed from its log. */
async function after(order: Evidence[]) {
  let live: ReturnType<typeof accounts> | undefined;
  let replayed: ReturnType<typeof accounts> | undefined;
  let log: Awaited<ReturnType<typeof feed>> | undefined;
  await withLedgerDir(async (dir, clock) => {
    let ledger = await open(dir, clock);
    log = await feed(ledger, clock, order);
    live = accounts(ledger);
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await open(dir, clock);
    replayed = accounts(ledger);
    await ledger.close();
  });
  return { live: live!, replayed: replayed!, refused: log!.refused };
}

/** The code `fn` is refused with (undefined when it is not). */
async function refusal(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    if (error instanceof LedgerRejectedError) return error.code;
    throw error;
  }
}

Deno.test("late assignment: w2's receipt convicted bare, then its assigned copy: w1's assigned receipt is a double assignment, not a takeover (neither paid, in every order)", async () => {
  const g1 = receipt(6301, 7, w1);
  const g2 = receipt(6301, 7, w2);
  const a1 = announce("w1", g1, true);
  const bare = announce("w2 bare", g2, false);
  const a2 = announce("w2 assigned", g2, true);
  const byV1 = proof("v1 on w2", signedProof(g2, 6301, v1), g2, v1, true);
  // w2 loses its lock (140), v1 earns half of it; w1 is not paid: the job was assigned twice.
  const end = { w1: account(0, 100_000), w2: account(0, 100_000 - 140), v1: account(70, 1_000) };
  for (
    const [name, order] of Object.entries({
      "bare, proof, assigned, w1": [bare, byV1, a2, a1],
      "bare, assigned, proof, w1": [bare, a2, byV1, a1],
      "w1, bare, proof, assigned": [a1, bare, byV1, a2],
      "bare, proof, w1, assigned": [bare, byV1, a1, a2],
    })
  ) {
    const { live, replayed } = await after([...pledges, ...order]);
    assert.deepEqual(live, end, name);
    assert.deepEqual(replayed, end, `${name}, replayed from the log`);
  }
});

Deno.test("late assignment: the same claim signed again and assigned pays the worker's bare record holding the job, once, in either order", async () => {
  const g2 = receipt(6302, 7, w2);
  const g2b = resigned(g2, { commitment: { ...g2.commitment, root: "46".repeat(32) } }, w2);
  const bare = announce("w2 bare", g2, false);
  const again = announce("w2 re-signed, assigned", g2b, true);
  const end = { w1: account(0, 100_000), w2: account(7, 100_000), v1: account(0, 1_000) };
  for (
    const [name, order] of Object.entries({
      "bare, then re-signed assigned": [bare, again],
      "re-signed assigned, then bare": [again, bare],
      "bare, re-signed assigned, bare's own assigned copy, re-signed again": [
        bare,
        again,
        announce("w2 assigned", g2, true),
        again,
      ],
    })
  ) {
    const { live, replayed } = await after([...pledges, ...order]);
    assert.deepEqual(live, end, name);
    assert.deepEqual(replayed, end, `${name}, replayed from the log`);
  }
  // The receipt the assignment came with is not recorded: refused, its assignment kept.
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of [...pledges, bare]) await e.deliver(ledger);
    assert.equal(ledger.receiptRefusal(g2b, assigned(g2b)), "job_already_recorded");
    assert.equal(ledger.receipt(receiptId(g2))?.requester, undefined, "asking writes nothing");
    assert.equal(
      await refusal(() => ledger.recordReceipt(g2b, assigned(g2b))),
      "job_already_recorded",
    );
    assert.equal(ledger.receipt(receiptId(g2b)), undefined);
    assert.equal(ledger.receipt(receiptId(g2))?.credit, 7);
    await ledger.close();
  });
});

Deno.test("late assignment: another receipt of the worker's for the job that is not the recorded work (another model's price) records the assignment but pays nothing", async () => {
  const g2 = receipt(6303, 7, w2);
  const dear = resigned(g2, { model: "bafkreidear" }, w2);
  const g1 = receipt(6303, 7, w1);
  const { live, replayed, refused } = await after([
    ...pledges,
    announce("w2 bare", g2, false),
    announce("w2 dear, assigned", dear, true),
    announce("w1", g1, true),
  ]);
  // w2's bare record is assigned, unpaid; w1's assigned receipt is then a double assignment.
  const end = { w1: account(0, 100_000), w2: account(0, 100_000), v1: account(0, 1_000) };
  assert.deepEqual(live, end);
  assert.deepEqual(replayed, end);
  assert.deepEqual(refused, {
    "w2 dear, assigned": "job_already_recorded",
    "w1": "job_already_recorded",
  });
});

Deno.test("late assignment: w2's variant arriving assigned while its bare record holds the job is its equivocation and records the assignment (w1's assigned receipt then refused)", async () => {
  const g2 = receipt(6304, 7, w2);
  const big = resigned(g2, { tokenCount: 700 }, w2);
  const g1 = receipt(6304, 7, w1);
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of pledges) await e.deliver(ledger);
    await ledger.recordReceipt(big);
    assert.equal(await refusal(() => ledger.recordReceipt(g2, assigned(g2))), "equivocation");
    assert.equal(ledger.receipt(receiptId(big))?.status, "fraud");
    assert.equal(ledger.receipt(receiptId(big))?.requester, toHex(requester.publicKey));
    assert.equal(
      await refusal(() => ledger.recordReceipt(g1, assigned(g1))),
      "job_already_recorded",
    );
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(w1.publicKey), account(0, 100_000));
    assert.deepEqual(ledger.account(w2.publicKey), account(0, 100_000 - 14_000));
    await ledger.close();
  });
});

// An assignment arriving with a worker's receipt is recorded on that worker's record holding the
// job (`proof/_ledger_late_assignment.ts`), but not where the worker holds no record, only a kept
// claim (`unrecorded_claim`: another worker's bare receipt holds the job) and the receipt it comes
// with is the worker's other claim: that receipt is its equivocation against the kept claim
// (`unrecordedEquivocation`), and the entry keeps nothing of the assignment. The holder's own
// assignment coming later is then paid, where in the 23 other orders of the same four receipts the
// job is a double assignment and neither worker is paid.

/** Every order of `items`. */
function orders<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((x, i) =>
    orders([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest])
  );
}

/** w1's, w2's and w3's accounts once `order` was handled (every window over), live and replayed. */
async function afterKeptClaim(order: Evidence[]) {
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

const keptClaimPledges = [
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
    const { live, replayed } = await afterKeptClaim([...keptClaimPledges, ...order]);
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
    const { live, replayed } = await afterKeptClaim([...keptClaimPledges, ...order]);
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
        ...keptClaimPledges,
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

// A late assignment (`Ledger.recordReceipt`) on a receipt its owner's own challenge left unpaid
// (`leaveUnresolved`): the ledger must end as it does when the assigned copy came first — the job
// assigned to that worker, nothing paid here — also after its index is rebuilt from the log. It
// refused the assignment, so a requester's second, contradicting assignment to another worker took
// the job and was paid here, which it is not the other way round (and the owner's validator never
// passed the assigned receipt on: `tests/actors/validator_receipt_gossip_test.ts`).

const DEFAULT_WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;
const STAKE = 10_000;

/**
 * Worker A's receipt for job 1 is challenged here and left undecided; its assignment comes
 * before (`assignedFirst`) or after; then worker B's receipt for the same job, which the
 * requester assigned too. Returns what each earned here once every window closed, after a reopen
 * with the index rebuilt from the log.
 */
async function settle(assignedFirst: boolean) {
  let out: { a: number; b: number; aRequester: boolean; bRecorded: boolean } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const [a, b] = [Identity.generate(), Identity.generate()];
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, options);
    for (const key of [a, b]) await ledger.deposit(key.publicKey, STAKE);
    const ra = receipt(1, 10, a);
    const id = receiptId(ra);
    await ledger.recordReceipt(ra, assignedFirst ? assigned(ra) : {});
    await ledger.openChallenge(id);
    await ledger.leaveUnresolved(id, "validator_error");
    if (!assignedFirst) await ledger.recordReceipt(ra, assigned(ra)).catch(() => undefined);
    const rb = receipt(1, 10, b);
    const bRecorded = await ledger.recordReceipt(rb, assigned(rb)).then(() => true, () => false);
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, options);
    clock.t += DEFAULT_WINDOW + 1;
    await ledger.finalizeDue();
    out = {
      a: ledger.account(a.publicKey).balance,
      b: ledger.account(b.publicKey).balance,
      aRequester: ledger.receipt(id)?.requester !== undefined,
      bRecorded,
    };
    assert.equal(ledger.receipt(id)?.status, "unpaid");
    await ledger.close();
  });
  return out!;
}

Deno.test("an assignment that comes after the owner's undecided challenge is kept, earning nothing: a second worker's contradicting assignment is not paid, as when it came first", async () => {
  const control = await settle(true);
  assert.deepEqual(control, { a: 0, b: 0, aRequester: true, bRecorded: false });
  assert.deepEqual(await settle(false), control);
});

// The uncredited marker (`recordReceipt`'s `uncredited`): a receipt its ledger's owner could not
// check at intake earns nothing when its assignment comes later. The marker lives in the history
// index (`uncreditedReceiptKey`), which is derived data: it must hold across a reopen, a rebuild of
// the index from the log, and an index an earlier version built (one that applied the receipt
// before the marker existed).

Deno.test("a receipt recorded uncredited stays unpaid on a late assignment after the index is rebuilt from the log, and after an upgrade from an index built before the marker", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    const lost = receipt(1, 10, worker);
    const old = receipt(2, 10, worker);
    for (const r of [lost, old]) await ledger.recordReceipt(r, { uncredited: "model_unavailable" });
    await ledger.close();

    // The index lost (deleted): built anew from the log, the marker with it.
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, options);
    await ledger.recordReceipt(lost, assigned(lost));
    assert.equal(ledger.receipt(receiptId(lost))?.credit, 0, "rebuilt index: unpaid");
    await ledger.close();

    // The node upgraded while `old` was open: its index is the one the version before the
    // marker kept, which applied the same entries without writing the marker (nor anything
    // newer). The log still says the receipt was recorded uncredited.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec(
      "DELETE FROM proofs WHERE hash LIKE 'uncredited/%'; DELETE FROM meta WHERE k <> 'position';",
    );
    db.close();
    ledger = await Ledger.open(dir, owner, options);
    await ledger.recordReceipt(old, assigned(old));
    assert.equal(
      ledger.receipt(receiptId(old))?.credit,
      0,
      "the log says uncredited: an index from before the marker must not pay it",
    );
    clock.t += DEFAULT_WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    await ledger.close();
  }));
