/**
 * A trustless IPFS gateway on the node's HTTP API (IPFS Trustless Gateway specification), with the
 * Path Gateway's content paths and plain reads of public files, plus the share-link route:
 *
 * | Route | What |
 * | --- | --- |
 * | `GET /ipfs/{cid}[/{path}]?format=raw` (or `Accept: application/vnd.ipld.raw`) | the one block the path names, verified |
 * | `GET /ipfs/{cid}[/{path}]?format=car` (or `Accept: application/vnd.ipld.car`) | a CAR rooted at `{cid}`: the path's directory blocks in order, then the named node's DAG (`dag-scope=all`, `entity` or `block`; `entity-bytes=from:to` of a file: only the blocks of those bytes), depth first, no duplicates |
 * | `GET /ipfs/{cid}[/{path}]` | a public file's bytes, `Range: bytes=a-b` answered 206 (a `<video>` seeks with it); a directory: 301 to `…/`, then its `index.html` or a generated index |
 * | `GET /share/{id}/{cid}` | while share `id` is valid: its private file's manifest or one of its chunks (ciphertext) |
 *
 * (`HEAD` for each `/ipfs` route.) `{path}` is resolved name by name through UnixFS directories
 * (`storage/unixfs_path.ts`; percent-decoding and `.`/`..` in `gateway_paths.ts`): a missing name,
 * or one asked of a file, is 404 `path_not_found` naming it; a HAMT-sharded directory on the way
 * is 501. Every answer names the requested path (`X-Ipfs-Path`) and the CID of each step of it
 * (`X-Ipfs-Roots`).
 *
 * A client that verifies (such as `@helia/verified-fetch`) can use a Veriflow node as its
 * gateway: every block is the bytes of its CID. These routes are outside `/v1` and need no API
 * key: they serve content-addressed blocks anyone holding the CID may check, never a private
 * file's plaintext (plain reads of a private file are 403 `key_required`; its blocks are
 * ciphertext).
 *
 * @module
 */
