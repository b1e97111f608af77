/**
 * The HTML index the gateway generates for a UnixFS directory that has no `index.html` (Path
 * Gateway spec, "Generated HTML with directory index"). It lists the directory's own links only:
 * each entry's name, CID and DAG size (`Tsize`) are in the directory node, so the page costs one
 * block however many entries there are, as the spec advises; a link to the directory's CAR lets a
 * program read the same listing verifiably.
 *
 * Names are the directory author's, not ours: each is HTML-escaped in text and its bytes are
 * percent-encoded in its link (behind `./`, so a name such as `javascript:x` is a relative path,
 * never a scheme). A name that is not UTF-8 shows with U+FFFD, but its link keeps its bytes
 * (`%FF`), so two such names that read alike still link two entries. The page has no script and is
 * served under the same sandbox as a stored file.
 *
 * @module
 */
import { encodeNameSegment } from "../storage/unixfs_path.ts";

/**
 * Version of the generated page, part of its ETag (`"DirIndex-{version}_CID-{cid}"`, the spec's
 * shape): a cache must drop pages made by an older template. Bump it when the HTML changes.
 */
export const DIRECTORY_INDEX_VERSION = 1;

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
 * The HTML index of the directory at `path` (its `/ipfs/{cid}/…/` URL path, percent-encoded as in
 * the request).
 *
 * @example
 * ```ts
 * import { directoryIndex } from "./gateway_directory.ts";
 * const html = directoryIndex("/ipfs/bafy/", [{ name: "a.txt", cid: "bafk", tsize: 6 }]);
 * ```
 */
export function directoryIndex(path: string, entries: readonly IndexEntry[]): string {
  const title = escapeHtml(safeDecode(path));
  const rows = entries.map((entry) =>
    `<tr><td><a href="./${escapeHtml(encodeNameSegment(entry.nameBytes ?? entry.name))}">` +
    `${escapeHtml(entry.name)}</a></td><td><code>${entry.cid}</code></td>` +
    `<td>${entry.tsize}</td></tr>`
  );
  const up = path.split("/").filter((s) => s !== "").length > 2
    ? '<p><a href="../">..</a></p>'
    : "";
  return [
    "<!doctype html>",
    '<html><head><meta charset="utf-8">',
    `<title>Index of ${title}</title></head><body>`,
    `<h1>Index of ${title}</h1>`,
    up,
    '<p><a href="./?format=car">CAR of this directory</a></p>',
    "<table><thead><tr><th>Name</th><th>CID</th><th>DAG size (bytes)</th></tr></thead>",
    `<tbody>${rows.join("")}</tbody></table>`,
    "</body></html>",
  ].join("\n");
}

/** `text` with the five HTML-special characters escaped, for text and attribute values. */
function escapeHtml(text: string): string {
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
