/**
 * The ledger's disk failures, told apart: a full disk is the operator's to fix (free space) and
 * leaves every file as it was, while a history index SQLite finds damaged is derived data the
 * ledger deletes and builds anew from the log. Taking one for the other cost a node on a full disk
 * its index and gave a raw `database or disk is full` with no path (review s72).
 *
 * `node:sqlite` reports every failure with the one code `ERR_SQLITE_ERROR` and SQLite's own text
 * for the result code as the message (no numeric code is exposed), so the text is what tells the
 * results apart; those texts are SQLite's fixed `sqlite3_errstr` strings. An entry that reached
 * the log before the index failed is recorded, and said so ({@link LedgerIndexFailedError}). Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { DiskFullError, isDiskFullOsError } from "../storage/errors.ts";
import { LedgerError } from "./ledger_errors.ts";

/** The code `node:sqlite` gives every SQLite failure. */
const SQLITE_ERROR_CODE = "ERR_SQLITE_ERROR";
/** SQLite's text for `SQLITE_FULL`: the database or its journal could not grow. */
const SQLITE_FULL_TEXT = "database or disk is full";
/**
 * SQLite's texts for `SQLITE_CORRUPT` and `SQLITE_NOTADB`: the only results that say the file
 * itself is damaged, so the only ones that justify deleting it.
 */
const SQLITE_DAMAGE_TEXTS = ["database disk image is malformed", "file is not a database"];

/**
 * SQLite's text for `SQLITE_IOERR`. On a full disk SQLite says this, not `SQLITE_FULL`, when it
 * cannot size its shared-memory file (seen on a full tmpfs, review s72 rerun): the disk is then
 * asked ({@link ledgerOpenError}).
 */
const SQLITE_IOERR_TEXT = "disk I/O error";
/**
 * Bytes the space probe writes: more than an index open adds (its shared-memory file is 32 KiB),
 * so a probe that fits says the open's failure was not for space.
 */
const SPACE_PROBE_BYTES = 64 * 1024;

/** Whether `error` is SQLite's (`node:sqlite`): from the history index, not from the log. */
export function isSqliteError(error: unknown): error is Error {
  return error instanceof Error && (error as { code?: unknown }).code === SQLITE_ERROR_CODE;
}

/** Whether SQLite says the index file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`). */
export function isIndexDamaged(error: unknown): boolean {
  return isSqliteError(error) && SQLITE_DAMAGE_TEXTS.some((text) => error.message.includes(text));
}

/**
 * Whether a SQLite failure while recovery reads or writes the index is the file's (damage, rows
 * that break its constraints), not the disk's (full, an I/O error): only the file's justifies
 * deleting the index and building it anew.
 */
export function isIndexFault(error: unknown): boolean {
  return isSqliteError(error) && !isDiskFull(error) && !error.message.includes(SQLITE_IOERR_TEXT);
}

/** Whether `error` says the disk is full: SQLite's `SQLITE_FULL`, or the OS's `ENOSPC`. */
export function isDiskFull(error: unknown): boolean {
  if (error instanceof DiskFullError) return true;
  if (isSqliteError(error)) return error.message.includes(SQLITE_FULL_TEXT);
  return isDiskFullOsError(error);
}

/**
 * The typed error of a ledger open in `dir` that failed with `error`: a full disk as
 * {@link LedgerDiskFullError}, also when SQLite said only "disk I/O error" and a small write in
 * `dir` fails for want of space; anything else as it is.
 */
export async function ledgerOpenError(error: unknown, dir: string): Promise<unknown> {
  if (isSqliteError(error) && error.message.includes(SQLITE_IOERR_TEXT) && await outOfSpace(dir)) {
    return new LedgerDiskFullError(dir, true, error);
  }
  return ledgerDiskError(error, dir, true);
}

/** Whether writing {@link SPACE_PROBE_BYTES} in `dir` fails for want of space (`ENOSPC`). */
async function outOfSpace(dir: string): Promise<boolean> {
  const probe = join(dir, `.space-probe-${crypto.randomUUID()}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(SPACE_PROBE_BYTES));
    return false;
  } catch (error) {
    return isDiskFullOsError(error);
  } finally {
    await Deno.remove(probe).catch(() => {});
  }
}

/**
 * The disk that holds the ledger in `dir` is full. The storage side's {@link DiskFullError} (same
 * `disk_full` code, so conditions and logs name one thing), with the ledger's directory and what
 * to do: the ledger's files are left as they were (nothing acknowledged is lost).
 */
export class LedgerDiskFullError extends DiskFullError {
  /** The ledger directory on the full disk. */
  readonly dir: string;

  /**
   * Build the error.
   * @param dir The ledger directory.
   * @param opening Whether the ledger was being opened (the remedy is then to start again).
   * @param cause The underlying SQLite or OS error.
   */
  constructor(dir: string, opening: boolean, cause?: unknown) {
    super(cause);
    this.dir = dir;
    this.message = `no space left on the device that holds the ledger (${dir}): free space ` +
      `there${opening ? ", then start again" : ""}; the ledger's files are left as they were`;
  }
}

/**
 * The typed error of a ledger write or open in `dir` that failed with `error`: a full disk as
 * {@link LedgerDiskFullError}, anything else as it is.
 */
export function ledgerDiskError(error: unknown, dir: string, opening: boolean): unknown {
  if (error instanceof LedgerDiskFullError || !isDiskFull(error)) return error;
  return new LedgerDiskFullError(dir, opening, error);
}

/**
 * An entry reached the log (synced: it counts, now and after any reopen) but what follows the
 * append failed — the history index's commit on a full disk. Not a refusal: the entry is recorded,
 * and a caller that took this for "not written" and made the call again would count the work
 * twice. Its own code, `ledger_index_failed`, so no caller mistakes it for a write that left
 * nothing; the ledger takes no more writes until it is reopened from disk, which brings the index
 * up to the log. `cause` is the failure (a `LedgerDiskFullError` for a full disk).
 */
export class LedgerIndexFailedError extends LedgerError {
  /** Position of the entry that is recorded. */
  readonly seq: number;

  /**
   * Build the error.
   * @param seq Position of the recorded entry.
   * @param kind Its kind.
   * @param cause What failed after the append.
   */
  constructor(seq: number, kind: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      "ledger_index_failed",
      `ledger entry ${seq} (${kind}) is recorded: it is in the log and counts, but the history ` +
        `index could not take it (${why}); do not make the call again. The ledger takes no more ` +
        `writes until it is reopened from disk, which brings the index up to date`,
      { cause },
    );
    this.seq = seq;
  }
}
