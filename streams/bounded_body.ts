/**
 * Reading an HTTP body (a request's or a response's) within a byte limit: a declared
 * `Content-Length` over the limit is refused before a byte is read, and a body without one
 * (chunked) is read as it arrives only up to the limit and then cancelled, so whoever sends it
 * cannot make the reader buffer more than the limit whatever it sends. A signal bounds how long
 * the reading may take: a sender that trickles its body, or stops sending, cannot hold the
 * reader (and the bytes it buffered) past the deadline the signal stands for.
 *
 * @module
 */

/** What has a body and headers: a `Request` or a `Response`. */
export interface HttpMessage {
  /** Its headers (`Content-Length` is read). */
  readonly headers: Headers;
  /** Its body, if any. */
  readonly body: ReadableStream<Uint8Array> | null;
}

/**
 * The body of `message` as bytes, at most `maxBytes` of them; past that, the error `tooLarge`
 * makes is thrown (given the declared length, or the bytes that had arrived when the limit was
 * passed) and the body is cancelled. Once `signal` aborts (a deadline), the body is cancelled
 * and the signal's reason is thrown.
 *
 * @example
 * ```ts
 * import { readBoundedBody } from "./bounded_body.ts";
 * const bytes = await readBoundedBody(new Response("hello"), 16, () => new Error("too large"));
 * bytes.length; // 5
 * ```
 */
export async function readBoundedBody(
  message: HttpMessage,
  maxBytes: number,
  tooLarge: (size: number) => Error,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  if (signal?.aborted) {
    await message.body?.cancel(signal.reason).catch(() => {});
    throw signal.reason;
  }
  const declared = Number(message.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) {
    await message.body?.cancel().catch(() => {});
    throw tooLarge(declared);
  }
  if (message.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = message.body.getReader();
  // Cancelling ends the pending read (`done`), whatever the sender does next.
  const onAbort = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    while (true) {
      const { done, value } = await reader.read().catch((error) => {
        signal?.throwIfAborted();
        throw error;
      });
      signal?.throwIfAborted();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(size);
      }
      chunks.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
