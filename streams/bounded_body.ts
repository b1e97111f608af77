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

/**
 * Smallest buffer a body is gathered in; it doubles from there as bytes arrive, capped at the
 * limit. Gathered, not kept as the reads came: Deno hands each read of an HTTP body over as a
 * view of a fresh 64 KiB buffer however few bytes came, so a body sent in one-byte chunks,
 * kept read by read, held 64 KiB per byte (a review measured 1 GiB held for 96 KB sent, at
 * stop 53); gathered, it holds at most twice what arrived.
 */
const MIN_BODY_BUFFER_BYTES = 4096;

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
  let buffer = new Uint8Array(0);
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
      const held = size + value.byteLength;
      if (held > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(held);
      }
      if (held > buffer.byteLength) {
        const grown = new Uint8Array(
          Math.min(maxBytes, Math.max(2 * held, MIN_BODY_BUFFER_BYTES)),
        );
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(value, size);
      size = held;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  // Exactly the body: a caller may keep it, and must not keep the slack with it.
  return buffer.byteLength === size ? buffer : buffer.slice(0, size);
}
