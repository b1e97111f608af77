/**
 * Writing a file so that a crash leaves either the old file or the whole new one, and the new
 * one survives a power cut once the call returns: write a temporary file, `fsync` it, rename it
 * over the target, `fsync` the directory (the rename itself lives in the directory).
 *
 * @module
 */
import { dirname } from "node:path";

/**
 * Write `bytes` to `path` atomically and durably (see the module doc); `bytes` may come in
 * chunks (a large file copied without holding it all in memory).
 */
export async function writeFileDurably(
  path: string,
  bytes: Uint8Array | AsyncIterable<Uint8Array>,
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
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
