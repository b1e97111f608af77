/**
 * HTTP byte ranges (RFC 9110 §14), shared by the file routes and the gateway: one `bytes=` range
 * is answered 206 with its `Content-Range`; none (or several, which RFC 9110 lets a server
 * ignore, or an invalid one such as `bytes=5-3`) the whole body, 200; a range outside the body 416.
 * The unit is matched case-insensitively (§14.1). An `If-Range` that does not name the
 * body's own strong ETag makes the `Range` ignored (RFC 9110 §13.1.5): a client resuming a
 * download of another version gets the whole body, never a piece of this one spliced onto its own.
 *
 * @module
 */

/**
 * One `bytes=` range of a `size`-byte file as [start, end), `undefined` for none (or one this
 * module does not do: several ranges, or a suffix of an empty file, are answered with the whole
 * file, as RFC 9110 allows; or an invalid one, such as `bytes=5-3`, which RFC 9110 ignores).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  // The range unit is case-insensitive (RFC 9110 §14.1): `Bytes=0-1` is a byte range.
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/i);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    // The last N bytes.
    const n = Number(match[2]);
    if (n === 0) return "unsatisfiable";
    // RFC 9110 §14.1.1 counts the last N bytes of an empty body as satisfiable, but no
    // Content-Range can name zero bytes ("bytes 0--1/0" is not one): answer the whole (empty)
    // body, 200, as §14.2 lets a server ignore a Range.
    if (size === 0) return undefined;
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(match[1]);
  // A last byte before the first makes the range-spec invalid (RFC 9110 §14.1.1), not one past
  // the end: the header is ignored (§14.2), where a 416 would tell the client the body is shorter.
  if (match[2] !== "" && Number(match[2]) < start) return undefined;
  const last = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  return { start, end: last + 1 };
}

/**
 * True when a `Range` is to be honoured under the request's `If-Range` (RFC 9110 §13.1.5): there is
 * none, or it is an entity tag that matches `etag` strongly (neither is weak, the opaque tags are
 * equal). A date never matches: these answers send no `Last-Modified` to compare it with, and an
 * answer without an ETag matches no `If-Range` at all.
 *
 * @example
 * ```ts
 * import { rangeApplies } from "./http_range.ts";
 * rangeApplies('"abc"', '"abc"'); // true
 * rangeApplies('W/"abc"', '"abc"'); // false
 * ```
 */
export function rangeApplies(ifRange: string | undefined, etag: string | undefined): boolean {
  if (ifRange === undefined) return true;
  const tag = ifRange.trim();
  return etag !== undefined && !etag.startsWith("W/") && tag.startsWith('"') && tag === etag;
}

/**
 * The response to a GET of a `size`-byte body under the `Range` header `range`: 200, 206 or 416,
 * with `Accept-Ranges`, `Content-Length` and `Content-Range` set beside `headers`. `open` is
 * called only for a satisfiable request; `head` answers without a body. `ifRange`, the request's
 * `If-Range`, is judged against the `ETag` in `headers` ({@link rangeApplies}): when it does not
 * match, the `Range` is ignored and the whole body is the answer.
 */
export async function rangedResponse(
  range: string | undefined,
  size: number,
  headers: Record<string, string>,
  open: (start: number, end: number) => Promise<ReadableStream<Uint8Array>>,
  head = false,
  ifRange?: string,
): Promise<Response> {
  const etag = Object.entries(headers).find(([name]) => name.toLowerCase() === "etag")?.[1];
  const parsed = rangeApplies(ifRange, etag) ? parseRange(range, size) : undefined;
  const out: Record<string, string> = { ...headers, "accept-ranges": "bytes" };
  if (parsed === "unsatisfiable") {
    // An error, not the body: the body's `Cache-Control` (the gateway's is a year, immutable)
    // would let a shared cache, which keys on the URL and not on `Range`, replay this 416 to every
    // later read of the URL. Without one a 416 is not stored (not heuristically cacheable,
    // RFC 9111 §4.2.2).
    for (const name of Object.keys(out)) {
      if (name.toLowerCase() === "cache-control") delete out[name];
    }
    out["content-range"] = `bytes */${size}`;
    return new Response(null, { status: 416, headers: out });
  }
  const { start, end } = parsed ?? { start: 0, end: size };
  out["content-length"] = String(end - start);
  if (parsed !== undefined) out["content-range"] = `bytes ${start}-${end - 1}/${size}`;
  const status = parsed === undefined ? 200 : 206;
  if (head) return new Response(null, { status, headers: out });
  return new Response(await firstPieceRead(await open(start, end)), { status, headers: out });
}

/**
 * `stream`, its first piece read now: a body that fails there (a stored leaf shorter than its
 * parent says, a missing first block) rejects before the status is sent, as a typed error answer,
 * not a `200` with a length and then a cut body. A failure further in can only cut the body.
 */
async function firstPieceRead(
  stream: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const reader = stream.getReader();
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    first = await reader.read();
  } catch (error) {
    reader.releaseLock(); // the stream is errored: nothing is left to cancel
    throw error;
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.done) controller.close();
      else controller.enqueue(first.value);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
