/**
 * Which browser pages may use the API. A browser sends `Origin` with every cross-origin request
 * (and every WebSocket handshake), so a page from another site could otherwise drive a node on
 * the visitor's machine: a `text/plain` POST needs no preflight and would run a job. Requests
 * with an `Origin` that `http.allowedOrigins` does not list are refused (403
 * `origin_not_allowed`) before any route runs; clients that are not browsers send no `Origin`
 * and are not affected. Listed origins get CORS headers and working `OPTIONS` preflights, so a
 * browser client can be allowed on purpose.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { EdgeError } from "./http_errors.ts";

/** Methods the API answers, for preflights. */
const ALLOWED_METHODS = "GET, POST, OPTIONS";
/** Request headers a browser client needs: the key and the JSON content type. */
const ALLOWED_HEADERS = "authorization, content-type";
/** Response headers a browser client may read besides the simple ones. */
const EXPOSED_HEADERS = "retry-after";
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
    if (origin === undefined) return await next();
    if (!any && !allowed.has(origin)) throw new OriginNotAllowedError(origin);
    const cors: Record<string, string> = {
      "access-control-allow-origin": origin,
      "vary": "Origin",
    };
    if (c.req.method === "OPTIONS" && c.req.header("access-control-request-method")) {
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          "access-control-allow-methods": ALLOWED_METHODS,
          "access-control-allow-headers": ALLOWED_HEADERS,
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
