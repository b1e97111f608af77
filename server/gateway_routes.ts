/**
 * A trustless IPFS gateway on the node's HTTP API (IPFS Trustless Gateway specification), with the
 * Path Gateway's content paths and plain reads of public files, plus the share-link route:
 *
 * | Route | What |
 * | --- | --- |
 * | `GET /ipfs/{cid}[/{path}]?format=raw` (or `Accept: application/vnd.ipld.raw`) | the one block the path names, verified |
 * | `GET /ipfs/{cid}[/{path}]?format=car` (or `Accept: application/vnd.ipld.car`) | a CAR rooted at `{cid}`: the path's directory blocks in order, then the named node's DAG (`dag-scope=all`, `entity` or `block`; `entity-bytes=from:to` of a file: only the blocks of those bytes), depth first, no duplicates |
 * | `GET /ipfs/{cid}[/{path}]` | a public file's bytes, `Range: bytes=a-b` answered 206 (a `<video>` seeks with it) unless an `If-Range` names another version; a directory: 301 to `…/`, then its `index.html` or a generated index |
 * | `GET /share/{id}` | share `id`'s state: 200 `{share, state: "live", expiresAt, open}` (how to open it; never a key), 404 `share_not_found`, 410 `share_expired` |
 * | `GET /share/{id}/{cid}` | while share `id` is valid: its private file's manifest or one of its chunks (ciphertext) |
 *
 * (`HEAD` for each `/ipfs` route.) The CID and `{path}` are read from the request's raw path
 * (`gateway_paths.ts`: percent-decoding to bytes, `.`/`..`, the directory form, a depth limit);
 * `{path}` is resolved name by name through UnixFS directories (`storage/unixfs_path.ts`): a missing
 * name, or one asked of a file, is 404 `path_not_found` naming it; a HAMT-sharded directory on the
 * way is 501. Every answer names the requested path (`X-Ipfs-Path`) and the CID of each step of it
 * (`X-Ipfs-Roots`). CAR answers are `gateway_car.ts`'s. `?filename=` and `?download=true` name a
 * file's, a block's or a CAR's `Content-Disposition` (and type a file by the name); a
 * `Service-Worker: script` request for `/ipfs/{cid}` itself is 400 (its scope would be `/ipfs/`).
 * `Cache-Control: only-if-cached` keeps every read of the request to the node's own store
 * (`localReads`), a share link's as well: what it holds is answered as usual, a block it would have
 * fetched from its storage peers is 412 `not_cached` (Path Gateway spec).
 *
 * A client that verifies (such as `@helia/verified-fetch`) can use a Veriflow node as its
 * gateway: every block is the bytes of its CID. These routes are outside `/v1` and need no API
 * key: they serve content-addressed blocks anyone holding the CID may check, never a private
 * file's plaintext (plain reads of a private file are 403 `key_required`; its blocks are
 * ciphertext). Reads under way at once are bounded per client and on the node (`read_slots.ts`,
 * 429 `too_many_reads`), a client named as the rest of the edge names it (`reader_identity.ts`).
 * A block read that no first storage peer serves walks on through the whole ranking of peers (a
 * deep walk); those the gateway starts spend the client's budget and the node's (`deep_reads.ts`,
 * 429 `too_many_deep_reads` with `Retry-After`, never a 404 for a block that may exist).
 *
 * @module
 */
