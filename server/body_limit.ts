/**
 * Reading a request body within a byte limit (`streams/bounded_body.ts`), so a client cannot
 * make the node buffer more than the limit per request whatever it sends, and within a time
 * limit, so a client that trickles its body (or stops after the headers) cannot hold the
 * request, and the bytes it sent, for longer than that either.
 *
 * @module
 */
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { readBoundedBody } from "../streams/bounded_body.ts";
import type { DrainTimers } from "./serve.ts";
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

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

/** A request body not received whole within `http.requestBodyTimeoutMs` (HTTP 408). */
export class RequestTimeoutError extends EdgeError {
  /**
   * Create it.
   *
   * @param timeoutMs The time limit in milliseconds.
   */
  constructor(timeoutMs: number) {
    super(
      "request_timeout",
      `the request body did not arrive whole within ${timeoutMs} ms (the node's ` +
        `http.requestBodyTimeoutMs); send it at once, or ask the operator to raise it`,
    );
  }
}

/** How long {@link readBodyText} waits for a body, and the timers it waits on. */
export interface BodyDeadline {
  /** Longest the whole body may take to arrive, from when reading it begins. */
  timeoutMs: number;
  /** The deadline's timer; default the global timers. */
  timers?: DrainTimers;
}

/**
 * The body of `request` as text, or a {@link RequestTooLargeError} once it is known to exceed
 * `maxBytes` (UTF-8 bytes, as sent), or a {@link RequestTimeoutError} (the body cancelled) if it
 * has not arrived whole by `deadline`. Bytes that are not UTF-8 are refused (`invalid_json`: JSON
 * text is UTF-8, RFC 8259 8.1) rather than decoded to U+FFFD, which would run, and sign a
 * receipt for, a prompt the client never sent.
 */
export async function readBodyText(
  request: Request,
  maxBytes: number,
  deadline?: BodyDeadline,
): Promise<string> {
  const timeUp = new AbortController();
  const timers = deadline?.timers ?? SYSTEM_TIMERS;
  const timer = deadline === undefined ? undefined : timers.setTimeout(
    () => timeUp.abort(new RequestTimeoutError(deadline.timeoutMs)),
    deadline.timeoutMs,
  );
  let bytes: Uint8Array;
  try {
    bytes = await readBoundedBody(
      request,
      maxBytes,
      () => new RequestTooLargeError("request body", maxBytes),
      timeUp.signal,
    );
  } finally {
    if (timer !== undefined) timers.clearTimeout(timer);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RequestValidationError(
      "invalid_json",
      "the body is not valid UTF-8 (JSON text must be UTF-8); send the text UTF-8 encoded",
    );
  }
}
