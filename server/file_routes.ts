/**
 * Files over HTTP, through the node's StorageActor — so a file put through one node of a
 * network can be read through any other (the StorageActor spreads it over the storage peers):
 *
 * | Route | What |
 * | --- | --- |
 * | `POST /v1/files?name=N&mime=T` | the body is the file; `201 { cid, size, chunks }` |
 * | `GET /v1/files/{cid}` | the file's bytes, verified chunk by chunk; one `Range: bytes=a-b` |
 *
 * They sit under `/v1`, so the edge's access rule applies (API keys, or loopback only). A put
 * streams: the body is never held whole. A put's body may be large, so its deadline is on
 * silence and pace, not length: no bytes for `http.requestBodyTimeoutMs` (`408 request_timeout`),
 * or under 1.6 KiB/s on average beyond a grace of 50 s of pauses (`408 request_body_too_slow`,
 * `UPLOAD_MIN_RATE`), and the put is abandoned, releasing what it held as an interrupted put
 * does. So a client that trickles (a byte within each silence deadline) holds its upload slot at
 * most 60 s; the number of puts is bounded too: past {@link MAX_OPEN_UPLOADS} under way, or
 * {@link MAX_OPEN_UPLOADS_PER_KEY} of one client's (an API key, an address without a key, this
 * machine's tools: `queueClient`), the next is refused at once (`429 too_many_uploads`). Only public files are served (a private file needs its owner's key, which
 * this node does not lend to HTTP clients: `403 key_required`).
 *
 * A client that goes away stops the work without `request.signal`, which Deno aborts after every
 * successful response too (its legacy semantics, and a warning in the operator's log on first
 * read): a put's source is the request body, whose reads fail once the client is gone; a read is
 * the response body, whose `cancel` (the client went away) aborts the read from the store.
 *
 * @module
 */
import { UNTRUSTED_CONTENT_HEADERS } from "./untrusted_content.ts";
import { untilCancelled } from "./cancellable_body.ts";
import { Hono } from "hono";
import { canonicalCid, cidCodec, DAG_PB_CODEC, isCid } from "../protocols/cid.ts";
import { decodeUnixfs } from "../storage/unixfs.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import { rangedResponse } from "./http_range.ts";
import { checkedOpener } from "./readable_range.ts";
import type { EdgeEnv } from "./client_access.ts";
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { idleDeadlineBody } from "./body_limit.ts";
import { EDGE_DEFAULTS } from "./edge_config.ts";
import { headerType } from "./gateway_content_type.ts";
import { MAX_FILE_LABEL_CHARS, MEDIA_TYPE } from "../protocols/media_type.ts";
import type { DrainTimers } from "./serve.ts";
import { ReadSlots } from "./read_slots.ts";
import { queueClient } from "./inference_gateway.ts";

/** The type `curl -d` and `curl --data-binary` send when told none. */
const FORM_TYPE = "application/x-www-form-urlencoded";

/**
 * Most uploads under way at once, on the whole node. Each holds up to a chunk of its file
 * unstored (256 KiB by default), a locked pending record and its connection, for as long as its
 * client keeps sending at the minimum rate (a trickle below it is cut within 60 s): 32 of them
 * hold 8 MiB and 64 descriptors at most, while uploads a person or a script runs in parallel
 * rarely pass a few.
 */
export const MAX_OPEN_UPLOADS = 32;

/**
 * Most uploads one client may have under way at once: a quarter of the node's, so one client
 * that trickles cannot take every slot and shut the others out. A client is counted as the
 * queue, the read slots and the body budget count it (`queueClient`): by its API key, else by its
 * address (an open node's keyless clients: review verify_limits, F2, one address took all 32),
 * and this machine's tools together.
 */
export const MAX_OPEN_UPLOADS_PER_KEY = 8;

