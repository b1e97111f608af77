/**
 * `did you mean …?`: the known name nearest a mistyped one, for config keys, environment
 * variables and flags alike. Free of imports, so the CLI's tool commands can use it without
 * loading the node's configuration (whose CBOR dependency reads the environment at import, and
 * `--help` runs with no permissions).
 *
 * @module
 */

/** Options of {@link nearestName}. */
export interface NearestNameOptions {
  /**
   * The most edits a candidate may be from the name and still be offered; default: within 2
   * edits or a quarter of the name's length. A caller lowers it for a candidate that starts or
   * changes something (`cli.ts stauts` must not offer `start` on a tie).
   */
  maxDistance?: (candidate: string) => number;
}

/**
 * The name in `candidates` nearest `name` (edit distance, ignoring case, a swap of two adjacent
 * letters counted as one edit), if it is near enough to be what was meant — within 2 edits, or a
 * quarter of the name's length, and fewer edits than the name has letters (a name replaced whole
 * shares nothing with it) — else undefined. On a tie, the first of `candidates`.
 *
 * @example
 * ```ts
 * import { nearestName } from "./nearest_name.ts";
 * nearestName("--prot", ["--port", "--host"]); // "--port"
 * nearestName("stauts", ["start", "status"]); // "status": one swap
 * ```
 */
export function nearestName(
  name: string,
  candidates: readonly string[],
  options: NearestNameOptions = {},
): string | undefined {
  const usual = Math.max(2, name.length / 4);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    const limit = Math.min(usual, options.maxDistance?.(candidate) ?? usual, name.length - 1);
    if (d <= limit && d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * adjacent characters, one edit each. Plain Levenshtein counted a swap (`stauts`) as two, which
 * tied it with a different word (`start`).
 */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        next[j] = Math.min(next[j], before[j - 2] + 1);
      }
    }
    [before, row] = [row, next];
  }
  return row[b.length];
}
