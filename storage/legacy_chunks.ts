/**
 * Moves a store written by the first layout (one file per object under `chunks/<shard>/<cid>`)
 * into packs, once, when such a store is opened. Each object is verified against its name on
 * the way: good ones are put into the store (durably) before their file is removed, so a crash
 * mid-migration loses nothing and the next open simply continues; bad ones go to quarantine.
 *
 * Nothing is lost on the way, whatever an operator did to `chunks/` since:
 * - A shard folder or a chunk file that is a symbolic link (part of `chunks/` moved to another
 *   volume) is read through: its objects are migrated, then the link is removed, never what it
 *   points at (outside the data directory; the log says those files are no longer read).
 * - A link that cannot be read (a volume not mounted) stops the open before anything moves, with
 *   a {@link LegacyChunksUnreadableError} naming it: going on would drop its objects.
 * - Anything else this layout never wrote (a folder inside a shard, a file under a name that is
 *   not its bytes' CID outside a plain shard) is left where it is and logged, and `chunks/` with
 *   it: each folder is removed only once empty, never recursively.
 * - The space the move needs under the store's quota is checked before anything moves: a store
 *   too large for it is refused whole ({@link LegacyMigrationOverQuotaError}), where each start
 *   used to move part of it and then fail with a bare `quota_exceeded`.
 *
 * @module
 */
import { join, sep } from "node:path";
import { cidOfAsync } from "./_hash.ts";
import { OBJECT_OVERHEAD_BYTES, PACK_OVERHEAD_BYTES } from "./_chunk_costs.ts";
import { StorageError } from "./errors.ts";
import { isTempName } from "./pack_writer.ts";

/** Objects put concurrently, so the pack writer's group commit gathers them into few packs. */
const BATCH = 32;

/** The folder of the first layout, under the store's directory. */
const LEGACY_DIR = "chunks";

/**
 * Paths named in one log line or error at most: a store with thousands of stray files still gets
 * a readable line; the count says how many more there are.
 */
const MAX_NAMED_PATHS = 5;

/** What {@link migrateLegacyChunks} needs of the store. */
interface MigrationTarget {
  put(bytes: Uint8Array): Promise<string>;
  stats(): Promise<{ usedBytes: number; quotaBytes: number | null }>;
}

/**
 * The first layout's `chunks/` holds an entry that cannot be read (most often a symbolic link to
 * a volume that is not mounted). Nothing was moved: migrating without it would drop its objects
 * from the store for good.
 */
export class LegacyChunksUnreadableError extends StorageError {
  /** The paths that could not be read. */
  readonly paths: readonly string[];
  /**
   * Build the error.
   *
   * @param root The `chunks/` folder.
   * @param unreadable Each path with why it could not be read.
   */
  constructor(root: string, unreadable: readonly Skipped[]) {
    super(
      "legacy_chunks_unreadable",
      `the store's old layout (${root}) cannot be moved into packs: ${
        listPaths(unreadable)
      }. Nothing was moved; mount or restore what it points at, or remove the entry to go ` +
        "without the objects it holds, then start again",
    );
    this.paths = unreadable.map((entry) => entry.path);
  }
}

/**
 * Moving the first layout's objects into packs needs more than the store's quota leaves. Nothing
 * was moved: raising the quota (`storage.quotaBytes`) to what the moved store takes is the way
 * through.
 */
export class LegacyMigrationOverQuotaError extends StorageError {
  /** Bytes of quota the migration may take (see {@link migrationCost}). */
  readonly needed: number;
  /** Bytes left under the quota before it. */
  readonly available: number;
  /**
   * Build the error.
   *
   * @param root The `chunks/` folder.
   * @param objects How many objects it holds, and their bytes.
   * @param needed Bytes of quota the migration may take.
   * @param used Bytes the store uses already.
   * @param quota The store's quota.
   */
  constructor(
    root: string,
    objects: { count: number; bytes: number },
    needed: number,
    used: number,
    quota: number,
  ) {
    super(
      "legacy_migration_over_quota",
      `moving the store's old layout (${root}: ${objects.count} objects, ${objects.bytes} ` +
        `bytes) into packs needs up to ${needed} bytes of quota, and the quota of ${quota} ` +
        `bytes leaves ${Math.max(0, quota - used)}. Nothing was moved; raise the quota to at ` +
        `least ${used + needed} bytes, which the store takes once moved (storage.quotaBytes in ` +
        "the configuration file or VERIFLOW_STORAGE_QUOTA_BYTES; `--quota` for `cli.ts put`), " +
        "or remove it",
    );
    this.needed = needed;
    this.available = quota - used;
  }
}

