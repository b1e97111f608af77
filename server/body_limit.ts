/**
 * Reading a request body within a byte limit (`streams/bounded_body.ts`), so a client cannot
 * make the node buffer more than the limit per request whatever it sends.
 *
 * @module
 */
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { readBoundedBody } from "../streams/bounded_body.ts";

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
 * `maxBytes` (UTF-8 bytes, as sent). Bytes that are not UTF-8 are refused (`invalid_json`: JSON
 * text is UTF-8, RFC 8259 8.1) rather than decoded to U+FFFD, which would run, and sign a
 * receipt for, a prompt the client never sent.
 */
export async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const bytes = await readBoundedBody(
    request,
    maxBytes,
    () => new RequestTooLargeError("request body", maxBytes),
  );
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RequestValidationError(
      "invalid_json",
      "the body is not valid UTF-8 (JSON text must be UTF-8); send the text UTF-8 encoded",
    );
  }
}
