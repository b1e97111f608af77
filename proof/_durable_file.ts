/**
 * Writing a file so that a crash leaves either the old file or the whole new one, and the new
 * one survives a power cut once the call returns: write a temporary file, `fsync` it, rename it
 * over the target, `fsync` the directory (the rename itself lives in the directory).
 *
 * The file is its owner's only (0600, `protocols/owner_only.ts`), whatever the umask: what a node
 * keeps this way holds clients' prompts (proof data, peers' jobs) and what its ledger and stake
 * rest on.
 *
 * A process killed between the temporary file's creation and its rename leaves that file
 * (`<name>.<uuid>.tmp`, beside the target): never read, it would stay for good, one per crash.
 * A store that owns its files removes those of its own at its start
 * ({@link removeTemporaries}), when no write of its is in progress.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** A temporary file of {@link writeFileDurably}: the target's name, a UUID, `.tmp`. */
const TEMPORARY = /^(.+)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/**
 * Write `bytes` to `path` atomically and durably (see the module doc); `bytes` may come in
 * chunks (a large file copied without holding it all in memory).
 */
export async function writeFileDurably(
  path: string,
  bytes: Uint8Array | AsyncIterable<Uint8Array>,
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  // Created 0600 and renamed over the target: a file written over keeps none of its old mode.
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: OWNER_FILE_MODE });
  try {
    for await (const chunk of bytes instanceof Uint8Array ? [bytes] : bytes) {
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
    }
    await file.syncData();
  } catch (error) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  file.close();
  await Deno.rename(tmp, path);
  await syncDirectory(dirname(path));
}

/** `fsync` a directory: makes the creation, rename or removal of its entries durable. */
export async function syncDirectory(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/**
 * Remove the temporary files {@link writeFileDurably} left in `dir` when a process died
 * mid-write, of the targets `of` accepts (by file name; default: every one in `dir`). Call it
 * only where nothing is writing those targets (a store's start): a write in progress has its
 * temporary file too — or, where no lock keeps writers out, with `olderThanMs`: only temporaries
 * last modified at least that long before `now` (default `Date.now()`) go, as no write lasts that
 * long. A missing directory has none. Returns how many were removed.
 */
export async function removeTemporaries(
  dir: string,
  of: (target: string) => boolean = () => true,
  { olderThanMs, now = Date.now() }: { olderThanMs?: number; now?: number } = {},
): Promise<number> {
  let removed = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      const target = entry.isFile ? TEMPORARY.exec(entry.name)?.[1] : undefined;
      if (target === undefined || !of(target)) continue;
      const path = join(dir, entry.name);
      if (olderThanMs !== undefined) {
        // Gone meanwhile (its write renamed it), or no mtime to judge by: left alone.
        const mtime = (await Deno.stat(path).catch(() => undefined))?.mtime?.getTime();
        if (mtime === undefined || now - mtime < olderThanMs) continue;
      }
      if (await Deno.remove(path).then(() => true, () => false)) removed++;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return removed;
}
