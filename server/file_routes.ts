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
 * streams: the body is never held whole. Only public files are served (a private file needs
 * its owner's key, which this node does not lend to HTTP clients: `403 key_required`).
 *
 * @module
 */
import { Hono } from "hono";
import type { ActorRef } from "../actors/actor_ref.ts";
import { type PutHandle, type StorageMessage, unwrapReply } from "../actors/storage_actor.ts";
import { isCid } from "../protocols/cid.ts";
import type { FileInfo } from "../storage/file_store.ts";
import type { EdgeEnv } from "./client_access.ts";
import { EdgeError, RequestValidationError } from "./http_errors.ts";

/** Longest `name` or `mime` a put may record. */
const MAX_LABEL = 256;

/** The routes, over the StorageActor `storage()` returns (looked up per request: restarts). */
export function fileRoutes(
  storage: () => ActorRef<StorageMessage> | undefined,
): Hono<EdgeEnv> {
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
    const mime = label(c.req.query("mime"), "mime") ??
      c.req.header("content-type")?.split(";")[0];
    const body = c.req.raw.body ?? ReadableStream.from([new Uint8Array(0)]);
    const { done } = await actor().ask<PutHandle>({
      type: "put",
      source: body,
      name,
      mime: mime && mime !== "application/octet-stream" ? mime : undefined,
      signal: c.req.raw.signal,
    });
    const result = await done;
    return c.json({ cid: result.cid, size: result.size, chunks: result.chunkCount }, 201);
  });

  app.get("/files/:cid", async (c) => {
    const cid = c.req.param("cid");
    if (!isCid(cid)) throw new RequestValidationError("invalid_request", "not a CID", "cid");
    const ref = actor();
    const info = unwrapReply<FileInfo>(await ref.ask({ type: "stat", cid }));
    if (info.tier !== "public" || info.size === null) {
      throw new EdgeError("key_required", `file ${cid} is private: it is not served over HTTP`);
    }
    const range = parseRange(c.req.header("range"), info.size);
    const headers: Record<string, string> = {
      "content-type": info.mime ?? "application/octet-stream",
      "accept-ranges": "bytes",
      "x-content-cid": cid,
    };
    if (range === "unsatisfiable") {
      headers["content-range"] = `bytes */${info.size}`;
      return new Response(null, { status: 416, headers });
    }
    const { start, end } = range ?? { start: 0, end: info.size };
    const stream = unwrapReply<ReadableStream<Uint8Array>>(
      await ref.ask({ type: "get", cid, start, end, signal: c.req.raw.signal }),
    );
    headers["content-length"] = String(end - start);
    if (range === undefined) return new Response(stream, { status: 200, headers });
    headers["content-range"] = `bytes ${start}-${end - 1}/${info.size}`;
    return new Response(stream, { status: 206, headers });
  });

  return app;
}

function label(value: string | undefined, param: string): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (value.length > MAX_LABEL) {
    throw new RequestValidationError(
      "invalid_request",
      `${param} is over ${MAX_LABEL} chars`,
      param,
    );
  }
  return value;
}

/**
 * One `bytes=` range of a `size`-byte file as [start, end), `undefined` for none (or one this
 * route does not do: several ranges are answered with the whole file, as RFC 9110 allows).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    // The last N bytes.
    const n = Number(match[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(match[1]);
  const last = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || last < start) return "unsatisfiable";
  return { start, end: last + 1 };
}
