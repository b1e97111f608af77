/**
 * Calls of `recordReceipt` (and `recordTrainingReceipt`) racing each other: whether a receipt is
 * equivocation, a late assignment or new is decided in one turn of the ledger's writer, so the
 * outcome is the one the same calls one after the other give.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import { assigned, receipt, requester, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();

/** The code each settled call ended with: "ok", or its error's code. */
function outcomes(results: PromiseSettledResult<unknown>[]): string[] {
  return results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as { code: string }).code);
}

Deno.test("ledger: the worker's announcement and the requester's arriving together record the receipt once, credited", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1e9);
    for (const order of ["worker first", "requester first"]) {
      const r = receipt(order === "worker first" ? 1 : 2, 10, worker);
      const calls = order === "worker first"
        ? [ledger.recordReceipt(r), ledger.recordReceipt(r, assigned(r))]
        : [ledger.recordReceipt(r, assigned(r)), ledger.recordReceipt(r)];
      const results = await Promise.allSettled(calls);
      const rec = ledger.receipt(receiptId(r))!;
      assert.deepEqual(
        { credit: rec.credit, requester: rec.requester },
        { credit: 10, requester: toHex(requester.publicKey) },
        order,
      );
      // The worker's copy after the requester's is the duplicate it always was.
      assert.deepEqual(
        outcomes(results),
        order === "worker first" ? ["ok", "ok"] : ["ok", "duplicate_receipt"],
        order,
      );
    }
    clock.t += ledger.economics.challengeWindowMs;
    await ledger.finalizeDue();
    assert.equal(ledger.account(worker.publicKey).balance, 20, "both jobs paid");
    await ledger.close();
  }));

Deno.test("ledger: two different receipts of one worker for one job arriving together are equivocation, slashed", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1e9);
    const first = receipt(3, 10, worker);
    const second = resigned(first, { outputHash: "44".repeat(32) }, worker);
    const results = await Promise.allSettled([
      ledger.recordReceipt(first, assigned(first)),
      ledger.recordReceipt(second, assigned(second)),
    ]);
    assert.deepEqual(outcomes(results), ["ok", "equivocation"]);
    assert.ok(ledger.convicted(worker.publicKey));
    assert.equal(ledger.receipt(receiptId(first))?.status, "fraud");
    assert.equal(ledger.receipt(receiptId(second)), undefined);
    const slashed = 10 * ledger.economics.slashMultiplier;
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1e9 - slashed,
      locked: 0,
    });
    await ledger.close();
  }));