import { UNTRUSTED_CONTENT_HEADERS } from "./untrusted_content.ts";
import { type Context, Hono } from "hono";
import { CarWriter } from "@ipld/car";
import { CID } from "multiformats/cid";
import {
  canonicalCid,
  type CidCodec,
  DAG_PB_CODEC,
  identityBlock,
  isCid,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { decodeManifest } from "../protocols/manifest.ts";
import { CAR_MEDIA_TYPE, type CarScope, exportCar } from "../storage/car.ts";
import type { FileInfo } from "../storage/file_store.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import { ShareUnavailableError } from "../storage/share_links.ts";
import { decodeUnixfs } from "../storage/unixfs.ts";
import { type ResolvedPath, resolveUnixfsPath } from "../storage/unixfs_path.ts";
import type { EdgeEnv } from "./client_access.ts";
import { SNIFF_BYTES, typeFromBytes, typeFromName } from "./gateway_content_type.ts";
import { DIRECTORY_INDEX_VERSION, directoryIndex, type IndexEntry } from "./gateway_directory.ts";
import { type ContentPath, contentPath } from "./gateway_paths.ts";
import { EdgeError, errorResponse, RequestValidationError } from "./http_errors.ts";
import { rangedResponse } from "./http_range.ts";

/** Media type of one raw block (trustless gateway spec). */
export const RAW_MEDIA_TYPE = "application/vnd.ipld.raw";
/** A CID's bytes never change: cache for a year, never revalidate (what gateways send). */
const IMMUTABLE = "public, max-age=29030400, immutable";
/** The file a directory's plain read serves in place of a generated index (Path Gateway spec). */
const INDEX_FILE = "index.html";
/**
 * Bytes of a content path's SHA-256 in a CAR's ETag: 16 bytes tell paths apart as well as the
 * whole digest would, in half the header.
 */
const PATH_DIGEST_BYTES = 16;

/** Options of {@link gatewayRoutes}. */
export interface GatewayRoutesOptions {
  /** The clock share expiry is judged by (ms since the epoch). Default `Date.now`. */
  now?: () => number;
}

/** The routes, over the storage port `storage()` returns (looked up per request: restarts). */
export function gatewayRoutes(
  storage: () => GatewayStorage | undefined,
  options?: GatewayRoutesOptions,
): Hono<EdgeEnv> {
  const now = options?.now ?? Date.now;
  const app = new Hono<EdgeEnv>();
  const port = () => {
    const found = storage();
    if (found === undefined) {
      throw new EdgeError("service_unavailable", "this node runs no storage (--no-storage)");
    }
    return found;
  };

  app.use("/ipfs/*", async (c, next) => {
    await next();
    if (c.error instanceof VeriflowError && c.error.code === "invalid_manifest") {
      // Bytes that verify against their CID but are not what its codec says (a raw chunk named
      // as dag-pb or dag-cbor): the request names content no reader can interpret, not a fault
      // of this node, so 422 rather than the 500 an unlisted code gets.
      c.res = errorResponse(
        new EdgeError("invalid_manifest", c.error.message, { param: "cid", cause: c.error }),
      );
    }
    // One URL answers a file, a block or a CAR by `Accept`, each cached for a year: a shared
    // cache that did not key on `Accept` would hand one client's CAR to the next one's <video>.
    // Errors too: a 400 for one `Accept` must not be replayed to another.
    c.res.headers.append("vary", "Accept");
  });

  app.on(["GET", "HEAD"], ["/ipfs/:cid", "/ipfs/:cid/*"], async (c) => {
    const root = edgeCid(c.req.param("cid"));
    const url = new URL(c.req.url);
    const path = contentPath(url.pathname);
    const format = responseFormat(c.req.query("format"), c.req.header("accept"));
    const source = (cid: string): BlockSource => {
      const inline = identityBlock(cid);
      return inline ? inlineBlocks(cid, inline) : port();
    };
    const readBlock = (cid: string, signal?: AbortSignal) => source(cid).block(cid, signal);
    const resolved = await resolveUnixfsPath(root, path.names, (cid) => readBlock(cid));
    const request: GatewayRequest = {
      c,
      root,
      path,
      resolved,
      head: c.req.method === "HEAD",
      source,
      readBlock,
      common: {
        "x-ipfs-path": `/ipfs/${root}${path.rest}`,
        "x-ipfs-roots": resolved.roots.join(","),
        "x-content-type-options": "nosniff",
      },
    };
    if (format === "raw") return await blockResponse(request);
    if (format === "car") return await carResponse(request);
    return await plainResponse(request, `${url.pathname}/${url.search}`);
  });

  app.get("/share/:id/:cid", async (c) => {
    const { id, cid } = c.req.param();
    if (!isCid(cid)) throw new RequestValidationError("invalid_request", "not a CID", "cid");
    const storagePort = port();
    const record = await storagePort.share(id);
    if (!record) return shareRefusal(new ShareUnavailableError("share_not_found", id));
    if (record.expiresAt !== null && now() >= record.expiresAt) {
      return shareRefusal(new ShareUnavailableError("share_expired", id));
    }
    const manifestBytes = await storagePort.block(record.cid);
    const wanted = storageKey(cid);
    if (wanted !== storageKey(record.cid)) {
      const chunks = decodeManifest(manifestBytes).chunks.map(storageKey);
      if (!chunks.includes(wanted)) {
        throw new EdgeError("chunk_not_found", `${cid} is not part of share ${id}`);
      }
    }
    const bytes = wanted === storageKey(record.cid) ? manifestBytes : await storagePort.block(cid);
    return new Response(bytes as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": RAW_MEDIA_TYPE, "cache-control": "private, no-store" },
    });
  });

  return app;
}

/** What the `/ipfs` route reads: the storage port, or the one block an identity CID inlines. */
type BlockSource = Pick<GatewayStorage, "block" | "stat" | "read" | "car">;

/**
 * A CID from a URL in its canonical form (CIDv0, base36, upper case and base58btc are all names
 * IPFS tools print for the same block), or a 400 saying which forms are taken.
 */
function edgeCid(input: string): string {
  try {
    return canonicalCid(input);
  } catch (cause) {
    throw new RequestValidationError(
      "invalid_request",
      `not a CID this gateway serves (${(cause as Error).message}): a CIDv0 or CIDv1 ` +
        "(base32, base36 or base58btc) of a raw, dag-pb or dag-cbor block, sha2-256 or identity",
      "cid",
    );
  }
}

