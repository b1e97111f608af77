/**
 * `clientAddress`, the per-client key of the edge's allowances for clients without an API key: the
 * same groups the peer layer counts (`addressGroup`), so one concept has one rule.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import { clientAddress } from "../../server/client_address.ts";

const tcp = (hostname: string): Deno.Addr => ({ transport: "tcp", hostname, port: 40000 });

Deno.test("clientAddress: an IPv4 address, an IPv6 /64, the IPv4 host behind a NAT64 gateway; unknown without a network address", () => {
  assertEquals(clientAddress(tcp("198.51.100.9")), "198.51.100.9");
  assertEquals(clientAddress(tcp("::ffff:198.51.100.9")), "198.51.100.9");
  assertEquals(clientAddress(tcp("2001:db8:1:2::7")), clientAddress(tcp("2001:db8:1:2::99")));
  assert.notEqual(clientAddress(tcp("2001:db8:1:2::7")), clientAddress(tcp("2001:db8:1:3::7")));
  // Every IPv4 client of a NAT64 gateway shared one /64 allowance (review s72 verify, F6).
  assertEquals(clientAddress(tcp("64:ff9b::192.0.2.9")), "192.0.2.9");
  assert.notEqual(
    clientAddress(tcp("64:ff9b::192.0.2.9")),
    clientAddress(tcp("64:ff9b::192.0.2.10")),
  );
  assertEquals(clientAddress({ transport: "unix", path: "/tmp/s" }), "unknown");
  assertEquals(clientAddress(undefined), "unknown");
});