import { UNTRUSTED_CONTENT_HEADERS } from "./untrusted_content.ts";
import { untilCancelled } from "./cancellable_body.ts";
import { type Context, Hono } from "hono";
import { canonicalCid, DAG_PB_CODEC, identityBlock, isCid, RAW_CODEC } from "../protocols/cid.ts";
import { blockCacheControl, isPrivateManifest, PRIVATE_NO_STORE } from "./private_block_cache.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { CAR_MEDIA_TYPE } from "../storage/car.ts";
import type { FileInfo } from "../storage/file_store.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import { ShareUnavailableError } from "../storage/share_links.ts";
import { decodeUnixfs, findLink, type UnixfsNode } from "../storage/unixfs.ts";
import { UnixfsDirectoryCache } from "../storage/unixfs_directory_cache.ts";
import { encodeNameSegment, nameText, resolveUnixfsPath } from "../storage/unixfs_path.ts";
import type { EdgeEnv } from "./client_access.ts";
import { carResponse } from "./gateway_car.ts";
import { ShareBlockIndex } from "./gateway_share_blocks.ts";
import { headerType, SNIFF_BYTES, typeFromBytes, typeFromName } from "./gateway_content_type.ts";
import {
  DIRECTORY_INDEX_VERSION,
  directoryIndexParts,
  INDEX_ROWS_PER_PART,
  type IndexEntry,
} from "./gateway_directory.ts";
import { contentPath, rawTarget } from "./gateway_paths.ts";
import {
  attachment,
  type BlockSource,
  codecOf,
  contentDisposition,
  type GatewayRequest,
  IMMUTABLE,
  localReads,
  noneMatch,
  notModified,
  onlyIfCached,
  readsWith,
  statOf,
} from "./gateway_request.ts";
import { EdgeError, errorResponse, RequestValidationError } from "./http_errors.ts";
import { rangedResponse } from "./http_range.ts";
import { checkedOpener } from "./readable_range.ts";
import { ReadSlots } from "./read_slots.ts";
import { DeepReads } from "./deep_reads.ts";

/** Media type of one raw block (trustless gateway spec). */
export const RAW_MEDIA_TYPE = "application/vnd.ipld.raw";
/** The file a directory's plain read serves in place of a generated index (Path Gateway spec). */
const INDEX_FILE = "index.html";

/** Options of {@link gatewayRoutes}. */
export interface GatewayRoutesOptions {
  /** The clock share expiry is judged by (ms since the epoch). Default `Date.now`. */
  now?: () => number;
  /**
   * Steps one `entity-bytes` walk may take before it is refused (400): `storage/unixfs.ts`
   * `MAX_RANGE_STEPS` by default.
   */
  maxRangeSteps?: number;
  /**
   * Links of shared files' manifests kept to tell which blocks a share serves
   * (`gateway_share_blocks.ts`): `DEFAULT_SHARE_INDEX_LINKS` by default.
   */
  shareIndexLinks?: number;
  /**
   * Decoded directories kept across requests (a directory's CID fixes its content): a new
   * `UnixfsDirectoryCache` with its default bound unless given (tests count its hits).
   */
  directories?: UnixfsDirectoryCache;
  /**
   * The node's read slots (`read_slots.ts`): each read of `/ipfs` and `/share` holds one until its
   * answer is over. Share the node's with `fileRoutes`; a new `ReadSlots` with the default limits
   * (every reader named by its address) unless given.
   */
  reads?: ReadSlots;
  /**
   * The node's budget of deep walks (`deep_reads.ts`): a read walking past a block's first storage
   * peers spends its client's. A new `DeepReads` with the default limits unless given.
   */
  deepReads?: DeepReads;
}

