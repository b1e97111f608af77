/**
 * A full disk between the ledger's two writes (review s72, finding 2): the entry's log append fits
 * and is synced, then the history index's commit fails with `SQLITE_FULL`, and SQLite has rolled
 * the transaction back itself. The `ROLLBACK` in the catch threw "cannot rollback - no transaction
 * is active" over the real error, and the call was answered as a plain failure though its entry
 * counted after the reopen. Now the caller is told `ledger_index_failed` — the entry is recorded
 * — caused by `disk_full` naming the ledger directory, and the entry counts once after the
 * reopen. The failure is injected (`_sqlite_faults.ts`); no disk is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { INDEX_FILE, LedgerIndex } from "../../proof/ledger_index.ts";
import { fullDiskOnCommit } from "./_sqlite_faults.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const staker = Identity.generate();

Deno.test("a deposit whose index commit hits a full disk after its entry reached the log is answered ledger_index_failed (recorded, do not repeat it), caused by disk_full naming the ledger directory, never 'cannot rollback'; reopened, it counts once", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t, checkpointEvery: 0 });
    try {
      await ledger.deposit(staker.publicKey, 5);
      const undo = fullDiskOnCommit();
      let failure: unknown;
      try {
        failure = await ledger.deposit(staker.publicKey, 7).then(() => null, (e) => e);
      } finally {
        undo();
      }
      assert.ok(failure instanceof LedgerError, `the deposit answered ${failure}`);
      assert.equal(failure.code, "ledger_index_failed");
      assert.doesNotMatch(failure.message, /cannot rollback/);
      assert.match(failure.message, /ledger entry 2 \(stake\) is recorded/);
      assert.match(failure.message, /do not make the call again/);
      const cause = failure.cause;
      assert.ok(cause instanceof DiskFullError, `caused by ${cause}`);
      assert.equal(cause.code, "disk_full");
      assert.ok(cause.message.includes(dir), `the cause names no directory: ${cause.message}`);
      assert.equal(ledger.poisoned, true, "later writes are taken on a stale index");

      assert.equal(await ledger.reopen(), true);
      assert.equal(ledger.length, 3, "the entry is in the log");
      assert.equal(ledger.account(staker.publicKey).stake, 12, "counted other than once");
      await ledger.deposit(staker.publicKey, 1);
      assert.equal(ledger.account(staker.publicKey).stake, 13);
    } finally {
      await ledger.close();
    }
  }));

Deno.test("an index rebuilt at open on a full disk (its commits fail, SQLite rolling back itself): the open is refused disk_full naming the ledger directory, not 'cannot rollback', and opens whole once there is space", () =>
  withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, checkpointEvery: 0 };
    const ledger = await Ledger.open(dir, owner, options);
    for (let i = 1; i <= 3; i++) await ledger.deposit(staker.publicKey, i);
    await ledger.close();
    // The index lost (deleted by hand, an older version's): the open catches it up from the log.
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.remove(`${dir}/index.sqlite${suffix}`).catch(() => {});
    }
    const undo = fullDiskOnCommit();
    let refused: unknown;
    try {
      refused = await Ledger.open(dir, owner, options).then(() => null, (e) => e);
    } finally {
      undo();
    }
    assert.ok(refused instanceof DiskFullError, `the open answered ${refused}`);
    assert.equal(refused.code, "disk_full");
    assert.doesNotMatch(refused.message, /cannot rollback/);
    assert.match(refused.message, /free space there, then start again/);
    assert.ok(refused.message.includes(dir), refused.message);

    const reopened = await Ledger.open(dir, owner, options);
    assert.equal(reopened.length, 4);
    assert.equal(reopened.account(staker.publicKey).stake, 6);
    await reopened.close();
  }));

Deno.test("LedgerIndex.rollback of a batch SQLite already ended (a full disk) does not throw 'cannot rollback', so the failure that ended it is the one thrown", () =>
  withLedgerDir((dir) => {
    const index = LedgerIndex.open(`${dir}/${INDEX_FILE}`);
    try {
      index.begin();
      const undo = fullDiskOnCommit();
      try {
        assert.throws(() => index.commit(), /database or disk is full/);
      } finally {
        undo();
      }
      index.rollback(); // as the catch-up's batch does after a failed apply
      index.begin(); // and the index takes the next batch
      index.commit();
    } finally {
      index.close();
    }
    return Promise.resolve();
  }));
