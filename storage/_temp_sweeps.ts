/**
 * What crashed writers leave behind in a chunk store, swept when it opens: the temp files of
 * packs being written ({@link sweepPackTemporaries}) and of pin labels being written
 * ({@link sweepPinTemporaries}). A file is swept only when no live writer can still hold it: a
 * pack's temp file when its own lock is free, a label's when the store lock is. `ChunkStore.open`
 * calls both. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { removeTemporaries } from "../proof/_durable_file.ts";
import { isCid } from "../protocols/cid.ts";
import { openStoreLock } from "./_chunk_locks.ts";
import { PINS_DIR } from "./gc_roots.ts";
import { isTempName } from "./pack_writer.ts";

/**
 * A temp file this young is left alone on open even if unlocked: its writer may be between
 * creating it and locking it (microseconds; a second is plenty).
 */
const TEMP_SWEEP_MIN_AGE_MS = 1000;

/** Remove the temp files in `packsDir` whose writer is gone: unlocked, and not brand new. */
export async function sweepPackTemporaries(packsDir: string): Promise<void> {
  for await (const entry of Deno.readDir(packsDir)) {
    if (!entry.isFile || !isTempName(entry.name)) continue;
    const path = join(packsDir, entry.name);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true });
    } catch {
      continue; // renamed or removed meanwhile
    }
    try {
      if (!await file.tryLock(true)) continue; // a live writer holds it
      const info = await file.stat();
      const age = Date.now() - (info.mtime?.getTime() ?? 0);
      if (info.size > 0 || age >= TEMP_SWEEP_MIN_AGE_MS) {
        await Deno.remove(path).catch(() => {}); // its writer may have renamed it meanwhile
      }
    } finally {
      file.close();
    }
  }
}

/**
 * Remove the temporary files of pin labels (`RootRecords.touch`) that a process killed between
 * writing one and renaming it left in `pins/` of the store in `dir`: never read, they stayed for
 * good, one per crash. A label is written under the store lock, so while this holds it no pin is
 * being written; when another process holds it (a pin, or a GC, which can take long) the sweep is
 * left to a later open rather than waited for.
 */
export async function sweepPinTemporaries(dir: string): Promise<void> {
  const lock = await openStoreLock(dir);
  try {
    if (await lock.tryLock(true)) await removeTemporaries(join(dir, PINS_DIR), isCid);
  } finally {
    lock.close(); // releases the lock
  }
}
