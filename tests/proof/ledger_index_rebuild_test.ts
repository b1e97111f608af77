/**
 * The history index (`index.sqlite`) is derived data: a damaged one is deleted and built anew
 * from the log when the ledger opens, and `ledger repair` always builds it anew.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { assigned, jobIdOf, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();

/** A ledger with `n` receipts recorded, closed. */
async function withReceipts(dir: string, clock: { t: number }, n: number): Promise<void> {
  const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, 1e9);
  for (let i = 1; i <= n; i++) {
    const r = receipt(i, 3, worker);
    await ledger.recordReceipt(r, assigned(r));
  }
  await ledger.close();
}

Deno.test("ledger: a damaged index.sqlite (garbled pages) is rebuilt from the log on open", () =>
  withLedgerDir(async (dir, clock) => {
    await withReceipts(dir, clock, 300);
    const path = `${dir}/index.sqlite`;
    const bytes = await Deno.readFile(path);
    assert.ok(bytes.length > 4096 * 4, "an index of several pages");
    bytes.fill(0xff, 4096 * 2); // a torn write, a bad sector: every page after the second
    await Deno.writeFile(path, bytes);

    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(ledger.length, 302);
    assert.equal(ledger.receiptOfJob(jobIdOf(1)), receiptId(receipt(1, 3, worker)));
    assert.equal(ledger.receipt(receiptId(receipt(300, 3, worker)))?.status, "pending");
    const next = receipt(5000, 3, worker);
    assert.equal((await ledger.recordReceipt(next, assigned(next))).status, "pending");
    await assert.rejects(() => ledger.recordReceipt(receipt(7, 3, worker)), {
      code: "duplicate_receipt",
    });
    await ledger.close();
    assert.equal((await verifyLedger(dir, { owner: owner.publicKey })).ok, true);
  }));

Deno.test("ledger repair always rebuilds the index, even when the log verifies", () =>
  withLedgerDir(async (dir, clock) => {
    await withReceipts(dir, clock, 3);
    // An index SQLite reads without complaint but that lost rows (a restored backup, an edit):
    // only the log can tell, and repair rebuilds from it.
    const db = new DatabaseSync(`${dir}/index.sqlite`);
    db.exec("DELETE FROM jobs; DELETE FROM receipts;");
    db.close();
    const repaired = await repairLedger(dir, owner, { now: () => clock.t });
    assert.equal(repaired.setAsideBytes, 0);
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(ledger.receiptOfJob(jobIdOf(2)), receiptId(receipt(2, 3, worker)));
    assert.equal(ledger.receipt(receiptId(receipt(3, 3, worker)))?.status, "pending");
    await ledger.close();

    // And a garbled one too: repair does not die on it.
    const bytes = await Deno.readFile(`${dir}/index.sqlite`);
    bytes.fill(0xff, 100);
    await Deno.writeFile(`${dir}/index.sqlite`, bytes);
    assert.equal((await repairLedger(dir, owner, { now: () => clock.t })).length, 5);
  }));

Deno.test("ledger: an index left with rows and no position (a reset cut short by a crash) is emptied before the rebuild: nothing of entries not in the log stays", () =>
  withLedgerDir(async (dir, clock) => {
    const opts = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, opts);
    await ledger.deposit(worker.publicKey, 1e6);
    await ledger.close();
    // The older copy of the log and its checkpoint (a backup / restore).
    const oldLog = await Deno.readFile(join(dir, "ledger.log"));
    const oldCheckpoint = await Deno.readFile(join(dir, "checkpoint.cbor"));

    ledger = await Ledger.open(dir, owner, opts);
    const r = receipt(1, 10, worker);
    await ledger.recordReceipt(r, assigned(r));
    await ledger.openChallenge(receiptId(r));
    await ledger.settleFault(receiptId(r), owner.publicKey, "proof_unavailable");
    assert.equal(ledger.convicted(worker.publicKey), true);
    await ledger.close();

    // Restore the older log + checkpoint; index.sqlite stays ahead of them.
    await Deno.writeFile(join(dir, "ledger.log"), oldLog);
    await Deno.writeFile(join(dir, "checkpoint.cbor"), oldCheckpoint);

    // Control: without a crash, open resets the index and nothing of the lost entries remains.
    const control = `${dir}-control`;
    await Deno.mkdir(control);
    for await (const e of Deno.readDir(dir)) {
      await Deno.copyFile(join(dir, e.name), join(control, e.name));
    }
    const c = await Ledger.open(control, owner, opts);
    const controlView = {
      convicted: c.convicted(worker.publicKey),
      job: c.receiptOfJob(r.jobId) ?? null,
    };
    await c.close();
    await Deno.remove(control, { recursive: true });
    assert.deepEqual(controlView, { convicted: false, job: null });

    // Crash image: reset's first statement (DELETE FROM meta) committed, the rest never ran.
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.exec("DELETE FROM meta;");
    db.close();

    ledger = await Ledger.open(dir, owner, opts);
    const view = {
      length: ledger.length,
      account: ledger.account(worker.publicKey),
      convicted: ledger.convicted(worker.publicKey),
      job: ledger.receiptOfJob(r.jobId) ?? null,
      receipt: ledger.receipt(receiptId(r))?.status ?? null,
    };
    // The receipt cannot be recorded again either: the stale row says it is already there.
    const again = await ledger.recordReceipt(r, assigned(r)).then(() => "recorded", (e) => e.code);
    await ledger.close();
    assert.deepEqual(
      { convicted: view.convicted, job: view.job, again },
      { convicted: false, job: null, again: "recorded" },
      "the index keeps a conviction and a job the log does not have",
    );
  }));