/**
 * The blocks of an identity CID: its one block is the bytes the CID carries, so nothing is
 * stored or fetched. Its plain read is those bytes for the raw codec; an inline dag-pb or
 * dag-cbor node is served as a block or a CAR only.
 */
function inlineBlocks(cid: string, inline: { codec: CidCodec; bytes: Uint8Array }): BlockSource {
  const { codec, bytes } = inline;
  return {
    block: () => Promise.resolve(bytes),
    stat: () => {
      if (codec !== RAW_CODEC) {
        return Promise.reject(
          new RequestValidationError(
            "invalid_request",
            `${cid} inlines a dag-pb or dag-cbor node: ask for ?format=raw or ?format=car`,
            "cid",
          ),
        );
      }
      return Promise.resolve({
        cid,
        tier: "public",
        type: "file",
        size: bytes.length,
        chunkSize: null,
        chunks: [cid],
      });
    },
    read: (_, range) =>
      Promise.resolve(ReadableStream.from([bytes.subarray(range.start, range.end)])),
    car: async () => {
      // A few hundred bytes at most (the CID carries them): written whole, then sent.
      const root = CID.parse(cid);
      const { writer, out } = CarWriter.create([root]);
      const pieces: Uint8Array[] = [];
      const written = (async () => {
        for await (const piece of out) pieces.push(piece);
      })();
      await writer.put({ cid: root, bytes });
      await writer.close();
      await written;
      return ReadableStream.from(pieces);
    },
  };
}

/** One `/ipfs` request, its content path resolved: what each kind of answer is built from. */
interface GatewayRequest {
  c: Context<EdgeEnv>;
  /** The root CID, canonical. */
  root: string;
  /** The content path after it. */
  path: ContentPath;
  /** Where the path leads, and the directory blocks on the way. */
  resolved: ResolvedPath;
  head: boolean;
  /** The blocks of `cid`: the storage port, or an identity CID's own bytes. */
  source: (cid: string) => BlockSource;
  /** One verified block, wherever `source` finds it. */
  readBlock: (cid: string, signal?: AbortSignal) => Promise<Uint8Array>;
  /** Headers every answer carries: `X-Ipfs-Path` (as requested), `X-Ipfs-Roots`, `nosniff`. */
  common: Record<string, string>;
}

/** `?format=raw`: the one block the path names (`/ipfs/{cid}` with no path: the root's). */
async function blockResponse(request: GatewayRequest): Promise<Response> {
  const { c, common, head } = request;
  const cid = request.resolved.cid;
  const bytes = await request.readBlock(cid);
  const etag = `"${cid}.raw"`;
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag);
  const headers = {
    ...common,
    "content-type": RAW_MEDIA_TYPE,
    "content-disposition": attachment(cid, "bin"),
    "content-length": String(bytes.length),
    "cache-control": IMMUTABLE,
    etag,
  };
  return new Response(head ? null : bytes as Uint8Array<ArrayBuffer>, { headers });
}

/**
 * `?format=car`: the directory blocks of the path, in order, then what `dag-scope` and
 * `entity-bytes` ask of the node it names; the CAR's root is the requested CID (trustless gateway
 * spec). With no path and no byte range the storage port writes it; otherwise it is written here
 * from verified blocks.
 */
