/**
 * The gateway's CAR answers (`?format=car` or `Accept: application/vnd.ipld.car`, Trustless
 * Gateway spec): the directory blocks of the content path, in order, then what `dag-scope` and
 * `entity-bytes` ask of the node it names; the CAR's root is the requested CID.
 *
 * Everything that can be known before the body starts is checked before the `200`: the named node
 * is read, what its entity is decided from the node itself (a UnixFS file's is its whole DAG; a
 * directory's, a symlink's, or non-UnixFS data's is its own block; a HAMT's is not served), and a
 * byte range's walk is made once without sending anything (`carLength`), so a range too long to
 * walk is a `400`, a malformed file node a `422`. Only a block that goes missing mid-DAG can still
 * cut a CAR after its `200`, as the spec allows.
 *
 * A `HEAD` walks what its `GET` would walk but writes nothing and reads no leaf: it sends a
 * `Content-Length` only for a CAR of blocks it reads anyway (a block, a directory's or a raw
 * file's entity, the path's nodes). A CAR that holds a leaf gets none, as its `GET`, which
 * streams, gets none (`serve.ts` keeps the runtime from sending `Content-Length: 0` in its place):
 * the `Tsize` a link records for a leaf is the writer's word, which nothing checks, and a length
 * counted from it could contradict the CAR the `GET` sends (review s71, F4). A manifest tree's
 * inner nodes (`storage/manifest_tree.ts`) are not read either: each lists chunks, leaves, so the
 * first one met already says there is no length to tell.
 *
 * @module
 */
