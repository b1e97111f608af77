/**
 * `PeerListenError`'s hints (`network/peer_listener.ts`): each names the CLI flag and the
 * configuration key, so a program that starts a node from `mod.ts` — which has no flags — is told
 * what to set (review s73, F5), as `HttpListenError` already does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { listenForPeers, PeerListenError } from "../../network/peer_listener.ts";

Deno.test("a taken peer port names --p2p-port and network.listen.port, and --no-listen and network.listening", () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (holder.addr as Deno.NetAddr).port;
    let error: unknown;
    try {
      listenForPeers({ hostname: "127.0.0.1", port }, () => {}).close();
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof PeerListenError, String(error));
    assert.equal(error.code, "peer_listen_failed");
    assert.match(error.message, /--p2p-port N \(network\.listen\.port in the configuration/);
    assert.match(error.message, /--no-listen \(network\.listening: false\)/);
  } finally {
    holder.close();
  }
});

Deno.test("an address not this machine's names --p2p-host and network.listen.hostname; another failure names both keys", () => {
  const notOurs = new PeerListenError(
    { hostname: "10.255.255.1", port: 7700 },
    new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)"),
  );
  assert.match(
    notOurs.message,
    /--p2p-host ADDR \(network\.listen\.hostname in the configuration\)/,
  );
  assert.doesNotMatch(notOurs.message, /listen\.port/);
  assert.match(notOurs.message, /network\.listening: false/);
  const other = new PeerListenError({ hostname: "", port: 7700 }, new Error("invalid empty host"));
  assert.match(
    other.message,
    /check --p2p-host and --p2p-port \(network\.listen\.hostname and network\.listen\.port/,
  );
});