/** An entry the migration did not take, and why. */
interface Skipped {
  path: string;
  why: string;
}

/** A file of the first layout that may be an object. */
interface LegacyFile {
  name: string;
  path: string;
  size: number;
  /** In a shard folder, where the first layout wrote (not directly under `chunks/`). */
  inShard: boolean;
  /** The file is a link: once its object moved, the link is removed, not what it points at. */
  isLink: boolean;
  /** Its shard folder is a link: the file is another volume's, and is never removed. */
  inLinkedShard: boolean;
}

/** A shard folder of `chunks/`, and whether it is a link to a folder elsewhere. */
interface Shard {
  path: string;
  link: boolean;
}

/** What {@link scan} found under `chunks/`. */
interface Scan {
  files: LegacyFile[];
  shards: Shard[];
  skipped: Skipped[];
  unreadable: Skipped[];
}

/**
 * Quota bytes moving `files` may take: each object as if it went into a pack of its own, which is
 * how the store judges each put, so no put of the migration can be refused once this fits.
 */
export function migrationCost(files: readonly { size: number }[]): number {
  let bytes = 0;
  for (const file of files) bytes += file.size + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
  return bytes;
}

/**
 * Move every object under `dir/chunks` into `store`; returns how many moved. No-op (0) when
 * there is no `chunks/` directory. What it moved, and what it left and why, go to `log`.
 *
 * @throws {LegacyChunksUnreadableError} an entry of `chunks/` cannot be read (nothing moved).
 * @throws {LegacyMigrationOverQuotaError} the move needs more than the quota leaves (nothing
 * moved).
 */
export async function migrateLegacyChunks(
  dir: string,
  store: MigrationTarget,
  quarantineDir: string,
  log: (line: string) => void = () => {},
): Promise<number> {
  const root = join(dir, LEGACY_DIR);
  const scan = await scanLegacy(root);
  if (scan === undefined) return 0;
  if (scan.unreadable.length > 0) throw new LegacyChunksUnreadableError(root, scan.unreadable);
  const objects = scan.files.filter((file) => !isTempName(file.name));
  const { usedBytes, quotaBytes } = await store.stats();
  const needed = migrationCost(objects);
  if (quotaBytes !== null && usedBytes + needed > quotaBytes) {
    const bytes = objects.reduce((sum, file) => sum + file.size, 0);
    throw new LegacyMigrationOverQuotaError(
      root,
      { count: objects.length, bytes },
      needed,
      usedBytes,
      quotaBytes,
    );
  }
  const { skipped } = scan;
  let moved = 0;
  let quarantined = 0;
  let behindLinks = 0;
  for (let i = 0; i < scan.files.length; i += BATCH) {
    await Promise.all(
      scan.files.slice(i, i + BATCH).map(async (file) => {
        // Where the first layout wrote: a plain file in a plain shard folder, this store's own.
        const own = file.inShard && !file.isLink && !file.inLinkedShard;
        if (isTempName(file.name)) {
          // A crashed writer's temp file of the first layout holds nothing yet; one reached through
          // a link or lying outside a shard may be someone else's, and stays.
          if (own) return await Deno.remove(file.path);
          return void skipped.push({ path: file.path, why: "a temporary file, not an object" });
        }
        const bytes = await Deno.readFile(file.path);
        if (await cidOfAsync(bytes) !== file.name) {
          if (own) {
            quarantined++;
            return await Deno.rename(
              file.path,
              join(quarantineDir, `${file.name}.${Date.now()}`),
            );
          }
          // Not in a plain shard, it may be no object at all (a note, another program's file):
          // the operator decides, so it stays where it is.
          return void skipped.push({
            path: file.path,
            why: "its name is not the CID of its bytes (not an object of this store)",
          });
        }
        await store.put(bytes);
        moved++;
        // Put durably first: removing the file (or the link to it) now loses nothing. A file
        // reached through a link is another volume's: left there, no longer read.
        if (file.isLink || file.inLinkedShard) behindLinks++;
        if (!file.inLinkedShard) await Deno.remove(file.path);
      }),
    );
  }
  await removeEmptied(root, scan, skipped, log);
  if (moved + quarantined > 0) {
    log(
      `storage: moved ${moved} objects of the old store layout (${root}) into packs` +
        (quarantined > 0
          ? `; ${quarantined} did not match their name and went to quarantine`
          : "") +
        (behindLinks > 0
          ? `; ${behindLinks} of them were read through symbolic links, and the files those ` +
            "point at are no longer read (left in place: this store deletes nothing outside it)"
          : ""),
    );
  }
  if (skipped.length > 0) {
    log(
      `storage: ${skipped.length} entries of the old store layout were not moved and stay in ` +
        `${root} (so does the folder): ${listPaths(skipped)}`,
    );
  }
  return moved;
}

