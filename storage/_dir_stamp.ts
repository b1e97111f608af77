/**
 * Directory stamps: the modification time of a directory, which changes when an entry is added
 * or removed, so an unchanged stamp spares re-reading it. `chunk_store.ts` stamps `packs/` (a
 * lookup that misses re-reads the packs only when it changed) and `_quarantine.ts` stamps
 * `quarantine/` (its bytes are counted again only when it changed). Not part of the public API.
 *
 * @module
 */

/** How old the packs directory's mtime must be before an unchanged one proves nothing changed. */
export const STAMP_TRUST_MS = 1000;

/**
 * Modification time (ms) of directory `dir`: it changes when an entry is added or removed. 0 when
 * `dir` does not exist: it holds nothing (a read-only store's folder never made, see
 * `_dir_entries.ts`), and its being made later changes the stamp.
 */
export async function dirStamp(dir: string): Promise<number> {
  try {
    return (await Deno.stat(dir)).mtime?.getTime() ?? 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}
