/**
 * A trustless IPFS gateway on the node's HTTP API (IPFS Trustless Gateway specification), plus
 * plain reads of public files and the share-link route:
 *
 * | Route | What |
 * | --- | --- |
 * | `GET /ipfs/{cid}?format=raw` (or `Accept: application/vnd.ipld.raw`) | the one block, verified |
 * | `GET /ipfs/{cid}?format=car` (or `Accept: application/vnd.ipld.car`) | a CAR of the DAG (`dag-scope=all`, `entity` or `block`), depth first, no duplicates; `entity-bytes` other than `0:*` is 501 |
 * | `GET /ipfs/{cid}` | a public file's bytes, `Range: bytes=a-b` answered 206 (a `<video>` seeks with it) |
 * | `GET /share/{id}/{cid}` | while share `id` is valid: its private file's manifest or one of its chunks (ciphertext) |
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
import { Hono } from "hono";
import { CarWriter } from "@ipld/car";
import { CID } from "multiformats/cid";
import {
  canonicalCid,
  type CidCodec,
  identityBlock,
  isCid,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { decodeManifest } from "../protocols/manifest.ts";
import { CAR_MEDIA_TYPE, type CarScope } from "../storage/car.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import { ShareUnavailableError } from "../storage/share_links.ts";
import type { EdgeEnv } from "./client_access.ts";
import { EdgeError, errorResponse, RequestValidationError } from "./http_errors.ts";
import { rangedResponse } from "./http_range.ts";

/** Media type of one raw block (trustless gateway spec). */
export const RAW_MEDIA_TYPE = "application/vnd.ipld.raw";
/** A CID's bytes never change: cache for a year, never revalidate (what gateways send). */
const IMMUTABLE = "public, max-age=29030400, immutable";
/** Bytes sniffed to guess a plain read's content type when the pin recorded none. */
const SNIFF_BYTES = 16;

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

  app.on(["GET", "HEAD"], "/ipfs/:cid", async (c) => {
    const cid = edgeCid(c.req.param("cid"));
    const head = c.req.method === "HEAD";
    const format = responseFormat(c.req.query("format"), c.req.header("accept"));
    const inline = identityBlock(cid);
    const blocks = inline ? inlineBlocks(cid, inline) : port();
    const common = { "x-ipfs-path": `/ipfs/${cid}`, "x-content-type-options": "nosniff" };
    if (format === "raw") {
      const bytes = await blocks.block(cid);
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
    if (format === "car") {
      const scope = dagScope(c.req.query("dag-scope"));
      const bytes = entityBytes(c.req.query("entity-bytes"));
      // A file's entity is its whole DAG; a directory's is its own node, not its children's.
      const entityIsFile = scope === "entity" || bytes !== undefined
        ? (await blocks.stat(cid)).type !== "directory"
        : undefined;
      if (bytes !== undefined && entityIsFile) {
        // The spec asks for the blocks that cover those bytes only; sending the whole file
        // under a ranged request would be a silent lie, so say it is not done here.
        throw new EdgeError(
          "not_implemented",
          `entity-bytes=${bytes} is not supported: ask for the whole file (entity-bytes=0:*) ` +
            "or a byte range of its plain read (Range)",
          { param: "entity-bytes" },
        );
      }
      const served: CarScope = scope === "block" || (scope === "entity" && !entityIsFile)
        ? "block"
        : "all";
      const stream = await blocks.car(cid, served, c.req.raw.signal);
      // Each scope is its own representation: a cache must not answer one with another.
      const etag = `"${cid}.car.${scope}"`;
      const headers = {
        ...common,
        "content-type": `${CAR_MEDIA_TYPE}; version=1; order=dfs; dups=n`,
        "content-disposition": attachment(cid, "car"),
        "cache-control": IMMUTABLE,
        etag,
      };
      if (noneMatch(c.req.header("if-none-match"), etag)) {
        await stream.cancel();
        return notModified(common, etag);
      }
      if (!head) return new Response(stream, { headers });
      // Hono answers a HEAD with its GET's headers and no body, and the runtime then sends
      // `Content-Length: 0`, which the GET contradicts. The CAR is deterministic (the same
      // blocks in the same order), so its length is counted instead: a HEAD reads what a GET
      // would, without sending it.
      return new Response(null, {
        headers: { ...headers, "content-length": `${await size(stream)}` },
      });
    }
    const info = await blocks.stat(cid);
    if (info.tier !== "public") {
      throw new EdgeError("key_required", `${cid} is private: open it with a share link`);
    }
    if (info.type === "directory" || info.size === null) {
      throw new RequestValidationError(
        "invalid_request",
        `${cid} is a directory: ask for ?format=car`,
        "cid",
      );
    }
    const etag = `"${cid}"`;
    if (noneMatch(c.req.header("if-none-match"), etag)) return notModified(common, etag);
    const type = info.mime ?? await sniff(blocks, cid, info.size);
    const headers = {
      ...common,
      ...UNTRUSTED_CONTENT_HEADERS,
      "content-type": type,
      "cache-control": IMMUTABLE,
      etag,
    };
    return await rangedResponse(
      c.req.header("range"),
      info.size,
      headers,
      (start, end) => blocks.read(cid, { start, end, signal: c.req.raw.signal }),
      head,
    );
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

/**
 * A CAR request's `entity-bytes=from:to` (trustless gateway spec: integers, negative ones counted
 * from the end, `to` may be `*`): `undefined` for the whole entity (absent, or `0:*`), else the
 * value as given. A malformed one is a 400, never read as "the whole file".
 */
function entityBytes(value: string | undefined): string | undefined {
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
  return value;
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

/**
 * A content type from the first bytes, for a file whose pin recorded none (a UnixFS id carries
 * no type): the few formats a browser must be told to play or show; anything else is bytes.
 */
async function sniff(port: BlockSource, cid: string, size: number): Promise<string> {
  const head = new Uint8Array(
    await new Response(
      await port.read(cid, { start: 0, end: Math.min(size, SNIFF_BYTES) }),
    ).arrayBuffer(),
  );
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  const ascii = (at: number, text: string) =>
    [...text].every((ch, i) => head[at + i] === ch.charCodeAt(0));
  if (starts(0x1a, 0x45, 0xdf, 0xa3)) return "video/webm";
  if (ascii(4, "ftyp")) return "video/mp4";
  if (ascii(0, "OggS")) return "audio/ogg";
  if (ascii(0, "RIFF") && ascii(8, "WAVE")) return "audio/wav";
  if (starts(0x89, 0x50, 0x4e, 0x47)) return "image/png";
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  return "application/octet-stream";
}
