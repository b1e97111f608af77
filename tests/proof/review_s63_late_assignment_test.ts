/**
 * Stop 63 (ledger): an assignment names a job and a worker, not a receipt, so it is recorded on
 * the record of that worker's that holds the job without one, whichever of the worker's receipts
 * it comes with (`proof/_ledger_late_assignment.ts`). Before, only the very receipt recorded took
 * its assignment, while open: the assignment coming with the worker's other receipt (its
 * variant's record holding the job, or its own record convicted) left no trace, and another
 * worker's assigned receipt then took the job over and was paid, where in every other order the
 * job was a double assignment and neither was. And the same claim signed again, assigned, left
 * its bare record holding the job unpaid, where in the other order it was paid: it is paid now,
 * once.
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
} from "./review_s62_convergence_world.ts";

const { w1, w2, v1 } = parties;
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
