/**
 * The hops a reverse proxy's forwarding header lists: `X-Forwarded-For` (`client, proxy1, …`),
 * or RFC 7239 `Forwarded`'s `for=` parameters, left (farthest) to right (nearest), each as the
 * bare IP address it names or `undefined` where it names none (`unknown`, an obfuscated
 * `_hidden`, garbage). Only read for a peer that is a trusted proxy (`client_address.ts`).
 *
 * When a request carries both headers, `X-Forwarded-For` wins and `Forwarded` is not read: the
 * rule of the proxies operators put in front of a node. nginx's realip module reads the one
 * header `real_ip_header` names, in practice `X-Forwarded-For`
 * (https://nginx.org/en/docs/http/ngx_http_realip_module.html#real_ip_header), and Caddy reads
 * the first of its `client_ip_headers` present, by default `X-Forwarded-For` alone
 * (https://caddyserver.com/docs/caddyfile/options#client-ip-headers); both proxies append to
 * `X-Forwarded-For` and neither writes `Forwarded` by default. `X-Real-IP` is not read: a proxy
 * that does not set it passes on the one its client wrote.
 *
 * @example
 * ```ts
 * import { forwardedFor } from "./forwarded_for.ts";
 * const headers = new Headers({ "x-forwarded-for": "198.51.100.7, [2001:db8::1]:443, unknown" });
 * console.log(forwardedFor(headers)); // ["198.51.100.7", "2001:db8::1", undefined]
 * ```
 *
 * @module
 */
import { ipv4, ipv6Groups } from "../network/connection_limits.ts";

/**
 * The hops of `headers`' forwarding header, farthest first, or undefined when it has neither
 * `X-Forwarded-For` nor `Forwarded` (or only blank ones).
 */
export function forwardedFor(headers: Headers): (string | undefined)[] | undefined {
  // Several header lines arrive joined by ", " (Fetch's `Headers.get`), the list they make.
  const xff = headers.get("x-forwarded-for");
  if (xff !== null && xff.trim() !== "") return xff.split(",").map(hopAddress);
  const forwarded = headers.get("forwarded");
  if (forwarded !== null && forwarded.trim() !== "") {
    return splitOutsideQuotes(forwarded, ",").map((element) => hopAddress(forParameter(element)));
  }
  return undefined;
}

/** The `for=` value of one `Forwarded` element (quotes and escapes removed), if it has one. */
function forParameter(element: string): string | undefined {
  for (const pair of splitOutsideQuotes(element, ";")) {
    const eq = pair.indexOf("=");
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue;
    const value = pair.slice(eq + 1).trim();
    // RFC 7239 §4: a quoted-string (required for IPv6 and ports), backslash escapes allowed.
    return value.startsWith('"') && value.endsWith('"') && value.length >= 2
      ? value.slice(1, -1).replace(/\\(.)/g, "$1")
      : value;
  }
  return undefined;
}

/** `text` split at `separator` where it is outside a quoted string. */
function splitOutsideQuotes(text: string, separator: string): string[] {
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
