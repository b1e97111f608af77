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
 * The disk block a `replicas/<cid>` record file takes (`_replica_record.ts`): its content is the
 * giver's key, about 80 bytes, but a file's data takes whole blocks, 4 KiB on ext4 and XFS by
 * default (measured in review s75: 80 bytes of content, 8 blocks of 512 bytes).
 */
export const REPLICA_RECORD_BYTES = 4096;

/**
 * What each copy held for a peer (a `put_chunk` replica) costs beyond its bytes against the replica
 * cap: {@link OBJECT_OVERHEAD_BYTES}, the block of its record ({@link REPLICA_RECORD_BYTES}), and a
 * pack of its own ({@link PACK_OVERHEAD_BYTES}): a peer pushing one tiny chunk at a time gets one
 * pack file, a whole block, per chunk. Charged 512 bytes, a flood of 1- to 6-byte chunks took about
 * 10x the replica quota on disk (review s75, finding 3: 10.9 MB under a 1 MiB quota, one 4 KiB
 * record block and a share of a 4 KiB pack per chunk); charged this, it stays within the quota.
 * What it costs an honest peer: 8.5 KiB on a 256 KiB chunk, 3 % of the cap.
 */
export const REPLICA_OVERHEAD_BYTES: number = OBJECT_OVERHEAD_BYTES + REPLICA_RECORD_BYTES +
  PACK_OVERHEAD_BYTES;

/**
 * What a pack adds to the store's usage: its copies' bytes, each copy's overhead and the pack's
 * own ({@link OBJECT_OVERHEAD_BYTES}, {@link PACK_OVERHEAD_BYTES}).
 */
export function packBytes(entries: readonly PackEntry[]): number {
  let bytes = PACK_OVERHEAD_BYTES;
  for (const entry of entries) bytes += entry.length + OBJECT_OVERHEAD_BYTES;
  return bytes;
}