/** The routes, over the storage port `storage()` returns (looked up per request: restarts). */
export function gatewayRoutes(
  storage: () => GatewayStorage | undefined,
  options?: GatewayRoutesOptions,
): Hono<EdgeEnv> {
  const now = options?.now ?? Date.now;
  const shareBlocks = new ShareBlockIndex(options?.shareIndexLinks);
  const directories = options?.directories ?? new UnixfsDirectoryCache();
  const decode = (cid: string, bytes: Uint8Array) => directories.decode(cid, bytes);
  // Before any read: a client that opens reads and does not read them holds the store's
  // read-ahead of each, so how many are under way is bounded, per client and on the node.
  const reads = options?.reads ?? new ReadSlots();
  const readSlot = reads.guard();
  const deepReads = options?.deepReads ?? new DeepReads();
  const app = new Hono<EdgeEnv>();
  const port = () => {
    const found = storage();
    if (found === undefined) {
      throw new EdgeError("service_unavailable", "this node runs no storage (--no-storage)");
    }
    return found;
  };
  /**
   * The port a request's reads go through: this node's own store for `only-if-cached`, else the
   * peers too, each deep walk spending the client's budget (`deep_reads.ts`).
   */
  const edgePort = (c: Context<EdgeEnv>): GatewayStorage => {
    if (onlyIfCached(c.req.header("cache-control"))) return localReads(port());
    return readsWith(port(), { deepWalk: deepReads.gate(reads.reader(c)) });
  };
  /** Share `id`'s record from `source` while its link opens; else 404 or 410 (thrown). */
  const liveShare = async (source: GatewayStorage, id: string) => {
    const record = await source.share(id);
    if (!record) throw new ShareUnavailableError("share_not_found", id);
    if (record.expiresAt !== null && now() >= record.expiresAt) {
      throw new ShareUnavailableError("share_expired", id);
    }
    return record;
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
    } else if (isNotCached(c.error, c.req.header("cache-control"))) {
      c.res = notCachedResponse(c.error as VeriflowError);
    }
    // One URL answers a file, a block or a CAR by `Accept`, each cached for a year: a shared
    // cache that did not key on `Accept` would hand one client's CAR to the next one's <video>.
    // Errors too: a 400 for one `Accept` must not be replayed to another.
    c.res.headers.append("vary", "Accept");
  });

  app.on(["GET", "HEAD"], ["/ipfs/:cid", "/ipfs/:cid/*"], readSlot, async (c) => {
    // The CID and the names both come from the raw path, as received: Hono's parameter and
    // `new URL()` each normalize it their own way (`%2e%2e`), and could name different roots.
    const { pathname, search } = rawTarget(c.req.url);
    const path = contentPath(pathname);
    if (c.req.header("service-worker") === "script" && path.rest === "") {
      // Path Gateway spec: a worker's scope is its script's directory, here `/ipfs/`, every CID
      // on this origin; under `/ipfs/{cid}/` it is that content root's alone.
      throw new RequestValidationError(
        "invalid_request",
        "a service worker may be registered under /ipfs/{cid}/, not at /ipfs/{cid}: its scope " +
          "would be every CID on this origin",
        "path",
      );
    }
    const root = edgeCid(path.cid);
    // `Accept` is read once: for the format here, and for the plain answer's type (`plainTypes`).
    const accepted = mediaRanges(c.req.header("accept") ?? "");
    const format = responseFormat(c.req.query("format"), accepted);
    // Path Gateway spec: `Cache-Control: only-if-cached` asks for what this node holds, with no
    // fetch from the network: every read of the request (the path's directories, the node it
    // names, a file's bytes, a CAR's blocks) is kept to its own store, and a miss before the
    // answer starts is a 412 (the middleware above). A HEAD so asked reads what its GET reads
    // before the status, never a file's or a CAR's leaves: the cheap "do you have it?" probe.
    const storage = () => edgePort(c);
    const source = (cid: string): BlockSource => {
      const inline = identityBlock(cid);
      return inline ? inlineBlocks(cid, inline) : storage();
    };
    const readBlock = (cid: string, signal?: AbortSignal) => source(cid).block(cid, signal);
    // A client that goes away cancels the reads made for it (a silent peer's fetch included).
    const signal = c.req.raw.signal;
    const resolved = await resolveUnixfsPath(
      root,
      path.names,
      (cid) => readBlock(cid, signal),
      { cache: directories },
    );
    const request: GatewayRequest = {
      c,
      root,
      path,
      resolved,
      head: c.req.method === "HEAD",
      port: storage,
      source,
      readBlock,
      common: {
        "x-ipfs-path": `/ipfs/${root}${path.rest}`,
        "x-ipfs-roots": resolved.roots.join(","),
        "x-content-type-options": "nosniff",
      },
      // Path Gateway spec: the name an answer is saved (and a file typed) by, and whether a
      // browser must save it rather than render it.
      filename: c.req.query("filename") || undefined,
      download: c.req.query("download") === "true",
      plainTypes: plainTypesAsked(accepted),
      decode,
    };
    if (format === "raw") return await blockResponse(request);
    if (format === "car") return await carResponse(request, options);
    return await plainResponse(request, search);
  });

  // A share link's reads keep to this node's own store under `only-if-cached` too: they asked
  // the storage peers whatever the header said (review s56).
  app.use("/share/*", async (c, next) => {
    await next();
    if (isNotCached(c.error, c.req.header("cache-control"))) {
      c.res = notCachedResponse(c.error as VeriflowError);
    }
  });

  // What a browser asks when the printed link is opened as a URL (the fragment, the keys, stays
  // in the browser): the share's state and how to open it, never a key. It answered "no route",
  // the same for a live link as for a revoked one (review s76).
  app.get("/share/:id", async (c) => {
    const { id } = c.req.param();
    const record = await liveShare(port(), id);
    return c.json(
      {
        share: id,
        state: "live",
        expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
        open: SHARE_OPEN_HINT,
      },
      200,
      { "cache-control": PRIVATE_NO_STORE },
    );
  });

  app.get("/share/:id/:cid", readSlot, async (c) => {
    const { id, cid } = c.req.param();
    if (!isCid(cid)) throw new RequestValidationError("invalid_request", "not a CID", "cid");
    const storagePort = edgePort(c);
    // Thrown, not returned: `app.onError` counts it in /metrics (returned, none showed there:
    // id guessing and revoked or expired links were invisible, review s76).
    const record = await liveShare(storagePort, id);
    // Any block of the shared file (its manifest, a manifest tree's nodes, its chunks), found
    // through what its manifests link; never another file's.
    const signal = c.req.raw.signal;
    const read = (block: string) => storagePort.block(block, signal);
    if (!await shareBlocks.reaches(record.cid, cid, read)) {
      throw new EdgeError("chunk_not_found", `${cid} is not part of share ${id}`);
    }
    const bytes = await read(cid);
    // The length named, not left to the runtime: Hono answers a HEAD with these headers and no
    // body, which the runtime would otherwise send as `Content-Length: 0`.
    return new Response(bytes as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": RAW_MEDIA_TYPE,
        "content-length": String(bytes.length),
        "cache-control": "private, no-store",
        // Stored bytes on the node's origin, as every other answer of them.
        ...UNTRUSTED_CONTENT_HEADERS,
      },
    });
  });

  return app;
}

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
 * stored or fetched. Its file bytes (`stat`, `read`) are the block's for the raw codec and the
 * node's own data for a dag-pb UnixFS file node that links nothing (`ipfs add --inline` without
 * raw leaves writes one); `plainEntity` reads no other inline node as a file (an inline directory
 * is listed; anything else is served as a block or a CAR only).
 */
