/**
 * The content path of a gateway URL, `/ipfs/{cid}[/{path}]`, read the way the UnixFS spec says
 * HTTP gateways read it ("UnixFS Paths"):
 *
 * - the path after the CID is percent-decoded once, then split on `/`: an encoded slash (`%2F`)
 *   separates names like a plain one, and `%252F` is a name holding `%2F`;
 * - `.` names the current node and is dropped; `..` drops the name before it, and one with no
 *   name before it (`a%2F..%2F..`) would leave the root: that is 400, never a path above the CID
 *   (a browser or `fetch` already removes dot segments it can see, so only encoded ones arrive);
 * - empty names (`a//b`) are dropped, as POSIX does: UnixFS forbids empty entry names, so none
 *   could be meant;
 * - a trailing `/` (or a last `.` / `..`) asks for the directory form: a directory's plain read
 *   is answered only under it, so relative links in its `index.html` resolve inside it.
 *
 * @module
 */
import { RequestValidationError } from "./http_errors.ts";

/** A gateway URL's content path, split and normalized. */
export interface ContentPath {
  /** Everything after the CID segment, as in the URL (percent-encoded, `""` or `/…`). */
  rest: string;
  /** The names to follow from the CID, decoded, without `.`, `..` or empty ones. */
  names: string[];
  /** True when the path ends in `/` (or `.`, `..`): the directory form. */
  directoryForm: boolean;
}

/** Prefix of every content path this gateway serves. */
const IPFS_PREFIX = "/ipfs/";

/**
 * The content path of `pathname`, a request URL's raw (still percent-encoded) path under `/ipfs/`.
 *
 * @example
 * ```ts
 * import { contentPath } from "./gateway_paths.ts";
 * contentPath("/ipfs/bafy/docs%2Fa%20b.txt").names; // ["docs", "a b.txt"]
 * ```
 *
 * @throws {RequestValidationError} a malformed percent-encoding, or a `..` above the root.
 */
export function contentPath(pathname: string): ContentPath {
  if (!pathname.startsWith(IPFS_PREFIX)) {
    throw new RequestValidationError("invalid_request", "not an /ipfs/ path", "path");
  }
  const end = pathname.indexOf("/", IPFS_PREFIX.length); // after the CID
  const rest = end < 0 ? "" : pathname.slice(end);
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new RequestValidationError(
      "invalid_request",
      "the path after the CID is not valid percent-encoded UTF-8",
      "path",
    );
  }
  const parts = decoded.split("/").slice(1); // `rest` starts with the `/` after the CID
  const names: string[] = [];
  for (const part of parts) {
    if (part === "" || part === ".") continue;
    if (part !== "..") {
      names.push(part);
      continue;
    }
    if (names.pop() === undefined) {
      throw new RequestValidationError(
        "invalid_request",
        `the path ${rest.slice(0, 200)} climbs above its root CID with ".."`,
        "path",
      );
    }
  }
  const last = parts.at(-1);
  return { rest, names, directoryForm: last === "" || last === "." || last === ".." };
}
