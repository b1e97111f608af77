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

/** The port a scheme's URLs leave out. */
const DEFAULT_PORTS: Readonly<Record<string, string>> = { "http:": "80", "https:": "443" };

/** A `Host` value read as the URL parser normalises it: the name and the port written, if any. */
interface Authority {
  hostname: string;
  /** As written (the scheme's default included, which the parser drops); null if none. */
  port: string | null;
}

/**
 * `host` as a host and an optional port, normalised as `scheme`'s URLs are; null unless it is
 * exactly that (no user, path or other part the parser would drop or move). The parser leaves
 * out the scheme's default port (`127.0.0.1:80` has the host `127.0.0.1`), so that one is put
 * back as written: both sides of a comparison are read alike.
 */
function authorityOf(host: string, scheme = "http:"): Authority | null {
  const url = URL.parse(`${scheme}//${host}`);
  if (url === null) return null;
  const written = host.toLowerCase();
  if (written === url.host) return { hostname: url.hostname, port: url.port || null };
  const fallback = DEFAULT_PORTS[url.protocol];
  if (url.port === "" && written === `${url.host}:${fallback}`) {
    return { hostname: url.hostname, port: fallback };
  }
  return null;
}

/**
 * Whether a request's `Host` names this node by an address or `localhost`. A same-origin read
 * by a DNS-rebinding page carries no `Origin`, but its `Host` is the attacker's name.
 */
export function hostIsAnAddress(host: string | undefined): boolean {
  if (host === undefined) return false;
  const authority = authorityOf(host);
  return authority !== null && namesAnAddress(authority.hostname);
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
  // A name listed without a port lets it in on any port; with one, on that port only.
  const allowed = allowedHosts.map((h) => authorityOf(h)).filter((a) => a !== null);
  const listed = (host: string, scheme: string) => {
    const authority = authorityOf(host, scheme);
    if (authority === null) return false;
    const port = authority.port ?? DEFAULT_PORTS[scheme] ?? null;
    return allowed.some((a) =>
      a.hostname === authority.hostname && (a.port === null || a.port === port)
    );
  };
  return async (c, next) => {
    if (isLoopback(c.env?.remoteAddr)) {
      // The URL's host where the request carries no `Host` (the app called directly in tests;
      // Deno.serve builds the URL from it).
      const url = URL.parse(c.req.url);
      const host = c.req.header("host") ?? url?.host;
      const named = hostIsAnAddress(host) ||
        (host !== undefined && listed(host, url?.protocol ?? "http:"));
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
