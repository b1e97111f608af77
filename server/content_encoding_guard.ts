/**
 * Request bodies in a content coding, refused at the edge. The node reads bodies as sent: a JSON
 * request is UTF-8 text and an upload is the file's own bytes (its CID is theirs). A body sent
 * with `Content-Encoding: gzip` (or any coding but `identity`) would be read as garbage JSON
 * (a misleading `invalid_json`) or, worse, stored compressed as if it were the file. So such a
 * request is refused before any route reads it: 415 `unsupported_content_encoding`, its answer
 * carrying `Accept-Encoding: identity` as RFC 9110 (15.5.16) asks, so the client can send it
 * again uncompressed.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { EdgeEnv } from "./client_access.ts";
import { EdgeError } from "./http_errors.ts";

/** The only content coding the node reads: none. */
export const ACCEPTED_CONTENT_CODING = "identity";

/** A request body in a content coding the node does not decode (HTTP 415). */
export class UnsupportedContentEncodingError extends EdgeError {
  /**
   * Create it.
   *
   * @param coding The request's `Content-Encoding`, as sent.
   */
  constructor(coding: string) {
    super(
      "unsupported_content_encoding",
      `the request body is sent with Content-Encoding ${JSON.stringify(coding)}, which this ` +
        `node does not decode; send it uncompressed (no Content-Encoding, or ` +
        `${ACCEPTED_CONTENT_CODING})`,
    );
  }
}

/**
 * Middleware refusing a request whose body has a `Content-Encoding` other than `identity`
 * (case-insensitive; a list such as `identity, gzip` names gzip too) with an
 * {@link UnsupportedContentEncodingError}. A request without a body passes whatever it says.
 */
export function contentEncodingGuard(): MiddlewareHandler<EdgeEnv> {
  return async (c, next) => {
    const coding = c.req.header("content-encoding");
    if (coding !== undefined && c.req.raw.body !== null && !isIdentity(coding)) {
      await c.req.raw.body.cancel().catch(() => {});
      throw new UnsupportedContentEncodingError(coding);
    }
    await next();
  };
}

/** Whether every coding `header` lists is `identity` (or it lists none). */
function isIdentity(header: string): boolean {
  return header.split(",").every((coding) => {
    const name = coding.trim().toLowerCase();
    return name === "" || name === ACCEPTED_CONTENT_CODING;
  });
}
