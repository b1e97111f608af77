/**
 * A worker's accusation of its own receipt is refused by the ledger itself (whoever calls
 * `settleFraud`): refuted, it would buy a flat penalty in place of the receipt's checks;
 * confirmed, a reward out of its own slash. Nothing moves.
 */
import assert from "node:assert/strict";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";

Deno.test("ledger: a worker's fraud proof about its own receipt is refused, confirmed or refuted, and nothing moves", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    const worker = Identity.generate();
    await ledger.deposit(worker.publicKey, 10_000);
    const r = receipt(1, 10, worker);
    const record = await ledger.recordReceipt(r, assigned(r));
    for (const [confirmed, hash] of [[false, "44"], [true, "55"]] as const) {
      await assert.rejects(
        () =>
          ledger.settleFraud({
            receiptId: receiptId(r),
            fraudProofHash: hash.repeat(32),
            validator: worker.publicKey,
            confirmed,
            reason: confirmed ? "confirmed" : "not_reproduced",
          }),
        { code: "self_accusation" },
      );
    }
    assert.equal(ledger.receipt(receiptId(r))?.status, "pending");
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: record.locked,
    });
    await ledger.close();
  }));
