/**
 * Tests of file modes, in one place: what the node writes durably is its owner's only
 * (`protocols/owner_only.ts`) whatever the umask, and these run its writers under a chosen umask
 * and walk what they left. Modes do not exist on Windows: {@link modesTest} is skipped there.
 *
 * @module
 */
import { join } from "node:path";

/**
 * A test of file modes (skipped on Windows, which has none) in a fresh temporary directory,
 * removed after it.
 */
export function modesTest(name: string, body: (dir: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: Deno.build.os === "windows",
    fn: async () => {
      const dir = await Deno.makeTempDir();
      try {
        await body(dir);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** The permission bits of `path`. */
export function modeOf(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

/** Run `body` under `mask`, the process's umask restored after it. */
export async function underUmask<T>(mask: number, body: () => Promise<T>): Promise<T> {
  const before = Deno.umask(mask);
  try {
    return await body();
  } finally {
    Deno.umask(before);
  }
}

/** Run `body` under umask 022 (the usual default: files 0644, directories 0755). */
export function underUmask022<T>(body: () => Promise<T>): Promise<T> {
  return underUmask(0o022, body);
}

/**
 * Run `body` under umask 000, the most permissive: whatever the node creates without a mode of
 * its own is 0666 (files) or 0777 (directories), so nothing it forgot hides behind the usual 022.
 */
export function underUmask000<T>(body: () => Promise<T>): Promise<T> {
  return underUmask(0o000, body);
}

/**
 * Every path under `dir` (relative, `dir` itself as `.`) that group or others may use, with its
 * mode.
 */
export async function opened(dir: string, rel = "."): Promise<string[]> {
  const path = rel === "." ? dir : join(dir, rel);
  const info = await Deno.lstat(path);
  const found = (info.mode ?? 0) & 0o077 ? [`${rel} ${modeOf(path).toString(8)}`] : [];
  if (!info.isDirectory) return found;
  for await (const entry of Deno.readDir(path)) {
    found.push(...await opened(dir, rel === "." ? entry.name : join(rel, entry.name)));
  }
  return found;
}
