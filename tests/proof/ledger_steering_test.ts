/**
 * `Ledger.settleSteering`: a validator's steering conviction treats the receipts in its
 * evidence as caught cheats: pending ones are not paid, paid ones are clawed back, and each is
 * slashed `m ×` its credit — from the worker's whole stake (locks included, never below zero),
 * once per worker, counting only that worker's receipts that are or will be paid. It survives a
 * reopen.
 */
import assert from "node:assert/strict";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a steering conviction claws back (1 + m) × the paid evidence's credit and m × the pending evidence's, leaves the pending unpaid, once, and the cut survives a reopen", async () => {
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
    const pendingCredit = creditOf(pendingId);
    const expected = (1 + M) * creditOf(paidId) + M * pendingCredit;
    const cut = await ledger.settleSteering(steerer.publicKey, [
      paidId,
      pendingId,
      unpaidId,
      otherId,
      "no-such-receipt",
      paidId, // listed twice: counted once
    ]);
    assert.ok(creditOf(paidId) > 0 && pendingCredit > 0);
    assert.equal(cut, expected);
    assert.equal(creditOf(pendingId), 0, "the pending evidence is not paid");
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    assert.equal(ledger.account(other.publicKey).stake, 1_000_000, "another worker's receipt");
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
    ledger = await Ledger.open(dir, me, options);
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    assert.equal(ledger.receipt(pendingId)!.credit, 0, "unpaid after a reopen too");
    // When its window closes the pending receipt pays nothing.
    const balance = ledger.account(steerer.publicKey).balance;
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.receipt(pendingId)!.status, "final");
    assert.equal(ledger.account(steerer.publicKey).balance, balance);
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
  });
});

Deno.test("a steerer that keeps its stake at its locks is not convicted for free: the cut takes locked stake too, its pending evidence is not paid, and a later slash stops at zero", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const ledger = await Ledger.open(dir, me, { now: () => clock.t });
    const evidence = [receipt(5, 40, steerer), receipt(6, 40, steerer), receipt(7, 40, steerer)];
    // Exactly the stake the three receipts lock: nothing free.
    await ledger.deposit(steerer.publicKey, 3 * M * 40);
    for (const r of evidence) await ledger.recordReceipt(r, assigned(r));
    const before = ledger.account(steerer.publicKey);
    assert.equal(before.stake - before.locked, 0, "nothing free");
    const credits = evidence.map((r) => ledger.receipt(receiptId(r))!.credit);
    const owed = M * credits.reduce((a, b) => a + b, 0);
    const cut = await ledger.settleSteering(steerer.publicKey, evidence.map(receiptId));
    assert.equal(cut, Math.min(before.stake, owed));
    assert.ok(cut > 0, "convicted at a cost");
    const after = ledger.account(steerer.publicKey);
    assert.equal(after.stake, before.stake - cut);
    // A fraud proof later settled on one of them slashes what is left, never below zero.
    await ledger.settleFraud({
      receiptId: receiptId(evidence[0]),
      fraudProofHash: "ab".repeat(32),
      validator: me.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.ok(ledger.account(steerer.publicKey).stake >= 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(steerer.publicKey).balance, 0, "none of the evidence paid");
    await ledger.close();
  });
});

Deno.test("after a steering cut took the stake, a fraud proof on another open receipt slashes what is left and rewards only a share of that: no credit is minted", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const other = Identity.generate(); // another validator, whose fraud proof reaches this ledger
    const steerer = Identity.generate();
    const ledger = await Ledger.open(dir, me, { now: () => clock.t });
    await ledger.deposit(other.publicKey, 1_000);
    const [a, b, x] = [
      receipt(10, 40, steerer),
      receipt(11, 40, steerer),
      receipt(12, 40, steerer),
    ];
    await ledger.deposit(steerer.publicKey, 2 * M * 40); // two receipts' locks, nothing more
    await ledger.recordReceipt(a, assigned(a));
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    for (const r of [b, x]) await ledger.recordReceipt(r, assigned(r));
    const total = () =>
      [steerer, other, me].reduce((sum, who) => {
        const account = ledger.account(who.publicKey);
        return sum + account.stake + account.balance;
      }, 0);
    await ledger.settleSteering(steerer.publicKey, [receiptId(a), receiptId(b)]);
    assert.equal(ledger.account(steerer.publicKey).stake, 0, "the conviction took it all");
    const before = total();
    const entry = await ledger.settleFraud({
      receiptId: receiptId(x),
      fraudProofHash: "cd".repeat(32),
      validator: other.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.deepEqual([entry.body.slashed, entry.body.reward], [0, 0]);
    assert.equal(ledger.account(other.publicKey).balance, 0);
    assert.ok(total() <= before, `credit minted: ${before} → ${total()}`);
    await ledger.close();
  });
});

Deno.test("steering evidence recorded before its assignment is not paid when the assignment comes after the conviction, and was slashed its lock", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(steerer.publicKey, 1_000_000);
    const r = receipt(13, 40, steerer);
    await ledger.recordReceipt(r); // the worker's own announcement came first: credit 0
    const id = receiptId(r);
    const locked = ledger.receipt(id)!.locked;
    assert.ok(locked > 0);
    const cut = await ledger.settleSteering(steerer.publicKey, [id]);
    assert.equal(cut, locked, "slashed as a caught cheat's, credited yet or not");
    // Across a reopen too: the index remembers the evidence.
    await ledger.close();
    ledger = await Ledger.open(dir, me, options);
    await ledger.recordReceipt(r, assigned(r)); // the requester's announcement, later
    assert.equal(ledger.receipt(id)!.credit, 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.account(steerer.publicKey).balance, 0, "the evidence was paid");
    await ledger.close();
  });
});
