/**
 * SQLite failures of a ledger's history index, injected (no disk is filled): `node:sqlite`'s
 * `DatabaseSync.exec` made to fail as SQLite fails on a full disk or a failing device, with the
 * error it raises (code `ERR_SQLITE_ERROR`, SQLite's own text). For the ledger's disk tests.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** SQLite's error for `text` as `node:sqlite` raises it. */
export function sqliteError(text: string): Error {
  return Object.assign(new Error(`${text} (simulated)`), { code: "ERR_SQLITE_ERROR" });
}

/**
 * Until the returned undo is called, every `COMMIT` fails as on a full disk: SQLite rolls the
 * transaction back itself (as it does on `SQLITE_FULL`), then raises "database or disk is full".
 * Other statements run as usual.
 */
export function fullDiskOnCommit(): () => void {
  const exec = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    if (sql !== "COMMIT") return exec.call(this, sql);
    exec.call(this, "ROLLBACK");
    throw sqliteError("database or disk is full");
  };
  return () => {
    DatabaseSync.prototype.exec = exec;
  };
}

/**
 * Until the returned undo is called, the first `times` index opens (default: all) fail with
 * SQLite's `text` where they create the tables (as SQLite fails to grow a database or its
 * shared-memory file on a full disk). Returns the undo, and counts the failed opens in
 * `failed.opens`.
 */
export function failIndexOpen(
  text: string,
  times = Infinity,
): { undo: () => void; failed: { opens: number } } {
  const exec = DatabaseSync.prototype.exec;
  const failed = { opens: 0 };
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    if (!sql.includes("CREATE TABLE") || failed.opens >= times) return exec.call(this, sql);
    failed.opens++;
    throw sqliteError(text);
  };
  return {
    undo: () => {
      DatabaseSync.prototype.exec = exec;
    },
    failed,
  };
}
