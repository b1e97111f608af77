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
 * The directory is its owner's only (0700): it holds clients' prompts in clear (proof files, peers'
 * jobs) and the node's key. Taking the lock creates it so, and makes one that others can read or
 * enter 0700 (best effort, as `identity.key` is made 0600: one not this user's keeps its mode).
 *
 * @module
 */
import { join, resolve, sep as SEP } from "node:path";
import { VeriflowError } from "../protocols/errors.ts";
import { keepToOwner, OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

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
 * The data directory (or its lock file) cannot be written: permissions, an immutable or
 * read-only file system, a full disk. Said as the operator's problem to fix, not a bare OS error.
 */
export class DataDirUnwritableError extends VeriflowError {
  /**
   * Create the error.
   * @param dir The data directory.
   * @param reason The OS's reason (`Operation not permitted`, `Read-only file system`).
   * @param options Standard error options (the OS error as `cause`).
   */
  constructor(dir: string, reason: string, options?: ErrorOptions) {
    super(
      "data_dir_unwritable",
      `data directory ${dir} is not writable (${reason}); check its owner, permissions and ` +
        `free space, or use another --data directory`,
      options,
    );
  }
}

/** The data directory's path names a file (or runs through one), not a directory. */
export class DataDirNotDirectoryError extends VeriflowError {
  /**
   * Create the error.
   * @param dir The data directory.
   * @param options Standard error options (the OS error as `cause`); `through`, the file on the
   *   way to `dir` when the path runs through one (`/dev/null` for `/dev/null/x`); `created`
   *   false for a command that never creates the directory (`ls`, `gc`): the message then does
   *   not promise it.
   */
  constructor(dir: string, options?: ErrorOptions & { through?: string; created?: boolean }) {
    const what = options?.through === undefined
      ? `--data names a file, not a directory: ${dir}`
      : `--data ${dir} runs through a file, ${options.through}`;
    const created = options?.created === false
      ? "the node's data directory"
      : "a directory (it is created if missing)";
    super("data_dir_not_directory", `${what}; give the path of ${created}`, options);
  }
}

/**
 * The data directory cannot be created where its path puts it: a parent that takes no new
 * directories (`/proc`, `/sys`), or a broken symbolic link on the way (mkdir's ENOENT).
 */
export class DataDirUncreatableError extends VeriflowError {
  /**
   * Create the error.
   * @param dir The data directory.
   * @param options Standard error options (the OS error as `cause`).
   */
  constructor(dir: string, options?: ErrorOptions) {
    super(
      "data_dir_uncreatable",
      `--data ${dir} cannot be created: a directory on its path takes no new entries (a ` +
        `system file system such as /proc) or a symbolic link on it points nowhere; use ` +
        `another --data directory`,
      options,
    );
  }
}

/**
 * OS error codes that mean "this directory cannot be written here": permission (EACCES, EPERM —
 * also an immutable file), a read-only file system (EROFS), no space or quota left (ENOSPC,
 * EDQUOT). Deno names only the first two (`PermissionDenied`); the others come as a `code`.
 */
const UNWRITABLE_CODES: ReadonlySet<string> = new Set([
  "EACCES",
  "EPERM",
  "EROFS",
  "ENOSPC",
  "EDQUOT",
]);

/**
 * `error` as a {@link DataDirUnwritableError} when it says `dir` cannot be written, as a
 * {@link DataDirNotDirectoryError} when `dir` is a file (EEXIST from mkdir) or under one
 * (ENOTDIR, naming that file), as a {@link DataDirUncreatableError} when mkdir found no way to
 * create it (`creating`: the error came from mkdir, whose ENOENT is about the path, not a file
 * that went away); else itself.
 */
async function asDataDirError(dir: string, error: unknown, creating = false): Promise<unknown> {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (error instanceof Deno.errors.AlreadyExists || code === "EEXIST") {
    return new DataDirNotDirectoryError(dir, { cause: error });
  }
  if (error instanceof Deno.errors.NotADirectory || code === "ENOTDIR") {
    return new DataDirNotDirectoryError(dir, { cause: error, through: await fileOnPath(dir) });
  }
  if (creating && (error instanceof Deno.errors.NotFound || code === "ENOENT")) {
    return new DataDirUncreatableError(dir, { cause: error });
  }
  const cannotWrite = error instanceof Deno.errors.PermissionDenied ||
    (typeof code === "string" && UNWRITABLE_CODES.has(code));
  if (!cannotWrite) return error;
  // "Operation not permitted (os error 1): open '…/node.lock'" → "Operation not permitted".
  const reason = error.message.replace(/\s*\(os error \d+\)[\s\S]*$/, "");
  return new DataDirUnwritableError(dir, reason, { cause: error });
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
   * @throws {DataDirUnwritableError} when `dir` cannot be created or its lock file written.
   * @throws {DataDirNotDirectoryError} when `dir` is a file, or a path through one.
   * @throws {DataDirUncreatableError} when `dir` cannot be made where its path puts it (under
   *   `/proc`, through a broken symbolic link).
   */
  static async acquire(dir: string, purpose: string): Promise<DataDirLock> {
    const path = join(dir, DATA_DIR_LOCK_FILE);
    try {
      await Deno.mkdir(dir, { recursive: true, mode: OWNER_DIR_MODE });
    } catch (error) {
      throw await asDataDirError(dir, error, true);
    }
    keepToOwner(dir);
    let file: Deno.FsFile;
    try {
      // It names the holder's pid: 0600 like every file the node writes, whatever the umask;
      // one an earlier version created with the umask (0644) is made so.
      file = await Deno.open(path, {
        read: true,
        write: true,
        create: true,
        mode: OWNER_FILE_MODE,
      });
    } catch (error) {
      throw await asDataDirError(dir, error);
    }
    keepToOwner(path);
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
      throw await asDataDirError(dir, error);
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

/**
 * The first path on the way to `dir` that is there but not a directory (`/dev/null` for
 * `/dev/null/x`), or `undefined` when none is found (the path changed since).
 */
async function fileOnPath(dir: string): Promise<string | undefined> {
  const parts = resolve(dir).split(SEP);
  for (let i = 2; i <= parts.length; i++) {
    const path = parts.slice(0, i).join(SEP);
    const info = await Deno.stat(path).catch(() => undefined);
    if (info === undefined) return undefined;
    if (!info.isDirectory) return path;
  }
  return undefined;
}

async function readOwner(path: string): Promise<DataDirOwner | undefined> {
  try {
    const owner = JSON.parse(await Deno.readTextFile(path)) as DataDirOwner;
    return Number.isSafeInteger(owner?.pid) ? owner : undefined;
  } catch {
    return undefined; // being written by its holder right now, or never written
  }
}
