/**
 * The hops a reverse proxy's forwarding header lists: `X-Forwarded-For` (`client, proxy1, …`),
 * or RFC 7239 `Forwarded`'s `for=` parameters, left (farthest) to right (nearest), each as the
 * bare IP address it names or `undefined` where it names none (`unknown`, an obfuscated
 * `_hidden`, garbage). Only read for a peer that is a trusted proxy (`client_address.ts`).
 *
 * One header is read, the one the operator's proxies write (`http.trustedProxyHeader`), and the
 * other is never looked at, as nginx's realip module reads only its `real_ip_header`
 * (https://nginx.org/en/docs/http/ngx_http_realip_module.html#real_ip_header). A proxy passes
 * on the headers it does not write as the client sent them: a node that fell back to the other
 * header, or preferred one when both came, would let a client behind a proxy that writes
 * `Forwarded` name itself in `X-Forwarded-For` (review s74 verify1, F1). `X-Real-IP` is never
 * read, for the same reason.
 *
 * `Forwarded` is parsed strictly: an element is `name=value` pairs joined by `;`, a name a token,
 * a value a token or a quoted string. A header that breaks that anywhere (an unclosed quote
 * above all, which would swallow the commas and the `for=` the proxy appended after it: F2)
 * names no address, so the client is the proxy.
 *
 * @example
 * ```ts
 * import { forwardedFor } from "./forwarded_for.ts";
 * const headers = new Headers({ "x-forwarded-for": "198.51.100.7, [2001:db8::1]:443, unknown" });
 * console.log(forwardedFor(headers, "x-forwarded-for")); // ["198.51.100.7", "2001:db8::1", undefined]
 * ```
 *
 * @module
 */
import { ipv4, ipv6Groups } from "../network/connection_limits.ts";

/**
 * The forwarding headers a node can be told to read: the de-facto `X-Forwarded-For` (what nginx's
 * `$proxy_add_x_forwarded_for`, Caddy, Traefik and HAProxy's `option forwardfor` write) or
 * RFC 7239's `Forwarded` (HAProxy's `option forwarded`, an nginx `proxy_set_header Forwarded`).
 */
export const TRUSTED_PROXY_HEADERS = ["x-forwarded-for", "forwarded"] as const;

/** One of {@link TRUSTED_PROXY_HEADERS}. */
export type TrustedProxyHeader = typeof TRUSTED_PROXY_HEADERS[number];

/** What nginx, Caddy, Traefik and HAProxy write when set up as their documentation shows. */
export const DEFAULT_TRUSTED_PROXY_HEADER: TrustedProxyHeader = "x-forwarded-for";

/** A hop list that names nobody: the client is the nearest trusted proxy. */
const NAMES_NOBODY: (string | undefined)[] = [undefined];

/**
 * The hops of `headers`' `header`, farthest first, or undefined when it is absent or blank. The
 * other forwarding header is not read, whatever it says.
 */
export function forwardedFor(
  headers: Headers,
  header: TrustedProxyHeader,
): (string | undefined)[] | undefined {
  // Several header lines arrive joined by ", " (Fetch's `Headers.get`), the list they make.
  const value = headers.get(header);
  if (value === null || value.trim() === "") return undefined;
  if (header === "x-forwarded-for") return value.split(",").map(hopAddress);
  const elements = splitOutsideQuotes(value, ",");
  if (elements === undefined) return NAMES_NOBODY;
  const hops: (string | undefined)[] = [];
  for (const element of elements) {
    const pairs = forwardedPairs(element);
    if (pairs === undefined) return NAMES_NOBODY;
    hops.push(hopAddress(pairs.get("for")));
  }
  return hops;
}

/** RFC 7230's `token`: what a `Forwarded` parameter's name, or an unquoted value, is made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The parameters of one `Forwarded` element by lower-case name (the first of a repeated name,
 * quotes and escapes removed), or undefined when a pair is not `token=token` or
 * `token="quoted"`. Blanks around `;` and `=` are allowed, as proxies in the wild write them.
 */
function forwardedPairs(element: string): Map<string, string> | undefined {
  const pairs = new Map<string, string>();
  for (const pair of splitOutsideQuotes(element, ";") ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 0) return undefined;
    const name = pair.slice(0, eq).trim().toLowerCase();
    const raw = pair.slice(eq + 1).trim();
    if (!TOKEN.test(name)) return undefined;
    // RFC 7239 §4: a quoted-string (required for IPv6 and ports), backslash escapes allowed.
    const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(raw);
    if (quoted === null && !TOKEN.test(raw)) return undefined;
    const value = quoted === null ? raw : quoted[1].replace(/\\(.)/g, "$1");
    if (!pairs.has(name)) pairs.set(name, value);
  }
  return pairs;
}

/** `text` split at `separator` where it is outside a quoted string; undefined if a quote is left open. */
function splitOutsideQuotes(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\\" && quoted) i++;
    else if (char === '"') quoted = !quoted;
    else if (char === separator && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/**
 * The IP address one hop names: `198.51.100.7`, `198.51.100.7:4711`, `2001:db8::1`,
 * `[2001:db8::1]` or `[2001:db8::1]:4711` (a `%zone` kept); undefined for anything else.
 */
function hopAddress(hop: string | undefined): string | undefined {
  if (hop === undefined) return undefined;
  const text = hop.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text);
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(text);
  const host = bracketed?.[1] ?? v4WithPort?.[1] ?? text;
  const bare = host.replace(/%[A-Za-z0-9_.-]+$/, "").toLowerCase();
  if (ipv4(bare) !== undefined) return ipv4(bare);
  return ipv6Groups(bare) === undefined ? undefined : host.toLowerCase();
}
