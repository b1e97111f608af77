/**
 * Opening a ledger on a full disk (review s72, finding 3): any failure to open the history index
 * was taken for damage, so a full disk deleted `index.sqlite` and the open then failed with a raw
 * "database or disk is full" naming no path. Now only an index SQLite says is damaged
 * (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) is deleted and rebuilt; a full disk — SQLite's
 * `SQLITE_FULL`, or its "disk I/O error" while a write in the directory fails `ENOSPC` — is refused
 * as `disk_full`, naming the ledger directory and saying to free space and start again, with the
 * index left as it was. SQLite's failures are injected (`_sqlite_faults.ts`); no disk is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { failIndexOpen } from "./_sqlite_faults.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const staker = Identity.generate();
const DEPOSITS = [3, 4, 5];

/** A closed ledger in `dir` holding {@link DEPOSITS}. */
async function ledgerWithDeposits(dir: string): Promise<void> {
  const ledger = await Ledger.open(dir, owner);
  for (const amount of DEPOSITS) await ledger.deposit(staker.publicKey, amount);
  await ledger.close();
}

/** Assert that `refused` is the full-disk refusal of an open of the ledger in `dir`. */
function assertFullDiskRefusal(refused: unknown, dir: string): void {
  assert.ok(refused instanceof DiskFullError, `the open answered ${refused}`);
  assert.equal(refused.code, "disk_full");
  assert.ok(refused.message.includes(dir), `no directory named: ${refused.message}`);
  assert.match(refused.message, /free space there, then start again/);
}

/** Open the ledger in `dir` again with space: every deposit is there. */
async function assertWhole(dir: string): Promise<void> {
  const ledger = await Ledger.open(dir, owner);
  assert.equal(ledger.length, DEPOSITS.length + 1);
  assert.equal(ledger.account(staker.publicKey).stake, DEPOSITS.reduce((a, b) => a + b));
  await ledger.close();
}

Deno.test("an index that cannot be opened for a full disk (SQLITE_FULL) is kept, byte for byte, and the open is refused disk_full naming the ledger directory and saying to free space and start again", () =>
  withLedgerDir(async (dir) => {
    await ledgerWithDeposits(dir);
    const index = await Deno.readFile(join(dir, INDEX_FILE));
    const { undo } = failIndexOpen("database or disk is full");
    let refused: unknown;
    try {
      refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    } finally {
      undo();
    }
    assertFullDiskRefusal(refused, dir);
    assert.deepEqual(await Deno.readFile(join(dir, INDEX_FILE)), index, "the index was rebuilt");
    await assertWhole(dir);
  }));

Deno.test("SQLite's 'disk I/O error' at the index's open while a write in the ledger directory fails ENOSPC is a full disk: refused disk_full, the index kept", () =>
  withLedgerDir(async (dir) => {
    await ledgerWithDeposits(dir);
    const index = await Deno.readFile(join(dir, INDEX_FILE));
    const { undo } = failIndexOpen("disk I/O error");
    const writeFile = Deno.writeFile;
    // The disk is full for any new file in the ledger's directory.
    Deno.writeFile = ((path: string | URL, ...rest: unknown[]) => {
      if (String(path).startsWith(dir)) {
        const error = new Error("No space left on device (os error 28) (simulated)");
        return Promise.reject(Object.assign(error, { code: "ENOSPC" }));
      }
      return (writeFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
    }) as typeof Deno.writeFile;
    let refused: unknown;
    try {
      refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    } finally {
      Deno.writeFile = writeFile;
      undo();
    }
    assertFullDiskRefusal(refused, dir);
    assert.deepEqual(await Deno.readFile(join(dir, INDEX_FILE)), index, "the index was rebuilt");
    await assertWhole(dir);
  }));

Deno.test("SQLite's 'disk I/O error' at the index's open with space on the disk is no full disk and no damage: thrown as SQLite said it, the index kept", () =>
  withLedgerDir(async (dir) => {
    await ledgerWithDeposits(dir);
    const index = await Deno.readFile(join(dir, INDEX_FILE));
    const { undo } = failIndexOpen("disk I/O error");
    let refused: unknown;
    try {
      refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    } finally {
      undo();
    }
    assert.ok(!(refused instanceof DiskFullError), `taken for a full disk: ${refused}`);
    assert.match(String(refused), /disk I\/O error/);
    assert.deepEqual(await Deno.readFile(join(dir, INDEX_FILE)), index, "the index was rebuilt");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".space-probe")),
      [],
      "the space probe was left behind",
    );
    await assertWhole(dir);
  }));

Deno.test("an index SQLite says is not a database (SQLITE_NOTADB) is still deleted and built anew from the log", () =>
  withLedgerDir(async (dir) => {
    await ledgerWithDeposits(dir);
    for (const suffix of ["-wal", "-shm"]) {
      await Deno.remove(join(dir, `${INDEX_FILE}${suffix}`)).catch(() => {});
    }
    await Deno.writeFile(
      join(dir, INDEX_FILE),
      new TextEncoder().encode("not sqlite ".repeat(800)),
    );
    await assertWhole(dir);
  }));

Deno.test("an index open that fails once as damaged (SQLITE_CORRUPT) is deleted and opened anew, once", () =>
  withLedgerDir(async (dir) => {
    await ledgerWithDeposits(dir);
    // The first open fails as damaged; the one after the deletion is let through.
    const { undo, failed } = failIndexOpen("database disk image is malformed", 1);
    let ledger: Ledger;
    try {
      ledger = await Ledger.open(dir, owner);
    } finally {
      undo();
    }
    assert.equal(failed.opens, 1);
    assert.equal(ledger.length, DEPOSITS.length + 1);
    await ledger.close();
  }));
