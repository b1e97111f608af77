/**
 * One `/ipfs` request of the gateway (`gateway_routes.ts`), its content path resolved, and what
 * every kind of answer to it (a block, a CAR in `gateway_car.ts`, a file's bytes, a directory)
 * shares: where blocks come from, the headers each answer carries, conditional requests, and how
 * a file's metadata is read.
 *
 * @module
 */
import type { Context } from "hono";
import { type CidCodec, cidCodec, identityBlock } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { FileInfo } from "../storage/file_store.ts";
import type { GatewayReadOptions, GatewayStorage } from "../storage/gateway_port.ts";
import type { ResolvedPath } from "../storage/unixfs_path.ts";
import type { UnixfsNode } from "../storage/unixfs.ts";
import type { EdgeEnv } from "./client_access.ts";
import type { ContentPath } from "./gateway_paths.ts";

/** A CID's bytes never change: cache for a year, never revalidate (what gateways send). */
export const IMMUTABLE = "public, max-age=29030400, immutable";

/** What the `/ipfs` route reads: the storage port, or the one block an identity CID inlines. */
export type BlockSource = Pick<GatewayStorage, "block" | "stat" | "read">;

/** One `/ipfs` request, its content path resolved: what each kind of answer is built from. */
export interface GatewayRequest {
  /** The Hono context. */
  c: Context<EdgeEnv>;
  /** The root CID, canonical. */
  root: string;
  /** The content path, from the request's raw path. */
  path: ContentPath;
  /** Where the path leads, and the directory blocks on the way. */
  resolved: ResolvedPath;
  /** True for a `HEAD`: the answer's status and headers, no body. */
  head: boolean;
  /**
   * The node's storage (`service_unavailable` when it runs none); for an `only-if-cached` request,
   * its own store only ({@link localReads}).
   */
  port: () => GatewayStorage;
  /** The blocks of `cid`: the storage port, or an identity CID's own bytes. */
  source: (cid: string) => BlockSource;
  /** One verified block, wherever `source` finds it. */
  readBlock: (cid: string, signal?: AbortSignal) => Promise<Uint8Array>;
  /** Headers every answer carries: `X-Ipfs-Path` (as requested), `X-Ipfs-Roots`, `nosniff`. */
  common: Record<string, string>;
  /** The `filename` query parameter, when given: the name the answer is saved and typed by. */
  filename: string | undefined;
  /** True for `download=true`: the answer is an attachment, never rendered. */
  download: boolean;
  /**
   * The file types `Accept` limits a plain answer to (`application/json`, `application/cbor`),
   * `undefined` for no limit: a file or directory page of another type is 406.
   */
  plainTypes: ReadonlySet<string> | undefined;
  /** Decodes a UnixFS node from its verified bytes, a directory from the routes' cache. */
  decode: (cid: string, bytes: Uint8Array) => UnixfsNode;
}

/**
 * True when a request's `Cache-Control` holds the `only-if-cached` directive (RFC 9111 §5.2.1.7;
 * directives are a comma-separated list, case-insensitive): the client wants what this node holds,
 * with no fetch from the network (Path Gateway spec). A comma inside a quoted argument separates
 * nothing: `no-cache="set-cookie, only-if-cached"` names header fields, not the directive (split
 * at every comma, it was taken for one, review s56).
 */
