/**
 * Review s50: the "invalid / steering" row of docs/PROOF.md's "challenge ends" table says the
 * validator gets nothing — the steering cut and the convicting receipt's fault are burned, as a
 * withheld proof's slash is. `tests/proof/ledger_steering_test.ts` pins the steerer's stake and
 * credit; this pins everyone's accounts: the cut leaves the ledger (no key's balance or stake
 * grows), also after a reopen.
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { assigned, receipt, requester, withLedgerDir } from "./_ledger_fixtures.ts";

const STAKE = 1_000_000;

Deno.test("review s50: a steering conviction and the fault of the receipt that completes it reward no one: the owner, the requester and the other workers keep their accounts, and the cut is burned", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const steerer = Identity.generate();
    const other = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, options);
    for (const key of [owner, steerer, other]) await ledger.deposit(key.publicKey, STAKE);
    const paid = receipt(501, 10, steerer);
    const pending = receipt(502, 7, steerer);
    const convicting = receipt(503, 6, steerer);
    const honest = receipt(504, 9, other);
    for (const r of [paid, honest]) await ledger.recordReceipt(r, assigned(r));
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    for (const r of [pending, convicting]) await ledger.recordReceipt(r, assigned(r));
    const keys = [owner, steerer, other, requester].map((k) => k.publicKey);
    const before: Account[] = keys.map((k) => ledger.account(k));
    const total = (accounts: Account[]) =>
      accounts.reduce((sum, a) => sum + a.balance + a.stake, 0);

    // The receipt that completes the evidence ends in a fault; the evidence is settled.
    await ledger.openChallenge(receiptId(convicting));
    const faultSlash = ledger.receipt(receiptId(convicting))!.locked;
    await ledger.settleFault(receiptId(convicting), owner.publicKey, "steering");
    const cut = await ledger.settleSteering(steerer.publicKey, [
      receiptId(paid),
      receiptId(pending),
      receiptId(convicting),
    ]);
    assert.ok(cut > 0 && faultSlash > 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();

    const check = (l: Ledger) => {
      const after = keys.map((k) => l.account(k));
      assert.deepEqual(after[0], before[0], "the owner, who convicted, earns nothing");
      assert.deepEqual(after[2], before[2], "another worker is untouched");
      assert.deepEqual(after[3], before[3], "the requester is untouched");
      assert.deepEqual(after[1], {
        balance: before[1].balance,
        stake: before[1].stake - faultSlash - cut,
        locked: 0,
      }, "the steerer: the pending evidence unpaid, its stake cut");
      assert.equal(total(after), total(before) - faultSlash - cut, "the cut left the ledger");
    };
    check(ledger);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    check(ledger);
    await ledger.close();
  }));
