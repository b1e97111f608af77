/**
 * `clientAddress`, the per-client key of the edge's allowances for clients without an API key: the
 * same groups the peer layer counts (`addressGroup`), so one concept has one rule; behind a trusted
 * reverse proxy, the client the proxy names (`http.trustedProxies`).
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import { clientAddress } from "../../server/client_address.ts";
import { TrustedProxies } from "../../server/trusted_proxies.ts";

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

// Behind a reverse proxy (`http.trustedProxies`): the client the proxy names, read from the
// right, and only from a peer the operator trusts.

const PROXIES = TrustedProxies.from(["127.0.0.1", "10.0.0.0/8", "fd00:1::/64"]);

/** A request carrying `headers`, as a proxy (or a client posing as one) sends it. */
const relayed = (headers: Record<string, string>) =>
  new Request("http://127.0.0.1/v1/models", { headers });

Deno.test("clientAddress: a peer that is not a trusted proxy is its own address, whatever X-Forwarded-For or Forwarded it writes", () => {
  const spoofs: Record<string, string>[] = [
    { "x-forwarded-for": "203.0.113.1" },
    { forwarded: "for=203.0.113.1" },
    { "x-forwarded-for": "203.0.113.1, 127.0.0.1" },
  ];
  for (const headers of spoofs) {
    assertEquals(clientAddress(tcp("198.51.100.9"), relayed(headers), PROXIES), "198.51.100.9");
    // Without trusted proxies (the default) a loopback peer is loopback, relaying or not.
    assertEquals(clientAddress(tcp("127.0.0.1"), relayed(headers)), "loopback");
  }
});

Deno.test("clientAddress: a trusted proxy's client is the right-most X-Forwarded-For hop that is not a trusted proxy, not what the client wrote to its left", () => {
  // The client wrote 203.0.113.1; the proxy appended the address it saw, 198.51.100.7.
  const spoofed = relayed({ "x-forwarded-for": "203.0.113.1, 198.51.100.7" });
  assertEquals(clientAddress(tcp("127.0.0.1"), spoofed, PROXIES), "198.51.100.7");
  assertEquals(clientAddress(tcp("::ffff:127.0.0.1"), spoofed, PROXIES), "198.51.100.7");
  // A port on a hop (some load balancers add one) names the same client.
  const withPort = relayed({ "x-forwarded-for": "198.51.100.7:4711" });
  assertEquals(clientAddress(tcp("127.0.0.1"), withPort, PROXIES), "198.51.100.7");
});

Deno.test("clientAddress: through a chain of two trusted proxies, the hop before the nearer one; every hop trusted, the farthest", () => {
  // Client → edge proxy 10.1.2.3 → local proxy 127.0.0.1 → node.
  const chain = relayed({ "x-forwarded-for": "203.0.113.1, 198.51.100.7, 10.1.2.3" });
  assertEquals(clientAddress(tcp("127.0.0.1"), chain, PROXIES), "198.51.100.7");
  const allTrusted = relayed({ "x-forwarded-for": "10.9.9.9, 10.1.2.3" });
  assertEquals(clientAddress(tcp("127.0.0.1"), allTrusted, PROXIES), "10.9.9.9");
});

Deno.test("clientAddress: a hop that names no address, or a trusted proxy that names nobody, makes the client the nearest trusted proxy, never a value the client wrote", () => {
  for (const hop of ["garbage", "unknown", "", "198.51.100.7.5", "[2001:db8::1"]) {
    const header = relayed({ "x-forwarded-for": `203.0.113.1, ${hop}` });
    assertEquals(clientAddress(tcp("127.0.0.1"), header, PROXIES), "loopback", hop);
    assertEquals(clientAddress(tcp("10.0.0.5"), header, PROXIES), "10.0.0.5", hop);
  }
  // Behind two proxies, the nearer one vouched for the farther one, which handed it garbage.
  const behindTwo = relayed({ "x-forwarded-for": "203.0.113.1, _hidden, 10.1.2.3" });
  assertEquals(clientAddress(tcp("127.0.0.1"), behindTwo, PROXIES), "10.1.2.3");
  assertEquals(clientAddress(tcp("10.0.0.5"), relayed({}), PROXIES), "10.0.0.5");
  assertEquals(
    clientAddress(tcp("10.0.0.5"), relayed({ "x-forwarded-for": " " }), PROXIES),
    "10.0.0.5",
  );
});

/** The same proxies, which write RFC 7239 `Forwarded` (`http.trustedProxyHeader: "forwarded"`). */
const FORWARDED_PROXIES = TrustedProxies.from(["127.0.0.1", "10.0.0.0/8"], "forwarded");

