/**
 * `Ledger.settleSteering`: a validator's steering conviction claws back what the receipts in
 * its evidence earned and slashes as a caught cheat's, `(1 + m) ×` their credit, from the
 * worker's free stake — once per worker, counting only that worker's receipts that are or will
 * be paid, and never below the stake open receipts lock. It survives a reopen.
 */
import assert from "node:assert/strict";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a steering conviction cuts (1 + m) × the evidence's credit from the free stake, once, and the cut survives a reopen", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const other = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(steerer.publicKey, 1_000_000);
    await ledger.deposit(other.publicKey, 1_000_000);
    const paid = receipt(1, 10, steerer);
    const pending = receipt(2, 7, steerer);
    const unpaid = receipt(3, 5, steerer);
    const someoneElses = receipt(4, 9, other);
    for (const r of [paid, unpaid, someoneElses]) await ledger.recordReceipt(r, assigned(r));
    const [paidId, pendingId, unpaidId, otherId] = [paid, pending, unpaid, someoneElses].map(
      receiptId,
    );
    // `paid` finalizes; `unpaid` is left undecided (not paid); `pending`, recorded after, is
    // still in its window.
    await ledger.leaveUnresolved(unpaidId, "model_unavailable");
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    await ledger.recordReceipt(pending, assigned(pending));
    assert.equal(ledger.receipt(paidId)!.status, "final");
    assert.equal(ledger.receipt(pendingId)!.status, "pending");
    assert.equal(ledger.receipt(unpaidId)!.status, "unpaid");
    const creditOf = (id: string) => ledger.receipt(id)!.credit;
    const before = ledger.account(steerer.publicKey);
    const expected = (1 + M) * (creditOf(paidId) + creditOf(pendingId));
    const cut = await ledger.settleSteering(steerer.publicKey, [
      paidId,
      pendingId,
      unpaidId,
      otherId,
      "no-such-receipt",
      paidId, // listed twice: counted once
    ]);
    assert.ok(creditOf(paidId) > 0 && creditOf(pendingId) > 0);
    assert.equal(cut, expected);
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    assert.equal(ledger.account(other.publicKey).stake, 1_000_000, "another worker's receipt");
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
    ledger = await Ledger.open(dir, me, options);
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
  });
});

Deno.test("a steering conviction never cuts the stake that open receipts lock", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const ledger = await Ledger.open(dir, me, { now: () => clock.t });
    const r = receipt(5, 40, steerer);
    const open = receipt(6, 40, steerer);
    // Just enough stake for both receipts' locks and a little more.
    const price = (1 + M) * 40;
    await ledger.deposit(steerer.publicKey, 2 * M * 40 + 100);
    await ledger.recordReceipt(r, assigned(r));
    await ledger.recordReceipt(open, assigned(open));
    const account = ledger.account(steerer.publicKey);
    assert.ok(price > account.stake - account.locked, "the claw-back is more than is free");
    const cut = await ledger.settleSteering(steerer.publicKey, [receiptId(r)]);
    assert.equal(cut, account.stake - account.locked);
    const after = ledger.account(steerer.publicKey);
    assert.equal(after.stake, after.locked, "the locks still backed");
    await ledger.close();
  });
});
