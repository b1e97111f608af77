/**
 * A client without a key, told apart by where it connects from: its IPv4 address, or the /64 of
 * its IPv6 one (one host is given a whole /64 and may pick any address in it, so a client counted
 * per IPv6 address could be as many clients as it liked). The dashboard's allowances use it for
 * anonymous readers (`http.allowUnauthenticatedRemote`).
 *
 * @module
 */

import { addressGroup } from "../network/connection_limits.ts";

/**
 * The client `addr` names, as a key for per-client limits: its `addressGroup` (the peer layer's
 * rule, one rule for both: `198.51.100.9`, `2001:db8:1:2::/64`, an IPv4-mapped or NAT64 address
 * as its IPv4 one, `loopback` for this machine), `unknown` without a network address. Every client
 * behind one reverse proxy or NAT is one client.
 */
export function clientAddress(addr: Deno.Addr | undefined): string {
  if (addr === undefined || (addr.transport !== "tcp" && addr.transport !== "udp")) {
    return "unknown";
  }
  return addressGroup(addr.hostname);
}