Deno.test("clientAddress: with http.trustedProxyHeader forwarded, RFC 7239 Forwarded's for= (quoted IPv6 with a port, several elements) is read the same way", () => {
  const forwarded = relayed({
    forwarded: 'for=203.0.113.1;proto=https, for="[2001:db8:1:2::7]:4711";by=10.1.2.3',
  });
  assertEquals(clientAddress(tcp("127.0.0.1"), forwarded, FORWARDED_PROXIES), "2001:db8:1:2::/64");
  const quotedComma = relayed({ forwarded: 'for="203.0.113.1, x", For=198.51.100.7' });
  assertEquals(clientAddress(tcp("127.0.0.1"), quotedComma, FORWARDED_PROXIES), "198.51.100.7");
  const noFor = relayed({ forwarded: "for=198.51.100.7, proto=https" });
  assertEquals(clientAddress(tcp("127.0.0.1"), noFor, FORWARDED_PROXIES), "loopback");
});

Deno.test("clientAddress: only the header the proxies write is read; the other, which a proxy passes on as its client wrote it, names nobody (review s74 verify1, F1)", () => {
  // A proxy that appends Forwarded passes the client's own X-Forwarded-For through untouched.
  const forgedXff = relayed({
    "x-forwarded-for": "198.51.100.66",
    forwarded: "for=198.51.100.7",
  });
  assertEquals(clientAddress(tcp("127.0.0.1"), forgedXff, FORWARDED_PROXIES), "198.51.100.7");
  // A proxy that writes nothing the node reads: the client is the proxy, not the forged value.
  const onlyXff = relayed({ "x-forwarded-for": "198.51.100.66" });
  assertEquals(clientAddress(tcp("10.0.0.5"), onlyXff, FORWARDED_PROXIES), "10.0.0.5");
  // The default, X-Forwarded-For: a Forwarded the client wrote is never read.
  const onlyForwarded = relayed({ forwarded: "for=198.51.100.66" });
  assertEquals(clientAddress(tcp("10.0.0.5"), onlyForwarded, PROXIES), "10.0.0.5");
  const both = relayed({ "x-forwarded-for": "198.51.100.7", forwarded: "for=203.0.113.1" });
  assertEquals(clientAddress(tcp("127.0.0.1"), both, PROXIES), "198.51.100.7");
});

Deno.test("clientAddress: a Forwarded header that does not parse (an unclosed quote, a parameter that is not name=value) names nobody: the client is the proxy, never the for= a client wrote (review s74 verify1, F2)", () => {
  const malformed = [
    // The unclosed quote would swallow the comma and the proxy's own for=.
    'for=9.9.9.9;x=", for=203.0.113.5',
    'for="9.9.9.9, for=203.0.113.5',
    'for=9.9.9.9;x="a\\", for=203.0.113.5',
    "for=9.9.9.9;junk, for=203.0.113.5",
    "for=9.9.9.9;x=a b, for=203.0.113.5",
    "for=9.9.9.9, , for=203.0.113.5",
  ];
  for (const forwarded of malformed) {
    const request = relayed({ forwarded });
    assertEquals(clientAddress(tcp("10.0.0.5"), request, FORWARDED_PROXIES), "10.0.0.5", forwarded);
  }
  // Well-formed, the proxy's appended element is read.
  const wellFormed = relayed({ forwarded: 'for=9.9.9.9;x="a, b", for=203.0.113.5' });
  assertEquals(clientAddress(tcp("10.0.0.5"), wellFormed, FORWARDED_PROXIES), "203.0.113.5");
});

Deno.test("clientAddress: relayed IPv6 clients are grouped by /64, as direct ones are, and a trusted IPv6 proxy range is matched", () => {
  const from = (hop: string) =>
    clientAddress(tcp("fd00:1::8"), relayed({ "x-forwarded-for": hop }), PROXIES);
  assertEquals(from("2001:db8:1:2::7"), "2001:db8:1:2::/64");
  assertEquals(from("[2001:db8:1:2:ffff::1]:443"), "2001:db8:1:2::/64");
  assert.notEqual(from("2001:db8:1:3::7"), from("2001:db8:1:2::7"));
  assertEquals(from("::ffff:198.51.100.7"), "198.51.100.7");
  // fd00:1:0:1::/64 is outside the trusted /64: its headers are not read.
  assertEquals(
    clientAddress(tcp("fd00:1:0:1::8"), relayed({ "x-forwarded-for": "198.51.100.7" }), PROXIES),
    "fd00:1:0:1::/64",
  );
});
