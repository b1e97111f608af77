/**
 * The HTML index the gateway generates for a UnixFS directory that has no `index.html` (Path
 * Gateway spec, "Generated HTML with directory index"). It lists the directory's own links only:
 * each entry's name, CID and DAG size (`Tsize`) are in the directory node, so the page costs one
 * block however many entries there are, as the spec advises; a link to the directory's CAR lets a
 * program read the same listing verifiably.
 *
 * Names are the directory author's, not ours: each is HTML-escaped in text and its bytes are
 * percent-encoded in its link (behind `./`, so a name such as `javascript:x` is a relative path,
 * never a scheme). An entry no path reaches by its name (empty, `.`, `..`, holding `/`, NUL or a
 * control character, or repeating an earlier name: `storage/unixfs_names.ts`) is linked by its
 * own CID, `/ipfs/{cid}`, and its row says why; the first of a repeated name says a path reaches
 * it. A name that is not UTF-8 shows with U+FFFD, but its link keeps its bytes
 * (`%FF`), so two such names that read alike still link two entries. The page has no script and is
 * served under the same sandbox as a stored file.
 *
 * @module
 */
import { auditNames, type UnreachableReason } from "../storage/unixfs_names.ts";
import { encodeNameSegment } from "../storage/unixfs_path.ts";

/**
 * Version of the generated page, part of its ETag (`"DirIndex-{version}_CID-{cid}"`, the spec's
 * shape): a cache must drop pages made by an older template. Bump it when the HTML changes.
 */
export const DIRECTORY_INDEX_VERSION = 2;

/** What the page says of an entry no path reaches by its name (`storage/unixfs_names.ts`). */
const UNREACHABLE_NOTE: Record<UnreachableReason, string> = {
  empty: "empty name",
  dot: "named . or ..",
  slash: "name holds /",
  control: "name holds a control character",
  duplicate: "repeats an earlier name (a path reaches the first)",
};

/** One entry of a directory, as its node links it. */
export interface IndexEntry {
  /** The entry's name, as text. */
  name: string;
  /** The name's bytes, when they are not simply `name`'s UTF-8 (a name that is not UTF-8). */
  nameBytes?: Uint8Array;
  /** Its CID. */
  cid: string;
  /** Bytes of its whole DAG (the link's `Tsize`): a file's size plus its nodes'. */
  tsize: number;
}

/**
 * Rows of the page built per piece of {@link directoryIndexParts}: ~500 rows are ~70 KB of HTML
 * and a few milliseconds of work, so a 16,000-entry listing (2.3 MB) gives the event loop back
 * ~32 times while it is sent, instead of holding it for the whole page (review s74: 1.66 s).
 */
export const INDEX_ROWS_PER_PART = 500;

/**
 * The HTML index of the directory at `path` (its `/ipfs/{cid}/…/` URL path, percent-encoded as in
 * the request), whole: the pieces of {@link directoryIndexParts} joined.
 *
 * @example
 * ```ts
 * import { directoryIndex } from "./gateway_directory.ts";
 * const html = directoryIndex("/ipfs/bafy/", [{ name: "a.txt", cid: "bafk", tsize: 6 }]);
 * ```
 */
export function directoryIndex(path: string, entries: readonly IndexEntry[]): string {
  return [...directoryIndexParts(path, entries)].join("");
}

/**
 * The HTML index of the directory at `path`, in pieces to send as they are made: the head, then
 * {@link INDEX_ROWS_PER_PART} rows at a time, then the tail. Only the names are audited up front
 * (one pass); each row is built when its piece is asked for.
 *
 * @example
 * ```ts
 * import { directoryIndexParts } from "./gateway_directory.ts";
 * const parts = [...directoryIndexParts("/ipfs/bafy/", [{ name: "a", cid: "bafk", tsize: 1 }])];
 * ```
 */
export function* directoryIndexParts(
  path: string,
  entries: readonly IndexEntry[],
  rowsPerPart: number = INDEX_ROWS_PER_PART,
): Generator<string> {
  const title = escapeHtml(safeDecode(path));
  const encoder = new TextEncoder();
  const bytes = entries.map((entry) => entry.nameBytes ?? encoder.encode(entry.name));
  const { unreachable, shadowing } = auditNames(bytes.map((nameBytes) => ({ nameBytes })));
  const row = (entry: IndexEntry, i: number): string => {
    // An entry no path reaches by its name is linked by its own CID (absolute, so `..` cannot
    // climb out of the content root): linked by name it led elsewhere or to a 404 (review s74).
    const problem = unreachable.get(i);
    const href = problem === undefined
      ? `./${encodeNameSegment(bytes[i])}`
      : `/ipfs/${encodeURIComponent(entry.cid)}`;
    const note = problem !== undefined
      ? `not reachable by path: ${UNREACHABLE_NOTE[problem]}; linked by its CID`
      : shadowing.has(i)
      ? "a path reaches this entry (its name repeats below)"
      : "";
    return `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(entry.name)}</a></td>` +
      `<td><code>${escapeHtml(entry.cid)}</code></td><td>${entry.tsize}</td>` +
      `<td>${escapeHtml(note)}</td></tr>`;
  };
  const up = path.split("/").filter((s) => s !== "").length > 2
    ? '<p><a href="../">..</a></p>'
    : "";
  yield [
    "<!doctype html>",
    '<html><head><meta charset="utf-8">',
    `<title>Index of ${title}</title></head><body>`,
    `<h1>Index of ${title}</h1>`,
    up,
    '<p><a href="./?format=car">CAR of this directory</a></p>',
    "<table><thead><tr><th>Name</th><th>CID</th><th>DAG size (bytes)</th><th>Note</th></tr>" +
    "</thead>",
    "<tbody>",
  ].join("\n");
  for (let at = 0; at < entries.length; at += rowsPerPart) {
    const end = Math.min(entries.length, at + rowsPerPart);
    let piece = "";
    for (let i = at; i < end; i++) piece += row(entries[i], i);
    yield piece;
  }
  yield "</tbody></table>\n</body></html>";
}

/** The characters {@link escapeHtml} replaces: most names and every CID hold none. */
const HTML_SPECIAL = /[&<>"']/;

/** `text` with the five HTML-special characters escaped, for text and attribute values. */
function escapeHtml(text: string): string {
  if (!HTML_SPECIAL.test(text)) return text;
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** A percent-encoded path for display; kept encoded when it does not decode. */
function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
