/**
 * What the chunk store charges against its quota beyond an object's bytes: each copy's
 * {@link OBJECT_OVERHEAD_BYTES}, each file's {@link PACK_OVERHEAD_BYTES}, and so what a whole pack
 * adds ({@link packBytes}). `chunk_store.ts` re-exports the two constants (they are public: a
 * caller sizing a quota needs them) and charges with them; `_replica_cap.ts` and
 * `_quarantine.ts` charge with them too. Not part of the public API (but the constants).
 *
 * @module
 */
import type { PackEntry } from "./pack_format.ts";

/**
 * What each stored copy costs beyond its bytes, charged against the quota: its pack index entry
 * (36 bytes), the record that roots most objects (a `replicas/` or `pins/` file: an inode and a
 * directory entry, a few hundred bytes) and its place in the in-memory index, rounded up. Without
 * it a peer's `put_chunk` of tiny objects filled the disk many times over the quota: 1024 objects
 * of 4 bytes under a 4096-byte quota took 1331 files and 1.3 MiB.
 */
export const OBJECT_OVERHEAD_BYTES = 512;
/**
 * What each pack file costs beyond its objects, charged against the quota: its header's fixed part
 * and the unused end of its last disk block (files take whole 4 KiB blocks). A put is judged as if
 * its object went into a pack of its own (a lone put does), then charged for the pack it shared.
 */
export const PACK_OVERHEAD_BYTES = 4096;

/**
 * What a pack adds to the store's usage: its copies' bytes, each copy's overhead and the pack's
 * own ({@link OBJECT_OVERHEAD_BYTES}, {@link PACK_OVERHEAD_BYTES}).
 */
export function packBytes(entries: readonly PackEntry[]): number {
  let bytes = PACK_OVERHEAD_BYTES;
  for (const entry of entries) bytes += entry.length + OBJECT_OVERHEAD_BYTES;
  return bytes;
}