/** Options of {@link fileRoutes}. */
export interface FileRoutesOptions {
  /**
   * Longest an upload may send nothing (`http.requestBodyTimeoutMs`); default
   * `EDGE_DEFAULTS.requestBodyTimeoutMs`.
   */
  requestBodyTimeoutMs?: number;
  /** The timers of that deadline; default the global timers. */
  timers?: DrainTimers;
  /** Most uploads under way at once; default {@link MAX_OPEN_UPLOADS}. */
  maxUploads?: number;
  /** Most uploads one client may have under way; default {@link MAX_OPEN_UPLOADS_PER_KEY}. */
  maxUploadsPerKey?: number;
  /**
   * The node's read slots (`read_slots.ts`): a read of `GET /files/{cid}` holds one until its
   * answer is over. Share the node's with `gatewayRoutes`; a new `ReadSlots` unless given.
   */
  reads?: ReadSlots;
}

/** The routes, over the storage port `storage()` returns (looked up per request: restarts). */
export function fileRoutes(
  storage: () => GatewayStorage | undefined,
  options: FileRoutesOptions = {},
): Hono<EdgeEnv> {
  const deadline = {
    timeoutMs: options.requestBodyTimeoutMs ?? EDGE_DEFAULTS.requestBodyTimeoutMs,
    timers: options.timers,
  };
  const maxUploads = options.maxUploads ?? MAX_OPEN_UPLOADS;
  const maxPerKey = options.maxUploadsPerKey ?? MAX_OPEN_UPLOADS_PER_KEY;
  let uploads = 0;
  /** Uploads under way per client (`queueClient`); a client is dropped when its last one ends. */
  const byClient = new Map<string, number>();
  const app = new Hono<EdgeEnv>();
  const actor = () => {
    const ref = storage();
    if (ref === undefined) {
      throw new EdgeError("service_unavailable", "this node runs no storage (--no-storage)");
    }
    return ref;
  };

  app.post("/files", async (c) => {
    const name = label(c.req.query("name"), "name");
    const given = label(c.req.query("mime"), "mime");
    if (given !== undefined && !MEDIA_TYPE.test(given)) {
      // Recorded, it would be every read's `Content-Type`: one no header can carry (`%0d%0a`,
      // a character past U+00FF) made each read of the file, on both routes, a 500.
      throw new RequestValidationError(
        "invalid_request",
        "mime must be a media type (type/subtype, then any ;parameters), in printable ASCII",
        "mime",
      );
    }
    const sent = c.req.header("content-type")?.split(";")[0].trim();
    // `curl -d`/`--data-binary @file` sends its default form type, which no file body is: read
    // as the file's type, it was every later read's, so the gateway never sniffed a video.
    const typed = sent && MEDIA_TYPE.test(sent) && sent.toLowerCase() !== FORM_TYPE;
    const mime = given ?? (typed ? sent : undefined);
    const port = actor();
    if (uploads >= maxUploads) {
      throw new EdgeError(
        "too_many_uploads",
        `this node has ${uploads} uploads under way, its limit; retry after the Retry-After seconds`,
        { retryAfterS: 1 },
      );
    }
    const client = c.get("client");
    const clientId = queueClient(client);
    const clientUploads = byClient.get(clientId) ?? 0;
    if (clientUploads >= maxPerKey) {
      throw new EdgeError(
        "too_many_uploads",
        `this client (${client?.label ?? "loopback"}) has ${clientUploads} uploads under way, ` +
          `its limit of ${maxPerKey}; retry after the Retry-After seconds`,
        { retryAfterS: 1 },
      );
    }
    // A client that stalls or trickles mid-upload would hold the put (its pending record, its
    // store, its slot) for as long as it keeps the connection: past the silence deadline, or
    // below the upload's minimum rate, the body fails and the put is told to stop, and the client
    // is told why whatever the store makes of it.
    const { body, signal, stop } = idleDeadlineBody(
      c.req.raw.body ?? ReadableStream.from([new Uint8Array(0)]),
      deadline,
    );
    let result;
    uploads++; // until the put has ended, whichever way: what it held is let go by then
    byClient.set(clientId, clientUploads + 1);
    try {
      result = await port.put(body, {
        name,
        mime: mime && mime !== "application/octet-stream" ? mime : undefined,
        signal,
        size: declaredSize(c.req.header("content-length")),
      });
    } catch (error) {
      throw signal.aborted ? signal.reason : error;
    } finally {
      stop(); // a put that failed may leave its body unread: its timers go with it
      uploads--;
      const left = byClient.get(clientId)! - 1;
      if (left === 0) byClient.delete(clientId);
      else byClient.set(clientId, left);
    }
    return c.json({ cid: result.cid, size: result.size, chunks: result.chunkCount }, 201);
  });

  // A client that opens reads and does not read them holds the store's read-ahead of each.
  app.get("/files/:cid", (options.reads ?? new ReadSlots()).guard(), async (c) => {
    const cid = storedCid(c.req.param("cid"));
    const port = actor();
    const info = await port.stat(cid);
    if (info.type === "directory") {
      // A public directory has no size either: read as a private file it was a 403 saying the
      // directory is private. Its listing and its files are the gateway's, by path.
      throw new EdgeError(
        "not_implemented",
        `${cid} is a UnixFS directory, not a file: its listing and its files are at /ipfs/${cid}/`,
      );
    }
    if (info.tier !== "public" || info.size === null) {
      throw new EdgeError("key_required", `file ${cid} is private: it is not served over HTTP`);
    }
    if (cidCodec(cid) === DAG_PB_CODEC) {
      // The store's stat calls every dag-pb node that is not a directory a file; its read then
      // fails on a symlink or a HAMT shard only once the 200 and its length are sent (a cut
      // body). Decided from the node now, as the gateway's plain read does.
      const node = decodeUnixfs(cid, await port.block(cid, c.req.raw.signal));
      if (node.type !== "file" && node.type !== "raw") {
        throw new EdgeError(
          "not_implemented",
          `${cid} is a UnixFS ${node.type}, not a file: ask /ipfs/${cid}?format=car for it`,
        );
      }
    }
    const headers = {
      ...UNTRUSTED_CONTENT_HEADERS,
      "content-type": headerType(info.mime) ?? "application/octet-stream",
      "x-content-cid": cid,
    };
    // Hono answers a HEAD with this GET's headers and drops the body: a stream opened for it
    // would start a read of the file that nothing consumes or cancels. The opener checks the
    // range's leaves, for a HEAD too, and opens nothing for one.
    const signal = c.req.raw.signal;
    const checks = {
      codec: cidCodec(cid),
      block: (b: string) => port.block(b, signal),
      leavesReadable: port.leavesReadable &&
        ((cids: readonly string[]) => port.leavesReadable!(cids)),
    };
    return await rangedResponse(
      c.req.header("range"),
      info.size,
      headers,
      checkedOpener(
        cid,
        checks,
        (start, end) => untilCancelled((signal) => port.read(cid, { start, end, signal })),
        c.req.method === "HEAD",
      ),
      false,
      // No ETag is sent here, so an `If-Range` matches nothing and the whole file is the answer.
      c.req.header("if-range"),
    );
  });

  return app;
}

