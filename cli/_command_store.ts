/**
 * The store a storage command works on (`put`, `get`, `ls`, `gc`, `export`, `import`, `share`):
 * the one in a node's data directory (`--data DIR`, default `$VERIFLOW_DATA_DIR`, else
 * `.veriflow`; the store is `DIR/store`), opened directly, so the commands need no running node.
 * They are safe while one runs on the same directory: the chunk store is shared across processes
 * (a put is a GC root from its first chunk, see `pending_put.ts`; GC decides under the store lock
 * from what is on disk). Also what the commands say of which store they used.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { DataDirNotDirectoryError } from "../node/data_dir_lock.ts";
import { IDENTITY_FILE } from "../node/node_identity.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { ChunkStore, type ChunkStoreOptions } from "../storage/chunk_store.ts";
import { StorageError } from "../storage/errors.ts";

/**
 * The store of `dataDir` for a command that reads it or removes from it (`get`, `ls`, `gc`,
 * `export`, `share`; only `put` and `import` create one). A store that is not there is refused,
 * and nothing is created: a mistyped `--data` must not look like an empty store, as if the
 * operator's files were gone.
 *
 * @throws {StorageError} (`store_missing`) when `dataDir/store` does not exist.
 */
export async function openExistingStore(
  dataDir: string,
  options?: ChunkStoreOptions,
): Promise<ChunkStore> {
  return await ChunkStore.open(await existingStoreDir(dataDir), options);
}

/**
 * The store of `dataDir` for a command that adds to it (`put`, `import`). Created only in a
 * node's data directory (one holding a store or the node's `identity.key`: a node started there,
 * or a command stored there), or where `init` (`--init`) asks for it: a mistyped `--data`, or a
 * command that did not find the node's directory, made a store no node served, and the put said
 * it had stored the file. A flag rather than a prompt, so that scripts say it once, plainly.
 *
 * @throws {DataDirNotDirectoryError} (`data_dir_not_directory`) `dataDir` is a file.
 * @throws {StorageError} (`store_missing`) no node's data directory, and `init` not set.
 */
export async function openStoreToAdd(
  dataDir: string,
  init: boolean,
  options?: ChunkStoreOptions,
): Promise<ChunkStore> {
  const used = await isDirectory(dataDir, init) &&
    (await isDirectory(join(dataDir, "store"), init) ||
      await isPresent(join(dataDir, IDENTITY_FILE)));
  if (!used && !init) throw storeMissing(dataDir, "adding");
  return await ChunkStore.open(join(dataDir, "store"), options);
}

/**
 * The store directory of `dataDir` (`dataDir/store`) for a command that only reads or removes
 * files in it without opening the store (`share revoke`); refused, and nothing created, when it
 * is not there, as {@link openExistingStore} refuses it.
 *
 * @throws {StorageError} (`store_missing`) when `dataDir/store` does not exist.
 */
export async function existingStoreDir(dataDir: string): Promise<string> {
  const dir = join(dataDir, "store");
  try {
    // A file given as --data: said as `start` says it, not as the OS error under it.
    await isDirectory(dataDir);
    await Deno.stat(dir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw storeMissing(dataDir, "reading");
  }
  return dir;
}

/**
 * Whether `path` is a directory; false when it is not there.
 * @param created Whether the command creates it when missing (`put --init`): said only then
 *   (`ls --data FILE` was told the directory "is created if missing", which `ls` never does).
 * @throws {DataDirNotDirectoryError} `path` is a file or runs through one, as `start` says it.
 */
async function isDirectory(path: string, created = false): Promise<boolean> {
  try {
    if ((await Deno.stat(path)).isDirectory) return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (!(error instanceof Deno.errors.NotADirectory)) throw error;
  }
  throw new DataDirNotDirectoryError(path, { created });
}

/** Whether `path` exists. */
async function isPresent(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/**
 * Where a command's data directory comes from, first to last (`commandDataDir`): the first one
 * set names it. Said whole, since a store_missing line cannot tell a mistyped flag from a
 * variable or a file left over from another node.
 */
const DATA_DIR_SOURCES = "--data, then VERIFLOW_DATA_DIR, then VERIFLOW_CONFIG's dataDir " +
  "(the first one set is used)";

/**
 * The `store_missing` refusal of every storage command, built here only, so that `put` and `ls`
 * say the same thing of the same directory: its absolute path (a relative one, or the default
 * `.veriflow`, said nothing of the directory the command ran in) and {@link DATA_DIR_SOURCES}.
 * A command `reading` needs `dataDir/store`; one `adding` needs a node's data directory (a store
 * or the node's key), and is offered `--init`.
 */
function storeMissing(dataDir: string, use: "reading" | "adding"): StorageError {
  const dir = resolve(dataDir);
  const missing = use === "reading"
    ? `no store in ${dir} (no ${join(dir, "store")})`
    : `no node's data directory at ${dir} (no store, no ${IDENTITY_FILE})`;
  const init = use === "adding" ? ", or pass --init to make a new store there" : "";
  return new StorageError("store_missing", `${missing}: check ${DATA_DIR_SOURCES}${init}`);
}

/**
 * `error`, when it says that the store in `dataDir` has no object for the CID a command was
 * given, with what to do next: check the CID and `--data` (`ls` lists what the store holds),
 * then `elsewhere` when there is another way to the file. Other errors are left as they are. Its
 * message is completed in place, as `failedPut` does; the store's error stays the store's.
 */
export function notInStore(error: unknown, dataDir: string, elsewhere?: string): unknown {
  if (!(error instanceof VeriflowError) || error.code !== "chunk_not_found") return error;
  error.message += `; check the CID, and that --data ${dataDir} is the store it was put in ` +
    `(\`cli.ts ls --data ${dataDir}\` lists the files it holds)${
      elsewhere === undefined ? "" : `, ${elsewhere}`
    }`;
  return error;
}

/** Said on stderr after a put or an import, so that the store written is never a guess. */
export function storedIn(dataDir: string): void {
  console.error(`stored in ${resolve(dataDir, "store")}`);
}