export function onlyIfCached(cacheControl: string | undefined): boolean {
  if (cacheControl === undefined) return false;
  // Runs of anything but a comma or a quote, and quoted strings (escapes kept, an unclosed one
  // to the end): the list's members, each whole.
  const directives = cacheControl.match(/(?:[^,"]|"(?:[^"\\]|\\.)*"?)+/g) ?? [];
  return directives.some((d) => d.trim().toLowerCase() === "only-if-cached");
}

/**
 * `port` with every read kept to this node's own store (`{ local: true }`): what an
 * `only-if-cached` request is answered from. A block not held here is `chunk_not_found`, never
 * fetched from (nor named to) the storage peers.
 */
export function localReads(port: GatewayStorage): GatewayStorage {
  return readsWith(port, { local: true });
}

/**
 * `port` with every read made with `options`: `{ local: true }` ({@link localReads}), or a
 * `deepWalk` gate (the client's budget, `deep_reads.ts`) each block read asks before it walks deep
 * into the storage peers' ranking.
 */
export function readsWith(port: GatewayStorage, options: GatewayReadOptions): GatewayStorage {
  const local = { local: options.local };
  return {
    ...port,
    block: (cid, signal) => port.block(cid, signal, options),
    stat: (cid) => port.stat(cid, options),
    read: (cid, range) => port.read(cid, range, options),
    mayRead: port.mayRead && ((cid) => port.mayRead!(cid, local)),
    leavesReadable: port.leavesReadable && ((cids) => port.leavesReadable!(cids, local)),
    car: (cid, scope, signal) => port.car(cid, scope, signal, options),
  };
}

/** The codec of any CID the gateway takes, identity CIDs included. */
export function codecOf(cid: string): CidCodec {
  return identityBlock(cid)?.codec ?? cidCodec(cid);
}

/**
 * A file's metadata, or `undefined` for a private file this node's key does not open. A storage
 * peer holds other owners' private files: its storage reads their manifests with its own key and
 * answers `authentication_failed`, which is no fault of the request nor of the node (not a 500):
 * the file is private, as one read without any key is.
 */
export async function statOf(source: BlockSource, cid: string): Promise<FileInfo | undefined> {
  try {
    return await source.stat(cid);
  } catch (error) {
    if (error instanceof VeriflowError && error.code === "authentication_failed") return undefined;
    throw error;
  }
}

/**
 * True when `If-None-Match` names `etag` (RFC 9110 §13.1.2): `*`, or any tag of its list equal
 * under weak comparison (`W/"x"` matches `"x"`). Every representation here is named by its
 * CID and never changes, so a tag the client holds is the bytes it would get.
 */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (tag: string) => tag.replace(/^W\//, "");
  return [...header.matchAll(/(?:W\/)?"[^"]*"/g)].some((m) => opaque(m[0]) === opaque(etag));
}

/**
 * 304 with what a cache refreshes from it (RFC 9110 §15.4.5): the `Cache-Control` the `200` would
 * carry (`cacheControl`), so a private file's manifest stays `private, no-store`. Before (review
 * s80 F3) every 304 said `IMMUTABLE`, and a cache holding the manifest had it refreshed as public
 * for a year.
 */
export function notModified(
  common: Record<string, string>,
  etag: string,
  cacheControl: string,
): Response {
  return new Response(null, {
    status: 304,
    headers: { ...common, "cache-control": cacheControl, etag },
  });
}

/**
 * A block or a CAR is not for a browser to render: the trustless gateway spec has it downloaded
 * under the CID's name, or under the request's `filename` when it gave one.
 */
export function attachment(
  cid: string,
  extension: "bin" | "car",
  filename: string | undefined,
): string {
  return contentDisposition("attachment", filename ?? `${cid}.${extension}`);
}

/**
 * A `Content-Disposition` of `kind`, naming `name` if given (Path Gateway spec,
 * "Content-Disposition"). A name comes from the request's query and may hold any character (`"`,
 * CR LF, non-ASCII): it is sent as an ASCII `filename` with every other character (and `"`, `\`)
 * as `_`, and, when that lost anything, as an RFC 8187 `filename*` of its UTF-8 as well, which
 * browsers prefer.
 *
 * @example
 * ```ts
 * import { contentDisposition } from "./gateway_request.ts";
 * contentDisposition("inline", "testтест.pdf");
 * // inline; filename="test____.pdf"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf
 * ```
 */
export function contentDisposition(kind: "inline" | "attachment", name?: string): string {
  if (name === undefined) return kind;
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/gu, "_"); // one `_` per character
  const plain = `${kind}; filename="${ascii}"`;
  return ascii === name ? plain : `${plain}; filename*=UTF-8''${rfc8187(name)}`;
}

/** `text`'s UTF-8 with every byte but RFC 8187's `attr-char` percent-encoded. */
function rfc8187(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const char = String.fromCharCode(byte);
    out += ATTR_CHAR.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** RFC 8187 `attr-char`: what a `filename*` value carries unencoded. */
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;