function inlineBlocks(cid: string, inline: { codec: number; bytes: Uint8Array }): BlockSource {
  const fileBytes = () =>
    inline.codec === DAG_PB_CODEC ? decodeUnixfs(cid, inline.bytes).data : inline.bytes;
  return {
    block: () => Promise.resolve(inline.bytes),
    stat: () =>
      Promise.resolve({
        cid,
        tier: "public",
        type: "file",
        size: fileBytes().length,
        chunkSize: null,
        chunks: [cid],
      }),
    read: (_, range) =>
      Promise.resolve(ReadableStream.from([fileBytes().subarray(range.start, range.end)])),
  };
}

/** `?format=raw`: the one block the path names (`/ipfs/{cid}` with no path: the root's). */
async function blockResponse(request: GatewayRequest): Promise<Response> {
  const { c, common, head } = request;
  const cid = request.resolved.cid;
  const bytes = await request.readBlock(cid, c.req.raw.signal);
  const etag = `"${cid}.raw"`;
  const cacheControl = blockCacheControl(bytes);
  if (noneMatch(c.req.header("if-none-match"), etag)) {
    return notModified(common, etag, cacheControl);
  }
  const headers = {
    ...common,
    "content-type": RAW_MEDIA_TYPE,
    "content-disposition": attachment(cid, "bin", request.filename),
    "content-length": String(bytes.length),
    "cache-control": cacheControl,
    etag,
  };
  return new Response(head ? null : bytes as Uint8Array<ArrayBuffer>, { headers });
}

/**
 * A plain read: a public file's bytes (with `Range`); a directory, under its directory form
 * (`…/`, else a 301 to it), as its `index.html` or a generated index (Path Gateway spec).
 *
 * @param search The request's query, kept by a redirect.
 */
