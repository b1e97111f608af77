/**
 * Review (stop 44, second look) of settlements the ledger took after a receipt's window because
 * their proof was taken inside it (`FraudSettlement.takenAt`): reopened, the log replays to the
 * same balances, and a receipt held unpaid for a refuted one is paid once, live or reopened.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();

Deno.test("review s44 diff: settlements taken after the window by their takenAt replay to the same balances when the ledger is reopened, and the held receipt is paid once", () =>
  withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const [cheat, honest] = [receipt(1, 10, worker), receipt(2, 10, worker)];
    for (const r of [cheat, honest]) await ledger.recordReceipt(r, assigned(r));
    const takenAt = ledger.receipt(receiptId(cheat))!.pendingUntil - 1;
    clock.t = takenAt + 2; // the window has closed
    const held = new Set([receiptId(cheat), receiptId(honest)]);
    assert.deepEqual(await ledger.finalizeDue((id) => held.has(id)), [], "both held");
    for (const [r, confirmed, hash] of [[cheat, true, "71"], [honest, false, "72"]] as const) {
      await ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash.repeat(32),
        validator: accuser.publicKey,
        confirmed,
        reason: confirmed ? "confirmed" : "not_reproduced",
        takenAt,
      });
    }
    const snapshot = () => ({
      worker: ledger.account(worker.publicKey),
      accuser: ledger.account(accuser.publicKey),
      cheat: ledger.receipt(receiptId(cheat))?.status,
      honest: ledger.receipt(receiptId(honest))?.status,
    });
    assert.deepEqual(await ledger.finalizeDue(), [receiptId(honest)], "the refuted one paid");
    assert.deepEqual(await ledger.finalizeDue(), [], "once");
    const live = snapshot();
    assert.equal(live.cheat, "fraud");
    assert.equal(live.honest, "final");
    await ledger.close();
    assert.ok((await verifyLedger(dir)).ok, "the log verifies");
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(snapshot(), live, "reopened: the same");
    assert.deepEqual(await ledger.finalizeDue(), [], "nothing paid twice");
    await ledger.close();
  }));
