/**
 * Review s48 of a late assignment (`Ledger.recordReceipt`) on a receipt its owner's own
 * challenge left unpaid (`leaveUnresolved`): the ledger must end as it does when the assigned
 * copy came first — the job assigned to that worker, nothing paid here — also after its index
 * is rebuilt from the log. It refused the assignment, so a requester's second, contradicting
 * assignment to another worker took the job and was paid here, which it is not the other way
 * round (and the owner's validator never passed the assigned receipt on:
 * `tests/actors/review_s48_late_assignment_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;
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
    clock.t += WINDOW + 1;
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

Deno.test("review s48: an assignment that comes after the owner's undecided challenge is kept, earning nothing: a second worker's contradicting assignment is not paid, as when it came first", async () => {
  const control = await settle(true);
  assert.deepEqual(control, { a: 0, b: 0, aRequester: true, bRecorded: false });
  assert.deepEqual(await settle(false), control);
});
