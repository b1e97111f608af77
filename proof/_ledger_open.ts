/**
 * Opening a ledger's directory: what `Ledger.open` (`ledger.ts`) does before it builds the
 * ledger and after. {@link openLedgerFiles} makes the directory, removes the temporary files a
 * crash left, opens the log and the history index (one SQLite says is damaged, or finds damaged
 * while recovery reads it, is deleted and built anew from the log, once) and recovers the
 * working state (`ledger_recovery.ts`); {@link syncOpenedDirectories} makes the names of the
 * files and of the directories this open created durable. A full disk deletes nothing and is
 * refused as `LedgerDiskFullError` (`disk_full`, naming the directory): only an index SQLite says
 * is damaged is deleted (review s72: a full disk cost a node its index). Not part of the public
 * API.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import type { Identity } from "../protocols/identity.ts";
import { LedgerLog, LOG_FILE } from "./ledger_log.ts";
import { INDEX_FILE, LedgerIndex } from "./ledger_index.ts";
import { type RecoveredLedger, recoverLedger, type RecoveryWatch } from "./ledger_recovery.ts";
import { CHECKPOINT_FILE } from "./ledger_checkpoint.ts";
import { removeTemporaries, syncDirectory } from "./_durable_file.ts";
import { pathExists } from "../storage/path_exists.ts";
import { isIndexDamaged, isIndexFault, ledgerOpenError } from "./_ledger_disk_faults.ts";
import { keepToOwner, OWNER_DIR_MODE } from "../protocols/owner_only.ts";

/** What {@link openLedgerFiles} opened: the ledger is built from it. */
export interface OpenedLedgerFiles {
  /** The log, open for appends. */
  log: LedgerLog;
  /** The history index, up to date with the log. */
  index: LedgerIndex;
  /** What recovery found: the working state, the head, the checkpoint. */
  recovered: RecoveredLedger;
  /** The directories this open created (the ledger's, and any missing above it). */
  newDirs: string[];
}

/**
 * Make `dir` and open its log and history index, verifying its checkpoint and the entries after
 * it (see `Ledger.open`). On failure, what it opened is closed again.
 *
 * @throws {LedgerTamperedError} naming the first entry that fails verification.
 * @throws {LedgerDiskFullError} (`disk_full`) when the disk that holds `dir` is full.
 */
export async function openLedgerFiles(
  dir: string,
  identity: Identity,
  options: { now?: () => number } & RecoveryWatch,
): Promise<OpenedLedgerFiles> {
  // The directories this open creates (the ledger's, and any missing above it): each one's
  // name lives in its parent, synced below.
  const newDirs: string[] = [];
  for (let d = resolve(dir); !await pathExists(d, { followSymlinks: false }); d = dirname(d)) {
    newDirs.push(d);
  }
  await Deno.mkdir(dir, { recursive: true, mode: OWNER_DIR_MODE });
  // Written 0600 (`writeFileDurably`); one an earlier version wrote with the umask is made so.
  keepToOwner(join(dir, CHECKPOINT_FILE));
  // A checkpoint, or a copy of a log's tail set aside, cut short by a crash: never read.
  await removeTemporaries(
    dir,
    (name) => name === CHECKPOINT_FILE || name.startsWith(`${LOG_FILE}.`),
  );
  const log = await LedgerLog.open(join(dir, LOG_FILE), { write: true });
  let index: LedgerIndex | undefined;
  try {
    const indexPath = join(dir, INDEX_FILE);
    index = await openIndex(indexPath);
    const recover = () =>
      recoverLedger(dir, log, index!, identity.publicKey, options.now ?? Date.now, {
        log: options.log,
        signal: options.signal,
      });
    let recovered;
    try {
      recovered = await recover();
    } catch (error) {
      // A full disk or an I/O error is no damage: the index stays, for the next start.
      if (!isIndexFault(error)) throw error;
      // The index is derived data, and SQLite found it damaged (a torn page, a bad sector, rows
      // that break its constraints): built anew from the log, once.
      closeQuietly(index);
      index = undefined;
      await removeIndex(indexPath);
      index = LedgerIndex.open(indexPath);
      recovered = await recover();
    }
    return { log, index, recovered, newDirs };
  } catch (e) {
    index?.close();
    log.close();
    throw await ledgerOpenError(e, dir);
  }
}

/**
 * Sync `dir` and the parent of every directory this open created (`newDirs`), and of `dir`.
 */
export async function syncOpenedDirectories(dir: string, newDirs: string[]): Promise<void> {
  // A new file's name lives in its directory: without this, a power cut before the first
  // checkpoint (which syncs the directory) could lose the log with its acknowledged entries.
  // Synced at every open, not only when this one created the files: an earlier open killed
  // before its sync left them there, their names not yet durable (review s45). The parent
  // too, for the same reason, and the parent of every directory this open created.
  await syncDirectory(dir);
  for (const d of new Set([resolve(dir), ...newDirs])) await syncDirectory(dirname(d));
}

/**
 * Open the history index; one SQLite says is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) is
 * deleted and built anew from the log. Any other failure (a full disk, a directory that cannot be
 * written) says nothing against the file, so it is thrown with the file left as it is.
 */
async function openIndex(path: string): Promise<LedgerIndex> {
  try {
    return LedgerIndex.open(path);
  } catch (error) {
    if (!isIndexDamaged(error)) throw error;
    await removeIndex(path);
    return LedgerIndex.open(path);
  }
}

/** Delete the history index's files (it is rebuilt from the log). */
async function removeIndex(path: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${path}${suffix}`).catch(() => {});
  }
}

function closeQuietly(index: LedgerIndex): void {
  try {
    index.close();
  } catch {
    // a damaged database may fail to close cleanly: it is deleted next
  }
}
