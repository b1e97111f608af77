/**
 * Test fixtures that are costly to build and the same every time (built models, a calibration
 * profile), built once per machine and source version and shared by the test files of a run: 691
 * test files run in as many isolates, and each used to build its own copy.
 *
 * Each entry is keyed by a hash of the product's source files (every file outside `tests/`,
 * `bench/`, `docs/` and what is not source: see {@link sourceVersion}), the Deno version, and
 * what its caller names (the build's parameters), so any change to the code that builds it, or
 * to what is asked, builds it afresh. Entries live under the system's temp directory; each is
 * written under a temporary name and renamed into place, so a test never reads a half-written
 * one, and two processes that build the same entry at once both end with a whole one.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
export { copyDir } from "./copy_dir.ts";

/** The repository's root directory. */
const ROOT = new URL("../../", import.meta.url);

/** Top-level entries that are not product source: their changes do not change a fixture. */
const NOT_SOURCE = new Set([
  ".git",
  ".github",
  ".veriflow",
  "bench",
  "data",
  "docs",
  "node_modules",
  "tests",
  "tmp",
]);

/** Where the entries are kept: one directory per machine user, under the temp directory. */
export const BUILD_CACHE_DIR = join(tmpdir(), "veriflow-test-build-cache");

let version: Promise<string> | undefined;

/** Every file under `dir` (a URL ending in `/`), as paths relative to the root, depth-first. */
async function filesUnder(dir: URL, prefix: string, out: string[]): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (prefix === "" && NOT_SOURCE.has(entry.name)) continue;
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) await filesUnder(new URL(`${entry.name}/`, dir), `${path}/`, out);
    else if (entry.isFile && /\.(ts|js|mjs|json|lock)$/.test(entry.name)) out.push(path);
  }
}

/**
 * A hash of the product's source: each file's path and bytes (in path order), every `.ts`,
 * `.js`, `.mjs`, `.json` and `.lock` file outside `tests/`, `bench/`, `docs/`, `data/`, `tmp/`
 * and `node_modules/` (whose versions `package.json` and `deno.lock` pin), and the Deno version.
 * Read once per process.
 */
export function sourceVersion(): Promise<string> {
  version ??= (async () => {
    const files: string[] = [];
    await filesUnder(ROOT, "", files);
    files.sort();
    const hash = createHash("sha256");
    hash.update(`deno ${Deno.version.deno}\n`);
    for (const path of files) {
      hash.update(`${path}\n`);
      hash.update(await Deno.readFile(new URL(path, ROOT)));
    }
    return hash.digest("hex");
  })();
  return version;
}

/** The entry's path for `name` and `key`: the source version and the key, hashed. */
async function entryPath(name: string, key: unknown): Promise<string> {
  const hash = createHash("sha256").update(await sourceVersion()).update(JSON.stringify(key));
  return join(BUILD_CACHE_DIR, `${name}-${hash.digest("hex").slice(0, 32)}`);
}

/**
 * Entries unused this long are removed (by then no test reads them): each use touches its entry.
 */
const STALE_AFTER_MS = 3_600_000;

/**
 * Remove the entries named `name` other than `keep` unused for {@link STALE_AFTER_MS}: each
 * source version leaves its own, and a working tree's sources change often.
 */
async function pruneStale(name: string, keep: string): Promise<void> {
  for await (const entry of Deno.readDir(BUILD_CACHE_DIR)) {
    const path = join(BUILD_CACHE_DIR, entry.name);
    // Entries, and what a process killed while building one left (`.name-…`).
    const ours = entry.name.startsWith(`${name}-`) || entry.name.startsWith(`.${name}-`);
    if (!ours || path === keep) continue;
    try {
      const { mtime } = await Deno.stat(path);
      if (mtime !== null && Date.now() - mtime.getTime() > STALE_AFTER_MS) {
        await Deno.remove(path, { recursive: true });
      }
    } catch {
      // Removed by another process meanwhile.
    }
  }
}

/** Whether `path` exists; if so, its time of last use is now (see {@link pruneStale}). */
async function used(path: string): Promise<boolean> {
  if (!(await exists(path))) return false;
  const now = new Date();
  await Deno.utime(path, now, now).catch(() => {});
  return true;
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * A directory `build` filled, built once per source version and `key`: the cached one if there
 * is one, else built now under a temporary name and renamed into place. The directory is shared
 * with other test processes: read it or copy it ({@link copyDir}), never write into it.
 *
 * @param name What is built (the entry's name prefix), e.g. `"proof-models"`.
 * @param key Everything besides the source that decides what is built (JSON).
 * @param build Fills the (empty, existing) directory it is given.
 * @returns The directory's path.
 */
export async function cachedDir(
  name: string,
  key: unknown,
  build: (dir: string) => Promise<void>,
): Promise<string> {
  const path = await entryPath(name, key);
  if (await used(path)) return path;
  await Deno.mkdir(BUILD_CACHE_DIR, { recursive: true });
  const building = await Deno.makeTempDir({ dir: BUILD_CACHE_DIR, prefix: `.${name}-` });
  try {
    await build(building);
    await Deno.rename(building, path);
  } catch (error) {
    await Deno.remove(building, { recursive: true }).catch(() => {});
    // Another process renamed its own build into place first: the same contents.
    if (await exists(path)) return path;
    throw error;
  }
  await pruneStale(name, path);
  return path;
}

/**
 * A JSON value `compute` returns, computed once per source version and `key` (see
 * {@link cachedDir}). The value must survive `JSON.stringify` and `JSON.parse` unchanged.
 *
 * @param name What is computed (the entry's name prefix).
 * @param key Everything besides the source that decides the value (JSON).
 * @param compute Computes the value when no entry holds it.
 */
export async function cachedJson<T>(
  name: string,
  key: unknown,
  compute: () => Promise<T>,
): Promise<T> {
  const path = `${await entryPath(name, key)}.json`;
  try {
    const value = JSON.parse(await Deno.readTextFile(path)) as T;
    await used(path);
    return value;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const value = await compute();
  await Deno.mkdir(BUILD_CACHE_DIR, { recursive: true });
  const temporary = `${path}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(temporary, JSON.stringify(value));
  await Deno.rename(temporary, path);
  await pruneStale(name, path);
  return value;
}
