/**
 * DNS rebinding, refused at the edge. A page on a site the operator visits can have its name
 * re-pointed at 127.0.0.1 and then read this node same-origin: its requests come from this
 * machine (a loopback peer, served without a key) and carry no `Origin`; only their `Host` is
 * the attacker's name. So a request from this machine must name the node by an address,
 * `localhost`, or a name the operator listed (`http.allowedHosts`: a reverse proxy on this
 * machine), or carry a credential no such page has (a valid API key, the operator token); any
 * other is refused (421 `misdirected_request`) before any route runs, `/metrics` and `/healthz`
 * included. Clients on other machines are not concerned: without a key they are refused anyway
 * (`client_access.ts`).
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { type EdgeEnv, isLoopback } from "./client_access.ts";
import { EdgeError } from "./http_errors.ts";

/** A dotted IPv4 address as the URL parser writes every IPv4 host (`2130706433` included). */
const IPV4_ADDRESS = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** An address or `localhost`: a host name no DNS-rebinding page can be served under. */
export function namesAnAddress(hostname: string): boolean {
  return hostname === "localhost" || IPV4_ADDRESS.test(hostname) || hostname.startsWith("[");
}

/**
 * Whether a request's `Host` names this node by an address or `localhost`. A same-origin read
 * by a DNS-rebinding page carries no `Origin`, but its `Host` is the attacker's name.
 */
export function hostIsAnAddress(host: string | undefined): boolean {
  if (host === undefined) return false;
  const url = URL.parse(`http://${host}`);
  return url !== null && url.host === host.toLowerCase() && namesAnAddress(url.hostname);
}

/**
 * The middleware (see the module doc).
 *
 * @param allowedHosts As `http.allowedHosts` lists them.
 * @param credentialed Whether a request's `Authorization` header carries a valid credential.
 */
export function hostGuard(
  allowedHosts: readonly string[],
  credentialed: (authorization: string | undefined) => boolean,
): MiddlewareHandler<EdgeEnv> {
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
  const listed = (host: string) => {
    const url = URL.parse(`http://${host}`);
    return url !== null && (allowed.has(url.host) || allowed.has(url.hostname));
  };
  return async (c, next) => {
    if (isLoopback(c.env?.remoteAddr)) {
      // The URL's host where the request carries no `Host` (the app called directly in tests;
      // Deno.serve builds the URL from it).
      const host = c.req.header("host") ?? URL.parse(c.req.url)?.host;
      const named = hostIsAnAddress(host) || (host !== undefined && listed(host));
      if (!named && !credentialed(c.req.header("authorization"))) {
        throw new EdgeError(
          "misdirected_request",
          `this node answers clients on its own machine under an address or localhost, not ` +
            `${host === undefined ? "without a Host" : `"${host}"`} (the name a DNS-rebinding ` +
            `page would use); a reverse proxy on this machine is let in by listing its name in ` +
            `http.allowedHosts (--allow-host)`,
        );
      }
    }
    await next();
  };
}
