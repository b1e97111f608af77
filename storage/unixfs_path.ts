/**
 * Content paths through UnixFS: `/ipfs/{cid}/docs/a.txt` names the node reached from `cid` by
 * following, one name at a time, the directory link of that name (UnixFS spec, "UnixFS Paths";
 * Path Gateway spec, "Traversing through UnixFS"). The gateway resolves paths with this before it
 * answers a plain read, a block or a CAR of what the path names; the directory blocks read on the
 * way are kept, in order, because a trustless CAR must carry them for its reader to check each
 * step.
 *
 * Names arrive already split and normalized (no `.`, `..` or empty names: the HTTP edge does that,
 * `server/gateway_paths.ts`), as text or as bytes (a URL's `%FF` is the byte 0xFF, which no text
 * holds). A name is looked up byte for byte among a directory's links, never through a decoding to
 * text (two names that are not UTF-8 would read alike), the first match winning (the UnixFS spec's
 * rule for third-party directories holding duplicates). A name
 * that is missing, or one asked of a file, is {@link PathNotFoundError}; a HAMT-sharded directory,
 * a symlink or a dag-cbor node on the way is {@link PathNotSupportedError}: Veriflow writes none
 * of them (`unixfs.ts`), and guessing through one would answer for content it cannot read.
 *
 * @module
 */
import { cidCodec, DAG_PB_CODEC, identityBlock, RAW_CODEC } from "../protocols/cid.ts";
import { StorageError } from "./errors.ts";
import { decodeUnixfs, findLink, type GetBlock, type UnixfsNode } from "./unixfs.ts";
import type { UnixfsDirectoryCache } from "./unixfs_directory_cache.ts";

/** A block read on the way down a path: its CID and its verified bytes. */
export interface PathBlock {
  /** The block's CID (CIDv1, as its parent links it). */
  cid: string;
  /** Its bytes, as read. */
  bytes: Uint8Array;
}

/** Where a content path leads. */
export interface ResolvedPath {
  /** The CID the path names: its last name's link, or the root itself for an empty path. */
  cid: string;
  /** The directory blocks followed, root first, one per name, in order. */
  blocks: PathBlock[];
  /**
   * The logical roots: the root, then the node each name led to (`X-Ipfs-Roots`, one per path
   * segment, in the Path Gateway spec's terms).
   */
  roots: string[];
}

/** No node at a content path: a name missing from its directory, or asked of a file. */
export class PathNotFoundError extends StorageError {
  /** The name that could not be followed. */
  readonly segment: string;
  /** The path resolved before it, `/ipfs/{root}[/…]`. */
  readonly at: string;
  /**
   * Build the error.
   *
   * @param at The path resolved so far.
   * @param segment The name that could not be followed.
   * @param why What `at` is, when that is the reason (a file has no entries).
   */
  constructor(at: string, segment: string, why?: string) {
    super(
      "path_not_found",
      why === undefined
        ? `no entry "${segment}" in the directory ${at}`
        : `${at} is ${why}: it has no entry "${segment}"`,
    );
    this.segment = segment;
    this.at = at;
  }
}

/** A node on a path that this resolver does not traverse (HAMT shard, symlink, dag-cbor). */
export class PathNotSupportedError extends StorageError {
  /**
   * Build the error.
   *
   * @param at The path resolved so far.
   * @param segment The name that was to be followed from it.
   * @param what What `at` is.
   */
  constructor(at: string, segment: string, what: string) {
    super(
      "not_implemented",
      `cannot follow "${segment}" from ${at}: it is ${what}, which this gateway does not traverse ` +
        "(ask for it by its own CID)",
    );
  }
}

/** Options of {@link resolveUnixfsPath}. */
export interface ResolveOptions {
  /**
   * Decoded directories by CID: a path through a big directory asked again decodes it once
   * (blocks are still read with `get` each time).
   */
  cache?: UnixfsDirectoryCache;
}

