/**
 * Directory entry names that no content path reaches. A UnixFS directory written by another tool
 * (or by hand, in a CAR anyone may import) can name an entry with an empty name, `.`, `..`, a
 * name holding `/`, NUL or another control character, or the same name as an earlier entry. The
 * gateway reads paths the UnixFS spec's way (`server/gateway_paths.ts`): `.`, `..` and empty
 * names are resolved away, `/` (encoded or not) separates names, and a lookup takes the first of
 * duplicates. So such an entry cannot be reached by its name, and a listing that linked it by name
 * would lead elsewhere (`./..` leaves the content root) or to a 404 (review s74, finding 3). These
 * entries are still content: they are reached by their own CID.
 *
 * NUL and control characters: `%00` would decode to a name byte, but no file system stores such a
 * name, URL tools strip or refuse control characters (WHATWG URL drops tabs and newlines), and the
 * UnixFS spec's path rules assume names a file system holds; listed by CID they always work.
 *
 * @module
 */
import { decodeUnixfs, type UnixfsLink } from "./unixfs.ts";

/** Why an entry of a directory is not reached by its name. */
export type UnreachableReason =
  | "empty"
  | "dot"
  | "slash"
  | "control"
  | "duplicate";

/** Byte values a reachable name may not hold: `/`, and the C0 controls and DEL (NUL among them). */
const SLASH = 0x2f;
const FIRST_PRINTABLE = 0x20;
const DEL = 0x7f;
const DOT = 0x2e;

/**
 * Why a path cannot reach the entry named `name` (bytes), leaving duplicates aside; `undefined`
 * when a path can.
 *
 * @example
 * ```ts
 * import { nameProblem } from "./unixfs_names.ts";
 * nameProblem(new TextEncoder().encode("..")); // "dot"
 * nameProblem(new TextEncoder().encode("a.txt")); // undefined
 * ```
 */
export function nameProblem(name: Uint8Array): UnreachableReason | undefined {
  if (name.length === 0) return "empty";
  if (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT))) {
    return "dot";
  }
  for (const byte of name) {
    if (byte === SLASH) return "slash";
    if (byte < FIRST_PRINTABLE || byte === DEL) return "control";
  }
  return undefined;
}

/** What {@link auditNames} found in a directory's links, by index. */
export interface NameAudit {
  /** Links no path reaches by name, and why. */
  unreachable: Map<number, UnreachableReason>;
  /** Links whose name a later link repeats: a path reaches these (the first wins). */
  shadowing: Set<number>;
}

/**
 * Which links of a directory a path cannot reach by name, and why; a repeated name is
 * `duplicate` for every entry but the first, which a path reaches (and which is `shadowing`).
 *
 * @example
 * ```ts
 * import { auditNames } from "./unixfs_names.ts";
 * const named = (n: string) => ({ nameBytes: new TextEncoder().encode(n) });
 * auditNames([named("a"), named("a"), named("..")]).unreachable; // Map { 1 => "duplicate", 2 => "dot" }
 * ```
 */
export function auditNames(links: readonly { nameBytes: Uint8Array }[]): NameAudit {
  const unreachable = new Map<number, UnreachableReason>();
  const shadowing = new Set<number>();
  // Latin-1 text of the bytes: one character per byte, so two names are equal exactly when their
  // bytes are (UTF-8 text would fold names that are not UTF-8 together).
  const first = new Map<string, number>();
  links.forEach((link, i) => {
    const problem = nameProblem(link.nameBytes);
    if (problem !== undefined) {
      unreachable.set(i, problem);
      return;
    }
    const key = latin1(link.nameBytes);
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, i);
    } else {
      unreachable.set(i, "duplicate");
      shadowing.add(earlier);
    }
  });
  return { unreachable, shadowing };
}

/**
 * Characters of a byte string passed to one `fromCharCode`: names are short, but a hostile one
 * may be up to a block long, and spreading a million arguments overflows the stack.
 */
const MAX_CHARS_PER_CALL = 4096;

function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += MAX_CHARS_PER_CALL) {
    out += String.fromCharCode(...bytes.subarray(i, i + MAX_CHARS_PER_CALL));
  }
  return out;
}

/**
 * How many entries of block `cid` (its verified `bytes`) no path reaches by name: 0 unless it is
 * a UnixFS directory (a block that does not decode as one is another check's business).
 *
 * @example
 * ```ts
 * import { unreachableEntryCount } from "./unixfs_names.ts";
 * unreachableEntryCount("bafkqaalb", new TextEncoder().encode("a")); // 0: a raw block
 * ```
 */
export function unreachableEntryCount(cid: string, bytes: Uint8Array): number {
  let links: UnixfsLink[];
  try {
    const node = decodeUnixfs(cid, bytes);
    if (node.type !== "directory") return 0;
    links = node.links;
  } catch {
    return 0;
  }
  return auditNames(links).unreachable.size;
}
