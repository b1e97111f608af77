/**
 * A client without a key, told apart by where it connects from: its IPv4 address, or the /64 of
 * its IPv6 one (one host is given a whole /64 and may pick any address in it, so a client counted
 * per IPv6 address could be as many clients as it liked). The dashboard's allowances use it for
 * anonymous readers, `/v1` for its queue turns and per-address limits
 * (`http.allowUnauthenticatedRemote`).
 *
 * Behind a reverse proxy the TCP peer is the proxy. When the operator trusts it
 * (`http.trustedProxies`), the client is the one the proxy names in the one header the operator
 * says it writes (`http.trustedProxyHeader`: `X-Forwarded-For` by default, or `Forwarded`;
 * `forwarded_for.ts`; the other is never read), read from the right: the nearest hop that is not itself a
 * trusted proxy, as nginx's `real_ip_recursive on` reads it. Every hop left of that one was
 * written by the client or by a proxy nobody vouches for, so it is never believed. A hop that
 * names no address, or a trusted proxy that names nobody, makes the client the nearest trusted
 * proxy itself: an address the operator listed, never a value a client chose. A peer that is not
 * trusted is named by its own address, whatever headers it sends.
 *
 * @module
 */

import { addressGroup } from "../network/connection_limits.ts";
import { forwardedFor } from "./forwarded_for.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";

/**
 * The client `addr` names, as a key for per-client limits: its `addressGroup` (the peer layer's
 * rule, one rule for both: `198.51.100.9`, `2001:db8:1:2::/64`, an IPv4-mapped or NAT64 address
 * as its IPv4 one, `loopback` for this machine), `unknown` without a network address. When `addr`
 * is one of the `trusted` proxies, the client it relays in `request` ({@link relayedClient}).
 * Without trusted proxies every client behind one reverse proxy or NAT is one client.
 */
export function clientAddress(
  addr: Deno.Addr | undefined,
  request?: Request,
  trusted: TrustedProxies = NO_TRUSTED_PROXIES,
): string {
  if (addr === undefined || (addr.transport !== "tcp" && addr.transport !== "udp")) {
    return "unknown";
  }
  if (request === undefined || !trusted.has(addr.hostname)) return addressGroup(addr.hostname);
  return addressGroup(relayedClient(addr.hostname, request.headers, trusted));
}

/**
 * The address of the client a trusted proxy `peer` relays, from its forwarding header in
 * `headers` (`trusted.header`): right to left, the first hop that is not a trusted proxy; the nearest trusted one
 * when a hop names no address, or when the header is absent; the farthest hop when every hop is
 * trusted (a chain of the operator's own proxies, as nginx takes it).
 */
export function relayedClient(peer: string, headers: Headers, trusted: TrustedProxies): string {
  const hops = forwardedFor(headers, trusted.header);
  if (hops === undefined) return peer;
  let nearestTrusted = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i];
    if (hop === undefined) return nearestTrusted;
    if (!trusted.has(hop)) return hop;
    nearestTrusted = hop;
  }
  return nearestTrusted;
}
