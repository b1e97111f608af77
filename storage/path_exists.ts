/**
 * Whether a path exists: the one check the store, the model registry and the ledger all make
 * before they create, read or name something.
 *
 * Only "no such file" means absent. Any other error (a permission denied, a symlink loop) is
 * thrown: taking it for absence would let a caller build afresh over a directory it only
 * failed to read.
 *
 * @module
 */

/** Options of {@link pathExists}. */
export interface PathExistsOptions {
  /**
   * Follow a symlink at `path` (`stat`): a link to nothing is absent, as its target is. `false`
   * asks about the link itself (`lstat`): a link to nothing exists, so a name about to be
   * written is never one already taken by a link. Default `true`.
   */
  followSymlinks?: boolean;
}

/**
 * True when `path` exists, false when it does not.
 *
 * @param path The file or directory.
 * @param options Whether a symlink is followed.
 * @returns Whether it exists.
 * @throws Any error of the file system but "not found" (permission denied, a symlink loop).
 *
 * @example
 * ```ts
 * import { pathExists } from "./path_exists.ts";
 * const dir = await Deno.makeTempDir();
 * await pathExists(dir); // true
 * await pathExists(`${dir}/nothing-here`); // false
 * ```
 */
export async function pathExists(path: string, options?: PathExistsOptions): Promise<boolean> {
  try {
    const follow = options?.followSymlinks ?? true;
    await (follow ? Deno.stat(path) : Deno.lstat(path));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