async function plainResponse(request: GatewayRequest, search: string): Promise<Response> {
  const { path, common } = request;
  const cid = request.resolved.cid;
  const entity = await plainEntity(request, cid);
  if (entity.kind === "refused") throw entity.error;
  if (entity.kind === "file") {
    const name = path.names.at(-1);
    return await fileResponse(request, cid, entity.info, name && nameText(name), entity.bytes);
  }
  if (!path.directoryForm) {
    // Relative links in a directory's page resolve against its URL: only `…/` is inside it. The
    // path is written anew from its names: no dot segment or encoded slash a browser would read
    // otherwise than this gateway did, and always under `/ipfs/{cid}/` (never `//host`).
    const names = path.names.map((name) => `/${encodeNameSegment(name)}`).join("");
    return new Response(null, {
      status: 301,
      headers: {
        ...common,
        location: `/ipfs/${path.cid}${names}/${search}`,
        "cache-control": IMMUTABLE,
      },
    });
  }
  const index = findLink(entity.node.links, INDEX_FILE);
  if (index !== undefined) {
    // Served only when it is a public file; anything else (private, another owner's, a
    // directory, a symlink) is no page to show: the generated index stands in for it.
    const page = await plainEntity(request, index.cid);
    if (page.kind === "file") {
      return await fileResponse(request, index.cid, page.info, INDEX_FILE, page.bytes);
    }
  }
  return directoryListing(request, entity.node.links);
}

/** What a plain read of a CID finds: bytes to serve, a directory, or a refusal to answer with. */
type PlainEntity =
  | {
    kind: "file";
    info: FileInfo & { size: number };
    /** A raw CID's one block, its whole file, when the check read it: served from these. */
    bytes?: Uint8Array;
  }
  | { kind: "directory"; node: UnixfsNode }
  | { kind: "refused"; error: EdgeError };

/**
 * What a plain read of `cid` serves, decided from the node itself (the store's `stat` calls every
 * dag-pb node that is not a directory a file): a public raw leaf, UnixFS file or pre-UnixFS
 * manifest is a file; a UnixFS directory is a directory; a private file (also another owner's,
 * which this node's key does not open, and its manifest named by a raw CID) is `403
 * key_required`; a HAMT-sharded directory, a symlink or another UnixFS type is `501` (bytes read
 * from one would be its node's, not a file's); an inline dag-pb directory is a directory, an
 * inline UnixFS file node that links nothing a file of its data, any other inline dag-pb or
 * dag-cbor node `501` (ask for its block or CAR).
 */
async function plainEntity(request: GatewayRequest, cid: string): Promise<PlainEntity> {
  const inline = identityBlock(cid);
  if (inline !== undefined && inline.codec !== RAW_CODEC) {
    // A well-formed CID (`ipfs add --inline` writes them): a directory is listed as its paths are
    // followed (`unixfs_path.ts`), a file node that holds all its bytes is read; a file node that
    // links its bytes, or any other node, is what this gateway does not read as a file through an
    // inline root: 501, not a 400 that blames the request.
    const node = inline.codec === DAG_PB_CODEC ? decodeUnixfs(cid, inline.bytes) : undefined;
    if (node?.type === "directory") return { kind: "directory", node };
    if ((node?.type === "file" || node?.type === "raw") && node.links.length === 0) {
      return fileOf(await request.source(cid).stat(cid));
    }
    return refused(
      new EdgeError(
        "not_implemented",
        `${cid} inlines a ${node ? `UnixFS ${node.type}` : "dag-cbor"} node, which this ` +
          "gateway does not read as a file: ask for ?format=raw or ?format=car",
      ),
    );
  }
  const source = request.source(cid);
  const info = await statOf(source, cid);
  if (info === undefined || info.tier !== "public") {
    return refused(new EdgeError("key_required", `${cid} is private: open it with a share link`));
  }
  if (codecOf(cid) === RAW_CODEC) {
    // A raw CID is one block, its whole file: a private manifest named so (`bafkrei…` for its
    // `bafyrei…`) is refused as under its own CID, not served as a public file (review s78 F3).
    // The bytes read for that are the file's: the sniff and the body are served from them, not
    // read again (a second and third read of the block per GET).
    const bytes = await source.block(cid, request.c.req.raw.signal);
    if (isPrivateManifest(bytes)) {
      return refused(
        new EdgeError(
          "key_required",
          `${cid} is a private file's manifest: open it with a share link`,
        ),
      );
    }
    const file = fileOf(info);
    return file.kind === "file" ? { ...file, bytes } : file;
  }
  if (codecOf(cid) !== DAG_PB_CODEC) return fileOf(info);
  const node = request.decode(cid, await source.block(cid, request.c.req.raw.signal));
  if (node.type === "directory") return { kind: "directory", node };
  if (node.type === "file" || node.type === "raw") return fileOf(info);
  return refused(
    new EdgeError(
      "not_implemented",
      `${cid} is a UnixFS ${node.type}, which this gateway does not read as a file: ask for ` +
        "?format=car",
    ),
  );
}

