/**
 * The chunk store's root records: the files under `pins/` (one per pinned root, holding its
 * label) and `replicas/` (one per chunk held for another node) that GC reads as roots
 * (`gc_roots.ts`). {@link RootRecords} writes them durably, with one directory sync shared by the
 * writers that arrive together; {@link readPinLabel} reads a pin's label back; {@link countFiles}
 * counts a directory's records. `ChunkStore` owns one `RootRecords` and answers `pin`, `unpin`,
 * `pinLabel`, `stats` and replica puts with these. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileDurably } from "../proof/_durable_file.ts";
import { dirEntries } from "./_dir_entries.ts";
import type { PinLabel } from "./chunk_store.ts";
import { storageWriteError } from "./errors.ts";
import { syncDir } from "./pack_writer.ts";
import { OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** A pin file larger than this is not a label we wrote: ignored. */
const MAX_PIN_LABEL_BYTES = 4096;

/** The fault hook of {@link RootRecords} (`ChunkStoreFaults.beforeRecordWrite`). */
export interface RootRecordFaults {
  /** Called before a record is written; throwing simulates the OS refusing it. */
  beforeRecordWrite?(path: string): void | Promise<void>;
}

/** Writes root records (`sub/cid` files) under a store directory, durably when it is durable. */
export class RootRecords {
  readonly #dir: string;
  readonly #durable: boolean;
  /** The latest directory sync per root directory (see {@link syncRootDir}). */
  readonly #dirSyncs = new Map<string, { started: boolean; done: Promise<void> }>();

  readonly #faults: RootRecordFaults | undefined;

  /** Records under the store directory `dir`; fsynced when `durable`; `faults` for tests. */
  constructor(dir: string, durable: boolean, faults?: RootRecordFaults) {
    this.#dir = dir;
    this.#durable = durable;
    this.#faults = faults;
  }

  /**
   * Create the root file `sub/cid` (empty by default), durably when the store is durable. A file
   * with content (a pin's label) is written whole or not at all (a temporary file, fsynced, then
   * renamed): written in place, a power cut could leave the entry with no content, and a `local`
   * file's label lost that way made its chunks served to peers after the restart (a review
   * found it at stop 33). `whole = false` writes it in place, with the directory synced as for an
   * empty file: for content that may read back torn (a replica's giver, `_replica_record.ts`).
   *
   * @throws {DiskFullError} the disk is full (`ENOSPC`); an in-place record may be left partial.
   * @throws {StorageUnwritableError} the directory cannot be written (`EROFS`, `EACCES`, `EIO`).
   */
  async touchRoot(
    sub: string,
    cid: string,
    content = new Uint8Array(),
    whole = true,
  ): Promise<void> {
    const path = join(this.#dir, sub, cid);
    try {
      await this.#faults?.beforeRecordWrite?.(path);
      if (this.#durable && whole && content.length > 0) {
        return await writeFileDurably(path, content);
      }
      await Deno.writeFile(path, content, { mode: OWNER_FILE_MODE });
      if (this.#durable) await this.syncRootDir(join(this.#dir, sub));
    } catch (error) {
      throw storageWriteError(error, path);
    }
  }

  /**
   * fsync a root directory for every file created or removed in it so far. Group commit: callers
   * that arrive while a sync runs share the next one (a peer's put_chunks, 16 at a time, pay a few
   * directory syncs rather than one each).
   */
  syncRootDir(path: string): Promise<void> {
    const queued = this.#dirSyncs.get(path);
    if (queued?.started === false) return queued.done;
    const done = (queued?.done ?? Promise.resolve()).catch(() => {}).then(() => {
      sync.started = true;
      return syncDir(path);
    });
    const sync = { started: false, done };
    this.#dirSyncs.set(path, sync);
    return done;
  }
}

/**
 * The label the pin file at `path` records (see `ChunkStore.pinLabel`): `undefined` when there is
 * no such file or it records none; `{ local: true }` when it does not parse.
 */
export async function readPinLabel(path: string): Promise<PinLabel | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (text === "" || text.length > MAX_PIN_LABEL_BYTES) return undefined;
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const label: PinLabel = {};
    if (typeof raw.name === "string") label.name = raw.name;
    if (typeof raw.mime === "string") label.mime = raw.mime;
    if (raw.local === true) label.local = true;
    return label;
  } catch {
    // A label that does not parse (a damaged disk) may have said `local`: kept to this node
    // rather than shared on a guess.
    return { local: true };
  }
}

/** Number of files in `dir` (0 when it does not exist: a read-only store's folder never made). */
export async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const entry of dirEntries(dir)) if (entry.isFile) n++;
  return n;
}
