/**
 * The node's HTTP port before the node is up: every request is answered 503 `starting` in the
 * edge's error shape, with `Retry-After`, and the app answers once mounted. A port that cannot
 * be bound is blamed on what is at fault: the host, a taken port, or (otherwise) neither alone,
 * for the HTTP port and the peer port alike.
 */
import assert from "node:assert/strict";
import { HttpListener, HttpListenError } from "../../node/http_listener.ts";
import { PeerListenError } from "../../network/peer_listener.ts";
import { openAiErrorBody } from "../../server/http_errors.ts";
import { EdgeError } from "../../server/http_errors.ts";

Deno.test("before the app is mounted the port answers 503 starting in the edge's error shape, with Retry-After; then the app answers", async () => {
  const listener = HttpListener.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const early = await fetch(`${listener.url}/healthz`);
    assert.equal(early.status, 503);
    assert.equal(early.headers.get("retry-after"), "1");
    const body = await early.json();
    assert.deepEqual(
      body,
      openAiErrorBody(new EdgeError("starting", "the node is starting; retry in a moment")),
    );
    listener.mount({ fetch: () => new Response("up") });
    const later = await fetch(`${listener.url}/healthz`);
    assert.equal(later.status, 200);
    assert.equal(await later.text(), "up");
  } finally {
    await listener.close();
  }
});

Deno.test("an HTTP address this machine does not have is blamed on --host; a taken port on --port", () => {
  const notOurs = new HttpListenError(
    "10.255.255.1",
    8080,
    new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)"),
  );
  assert.match(notOurs.message, /10\.255\.255\.1 is not an address of this machine/);
  assert.match(notOurs.message, /--host ADDR/);
  assert.doesNotMatch(notOurs.message, /--port/);
  const taken = new HttpListenError("127.0.0.1", 8080, new Deno.errors.AddrInUse("in use"));
  assert.match(taken.message, /port 8080 is already in use.*choose another port with --port N/);
  assert.doesNotMatch(taken.message, /--host/);
});

Deno.test("a listen error other than a taken port does not tell the operator to change the port", () => {
  // What Deno said of an empty host before the configuration refused one.
  const other = new Error("invalid empty host: ''");
  const http = new HttpListenError("", 8080, other);
  assert.match(http.message, /invalid empty host: ''; check --host and --port/);
  assert.doesNotMatch(http.message, /choose another port/);
  const peer = new PeerListenError({ hostname: "", port: 7700 }, other);
  assert.match(peer.message, /invalid empty host: '' \(check --p2p-host and --p2p-port/);
  assert.doesNotMatch(peer.message, /another node on this port/);
  const taken = new PeerListenError(
    { hostname: "127.0.0.1", port: 7700 },
    new Deno.errors.AddrInUse("in use"),
  );
  assert.match(taken.message, /another node on this port\? choose one with --p2p-port/);
});
