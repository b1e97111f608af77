/**
 * Copying a directory tree in tests: a ledger or data directory at rest, copied under another
 * name, reads as a new process (or a process killed at that instant) would find it.
 *
 * @module
 */
import { join } from "node:path";

/**
 * Copy directory `from` into `to` (created): files (a link as the file it names) and
 * subdirectories; nothing else (a socket, a fifo) is copied.
 */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) await copyDir(src, dst);
    else if (entry.isFile || entry.isSymlink) await Deno.copyFile(src, dst);
  }
}

/**
 * {@link copyDir} at once, synchronously: nothing else runs meanwhile, so the copy is the tree as
 * it is at this instant (what a `kill -9` there leaves on disk).
 */
export function copyDirNow(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) copyDirNow(src, dst);
    else if (entry.isFile || entry.isSymlink) Deno.copyFileSync(src, dst);
  }
}