/**
 * A CID from a URL in its canonical form (a CIDv0, base36 or upper-case CIDv1 names the same
 * file), or a 400. An identity CID stores nothing: `/ipfs/{cid}` answers it, not this route.
 */
function storedCid(input: string): string {
  let cid: string | undefined;
  try {
    cid = canonicalCid(input);
  } catch {
    // answered below
  }
  if (cid === undefined || !isCid(cid)) {
    throw new RequestValidationError(
      "invalid_request",
      "not a CID of a stored file (a sha2-256 CIDv0 or CIDv1, base32, base36 or base58btc)",
      "cid",
    );
  }
  return cid;
}

function label(value: string | undefined, param: string): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (value.length > MAX_FILE_LABEL_CHARS) {
    throw new RequestValidationError(
      "invalid_request",
      `${param} is over ${MAX_FILE_LABEL_CHARS} chars`,
      param,
    );
  }
  return value;
}

export { parseRange } from "./http_range.ts";

/**
 * The size an upload declares (`Content-Length`), by which the store admits it against its floor
 * of free disk before reading it (review s75 vcrash F2: a burst admitted chunk by chunk all
 * failed); `undefined` for a chunked body or a header that is not one whole number, which are
 * judged chunk by chunk as they are written. Deno ends a body at its declared length, so a client
 * cannot write more than it was admitted for by sending more.
 */
function declaredSize(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,15}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}
