/**
 * `put DIR`: the directory walked whole (refusing what a UnixFS directory cannot name), then
 * stored as a UnixFS directory.
 *
 * @module
 */
import { join } from "node:path";
import { StorageError } from "../storage/errors.ts";
import type { FileStore } from "../storage/file_store.ts";
import type { DagEntry, DirectoryEntry } from "../storage/unixfs.ts";
import { UsageError } from "./_command_support.ts";

/** A directory entry whose name `put DIR` cannot store: one that is not UTF-8. */
export class InvalidNameError extends StorageError {
  /** The entry's path, as Deno reads it (U+FFFD in place of the bytes that are not UTF-8). */
  readonly path: string;

  /**
   * Build the error.
   *
   * @param path The entry's path, as read.
   */
  constructor(path: string) {
    super(
      "invalid_name",
      `${JSON.stringify(path)}: a file name that is not UTF-8 (shown with U+FFFD for its bytes); ` +
        "put DIR names entries by their text, which such a name does not have: rename it",
    );
    this.path = path;
  }
}

/**
 * Throws {@link InvalidNameError} when entry `name` of directory `dir` is a name that is not
 * UTF-8. Deno reads such a name lossily, with U+FFFD for the bytes that do not decode, and has no
 * API for the bytes themselves: the lossy name opens nothing (it failed with a raw "No such file"
 * OS error, review s74 finding 2), and storing its bytes would need a byte path Deno lacks. A real
 * name may hold U+FFFD too: that one exists under its name, so only a U+FFFD name that does not is
 * refused.
 */
async function assertUtf8Name(dir: string, name: string): Promise<void> {
  if (!name.includes(REPLACEMENT_CHARACTER)) return;
  try {
    await Deno.lstat(join(dir, name));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new InvalidNameError(join(dir, name));
    throw error;
  }
}

/** What a UTF-8 decoder puts in place of bytes that do not decode (Deno's directory names). */
const REPLACEMENT_CHARACTER = "\uFFFD";

/** An entry of a directory `put DIR` stores: a file with its size, or a directory. */
export interface TreeEntry {
  /** Its name in its directory. */
  name: string;
  /** Its path on disk. */
  path: string;
  /** A file's size when walked (the bar's share of it). */
  size?: number;
  /** A directory's entries, in name order. */
  entries?: TreeEntry[];
}

/**
 * The directory at `path` and everything under it, each directory's entries in name order (what
 * the npm importer and `ipfs add -r` give the same tree). Symlinks and other special files are
 * refused, by what they are, rather than silently left out of the id.
 *
 * @throws {UsageError} an entry is a symlink, or neither a file nor a directory.
 * @throws {InvalidNameError} an entry's name is not UTF-8.
 */
export async function scanDirectory(path: string, name = ""): Promise<TreeEntry> {
  const entries: TreeEntry[] = [];
  for await (const entry of Deno.readDir(path)) {
    const child = join(path, entry.name);
    if (entry.isSymlink) {
      // A link's target is outside the tree the CID names (and may be gone): neither storing
      // what it points to nor leaving it out would be the directory the operator sees.
      throw new UsageError(
        `${child}: a symlink; put DIR stores files and directories only: replace it with a copy ` +
          "of what it points to, or move it out of the directory",
      );
    }
    if (!entry.isFile && !entry.isDirectory) {
      throw new UsageError(
        `${child}: neither a file nor a directory (a socket, FIFO or device); put DIR stores ` +
          "files and directories only: move it out of the directory",
      );
    }
    await assertUtf8Name(path, entry.name);
    entries.push(
      entry.isDirectory
        ? await scanDirectory(child, entry.name)
        : { name: entry.name, path: child, size: (await Deno.stat(child)).size },
    );
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name, path, entries };
}

/** Bytes of every file under `tree`, as walked. */
export function treeBytes(tree: TreeEntry): number {
  return (tree.entries ?? []).reduce((sum, e) => sum + (e.size ?? treeBytes(e)), 0);
}

/**
 * Put `tree` ({@link scanDirectory}) as a UnixFS directory; `onProgress` is told the file bytes
 * stored so far across all its files.
 */
export async function putTree(
  files: FileStore,
  tree: TreeEntry,
  onProgress: (bytes: number) => void,
  before = 0,
): Promise<DagEntry & { bytes: number }> {
  const entries: DirectoryEntry[] = [];
  let bytes = before;
  for (const entry of tree.entries!) {
    if (entry.entries) {
      const { bytes: after, ...dir } = await putTree(files, entry, onProgress, bytes);
      bytes = after;
      entries.push({ name: entry.name, ...dir });
      continue;
    }
    const file = await Deno.open(entry.path, { read: true });
    const base = bytes;
    const { cid, size, tsize } = await files.put(file.readable, {
      onProgress: (n) => onProgress(base + n),
    });
    bytes += size;
    entries.push({ name: entry.name, cid, fileSize: size, tsize });
  }
  return { ...await files.putDirectory(entries), bytes };
}