async function carResponse(request: GatewayRequest): Promise<Response> {
  const { c, root, path, resolved, common, head } = request;
  const cid = resolved.cid;
  const scope = dagScope(c.req.query("dag-scope"));
  const bytes = entityBytes(c.req.query("entity-bytes"));
  // `entity-bytes` implies `dag-scope=entity` (a narrower `block` still wins).
  const entity = scope === "entity" || (bytes !== undefined && scope !== "block");
  // A file's entity is its whole DAG; a directory's is its own node, not its children's.
  const info = entity ? await request.source(cid).stat(cid) : undefined;
  let served: CarScope = scope === "block" || (info !== undefined && info.type === "directory")
    ? "block"
    : "all";
  // Elsewhere (a directory, a manifest) the spec has `entity-bytes` ignored.
  const ranged = bytes !== undefined && info !== undefined && isUnixfsFile(cid, info);
  let range: { start: number; end: number } | undefined;
  if (ranged) {
    // Only the blocks that hold those bytes; a range with no bytes in it is the root alone.
    range = entityRange(bytes, info.size ?? 0);
    if (range === undefined) served = "block";
  }
  // Each scope, path and byte range is its own representation: a cache must not mix them.
  const label = entity ? "entity" : scope;
  const pathTag = path.names.length > 0 ? `.path-${await pathDigest(path.names)}` : "";
  const bytesTag = ranged ? `.bytes-${bytes.text}` : "";
  const etag = `"${root}.car.${label}${pathTag}${bytesTag}"`;
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag);
  const signal = c.req.raw.signal;
  let stream: ReadableStream<Uint8Array>;
  if (path.names.length === 0 && !ranged) {
    stream = await request.source(cid).car(cid, served, signal);
  } else {
    // Read the node the path names now, so a missing one is an error, not a broken CAR.
    await request.readBlock(cid, signal);
    stream = exportCar(cid, request.readBlock, {
      scope: served,
      range,
      signal,
      roots: [root],
      path: resolved.blocks,
    });
  }
  const headers = {
    ...common,
    "content-type": `${CAR_MEDIA_TYPE}; version=1; order=dfs; dups=n`,
    "content-disposition": attachment(root, "car"),
    "cache-control": IMMUTABLE,
    etag,
  };
  if (!head) return new Response(stream, { headers });
  // Hono answers a HEAD with its GET's headers and no body, and the runtime then sends
  // `Content-Length: 0`, which the GET contradicts. The CAR is deterministic (the same
  // blocks in the same order), so its length is counted instead: a HEAD reads what a GET
  // would, without sending it.
  return new Response(null, {
    headers: { ...headers, "content-length": `${await size(stream)}` },
  });
}

/**
 * True when `cid` is a UnixFS file (a dag-pb file node or a raw leaf): bytes `entity-bytes` can
 * range over. A private file's manifest, or a raw manifest written before UnixFS (its chunks are
 * not itself), is not: the spec has `entity-bytes` ignored there, as for a directory.
 */
function isUnixfsFile(cid: string, info: FileInfo): boolean {
  if (info.tier !== "public" || info.type === "directory" || info.size === null) return false;
  const codec = CID.parse(cid).code;
  if (codec === DAG_PB_CODEC) return true;
  return codec === RAW_CODEC && info.chunks.length === 1 && info.chunks[0] === cid;
}

/** A short digest of a content path's names, for an ETag (names may hold any character). */
async function pathDigest(names: readonly string[]): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(names)),
  );
  return [...new Uint8Array(digest, 0, PATH_DIGEST_BYTES)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A plain read: a public file's bytes (with `Range`); a directory, under its directory form
 * (`…/`, else a 301 to it), as its `index.html` or a generated index (Path Gateway spec).
 *
 * @param directoryUrl Where a directory asked for without its trailing `/` is redirected.
 */
async function plainResponse(request: GatewayRequest, directoryUrl: string): Promise<Response> {
  const { path, common } = request;
  const cid = request.resolved.cid;
  const source = request.source(cid);
  const info = await source.stat(cid);
  if (info.tier !== "public") {
    throw new EdgeError("key_required", `${cid} is private: open it with a share link`);
  }
  // The store reads any dag-pb node as a file or a directory; the others are neither.
  const node = CID.parse(cid).code === DAG_PB_CODEC
    ? decodeUnixfs(cid, await source.block(cid))
    : undefined;
  if (node?.type === "directory") {
    if (!path.directoryForm) {
      // Relative links in a directory's page resolve against its URL: only `…/` is inside it.
      return new Response(null, {
        status: 301,
        headers: { ...common, location: directoryUrl, "cache-control": IMMUTABLE },
      });
    }
    const index = node.links.find((link) => link.name === INDEX_FILE);
    if (index !== undefined) {
      const indexInfo = await request.source(index.cid).stat(index.cid);
      if (indexInfo.type !== "directory" && indexInfo.tier === "public") {
        return await fileResponse(request, index.cid, indexInfo, INDEX_FILE);
      }
    }
    return directoryListing(request, node.links);
  }
  if (node !== undefined && node.type !== "file" && node.type !== "raw") {
    throw new EdgeError(
      "not_implemented",
      `${cid} is a UnixFS ${node.type}, which this gateway does not read: ask for ?format=car`,
    );
  }
  return await fileResponse(request, cid, info, path.names.at(-1));
}

/** A public file's bytes, `Range` answered; typed by its pin, its `name`, or its first bytes. */
async function fileResponse(
  request: GatewayRequest,
  cid: string,
  info: FileInfo,
  name: string | undefined,
): Promise<Response> {
  const { c, common, head } = request;
  const source = request.source(cid);
  if (info.size === null) {
    throw new EdgeError("key_required", `${cid} is private: open it with a share link`);
  }
  const fileSize = info.size;
  const etag = `"${cid}"`;
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag);
  const type = info.mime ?? typeFromName(name) ?? await sniff(source, cid, fileSize);
  const headers = {
    ...common,
    ...UNTRUSTED_CONTENT_HEADERS,
    "content-type": type,
    "cache-control": IMMUTABLE,
    etag,
  };
  return await rangedResponse(
    c.req.header("range"),
    fileSize,
    headers,
    (start, end) => source.read(cid, { start, end, signal: c.req.raw.signal }),
    head,
  );
}

