/**
 * The modes of the ledger's files: its owner's only, whatever the umask. The log, the history
 * index (`index.sqlite` and SQLite's `-wal` and `-shm` beside it) and the checkpoint hold every
 * receipt, verdict and balance this node recorded; the data directory is 0700, but a copy or
 * backup of it keeps only each file's own mode, and README says the files the node writes
 * durably are 0600 (review s72 follow-up: the log and the index were created 0644). The chunk
 * store's files take the same modes (`storage/_owner_only.ts`). Not part of the public API.
 *
 * @module
 */
import { STORE_DIR_MODE, STORE_FILE_MODE } from "../storage/_owner_only.ts";

/** Each file of the ledger: read and written by its owner only, as the store's. */
export const LEDGER_FILE_MODE = STORE_FILE_MODE;

/** The ledger's directory, when an open makes it: its owner's only, as the data directory. */
export const LEDGER_DIR_MODE = STORE_DIR_MODE;

/**
 * Take from `path` what others may do with it, when they may do anything (a file an earlier
 * version created with the umask, or a copy restored so), keeping its owner's bits. Best effort,
 * as for the identity key (`node/node_identity.ts`): a file that is not there is nothing to do,
 * and one on a read-only volume or owned by another user keeps the mode its operator set.
 */
export function keepToOwner(path: string): void {
  if (Deno.build.os === "windows") return; // no modes there
  try {
    const mode = Deno.statSync(path).mode ?? 0;
    if (mode & 0o077) Deno.chmodSync(path, mode & 0o700);
  } catch {
    // missing, read-only, or not this user's: left as it is
  }
}
