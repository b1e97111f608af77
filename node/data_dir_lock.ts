/**
 * One owner per data directory: a node holds `<dataDir>/node.lock` for its whole life, so a
 * second node on the same directory — or a CLI command that writes the ledger, such as
 * `ledger repair` — is refused with the pid of the process that holds it. Commands that only
 * read (`ledger verify`, `get`, `ls`) and the chunk store's own commands (which the store makes
 * safe across processes) do not take it.
 *
 * The lock is an advisory `flock` on the file, not the file's existence: the kernel drops it the
 * moment its process ends, however it ends, so a node killed with `kill -9` never leaves the
 * directory locked. The pid written inside is only for the message; a file naming a process
 * that is gone is simply taken over.
 *
 * @module
 */
import { join } from "node:path";
import { VeriflowError } from "../protocols/errors.ts";

/** File name of the lock inside the data directory. */
export const DATA_DIR_LOCK_FILE = "node.lock";

/** Who holds a data directory, as written in its lock file. */
export interface DataDirOwner {
  /** Process id of the holder. */
  pid: number;
  /** What the holder is (for example `node`, `ledger repair`). */
  purpose: string;
  /** Unix ms when it took the lock. */
  since: number;
}

/** The data directory is held by another process (or another node in this one). */
export class DataDirLockedError extends VeriflowError {
  /** The holder, when its lock file names it (absent while it is still writing its name). */
  readonly owner?: DataDirOwner;
  /**
   * Create the error.
   * @param dir The data directory.
   * @param owner Its holder, if known.
   */
  constructor(dir: string, owner: DataDirOwner | undefined) {
    const who = owner === undefined
      ? "another process"
      : `process ${owner.pid} (${owner.purpose}, since ${new Date(owner.since).toISOString()})`;
    super(
      "data_dir_locked",
      `data directory ${dir} is in use by ${who}: stop it first, or use another --data ` +
        `directory (read-only commands such as \`ledger verify\` work while it runs)`,
    );
    this.owner = owner;
  }
}

/**
 * An acquired data-directory lock; {@link DataDirLock.release} (or the process's end) frees it.
 *
 * @example
 * ```ts
 * import { DataDirLock } from "./data_dir_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await DataDirLock.acquire(dir, "example");
 * await lock.release();
 * ```
 */
export class DataDirLock {
  readonly #file: Deno.FsFile;
  #released = false;
  /** The data directory held. */
  readonly dir: string;

  private constructor(dir: string, file: Deno.FsFile) {
    this.dir = dir;
    this.#file = file;
  }

  /**
   * Take the lock of `dir` (created if missing) for this process, without waiting.
   *
   * @param dir The data directory.
   * @param purpose What holds it, shown to whoever is refused (`node`, `ledger repair`).
   * @throws {DataDirLockedError} naming the holder when another process (or another holder in
   *   this one) has it.
   */
  static async acquire(dir: string, purpose: string): Promise<DataDirLock> {
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, DATA_DIR_LOCK_FILE);
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let locked = false;
    try {
      locked = await file.tryLock(true);
      if (!locked) throw new DataDirLockedError(dir, await readOwner(path));
      const owner: DataDirOwner = { pid: Deno.pid, purpose, since: Date.now() };
      const bytes = new TextEncoder().encode(`${JSON.stringify(owner)}\n`);
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      return new DataDirLock(dir, file);
    } catch (error) {
      if (locked) await file.unlock().catch(() => {});
      file.close();
      throw error;
    }
  }

  /** Free the lock (idempotent). The file stays: the next holder rewrites it. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      await this.#file.unlock();
    } finally {
      this.#file.close();
    }
  }
}

async function readOwner(path: string): Promise<DataDirOwner | undefined> {
  try {
    const owner = JSON.parse(await Deno.readTextFile(path)) as DataDirOwner;
    return Number.isSafeInteger(owner?.pid) ? owner : undefined;
  } catch {
    return undefined; // being written by its holder right now, or never written
  }
}