/** The generated index of a directory without `index.html`. */
function directoryListing(request: GatewayRequest, entries: readonly IndexEntry[]): Response {
  const { c, common, head } = request;
  const etag = `"DirIndex-${DIRECTORY_INDEX_VERSION}_CID-${request.resolved.cid}"`;
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag);
  const html = new TextEncoder().encode(
    directoryIndex(`/ipfs/${request.root}${request.path.rest}`, entries),
  );
  const headers = {
    ...common,
    ...UNTRUSTED_CONTENT_HEADERS,
    "content-type": "text/html; charset=utf-8",
    "content-length": String(html.length),
    "cache-control": IMMUTABLE,
    etag,
  };
  return new Response(head ? null : html, { headers });
}

/** One media range of an `Accept` header: its type, parameters and weight. */
interface MediaRange {
  type: string;
  params: Map<string, string>;
  q: number;
}

/** The media ranges of an `Accept` header (RFC 9110 §12.5.1), in the order given. */
function mediaRanges(accept: string): MediaRange[] {
  return accept.split(",").map((part) => {
    const [type, ...rest] = part.split(";");
    const params = new Map<string, string>();
    for (const param of rest) {
      const at = param.indexOf("=");
      if (at < 0) continue;
      const value = param.slice(at + 1).trim().replace(/^"(.*)"$/, "$1");
      params.set(param.slice(0, at).trim().toLowerCase(), value.toLowerCase());
    }
    const q = params.has("q") ? Number(params.get("q")) : 1;
    return { type: type.trim().toLowerCase(), params, q: Number.isFinite(q) ? q : 0 };
  }).filter((range) => range.type !== "");
}

/**
 * `raw`, `car`, or `undefined` for the file's bytes: `?format=` wins over `Accept`. In `Accept`
 * the heaviest acceptable block or CAR type wins (`q=0` is "not this"; a CAR other than
 * version 1 is one this gateway cannot write); a request that names only types it cannot send
 * is 406.
 */
function responseFormat(
  format: string | undefined,
  accept: string | undefined,
): "raw" | "car" | undefined {
  if (format === "raw" || format === "car") return format;
  if (format !== undefined && format !== "") {
    throw new RequestValidationError("invalid_request", `unsupported format ${format}`, "format");
  }
  const ranges = mediaRanges(accept ?? "");
  let best: { format: "raw" | "car"; q: number } | undefined;
  for (const range of ranges) {
    const version = range.params.get("version");
    const format = range.type === RAW_MEDIA_TYPE
      ? "raw"
      : range.type === CAR_MEDIA_TYPE && (version === undefined || version === "1")
      ? "car"
      : undefined;
    if (format !== undefined && range.q > 0 && range.q > (best?.q ?? 0)) {
      best = { format, q: range.q };
    }
  }
  if (best !== undefined) return best.format;
  const named = (type: string) => type === RAW_MEDIA_TYPE || type === CAR_MEDIA_TYPE;
  if (ranges.length === 0 || ranges.some((range) => range.q > 0 && !named(range.type))) {
    return undefined;
  }
  throw new EdgeError(
    "not_acceptable",
    `no acceptable type in Accept: this gateway sends ${RAW_MEDIA_TYPE}, ` +
      `${CAR_MEDIA_TYPE}; version=1, or the file's bytes`,
    { param: "accept" },
  );
}

