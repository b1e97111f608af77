/**
 * Repairing a damaged ledger: keep every entry that verifies, set the rest aside, rebuild what
 * is derived from them.
 *
 * An entry verifies only as a link of the chain from genesis, so what is kept is the longest
 * prefix that verifies ({@link verifyLedger}); what follows the first bad entry cannot be linked
 * to it (two writers interleaved, a disk that lost a block) and replaying it could count work
 * twice, so it is moved, byte for byte, to `ledger.log.rejected-<time>` next to the log for
 * whoever wants to look at it. A checkpoint that does not match what is kept is removed, the
 * history index is always rebuilt (it is derived data, and a damaged `index.sqlite` verifies
 * like any other: the log is what `ledger verify` checks), and the ledger is opened once (which
 * checks the kept entries again and signs a fresh checkpoint).
 *
 * Run it only while no node has the directory: `cli.ts ledger repair` takes the data directory's
 * lock first.
 *
 * @module
 */
import { join } from "node:path";
import type { Identity } from "../protocols/identity.ts";
import { Ledger, type LedgerOptions } from "./ledger.ts";
import { LedgerOwnerMismatchError } from "./ledger_errors.ts";
import { LedgerLog, LOG_FILE } from "./ledger_log.ts";
import { INDEX_FILE } from "./ledger_index.ts";
import { removeCheckpoint } from "./ledger_checkpoint.ts";
import { type LedgerVerifyReport, verifyLedger } from "./ledger_verify.ts";
import { syncDirectory, writeFileDurably } from "./_durable_file.ts";
import { pathExists } from "../storage/path_exists.ts";

/** What {@link repairLedger} did. */
export interface LedgerRepairReport {
  /** What the check before the repair found. */
  before: LedgerVerifyReport;
  /** Entries kept (all of them verify). */
  kept: number;
  /** Where the bytes after them went, if any were set aside. */
  setAsidePath?: string;
  /** How many bytes were set aside. */
  setAsideBytes: number;
  /** Whether the checkpoint was removed (it did not match what is kept). */
  checkpointRemoved: boolean;
  /** Hash of the last kept entry (after the repair's own open: a new genesis if none was kept). */
  head: string;
  /** Entries in the ledger after the repair. */
  length: number;
}

/**
 * Repair the ledger in `dir` owned by `identity` (see the module doc). A ledger that verifies is
 * left as it is (and only reopened).
 *
 * @throws {LedgerOwnerMismatchError} when its genesis is another identity's (nothing is touched).
 */
export async function repairLedger(
  dir: string,
  identity: Identity,
  options: LedgerOptions = {},
): Promise<LedgerRepairReport> {
  const before = await verifyLedger(dir, { owner: identity.publicKey });
  if (before.damage?.code === "ledger_owner_mismatch") throw new LedgerOwnerMismatchError();
  let setAsidePath: string | undefined;
  const setAsideBytes = before.totalBytes - before.validBytes;
  if (setAsideBytes > 0) {
    const path = join(dir, LOG_FILE);
    const rest = new Uint8Array(setAsideBytes);
    const file = await Deno.open(path, { read: true });
    try {
      await file.seek(before.validBytes, Deno.SeekMode.Start);
      for (let read = 0; read < rest.length;) {
        const n = await file.read(rest.subarray(read));
        if (n === null) break;
        read += n;
      }
    } finally {
      file.close();
    }
    // Copied aside before the log is cut: a crash between the two leaves both, never neither.
    // Never over an earlier repair's file: a clock that repeats (stepped back, a machine without
    // a real-time clock) would name both alike, and the first one's bytes would be lost.
    const stamp = new Date((options.now ?? Date.now)()).toISOString().replaceAll(":", "-");
    setAsidePath = `${path}.rejected-${stamp}`;
    for (let n = 1; await pathExists(setAsidePath, { followSymlinks: false }); n++) {
      setAsidePath = `${path}.rejected-${stamp}-${n}`;
    }
    await writeFileDurably(setAsidePath, rest);
    const log = await LedgerLog.open(path, { write: true });
    try {
      await log.truncate(before.validBytes);
    } finally {
      log.close();
    }
  }
  const checkpointRemoved = before.checkpoint.check !== "matches" &&
    before.checkpoint.check !== "missing";
  if (checkpointRemoved) await removeCheckpoint(dir);
  // Derived from the log (perhaps from entries now gone, perhaps damaged itself): rebuilt from
  // what is kept.
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(join(dir, `${INDEX_FILE}${suffix}`)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  await syncDirectory(dir);
  const ledger = await Ledger.open(dir, identity, options);
  const report: LedgerRepairReport = {
    before,
    kept: before.entries,
    setAsidePath,
    setAsideBytes,
    checkpointRemoved,
    head: ledger.head,
    length: ledger.length,
  };
  await ledger.checkpoint();
  await ledger.close();
  return report;
}