function fileOf(info: FileInfo): PlainEntity {
  if (info.size === null) {
    return refused(
      new EdgeError("key_required", `${info.cid} is private: open it with a share link`),
    );
  }
  return { kind: "file", info: { ...info, size: info.size } };
}

function refused(error: EdgeError): PlainEntity {
  return { kind: "refused", error };
}

/**
 * A public file's bytes, `Range` answered (under `If-Range`, judged against the ETag); typed by
 * its pin's type, the request's `filename` or its `name`, its pin's name, or its first bytes; with
 * a `Content-Disposition` when `filename` or `download=true` asked for one (Path Gateway spec:
 * `inline` unless `download=true`).
 *
 * @param bytes A raw file's one block, when the caller read it: the sniff and body use it.
 */
async function fileResponse(
  request: GatewayRequest,
  cid: string,
  info: FileInfo & { size: number },
  name: string | undefined,
  bytes?: Uint8Array,
): Promise<Response> {
  const { c, common, head } = request;
  // A raw file's block already read (`plainEntity`) is served as an inline block is: from memory.
  const source = bytes === undefined
    ? request.source(cid)
    : inlineBlocks(cid, { codec: RAW_CODEC, bytes });
  const fileSize = info.size;
  const etag = `"${cid}"`;
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag, IMMUTABLE);
  const { filename, download } = request;
  // The type the put recorded (one a header can carry: `headerType`); else a name's: the URL's,
  // else the put's (`cli put notes.txt` records the name alone); else the bytes'.
  const type = headerType(info.mime) ?? typeFromName(filename ?? name) ??
    typeFromName(info.name) ?? await sniff(source, cid, fileSize, c.req.raw.signal);
  assertPlainTypeAsked(type, request.plainTypes);
  const headers: Record<string, string> = {
    ...common,
    ...UNTRUSTED_CONTENT_HEADERS,
    "content-type": type,
    "cache-control": IMMUTABLE,
    etag,
  };
  if (filename !== undefined || download) {
    headers["content-disposition"] = download
      ? contentDisposition("attachment", filename ?? name)
      : contentDisposition("inline", filename);
  }
  const checks = {
    codec: codecOf(cid),
    block: (b: string) => request.readBlock(b, c.req.raw.signal),
    // Asked for only when there are leaves to check: an identity file needs no storage.
    leavesReadable: (cids: readonly string[]) =>
      request.port().leavesReadable?.(cids) ?? Promise.resolve({ checks: false }),
  };
  return await rangedResponse(
    c.req.header("range"),
    fileSize,
    headers,
    // The range's leaves checked first, for a HEAD too (which opens nothing): `readable_range.ts`.
    checkedOpener(
      cid,
      checks,
      (start, end) => untilCancelled((signal) => source.read(cid, { start, end, signal })),
      head,
    ),
    false,
    c.req.header("if-range"),
  );
}