/**
 * True when `If-None-Match` names `etag` (RFC 9110 §13.1.2): `*`, or any tag of its list equal
 * under weak comparison (`W/"x"` matches `"x"`). Every representation here is named by its
 * CID and never changes, so a tag the client holds is the bytes it would get.
 */
function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (tag: string) => tag.replace(/^W\//, "");
  return [...header.matchAll(/(?:W\/)?"[^"]*"/g)].some((m) => opaque(m[0]) === opaque(etag));
}

/** 304 with what a cache refreshes from it (RFC 9110 §15.4.5). */
function notModified(common: Record<string, string>, etag: string): Response {
  return new Response(null, {
    status: 304,
    headers: { ...common, "cache-control": IMMUTABLE, etag },
  });
}

/** A CAR request's `dag-scope` (trustless gateway spec), `all` by default. */
function dagScope(scope: string | undefined): "all" | "entity" | "block" {
  if (scope === undefined || scope === "all") return "all";
  if (scope === "entity" || scope === "block") return scope;
  throw new RequestValidationError("invalid_request", `unknown dag-scope ${scope}`, "dag-scope");
}

/** A CAR request's `entity-bytes=from:to`, parsed: `to` undefined for `*`. */
interface EntityBytes {
  from: number;
  to: number | undefined;
  /** The value as given (for the ETag). */
  text: string;
}

/**
 * A CAR request's `entity-bytes=from:to` (trustless gateway spec: integers, negative ones counted
 * from the end, `to` may be `*`): `undefined` for the whole entity (absent, or `0:*`), else the
 * value parsed. A malformed one is a 400, never read as "the whole file".
 */
function entityBytes(value: string | undefined): EntityBytes | undefined {
  if (value === undefined || value === "0:*") return undefined;
  const match = value.match(/^(-?\d{1,16}):(-?\d{1,16}|\*)$/);
  const from = Number(match?.[1]);
  const to = match?.[2] === "*" ? undefined : Number(match?.[2]);
  if (!match || (to !== undefined && from >= 0 && to >= 0 && to < from)) {
    throw new RequestValidationError(
      "invalid_request",
      `entity-bytes must be from:to (integers, to may be *), not ${value.slice(0, 40)}`,
      "entity-bytes",
    );
  }
  return { from, to, text: value };
}

/**
 * The bytes `[start, end)` of a file of `size` bytes that `entity-bytes` asks for (inclusive `to`,
 * negative values from the end, clamped to the file), or `undefined` when that is no bytes at all
 * (the spec answers such a request with the file's root block). A range that starts past the end
 * of a non-empty file is a 400: the spec asks for one when the gateway can tell up front.
 */
function entityRange(bytes: EntityBytes, size: number): { start: number; end: number } | undefined {
  const start = bytes.from < 0 ? Math.max(0, size + bytes.from) : bytes.from;
  const last = bytes.to === undefined
    ? size - 1
    : bytes.to < 0
    ? size + bytes.to
    : Math.min(bytes.to, size - 1);
  if (size > 0 && start >= size) {
    throw new RequestValidationError(
      "invalid_request",
      `entity-bytes=${bytes.text} starts past the end of the file (${size} bytes)`,
      "entity-bytes",
    );
  }
  return last < start ? undefined : { start, end: last + 1 };
}

/** The bytes a stream carries, read to its end and dropped. */
async function size(stream: ReadableStream<Uint8Array>): Promise<number> {
  let total = 0;
  for await (const piece of stream) total += piece.length;
  return total;
}

/**
 * A block or a CAR is not for a browser to render: the trustless gateway spec has it downloaded
 * under the CID's name.
 */
function attachment(cid: string, extension: "bin" | "car"): string {
  return `attachment; filename="${cid}.${extension}"`;
}

function shareRefusal(error: ShareUnavailableError): Response {
  const status = error.code === "share_expired" ? 410 : 404;
  return Response.json({ error: { code: error.code, message: error.message } }, { status });
}

/** A content type from a file's first bytes (`gateway_content_type.ts`). */
async function sniff(port: BlockSource, cid: string, size: number): Promise<string> {
  const head = new Uint8Array(
    await new Response(
      await port.read(cid, { start: 0, end: Math.min(size, SNIFF_BYTES) }),
    ).arrayBuffer(),
  );
  return typeFromBytes(head);
}