import {
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  identityBlock,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { untilCancelled } from "./cancellable_body.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { isManifest } from "../protocols/manifest.ts";
import { chunksReferencedBy, dagBlocks, MAX_DAG_DEPTH } from "../storage/dag_links.ts";
import {
  CAR_MEDIA_TYPE,
  carLength,
  type CarScope,
  exportCar,
  type ExportCarOptions,
  type ReadBlock,
} from "../storage/car.ts";
import { dagPbLinks, decodeUnixfs } from "../storage/unixfs.ts";
import { BlockTooLargeError } from "../storage/errors.ts";
import {
  attachment,
  codecOf,
  type GatewayRequest,
  noneMatch,
  notModified,
  statOf,
} from "./gateway_request.ts";
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { blockCacheControl } from "./private_block_cache.ts";

/**
 * Bytes of a content path's SHA-256 in a CAR's ETag: 16 bytes tell paths apart as well as the
 * whole digest would, in half the header.
 */
const PATH_DIGEST_BYTES = 16;

/**
 * Inner nodes a full CAR's depth check reads before its `200` ({@link assertDepthServable}). A
 * chain one level past `MAX_DAG_DEPTH` is found in 97 reads; an honest file of 1,024 inner nodes
 * holds up to ~178,000 chunks (~43 GiB at 256 KiB), so nearly every real DAG is checked whole, and
 * the check never costs more than 1,024 node reads (each read again by the export: the store's,
 * or for a DAG on the peers a second fetch). A deep branch hidden behind more nodes than this is
 * still cut after the `200`, by the export's own walk: its depth is known only once every node
 * before it is read, so any bound leaves a DAG just past it, and no bound makes every huge honest
 * CAR wait for a second whole walk before its first byte (docs/STORAGE.md; the cut is shown in
 * `tests/server/gateway_car_depth_test.ts`).
 */
export const DEPTH_CHECK_NODES = 1024;

/** Options of {@link carResponse}. */
export interface CarResponseOptions {
  /** Steps an `entity-bytes` walk may take (`storage/unixfs.ts` `MAX_RANGE_STEPS` by default). */
  maxRangeSteps?: number;
}

/** The CAR answer to `request`. */
export async function carResponse(
  request: GatewayRequest,
  options?: CarResponseOptions,
): Promise<Response> {
  const { c, root, path, resolved, common, head } = request;
  const cid = resolved.cid;
  const scope = dagScope(c.req.query("dag-scope"));
  const bytes = entityBytes(c.req.query("entity-bytes"));
  // `entity-bytes` implies `dag-scope=entity`, `0:*` too (a narrower `block` still wins).
  const entity = scope === "entity" || (bytes !== undefined && scope !== "block");
  // Everything read before the answer starts (the node, a HEAD's or a byte range's walk) stops
  // when the client goes away: a walk reads a block per node, and a manifest's chunks one by one.
  const signal = c.req.raw.signal;
  // Read the node the path names now, so a missing one is an error, not a broken CAR.
  const node = await request.readBlock(cid, signal);
  const shape = entity ? await entityShape(request, cid, node) : undefined;
  let served: CarScope = scope === "block" || shape?.scope === "block" ? "block" : "all";
  if (served === "all") assertLinksWalkable(cid, node);
  // Only a UnixFS file has bytes to range over; elsewhere the spec has `entity-bytes` ignored.
  const ranged = bytes !== undefined && !wholeEntity(bytes) && shape?.size !== undefined;
  let range: { start: number; end: number } | undefined;
  if (ranged) {
    // Only the blocks that hold those bytes; a range with no bytes in it is the root alone.
    range = entityRange(bytes, shape!.size!);
    if (range === undefined) served = "block";
  }
  // Each scope, path and byte range is its own representation: a cache must not mix them.
  const label = entity ? "entity" : scope;
  const pathTag = path.names.length > 0 ? `.path-${await pathDigest(path.names)}` : "";
  const bytesTag = ranged ? `.bytes-${bytes.text}` : "";
  const etag = `"${root}.car.${label}${pathTag}${bytesTag}"`;
  const cacheControl = blockCacheControl(node);
  if (noneMatch(c.req.header("if-none-match"), etag)) {
    return notModified(common, etag, cacheControl);
  }
  const car: ExportCarOptions = {
    scope: served,
    range,
    roots: [root],
    path: resolved.blocks,
    maxRangeSteps: options?.maxRangeSteps,
    isLegacyManifest: (c) => isLegacyManifest(request, c),
  };
  const headers = {
    ...common,
    "content-type": `${CAR_MEDIA_TYPE}; version=1; order=dfs; dups=n`,
    "content-disposition": attachment(root, "car", request.filename),
    "cache-control": cacheControl,
    etag,
  };
  if (head || range !== undefined) {
    // A byte range's walk, made before a byte is sent; a HEAD's length, without the CAR, or none
    // where only reading a leaf would tell it (its bytes are the GET's to read). Each stored leaf
    // it lists is checked readable (not read), so a HEAD of a CAR its GET would cut at a lost leaf
    // is the 404 a missing block is (review s76 F3); the port is asked only then (an identity
    // CID's CAR needs no storage).
    const leavesReadable = (leaves: readonly string[]) =>
      request.port().leavesReadable?.(leaves) ?? Promise.resolve({ checks: false });
    const length = await checkedWalk(
      carLength(cid, head ? sizedOnly(request.readBlock) : request.readBlock, {
        ...car,
        signal,
        leavesReadable,
      }),
      bytes?.text,
    ).catch((error) => {
      if (error instanceof UnsizedLeaf) return undefined;
      throw error;
    });
    if (head) {
      return new Response(null, {
        headers: length === undefined ? headers : { ...headers, "content-length": `${length}` },
      });
    }
  }
  if (served === "all" && range === undefined) {
    await assertDepthServable(request, cid, node, signal);
  }
  // Stopped when the client goes away by the body's cancel, not `request.signal` (which Deno
  // also aborts after a successful response: `cancellable_body.ts`).
  const stream = await untilCancelled((signal) =>
    path.names.length === 0 && range === undefined && !identityBlock(cid)
      ? request.port().car(cid, served, signal)
      : exportCar(cid, request.readBlock, { ...car, signal })
  );
  return new Response(stream, { headers });
}

/**
 * Throws `dag_too_deep` (a `422`) when the DAG under `cid` goes deeper than `MAX_DAG_DEPTH`, the
 * limit the export's walk (`storage/car.ts`) ends a CAR at: the export walks only once the `200` is
 * sent, so a too-deep DAG got a `200` and a cut body while its `HEAD`, which walks first, was a
 * `422`. The same walk, over the links only (leaves are listed, never read), stopped after
 * {@link DEPTH_CHECK_NODES} inner nodes: not a second full walk of a huge DAG.
 *
 * @param node The block of `cid`, already read: the walk starts from it.
 */
async function assertDepthServable(
  request: GatewayRequest,
  cid: string,
  node: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  let reads = 0;
  const read = (block: string) => {
    if (block === cid) return Promise.resolve(node); // read already, before the walk
    reads++;
    return request.readBlock(block, signal);
  };
  const walk = dagBlocks(cid, read, {
    isLegacyManifest: (c) => isLegacyManifest(request, c),
    maxDepth: MAX_DAG_DEPTH,
  });
  for await (const _block of walk) {
    if (reads >= DEPTH_CHECK_NODES) return; // the rest is the export's to walk (and cut)
  }
}

/**
 * Throws {@link BlockTooLargeError} (a `422`) when the export's walk would refuse dag-pb node `cid`
 * (`bytes`) for its links: the walk reads the node only once the `200` is sent, and a CAR of a node
 * over the link limit was cut there while its `HEAD`, which walks first, was a `422` (review s76
 * F2). A node that does not decode is left to the walk, which sends it as a block that links none.
 */
function assertLinksWalkable(cid: string, bytes: Uint8Array): void {
  if (codecOf(cid) !== DAG_PB_CODEC) return;
  try {
    dagPbLinks(bytes, cid);
  } catch (error) {
    if (error instanceof BlockTooLargeError) throw error;
  }
}

/**
 * What `dag-scope=entity` is of the node `cid` (its block `bytes`): its whole DAG (`all`) or its
 * own block, and for a UnixFS file its size, which `entity-bytes` ranges over.
 *
 * - a UnixFS file (a dag-pb file node, a raw leaf): its whole DAG, ranged by `entity-bytes`;
 * - a Veriflow file's manifest (a private file's, or a public one written before UnixFS): the
 *   manifest and its chunks, never ranged (its bytes are not its blocks');
 * - a directory: its own node (the spec: enough to enumerate it); a symlink or a UnixFS metadata
 *   node: its one node, all there is of it; dag-cbor that is no manifest: its block (the spec:
 *   non-UnixFS data's entity is its block);
 * - a HAMT-sharded directory: its entity is every shard node, which this gateway does not walk:
 *   `501`, rather than a CAR that looks complete.
 */
async function entityShape(
  request: GatewayRequest,
  cid: string,
  bytes: Uint8Array,
): Promise<{ scope: CarScope; size?: number }> {
  const codec = codecOf(cid);
  if (codec === DAG_CBOR_CODEC) return { scope: isManifest(bytes) ? "all" : "block" };
  if (codec === RAW_CODEC) {
    return await isLegacyManifest(request, cid)
      ? { scope: "all" }
      : { scope: "all", size: bytes.length };
  }
  const node = decodeUnixfs(cid, bytes);
  if (node.type === "file" || node.type === "raw") return { scope: "all", size: node.fileSize };
  if (node.type === "hamt-sharded-directory") {
    throw new EdgeError(
      "not_implemented",
      `${cid} is a HAMT-sharded directory: its entity (every shard) is not served here; ask for ` +
        "dag-scope=block or dag-scope=all",
    );
  }
  return { scope: "block" };
}

/**
 * True when raw-codec `cid` names a manifest written before UnixFS (the store's stat lists its
 * chunks, not the block itself), or a private one this node cannot open: its DAG is its chunks.
 */
async function isLegacyManifest(request: GatewayRequest, cid: string): Promise<boolean> {
  if (codecOf(cid) !== RAW_CODEC) return false;
  const info = await statOf(request.source(cid), cid);
  return info === undefined || info.chunks.length !== 1 || info.chunks[0] !== cid;
}

/**
 * What {@link sizedOnly}'s reader throws in place of reading a block a manifest links: a manifest
 * tree's node (which lists chunks), or a chunk.
 */
class UnsizedLeaf extends Error {}

/**
 * `read` for a `HEAD`'s `carLength`, refusing with {@link UnsizedLeaf} the blocks a manifest lists:
 * a manifest tree's nodes, which `chunksReferencedBy` lists beside the chunks, are read by the walk
 * as nodes, but below every node are chunks, leaves, so reading it could not give a length (and
 * the tree may be fetched from the storage peers). A manifest is known by its bytes as the walk
 * reads it, before its chunks are listed.
 */
function sizedOnly(read: ReadBlock): ReadBlock {
  /** Storage keys of the chunks of the manifests read. */
  const chunks = new Set<string>();
  return async (cid, signal) => {
    if (chunks.has(storageKey(cid))) throw new UnsizedLeaf(cid);
    const bytes = await read(cid, signal);
    for (const chunk of chunksReferencedBy(bytes)) chunks.add(storageKey(chunk));
    return bytes;
  };
}

/**
 * `walk`, with the storage's refusals of a byte range's walk given their HTTP meaning: a walk too
 * long for one answer is the client's to narrow (400 naming `entity-bytes`), a file node with a
 * child that is no file node is content no reader can interpret (422).
 */
async function checkedWalk(
  walk: Promise<number | undefined>,
  entityBytes?: string,
): Promise<number | undefined> {
  try {
    return await walk;
  } catch (error) {
    if (!(error instanceof VeriflowError)) throw error;
    if (error.code === "range_too_large") {
      throw new RequestValidationError(
        "invalid_request",
        `entity-bytes=${entityBytes}: ${error.message}`,
        "entity-bytes",
      );
    }
    if (error.code === "not_a_file") {
      throw new EdgeError("invalid_manifest", error.message, { cause: error });
    }
    throw error;
  }
}

/** A short digest of a content path's names, for an ETag (names may hold any byte). */
async function pathDigest(names: readonly Uint8Array[]): Promise<string> {
  // Each name after its length: `a/bc` and `ab/c` differ.
  const framed = names.flatMap((name) => [...u32(name.length), ...name]);
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(framed));
  return [...new Uint8Array(digest, 0, PATH_DIGEST_BYTES)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** `n` as four big-endian bytes. */
function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
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
 * from the end, `to` may be `*`): `undefined` when absent, else the value parsed. A malformed one
 * is a 400, never read as "the whole file".
 */
function entityBytes(value: string | undefined): EntityBytes | undefined {
  if (value === undefined) return undefined;
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

/** True for `0:*`: the whole entity, which is `dag-scope=entity` itself, not a byte range. */
function wholeEntity(bytes: EntityBytes): boolean {
  return bytes.from === 0 && bytes.to === undefined;
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