/** The generated index of a directory without `index.html`. */
function directoryListing(request: GatewayRequest, entries: readonly IndexEntry[]): Response {
  const { c, common, head } = request;
  const etag = `"DirIndex-${DIRECTORY_INDEX_VERSION}_CID-${request.resolved.cid}"`;
  const type = "text/html; charset=utf-8";
  assertPlainTypeAsked(type, request.plainTypes);
  if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag, IMMUTABLE);
  const headers: Record<string, string> = {
    ...common,
    ...UNTRUSTED_CONTENT_HEADERS,
    "content-type": type,
    "cache-control": IMMUTABLE,
    etag,
  };
  const parts = directoryIndexParts(`/ipfs/${request.root}${request.path.rest}`, entries);
  const encoder = new TextEncoder();
  if (entries.length <= INDEX_ROWS_PER_PART) {
    // One piece of rows: built at once, cheap, and sent with its length.
    const html = encoder.encode([...parts].join(""));
    headers["content-length"] = String(html.length);
    return new Response(head ? null : html, { headers });
  }
  if (head) return new Response(null, { headers });
  // Streamed, a piece built per read: a 16,000-entry page held the event loop for its whole
  // length when built at once (review s74). Its length is not known before, so none is sent.
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = parts.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
  });
  return new Response(body, { headers });
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
    return { type: type.trim().toLowerCase(), params, q: weight(params.get("q")) };
  }).filter((range) => range.type !== "");
}

/**
 * A weight as RFC 9110 §12.4.2 writes one: 0 to 1, at most three decimals (`qvalue = ( "0" [ "."
 * 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`).
 */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The weight of a media range: its `q`, or 1 when it has none or one that is no qvalue (`q=abc`,
 * `q=-1`, `q=1.5`). The RFC's default for an absent weight (§12.4.2), since the client named the
 * type: an unreadable weight is no "not this", which only `q=0` says, and taken as 0 it turned a
 * request that could be served into a 406 claiming the client accepts nothing (review s74
 * verify2, finding 5). A 400 would refuse what could be served just as well.
 */
function weight(q: string | undefined): number {
  return q !== undefined && QVALUE.test(q) ? Number(q) : 1;
}

/**
 * Response formats the Path Gateway spec names in `Accept` ("Accept (request header)",
 * https://specs.ipfs.tech/http-gateways/path-gateway/#accept-request-header) that this gateway
 * does not write: a TAR of a UnixFS tree, the IPLD Data Model as DAG-JSON or DAG-CBOR, an IPNS
 * record. Each asks for something other than the file's bytes: a client naming only these must
 * not get the bytes as a 200 it would then fail to parse (review s74, finding 5).
 */
const UNSENDABLE_FORMATS: ReadonlySet<string> = new Set([
  "application/x-tar",
  "application/vnd.ipld.dag-json",
  "application/vnd.ipld.dag-cbor",
  "application/vnd.ipfs.ipns-record",
]);

/**
 * Plain types the Path Gateway spec also reads as formats: `application/json` is "same as
 * `application/vnd.ipld.dag-json`, unless the CID's codec already is `json` (0x0200). Then, the
 * raw JSON block can be returned as-is" (and `application/cbor` likewise for dag-cbor and `cbor`,
 * 0x51). This gateway writes no DAG-JSON, and kubo since ipfs/kubo#9566 converts to DAG-* only
 * for the explicit `vnd.ipld` types; but a stored JSON (CBOR) file already is what these ask for,
 * and `fetch(url, { headers: { Accept: "application/json" } })` for one got a 406 (review s74
 * verify2, finding 3). So a request naming only these gets the file's bytes when the file's own
 * type is one of them, and 406 for anything else (another file, a directory's page).
 */
const FILE_TYPED_FORMATS: ReadonlySet<string> = new Set(["application/json", "application/cbor"]);

/**
 * `raw`, `car`, or `undefined` for the file's bytes: `?format=` wins over `Accept`. In `Accept`
 * the heaviest acceptable block or CAR type wins (`q=0` is "not this"); a request that names only
 * types it cannot send is 406 `not_acceptable` (RFC 9110 §15.5.7) naming those it can: a CAR other
 * than version 1, and the formats of {@link UNSENDABLE_FORMATS}. Any other type (`*\/*`,
 * `text/html`, a file's type) is taken as asking for the file's bytes, as browsers and players do;
 * those of {@link FILE_TYPED_FORMATS} only for a file of that type ({@link plainTypesAsked}).
 */
