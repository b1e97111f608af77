/**
 * The content path of a gateway URL, `/ipfs/{cid}[/{path}]`, read the way the UnixFS spec says
 * HTTP gateways read it ("UnixFS Paths"), from the request's raw path (as received, before any URL
 * parser normalizes it) and from nothing else, so the CID and the names always come from the same
 * string:
 *
 * - the CID is the first segment (up to the first literal `/`), percent-decoded;
 * - the path after it is percent-decoded once, to bytes (a name need not be UTF-8: `%FF` is the
 *   byte 0xFF), then split on `/`: an encoded slash (`%2F`) separates names like a plain one, and
 *   `%252F` is a name holding `%2F`;
 * - dot segments, encoded or not (WHATWG URL counts `%2e` as `.`), are resolved inside the path:
 *   `.` is dropped, `..` drops the name before it, and a `..` with no name before it would leave the
 *   CID the URL names: that is 400, never the content of another root (`/ipfs/A/%2e%2e/B/x` is not
 *   `/ipfs/B/x`: a browser normalizes it so before sending it, so only a client that did not can
 *   send it, and it is refused);
 * - empty names (`a//b`) are dropped, as POSIX does: UnixFS forbids empty entry names;
 * - more than {@link MAX_PATH_NAMES} names is 400: each costs a block read, and the answer's
 *   `X-Ipfs-Roots` names one CID per name;
 * - only a literal `/` at the end asks for the directory form (a directory's plain read is
 *   answered only under it, so relative links in its `index.html` resolve inside it): a browser
 *   resolves `site%2F`'s links against the directory above, so `site%2F` is redirected like `site`.
 *
 * @module
 */
import { RequestValidationError } from "./http_errors.ts";

/** A gateway URL's content path, split and normalized. */
export interface ContentPath {
  /** The CID segment, percent-decoded (not yet checked to be a CID). */
  cid: string;
  /** Everything after the CID segment, as in the URL (percent-encoded, `""` or `/…`). */
  rest: string;
  /** The names to follow from the CID, decoded to bytes, without `.`, `..` or empty ones. */
  names: Uint8Array[];
  /** True when the raw path ends in a literal `/`: the directory form. */
  directoryForm: boolean;
}

/**
 * Most names a content path may have after dot segments are resolved. Directory trees of real
 * sites and packages are a few dozen deep; 64 names keep `X-Ipfs-Roots` (65 CIDs, ~4 KB) well
 * inside the 8–16 KB of headers HTTP clients accept, and the lookups to 64 block reads (a chain of
 * 3,000 one-entry directories answered a 180 KB header before).
 */
export const MAX_PATH_NAMES = 64;

/** Prefix of every content path this gateway serves. */
const IPFS_PREFIX = "/ipfs/";
const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * The raw path and query of a request URL, as the client sent them: `Request.url` keeps the
 * request target as received (`new URL()` would turn `%2e%2e` into `..` and remove it). A
 * character outside printable ASCII, which no request line carries, is percent-encoded.
 *
 * @example
 * ```ts
 * import { rawTarget } from "./gateway_paths.ts";
 * rawTarget("http://h/ipfs/bafy/%2e%2e/x?format=car"); // { pathname: "/ipfs/bafy/%2e%2e/x", search: "?format=car" }
 * ```
 */
export function rawTarget(url: string): { pathname: string; search: string } {
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  const target = slash < 0 ? "/" : url.slice(slash).split("#")[0];
  const query = target.indexOf("?");
  const printable = (s: string) => s.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c));
  return {
    pathname: printable(query < 0 ? target : target.slice(0, query)),
    search: printable(query < 0 ? "" : target.slice(query)),
  };
}

/**
 * The content path of `pathname`, a request's raw (still percent-encoded) path under `/ipfs/`.
 *
 * @example
 * ```ts
 * import { contentPath } from "./gateway_paths.ts";
 * contentPath("/ipfs/bafy/docs%2Fa%20b.txt").names; // the bytes of "docs" and "a b.txt"
 * ```
 *
 * @throws {RequestValidationError} a malformed percent-encoding, a `..` above the CID, or more
 * than {@link MAX_PATH_NAMES} names.
 */
export function contentPath(pathname: string): ContentPath {
  if (!pathname.startsWith(IPFS_PREFIX)) {
    throw new RequestValidationError("invalid_request", "not an /ipfs/ path", "path");
  }
  const end = pathname.indexOf("/", IPFS_PREFIX.length); // after the CID
  const cidSegment = pathname.slice(IPFS_PREFIX.length, end < 0 ? undefined : end);
  const rest = end < 0 ? "" : pathname.slice(end);
  let cid: string;
  try {
    cid = new TextDecoder("utf-8", { fatal: true }).decode(percentDecode(cidSegment));
  } catch {
    throw new RequestValidationError("invalid_request", "the CID segment does not decode", "cid");
  }
  const names: Uint8Array[] = [];
  for (const part of split(percentDecode(rest)).slice(1)) { // `rest` starts with a `/`
    if (part.length === 0 || isDot(part, 1)) continue;
    if (!isDot(part, 2)) {
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
  if (names.length > MAX_PATH_NAMES) {
    throw new RequestValidationError(
      "invalid_request",
      `the path has ${names.length} names, more than the ${MAX_PATH_NAMES} this gateway follows`,
      "path",
    );
  }
  return { cid, rest, names, directoryForm: rest.endsWith("/") };
}

/**
 * The bytes a percent-encoded string stands for: each `%XX` is the byte XX, any other character
 * its UTF-8. Never decoded to text, so bytes that are not UTF-8 survive.
 *
 * @throws {RequestValidationError} a `%` not followed by two hex digits.
 */
function percentDecode(encoded: string): Uint8Array {
  const out: number[] = [];
  const text = new TextEncoder();
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] !== "%") {
      const char = String.fromCodePoint(encoded.codePointAt(i)!);
      out.push(...text.encode(char));
      i += char.length - 1;
      continue;
    }
    const hex = encoded.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
      throw new RequestValidationError(
        "invalid_request",
        `the path holds a malformed percent-encoding near ${encoded.slice(i, i + 12)}`,
        "path",
      );
    }
    out.push(parseInt(hex, 16));
    i += 2;
  }
  return new Uint8Array(out);
}

/** `bytes` split on `/`. */
function split(bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let from = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === SLASH) {
      parts.push(bytes.subarray(from, i));
      from = i + 1;
    }
  }
  return parts;
}

/** True when `part` is `count` dots: `.` (1) or `..` (2). */
function isDot(part: Uint8Array, count: 1 | 2): boolean {
  return part.length === count && part.every((byte) => byte === DOT);
}
