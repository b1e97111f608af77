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

/** Modification time (ms) of directory `dir`: it changes when an entry is added or removed. */
export async function dirStamp(dir: string): Promise<number> {
  return (await Deno.stat(dir)).mtime?.getTime() ?? 0;
}
