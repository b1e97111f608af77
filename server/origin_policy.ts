/**
 * Which browser pages may use the API. A browser sends `Origin` with every cross-origin request
 * (and every WebSocket handshake), so a page from another site could otherwise drive a node on
 * the visitor's machine: a `text/plain` POST needs no preflight and would run a job. Requests
 * with an `Origin` that `http.allowedOrigins` does not list are refused (403
 * `origin_not_allowed`) before any route runs; clients that are not browsers send no `Origin`
 * and are not affected. Listed origins get CORS headers and working `OPTIONS` preflights (any
 * request headers the page names), so a browser client can be allowed on purpose.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { EdgeError } from "./http_errors.ts";

/** Methods the API answers, for preflights. */
const ALLOWED_METHODS = "GET, POST, OPTIONS";
/**
 * Request headers allowed when a preflight names none this node can echo: the key and the JSON
 * content type.
 */
const ALLOWED_HEADERS = "authorization, content-type";
/**
 * A preflight's `Access-Control-Request-Headers` that is echoed back: a comma-separated list of
 * header names (RFC 9110 tokens), at most 2 KiB. An allowed page may send any header (the node
 * reads only the ones it knows, and the key is checked whatever else comes), and the official
 * OpenAI client sends its own (`x-stainless-*`, `openai-organization`), which a fixed list
 * refused: its every request failed the preflight.
 */
const HEADER_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;
const MAX_HEADER_LIST_CHARS = 2048;
/**
 * Response headers a browser client may read besides the CORS-safelisted ones: a 429's wait, and
 * what a gateway or file read answers with that a client acts on (a 206's `Content-Range`, the
 * `ETag` it revalidates with, the path and CIDs a verifying client such as
 * `@helia/verified-fetch` checks). Without them an allowed page sees none of these.
 */
const EXPOSED_HEADERS = "retry-after, accept-ranges, content-range, content-disposition, etag, " +
  "x-ipfs-path, x-ipfs-roots, x-content-cid";
/** How long a browser may cache a preflight's answer: ten minutes, as most browsers cap it. */
const PREFLIGHT_MAX_AGE_S = 600;

/** A request's origin is not in `http.allowedOrigins` (403). */
export class OriginNotAllowedError extends EdgeError {
  /**
   * Create it.
   *
   * @param origin The refused origin.
   */
  constructor(origin: string) {
    super(
      "origin_not_allowed",
      `pages from ${origin} may not use this node; its operator can allow them with ` +
        `--allow-origin ${origin} (http.allowedOrigins)`,
    );
  }
}

/** The middleware: refuse unlisted origins, answer preflights, add CORS headers. */
export function originPolicy(allowedOrigins: readonly string[]): MiddlewareHandler {
  const any = allowedOrigins.includes("*");
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (origin === undefined) {
      await next();
      // The answer to a listed origin differs (its CORS headers): a cache — a browser's own, or
      // a shared one in front of the gateway's year-long `immutable` answers — that kept this
      // one under the URL alone would hand it to that origin's `fetch`, which then fails CORS.
      if (allowedOrigins.length > 0 && c.res.status !== 101) {
        c.header("vary", "Origin", { append: true });
      }
      return;
    }
    if (!any && !allowed.has(origin)) throw new OriginNotAllowedError(origin);
    const cors: Record<string, string> = {
      "access-control-allow-origin": origin,
      "vary": "Origin",
    };
    if (c.req.method === "OPTIONS" && c.req.header("access-control-request-method")) {
      const requested = c.req.header("access-control-request-headers")?.trim() ?? "";
      const echo = requested.length <= MAX_HEADER_LIST_CHARS && HEADER_LIST.test(requested);
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          "vary": "Origin, Access-Control-Request-Headers",
          "access-control-allow-methods": ALLOWED_METHODS,
          "access-control-allow-headers": echo ? requested : ALLOWED_HEADERS,
          "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
        },
      });
    }
    await next();
    // A WebSocket upgrade (101) is not subject to CORS, and its headers are the runtime's.
    if (c.res.status === 101) return;
    // Set on the response in place (`c.header` copies a finalized one first): assigning a new
    // `c.res` makes Hono copy the old headers over it, and `Vary` is added to, not replaced — a
    // route's own (`Accept` on /ipfs) must stay, or a shared cache could serve one
    // representation for another.
    c.header("access-control-allow-origin", origin);
    c.header("vary", "Origin", { append: true });
    c.header("access-control-expose-headers", EXPOSED_HEADERS);
  };
}
