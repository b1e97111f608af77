/**
 * `Ledger.reopen`: after a write failed (the ledger poisoned), the ledger is opened again from
 * disk in place — the open `Ledger.open` runs, torn entry cut and set aside — and takes writes;
 * a reopen that fails leaves it as it was, readable and poisoned, to be tried again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { fillDiskUnder } from "./_ledger_disk_fault.ts";

const owner = Identity.generate();
const staker = Identity.generate();

/** The torn entries the ledger's opens set aside in `dir`. */
async function tornFiles(dir: string): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name);
  return names.filter((name) => name.startsWith("ledger.log.torn-"));
}

Deno.test("Ledger.reopen after a torn append (a full disk): the torn entry is cut and set aside, the ledger takes writes again in place, and reads as a fresh open of its directory", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    try {
      assert.equal(await ledger.reopen(), false, "a sound ledger is not reopened");
      await ledger.deposit(staker.publicKey, 5);
      const undo = fillDiskUnder(dir);
      try {
        await assert.rejects(() => ledger.deposit(staker.publicKey, 7), { code: "ENOSPC" });
        assert.equal(ledger.poisoned, true);
        await assert.rejects(() => ledger.deposit(staker.publicKey, 9), {
          code: "ledger_poisoned",
        });
      } finally {
        undo();
      }
      assert.equal(await ledger.reopen(), true);
      assert.equal(ledger.poisoned, false);
      assert.equal((await tornFiles(dir)).length, 1);
      assert.equal(ledger.account(staker.publicKey).stake, 5, "the torn deposit is not there");
      await ledger.deposit(staker.publicKey, 11);
      assert.equal(ledger.account(staker.publicKey).stake, 16);
      assert.equal(ledger.length, 3);
    } finally {
      await ledger.close();
    }
    assert.equal((await verifyLedger(dir, { owner: owner.publicKey })).ok, true);
    const fresh = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(fresh.account(staker.publicKey).stake, 16);
    assert.equal(fresh.length, 3);
    await fresh.close();
  }));

Deno.test("Ledger.reopen after an entry reached the log whole (the history index failed after it) finds the entry: recorded once", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    try {
      await ledger.deposit(staker.publicKey, 5);
      const apply = LedgerIndex.prototype.apply;
      LedgerIndex.prototype.apply = () => {
        throw new Error("SQLITE_FULL (simulated)");
      };
      try {
        await assert.rejects(() => ledger.deposit(staker.publicKey, 7), /SQLITE_FULL/);
      } finally {
        LedgerIndex.prototype.apply = apply;
      }
      assert.equal(await ledger.reopen(), true);
      assert.equal(ledger.length, 3, "the log, the only truth, has the entry");
      assert.equal(ledger.account(staker.publicKey).stake, 12);
      await ledger.deposit(staker.publicKey, 1);
      assert.equal(ledger.account(staker.publicKey).stake, 13);
    } finally {
      await ledger.close();
    }
  }));

Deno.test("Ledger.reopen that fails (the disk still failing) leaves the ledger poisoned and readable; a later reopen takes writes again", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    try {
      await ledger.deposit(staker.publicKey, 5);
      const undo = fillDiskUnder(dir);
      try {
        await assert.rejects(() => ledger.deposit(staker.publicKey, 7), { code: "ENOSPC" });
      } finally {
        undo();
      }
      const open = LedgerLog.open;
      LedgerLog.open = () =>
        Promise.reject(Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" }));
      try {
        await assert.rejects(() => ledger.reopen(), { code: "EIO" });
      } finally {
        LedgerLog.open = open;
      }
      assert.equal(ledger.poisoned, true);
      assert.equal(ledger.account(staker.publicKey).stake, 5, "its reads answer, as before");
      assert.equal(ledger.hasStaked(staker.publicKey), true);
      await assert.rejects(() => ledger.deposit(staker.publicKey, 1), { code: "ledger_poisoned" });
      assert.equal(await ledger.reopen(), true);
      assert.equal(ledger.account(staker.publicKey).stake, 5);
      await ledger.deposit(staker.publicKey, 1);
      assert.equal(ledger.account(staker.publicKey).stake, 6);
    } finally {
      await ledger.close();
    }
  }));
