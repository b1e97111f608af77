/**
 * `did you mean …?`: the known name nearest a mistyped one, for config keys, environment
 * variables and flags alike. Free of imports, so the CLI's tool commands can use it without
 * loading the node's configuration (whose CBOR dependency reads the environment at import, and
 * `--help` runs with no permissions).
 *
 * @module
 */

/**
 * The name in `candidates` nearest `name` (edit distance, ignoring case), if it is near enough
 * to be what was meant — within 2 edits, or a quarter of the name's length — else undefined.
 * What `did you mean …?` offers, for keys, variables and flags alike.
 *
 * @example
 * ```ts
 * import { nearestName } from "./nearest_name.ts";
 * nearestName("--prot", ["--port", "--host"]); // "--port"
 * ```
 */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, name.length / 4) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}
