/**
 * A stored file's or directory entry's name as the storage commands print it.
 *
 * @module
 */
import { printableLine } from "../node/log_format.ts";

/**
 * `name` with its control, C1, bidi and zero-width characters written out (`\x1b`), as the
 * node's log writes a line ({@link printableLine}); the name is wrapped while escaped because a
 * line keeps the newlines that lead or end it, and a name's must not.
 */
export function printableName(name: string): string {
  return printableLine(`|${name}|`).slice(1, -1);
}
