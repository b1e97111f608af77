/**
 * The chunk store's `quarantine/`: where bad copies (bytes that failed verification) and damaged
 * packs are set aside for forensics, and what they take, charged against the quota. `ChunkStore`
 * owns one {@link Quarantine}: it copies bad bytes in ({@link Quarantine.keep}) before a pack is
 * rewritten without them, counts the directory again when it changed (here, by another process,
 * or by the operator emptying it) and adds {@link Quarantine.bytes} to what the store uses. Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { PACK_OVERHEAD_BYTES } from "./_chunk_costs.ts";
import { dirEntries } from "./_dir_entries.ts";
import { dirStamp, STAMP_TRUST_MS } from "./_dir_stamp.ts";
import { OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** The bytes `quarantine/` holds, counted from the directory, and how to add to it. */
export class Quarantine {
  readonly #path: string;
  /**
   * What `quarantine/` takes (see `ChunkStoreStats.quarantineBytes`). Charged against the
   * quota like the packs: each quarantined copy leaves the packs (freeing its charge there) while
   * its bytes stay on disk, so a disk that kept rotting a chunk, repaired each time, took the
   * store past its quota by one copy per repair, unnoticed (a review found it at stop 56).
   */
  #quarantined = 0;
  /** Modification time of `quarantine/` when {@link #quarantined} was counted. */
  #quarantineStamp = -1;

  /** The quarantine of the store in `dir` (`dir/quarantine`). */
  constructor(dir: string) {
    this.#path = join(dir, "quarantine");
  }

  /** What `quarantine/` took when it was last counted ({@link count}). */
  get bytes(): number {
    return this.#quarantined;
  }

  /**
   * True when `quarantine/` may have changed since it was counted: quarantined here, by another
   * process, or emptied by the operator.
   */
  async changed(): Promise<boolean> {
    // Quarantined here, by another process, or emptied by the operator: counted again.
    // Removed whole: stamped 0, counted (and made) again.
    return await dirStamp(this.#path) !== this.#quarantineStamp;
  }

  /** Copy bad bytes to quarantine/ for forensics (the pack itself is about to be rewritten). */
  async keep(cid: string, bytes: Uint8Array): Promise<void> {
    const quarantine = this.#path;
    await Deno.mkdir(quarantine, { recursive: true, mode: OWNER_DIR_MODE }); // an operator may have removed it whole
    await Deno.writeFile(join(quarantine, `${cid}.${Date.now()}`), bytes, {
      mode: OWNER_FILE_MODE,
    });
  }

  /**
   * Count what `quarantine/` holds into {@link #quarantined}: each file's bytes and
   * {@link PACK_OVERHEAD_BYTES} (a file of its own, like a lone pack: its last block's unused end,
   * its inode and directory entry). Runs in the store's maintenance turn.
   */
  async count(readOnly: boolean): Promise<void> {
    const readAt = Date.now();
    const path = this.#path;
    // An operator may have removed it whole. A read-only store makes nothing: missing, it holds
    // nothing.
    if (!readOnly) await Deno.mkdir(path, { recursive: true, mode: OWNER_DIR_MODE });
    const stamp = await dirStamp(path);
    let bytes = 0;
    for await (const entry of dirEntries(path)) {
      if (!entry.isFile) continue;
      const size = await Deno.stat(join(path, entry.name)).then((s) => s.size, () => null);
      if (size !== null) bytes += size + PACK_OVERHEAD_BYTES; // null: removed meanwhile
    }
    this.#quarantined = bytes;
    // As for the packs directory (see ChunkStore's reload): a stamp from the last second proves
    // nothing.
    this.#quarantineStamp = readAt - stamp < STAMP_TRUST_MS ? -1 : stamp;
  }
}