/**
 * Every entry under `root`, links read through (`Deno.stat` follows them); undefined when there
 * is no `root`. Collects what is not an object of the first layout, and what cannot be read.
 */
async function scanLegacy(root: string): Promise<Scan | undefined> {
  const scan: Scan = { files: [], shards: [], skipped: [], unreadable: [] };
  let top: Deno.DirEntry[];
  try {
    top = await Array.fromAsync(Deno.readDir(root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  for (const entry of top) {
    const path = join(root, entry.name);
    const info = await statThrough(path, scan);
    if (info === undefined) continue;
    if (info.isFile) {
      scan.files.push({ ...file(entry, path, info), inShard: false, inLinkedShard: false });
      continue;
    }
    if (!info.isDirectory) {
      scan.skipped.push({ path, why: "neither a file nor a folder" });
      continue;
    }
    scan.shards.push({ path, link: entry.isSymlink });
    let inner: Deno.DirEntry[];
    try {
      inner = await Array.fromAsync(Deno.readDir(path));
    } catch (error) {
      scan.unreadable.push({ path, why: String(error) });
      continue;
    }
    for (const child of inner) {
      const childPath = join(path, child.name);
      const childInfo = await statThrough(childPath, scan);
      if (childInfo === undefined) continue;
      if (!childInfo.isFile) {
        scan.skipped.push({ path: childPath, why: "not a file (the old layout kept only files)" });
        continue;
      }
      scan.files.push({
        ...file(child, childPath, childInfo),
        inShard: true,
        inLinkedShard: entry.isSymlink,
      });
    }
  }
  return scan;
}

/** A file entry's own fields (where it lies is the caller's to say). */
function file(
  entry: Deno.DirEntry,
  path: string,
  info: Deno.FileInfo,
): Pick<LegacyFile, "name" | "path" | "size" | "isLink"> {
  return { name: entry.name, path, size: info.size, isLink: entry.isSymlink };
}

/** `Deno.stat` of `path` (through links), or undefined after noting why it cannot be read. */
async function statThrough(path: string, scan: Scan): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    const target = await Deno.readLink(path).catch(() => undefined);
    scan.unreadable.push({
      path,
      why: target === undefined
        ? String(error)
        : `a link to ${target}, which cannot be read (${String(error)})`,
    });
    return undefined;
  }
}

/**
 * Remove what the migration emptied: each plain shard folder, each linked one all of whose
 * objects moved (the link only), then `chunks/` itself. Never recursively: a folder that still
 * holds anything (what was skipped, or a file another process added) stays, with its contents.
 */
async function removeEmptied(
  root: string,
  scan: Scan,
  skipped: readonly Skipped[],
  log: (line: string) => void,
): Promise<void> {
  const kept = (folder: string) => skipped.some((entry) => entry.path.startsWith(folder + sep));
  for (const shard of scan.shards) {
    if (kept(shard.path)) continue;
    await Deno.remove(shard.path).catch((error) => {
      log(`storage: ${shard.path} of the old store layout stays: ${String(error)}`);
    });
  }
  if (skipped.length > 0) return;
  await Deno.remove(root).catch((error) => {
    log(`storage: ${root} of the old store layout stays: ${String(error)}`);
  });
}

/** Up to {@link MAX_NAMED_PATHS} entries, each with why, and how many more. */
function listPaths(entries: readonly Skipped[]): string {
  const named = entries.slice(0, MAX_NAMED_PATHS).map((entry) => `${entry.path} (${entry.why})`);
  const more = entries.length - named.length;
  return named.join("; ") + (more > 0 ? `; and ${more} more` : "");
}
