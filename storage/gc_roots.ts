/**
 * What garbage collection must keep: the roots of a chunk store, read from disk each time, so a
 * collector in one process sees what every other process on the directory has committed.
 *
 * ```
 * pending/<id>      a put in progress: the CIDs it has stored so far, one per line; the putting
 *                   process holds an exclusive lock on the file while it runs
 * pins/<cid>        a file the owner keeps: the object, and every chunk it lists if a manifest
 * replicas/<cid>    a chunk this node holds for another node (received by put_chunk)
 *                   — its content names the peer that placed it (`_replica_record.ts`)
 * ```
 *
 * Readers take them in that order — pending puts, then pins — because a put commits by pinning
 * first and deleting its pending file second: a collector that missed the pending file (deleted
 * meanwhile) is sure to find the pin. A pending file whose lock is free belongs to a put that
 * died (kill -9, power loss); it is deleted here, and the objects only it referenced become
 * garbage.
 *
 * @module
 */
import { join } from "node:path";
import { isCid } from "../protocols/cid.ts";

export { blocksReferencedBy, chunksReferencedBy, isDagNode } from "./dag_links.ts";

/** Directory (under the store) of pending puts' root files. */
export const PENDING_DIR = "pending";
/** Directory (under the store) of pins. */
export const PINS_DIR = "pins";
/** Directory (under the store) of replicas held for other nodes. */
export const REPLICAS_DIR = "replicas";

/**
 * A pending file this young is taken as live even if unlocked: its put may sit between creating
 * it and locking it (microseconds; a second is plenty).
 */
const PENDING_MIN_AGE_MS = 1000;

/** The roots of a store at one moment. */
export interface GcRoots {
  /** CIDs stored by puts still running (in any process). */
  pending: Set<string>;
  /** Pinned roots (file ids), sorted. */
  pins: string[];
  /** Chunks held for other nodes. */
  replicas: Set<string>;
  /** Pending files of dead puts that were deleted. */
  abandonedPuts: number;
}

/** Read every root of the store in `dir` (pending puts first; see the module doc). */
export async function readGcRoots(dir: string): Promise<GcRoots> {
  const { pending, abandoned } = await readPending(join(dir, PENDING_DIR));
  // Only CID-named files are roots: a stray file (an editor's backup) must not stop every GC.
  const pins = (await namesIn(join(dir, PINS_DIR))).filter(isCid).sort();
  const replicas = new Set((await namesIn(join(dir, REPLICAS_DIR))).filter(isCid));
  return { pending, pins, replicas, abandonedPuts: abandoned };
}

async function namesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.name.startsWith(".")) out.push(entry.name);
  }
  return out;
}

async function readPending(dir: string): Promise<{ pending: Set<string>; abandoned: number }> {
  const pending = new Set<string>();
  let abandoned = 0;
  for (const name of await namesIn(dir)) {
    const path = join(dir, name);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // committed meanwhile: its pin is read next
      throw error;
    }
    try {
      if (await file.tryLock(true)) {
        const info = await file.stat();
        const age = Date.now() - (info.mtime?.getTime() ?? 0);
        if (info.size > 0 || age >= PENDING_MIN_AGE_MS) {
          // Gone already: its put committed (and closed it) just now; the pin is read next.
          if (await Deno.remove(path).then(() => true, () => false)) abandoned++;
        }
        continue;
      }
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // committed: its pin is read next
        throw error;
      }
      // The last line may be half written: a put writes its object only once the line is whole
      // (`pending_put.ts`), so nothing it names is stored yet, and skipping it is safe.
      for (const line of text.split("\n").slice(0, -1)) if (isCid(line)) pending.add(line);
    } finally {
      file.close();
    }
  }
  return { pending, abandoned };
}
