/**
 * The free space of a directory's filesystem, as an unprivileged writer sees it: what the chunk
 * store's replica reserve (`_replica_cap.ts`) and the node's read-only state (`node/disk_room.ts`)
 * both ask. One answer for both, so the store's floor and the node's never disagree about a disk.
 * In `storage/` (no imports of its own), so `node/` and the store import it without a cycle.
 *
 * @module
 */
import { statfs } from "node:fs/promises";

/**
 * Bytes an unprivileged writer may still take on the filesystem holding `dir` (`statfs`'s
 * available blocks, not its free ones: the root-only reserve is not this process's to write).
 *
 * @example
 * ```ts
 * import { diskFreeBytes } from "./disk_free.ts";
 * console.log(await diskFreeBytes(Deno.cwd()) >= 0); // true
 * ```
 */
export async function diskFreeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}
