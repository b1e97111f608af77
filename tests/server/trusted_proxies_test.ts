/**
 * `TrustedProxies` (`http.trustedProxies`): which peer addresses may name the client they relay —
 * IP addresses and CIDR ranges, IPv4 and IPv6, read by the peer layer's address parser; a
 * malformed entry is refused naming the key and the entry.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import {
  isTrustedProxyEntry,
  isWideTrustedProxyEntry,
  TrustedProxies,
  TrustedProxyError,
} from "../../server/trusted_proxies.ts";

Deno.test("TrustedProxies: an address trusts itself; a CIDR range trusts its prefix, IPv4 and IPv6, an IPv4 one also as a dual-stack socket writes it", () => {
  const trusted = TrustedProxies.from([
    "127.0.0.1",
    "10.0.0.0/8",
    "192.0.2.128/25",
    "2001:db8::/32",
  ]);
  assert.ok(trusted.has("127.0.0.1"));
  assert.ok(!trusted.has("127.0.0.2"));
  assert.ok(trusted.has("::ffff:127.0.0.1"));
  assert.ok(trusted.has("10.255.255.255") && !trusted.has("11.0.0.0"));
  assert.ok(trusted.has("192.0.2.128") && trusted.has("192.0.2.255"));
  assert.ok(!trusted.has("192.0.2.127"));
  assert.ok(trusted.has("2001:db8:ffff::1") && trusted.has("[2001:DB8::1]"));
  assert.ok(!trusted.has("2001:db9::1"));
  assert.ok(!trusted.has("proxy.example"), "a name is never trusted");
  const v6 = TrustedProxies.from(["::1", "fe80::/10"]);
  assert.ok(v6.has("::1") && !v6.has("::2"));
  assert.ok(v6.has("fe80::1%eth0"));
  assert.ok(!v6.has("127.0.0.1"), "::1 is not IPv4 loopback");
  const everyone = TrustedProxies.from(["0.0.0.0/0"]);
  assert.ok(everyone.has("203.0.113.9") && !everyone.has("2001:db8::1"));
  assert.ok(TrustedProxies.from([]).empty && !trusted.empty);
  assert.ok(!TrustedProxies.from([]).has("127.0.0.1"));
});

Deno.test("TrustedProxies: a malformed entry is refused naming the key and the entry (trusted_proxy_malformed)", () => {
  for (
    const entry of [
      "",
      "proxy.example",
      "10.0.0.0/33",
      "2001:db8::/129",
      "10.0.0.0/08",
      "10.0.0.0/0x8",
      "10.0.0.0/",
      "10.0.0.0/8/8",
      "[::1]",
      "127.0.0.1:80",
      "256.0.0.1",
      "::1%lo",
    ]
  ) {
    assert.ok(!isTrustedProxyEntry(entry), entry);
    const refused = (() => {
      try {
        TrustedProxies.from(["127.0.0.1", entry]);
      } catch (error) {
        return error;
      }
    })();
    assert.ok(refused instanceof TrustedProxyError, entry);
    assertEquals(refused.code, "trusted_proxy_malformed");
    assert.ok(refused.message.startsWith("http.trustedProxies: "), refused.message);
    assert.ok(refused.message.includes(JSON.stringify(entry)), refused.message);
  }
  for (const entry of ["0.0.0.0/0", "10.0.0.0/32", "::/0", "2001:db8::1/128", "::ffff:10.0.0.1"]) {
    assert.ok(isTrustedProxyEntry(entry), entry);
  }
});

Deno.test("isWideTrustedProxyEntry: a range wider than /8 (IPv4, also as IPv4-mapped IPv6) or /7 (IPv6) is wide; the private ranges and single addresses are not", () => {
  for (const entry of ["0.0.0.0/0", "128.0.0.0/1", "::/0", "::ffff:0:0/96", "8000::/1"]) {
    assert(isWideTrustedProxyEntry(entry), entry);
  }
  for (const entry of ["10.0.0.0/8", "127.0.0.2", "fc00::/7", "2001:db8::/32", "::1", "bad"]) {
    assert(!isWideTrustedProxyEntry(entry), entry);
  }
});

Deno.test("TrustedProxies: the header read is X-Forwarded-For unless the operator names Forwarded", () => {
  assertEquals(TrustedProxies.from(["127.0.0.2"]).header, "x-forwarded-for");
  assertEquals(TrustedProxies.from(["127.0.0.2"], "forwarded").header, "forwarded");
});
