/**
 * What the ledger writes after a failure, and what a new ledger's files need to survive a power
 * cut.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const staker = Identity.generate();

Deno.test("ledger: after a failed write, checkpoint() is refused (ledger_poisoned) and the ledger reopens", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 5);
    // The entry reaches the log, then the history index's commit fails (disk full, I/O error):
    // the state in memory holds an entry the ledger's position does not.
    const apply = LedgerIndex.prototype.apply;
    LedgerIndex.prototype.apply = () => {
      throw new Error("SQLITE_FULL (simulated)");
    };
    try {
      await assert.rejects(() => ledger.deposit(staker.publicKey, 7), /SQLITE_FULL/);
    } finally {
      LedgerIndex.prototype.apply = apply;
    }
    await assert.rejects(() => ledger.checkpoint(), { code: "ledger_poisoned" });
    await ledger.close();
    const report = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(report.ok, true);
    const reopened = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(reopened.length, 3, "the log, the only truth, has the entry");
    assert.equal(reopened.account(staker.publicKey).stake, 12);
    await reopened.close();
  }));

Deno.test("ledger: a new ledger syncs its directory once ledger.log and index.sqlite are created", () =>
  withLedgerDir(async (parent, clock) => {
    const dir = `${parent}/ledger`;
    const opened: string[] = [];
    const open = Deno.open;
    // Every directory sync opens the directory: seen here, without a power cut.
    Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
      opened.push(String(path));
      return open(path, options);
    }) as typeof Deno.open;
    let ledger: Ledger;
    try {
      ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    } finally {
      Deno.open = open;
    }
    assert.ok(opened.includes(dir), `the ledger directory is synced (opened: ${opened})`);
    assert.ok(opened.includes(parent), "and its parent, which got the new directory");
    await ledger.close();
  }));