/**
 * Follow `names` from `root`, reading each directory on the way with `get`. The node the path
 * ends at is not read (the caller reads what it needs of it).
 *
 * @example
 * ```ts
 * import { ChunkStore } from "./chunk_store.ts";
 * import { FileStore } from "./file_store.ts";
 * import { resolveUnixfsPath } from "./unixfs_path.ts";
 * const store = await ChunkStore.open(await Deno.makeTempDir());
 * const files = new FileStore(store);
 * const file = await files.put(ReadableStream.from([new TextEncoder().encode("hi")]));
 * const dir = await files.putDirectory([{ name: "a.txt", fileSize: file.size, ...file }]);
 * const { cid } = await resolveUnixfsPath(dir.cid, ["a.txt"], (c) => store.get(c));
 * ```
 *
 * @throws {PathNotFoundError} a name is not in its directory, or a file is asked for a name.
 * @throws {PathNotSupportedError} a HAMT-sharded directory, symlink or dag-cbor node on the way.
 * @throws {InvalidManifestError} a dag-pb node on the way is not UnixFS.
 */
export async function resolveUnixfsPath(
  root: string,
  names: readonly (string | Uint8Array)[],
  get: GetBlock,
  options?: ResolveOptions,
): Promise<ResolvedPath> {
  const decode = (cid: string, bytes: Uint8Array): UnixfsNode =>
    options?.cache?.decode(cid, bytes) ?? decodeUnixfs(cid, bytes);
  const blocks: PathBlock[] = [];
  const roots = [root];
  let cid = root;
  let at = `/ipfs/${root}`;
  for (const segment of names) {
    const name = typeof segment === "string" ? segment : nameText(segment);
    // An identity CID (a tiny node inlined in its parent's link) has a codec but no sha2-256.
    const codec = identityBlock(cid)?.codec ?? cidCodec(cid);
    if (codec === RAW_CODEC) throw new PathNotFoundError(at, name, "a file");
    if (codec !== DAG_PB_CODEC) throw new PathNotSupportedError(at, name, "a dag-cbor node");
    const bytes = await get(cid);
    const node = decode(cid, bytes);
    if (node.type === "file" || node.type === "raw") {
      throw new PathNotFoundError(at, name, "a file");
    }
    if (node.type === "hamt-sharded-directory") {
      throw new PathNotSupportedError(at, name, "a HAMT-sharded directory");
    }
    if (node.type !== "directory") {
      throw new PathNotSupportedError(at, name, `a UnixFS ${node.type}`);
    }
    const link = findLink(node.links, segment);
    if (link === undefined) throw new PathNotFoundError(at, name);
    blocks.push({ cid, bytes });
    cid = link.cid;
    roots.push(cid);
    at += `/${encodeNameSegment(segment)}`;
  }
  return { cid, blocks, roots };
}

/**
 * A name as one URL path segment: its bytes percent-encoded but for the characters
 * `encodeURIComponent` keeps (`A-Z a-z 0-9 - _ . ! ~ * ' ( )`). For a UTF-8 name it is
 * `encodeURIComponent(name)`; a name that is not UTF-8 keeps its bytes (`%FF`), which a lookup
 * of the segment finds again.
 *
 * @example
 * ```ts
 * import { encodeNameSegment } from "./unixfs_path.ts";
 * encodeNameSegment("a b.txt"); // "a%20b.txt"
 * encodeNameSegment(new Uint8Array([0x61, 0xff])); // "a%FF"
 * ```
 */
export function encodeNameSegment(name: string | Uint8Array): string {
  const bytes = typeof name === "string" ? new TextEncoder().encode(name) : name;
  let out = "";
  for (const byte of bytes) out += SEGMENT_TEXT[byte];
  return out;
}

/** The characters `encodeURIComponent` leaves as they are. */
const UNESCAPED = /^[A-Za-z0-9\-_.!~*'()]$/;
/**
 * Each byte's text in a segment, computed once: a listing of 16,000 names tested a regular
 * expression per byte of every name.
 */
const SEGMENT_TEXT: readonly string[] = Array.from({ length: 256 }, (_, byte) => {
  const char = String.fromCharCode(byte);
  return byte < 0x80 && UNESCAPED.test(char)
    ? char
    : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
});

/**
 * A name's bytes as text, for messages and display: UTF-8, with U+FFFD for bytes that do not
 * decode (as `@ipld/dag-pb` reads link names).
 */
export function nameText(name: Uint8Array): string {
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(name);
}
