/**
 * A free name for bytes a ledger sets aside (`ledger.log.torn-*`, `ledger.log.rejected-*`,
 * `checkpoint.cbor.rejected-*`).
 *
 * @module
 */
import { pathExists } from "../storage/path_exists.ts";

/**
 * `base`, or `base-1`, `base-2`, … the first that names nothing (a link counts as something):
 * never over an earlier file, since a clock that repeats (stepped back, a machine without a
 * real-time clock) names two set-asides alike, and the first one's bytes would be lost.
 */
export async function unusedPath(base: string): Promise<string> {
  let path = base;
  for (let n = 1; await pathExists(path, { followSymlinks: false }); n++) path = `${base}-${n}`;
  return path;
}
