/**
 * Review s48 of the uncredited marker (`recordReceipt`'s `uncredited`, stop 47): a receipt its
 * ledger's owner could not check at intake earns nothing when its assignment comes later. The
 * marker lives in the history index (`uncreditedReceiptKey`), which is derived data: it must
 * hold across a reopen, a rebuild of the index from the log, and an index an earlier version
 * built (one that applied the receipt before the marker existed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

Deno.test("review s48: a receipt recorded uncredited stays unpaid on a late assignment after the index is rebuilt from the log, and after an upgrade from an index built before the marker", () =>
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
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    await ledger.close();
  }));
