/**
 * Reading a request body within a byte limit: a declared `Content-Length` over the limit is
 * refused before a byte is read, and a body without one (chunked) is read only up to the limit
 * and then cancelled, so a client cannot make the node buffer more than the limit per request
 * whatever it sends.
 *
 * @module
 */
import { EdgeError } from "./http_errors.ts";

/** A request body or WebSocket message over `http.maxRequestBytes` (HTTP 413). */
export class RequestTooLargeError extends EdgeError {
  /**
   * Create it.
   *
   * @param what `request body` or `WebSocket message`.
   * @param limit The limit in bytes.
   */
  constructor(what: string, limit: number) {
    super(
      "request_too_large",
      `${what} is larger than ${limit} bytes (the node's http.maxRequestBytes); send less, or ` +
        `ask the operator to raise it`,
    );
  }
}

/**
 * The body of `request` as text, or a {@link RequestTooLargeError} once it is known to exceed
 * `maxBytes` (UTF-8 bytes, as sent).
 */
export async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw new RequestTooLargeError("request body", maxBytes);
  if (request.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new RequestTooLargeError("request body", maxBytes);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
