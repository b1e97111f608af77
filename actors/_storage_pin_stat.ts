/**
 * What the StorageActor says of one pinned file, in its `list` and in its `file_counts`
 * (`_storage_pin_counts.ts`): one rule for both, the one `cli.ts ls` follows. Review verify4, F4:
 * a private file sealed with another key failed the `stat` with this node's key, and both were
 * made up as a public file with no chunks (the dashboard counted 2 public files where ls showed
 * 1 public and 1 private). Not part of the public API.
 *
 * @module
 */
import type { FileInfo } from "../storage/file_store.ts";
import type { OwnerKey } from "../storage/private_tier.ts";

/** The part of `FileStore` the rule reads. */
export interface PinStatSource {
  /** `FileStore.stat`: with a key, a private file's metadata is decrypted. */
  stat(cid: string, options?: { key?: OwnerKey }): Promise<FileInfo>;
}

/**
 * The pinned file `cid` as this node can read it: with `key` when it opens the file; else as
 * `cli.ts ls` shows it, read without a key (a private file sealed with another key: `private`,
 * size unknown, its manifest's chunks); undefined when its root cannot be read at all (a missing
 * or damaged block: ls shows an error), which may pass, so a caller keeps no answer for it.
 */
export async function statPin(
  files: PinStatSource,
  cid: string,
  key: OwnerKey | undefined,
): Promise<FileInfo | undefined> {
  try {
    return await files.stat(cid, { key });
  } catch {
    // Not opened with this node's key (or at all): read it as ls does, without one.
  }
  if (key === undefined) return undefined; // read without a key already
  try {
    return await files.stat(cid);
  } catch {
    return undefined;
  }
}