function responseFormat(
  format: string | undefined,
  ranges: readonly MediaRange[],
): "raw" | "car" | undefined {
  if (format === "raw" || format === "car") return format;
  if (format !== undefined && format !== "") {
    throw new RequestValidationError("invalid_request", `unsupported format ${format}`, "format");
  }
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
  const plain = (type: string) => !named(type) || FILE_TYPED_FORMATS.has(type);
  if (ranges.length === 0 || ranges.some((range) => range.q > 0 && plain(range.type))) {
    return undefined;
  }
  throw new EdgeError(
    "not_acceptable",
    `no acceptable type in Accept: this gateway sends ${RAW_MEDIA_TYPE}, ` +
      `${CAR_MEDIA_TYPE}; version=1, or the file's bytes`,
    { param: "accept" },
  );
}

/** True for a type this gateway reads as a response format, not as a file's type. */
function named(type: string): boolean {
  return type === RAW_MEDIA_TYPE || type === CAR_MEDIA_TYPE || UNSENDABLE_FORMATS.has(type) ||
    FILE_TYPED_FORMATS.has(type);
}

/**
 * The file types a plain answer is limited to: those of {@link FILE_TYPED_FORMATS} that `Accept`'s
 * `ranges` take, when they take no other type the plain answer could be (`*\/*`, `text/html`, a
 * file's type); `undefined` for no limit.
 */
function plainTypesAsked(ranges: readonly MediaRange[]): ReadonlySet<string> | undefined {
  const taken = ranges.filter((range) => range.q > 0);
  if (taken.some((range) => !named(range.type))) return undefined;
  const types = new Set(taken.map((range) => range.type).filter((t) => FILE_TYPED_FORMATS.has(t)));
  return types.size > 0 ? types : undefined;
}

/** 406 for a plain answer of `type` to a request limited to `only` ({@link plainTypesAsked}). */
function assertPlainTypeAsked(type: string, only: ReadonlySet<string> | undefined): void {
  const base = type.split(";")[0].trim().toLowerCase();
  if (only === undefined || only.has(base)) return;
  throw new EdgeError(
    "not_acceptable",
    `Accept takes only ${[...only].join(", ")}, and this is ${base}: this gateway sends ` +
      `${RAW_MEDIA_TYPE}, ${CAR_MEDIA_TYPE}; version=1, or the file's bytes`,
    { param: "accept" },
  );
}

/**
 * True when `error` is a block missing from this node's own store, read for an `only-if-cached`
 * request (`cacheControl`): every read of one is this node's own store's, so a block it lacks is
 * one the client asked it not to fetch, not one missing from the network (404). A route's own
 * refusal under the same code (an {@link EdgeError}: a chunk a share does not list) stays what
 * it is.
 */
function isNotCached(error: unknown, cacheControl: string | undefined): boolean {
  return error instanceof VeriflowError && !(error instanceof EdgeError) &&
    error.code === "chunk_not_found" && onlyIfCached(cacheControl);
}

/**
 * The `412 Precondition Failed` answer (`not_cached`) to an `only-if-cached` request whose
 * content (`miss`: the block not held here) this node would have had to fetch from its storage
 * peers. A HEAD gets its status alone.
 */
function notCachedResponse(miss: VeriflowError): Response {
  return errorResponse(
    new EdgeError(
      "not_cached",
      `not held by this node (${miss.message}), and Cache-Control: only-if-cached forbids ` +
        "fetching it from the network: ask without only-if-cached to fetch it",
      { param: "cache-control", cause: miss },
    ),
  );
}

/** How `GET /share/{id}` tells a link's holder to open it (a browser cannot: it holds no CLI). */
const SHARE_OPEN_HINT = "this link is read with the Veriflow CLI, not a browser: " +
  "deno run -A cli.ts share open - -o FILE, then paste the whole link (with its #fragment)";

/**
 * A content type from a file's first bytes (`gateway_content_type.ts`), read under the request's
 * `signal`: read without it, the walk down to a file's first leaf went on after its client had
 * gone, the one read of a plain GET or HEAD that did (review s78 F1: the node kept working ~15 s
 * after a client left a 50,000-deep chain; `tmp/s78/sharefix_max/probe_abort_reads.ts`).
 */
async function sniff(
  port: BlockSource,
  cid: string,
  size: number,
  signal: AbortSignal,
): Promise<string> {
  const head = new Uint8Array(
    await new Response(
      await port.read(cid, { start: 0, end: Math.min(size, SNIFF_BYTES), signal }),
    ).arrayBuffer(),
  );
  return typeFromBytes(head);
}
