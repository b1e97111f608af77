/**
 * The node's own closes now really end a socket (`server/websocket_drop.ts`): a client that never
 * answers the node's close is dropped after `WS_CLOSE_GRACE_MS` on the injected clock, its
 * `onclose` fires and its place comes back, where before it kept the connection, whatever partial
 * message Deno was reading for it, and its place, for as long as it liked. The raw clients here
 * never answer a close frame.
 */
import assert from "node:assert/strict";
import { WS_CLOSE_GRACE_MS } from "../../server/websocket_drop.ts";
import { STREAM_SOCKET_IDLE_MS } from "../../server/stream_session.ts";
import { MAX_STREAM_SOCKETS_PER_CLIENT } from "../../server/stream_sockets.ts";
import { DASHBOARD_AUTH_TIMEOUT_MS } from "../../server/dashboard_routes.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { delay } from "../_helpers/wait.ts";
import { eventually, startTestNode } from "./_fixtures.ts";
import { addr, dashboardNode } from "./_dashboard_node.ts";
import {
  closeCodeOf,
  dropAll,
  type RawSocket,
  rawUpgrade,
  textFrame,
  writeAll,
} from "./_raw_ws.ts";
import { connectionEnd } from "./_upgrade_server.ts";

const KEY = "close-grace-key-0123456789abcdef";
/** Small, so a message over it is a few bytes of test. */
const MAX_REQUEST_BYTES = 1024;
/** A client elsewhere behind a relay: no places kept for this machine (`stream_sockets.ts`). */
const REMOTE = { "x-forwarded-for": "203.0.113.7", authorization: `Bearer ${KEY}` };
/** Long enough to see that nothing happens by itself; an ordering pause, not a deadline. */
const NOTHING_HAPPENS_MS = 300;

Deno.test("WS /v1/stream close grace: a client cut off (1009) that never answers the close is dropped after WS_CLOSE_GRACE_MS, and its places come back to it", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({
    timers,
    edge: { apiKeys: [KEY], maxRequestBytes: MAX_REQUEST_BYTES },
  });
  const open: RawSocket[] = [];
  try {
    const cutOff: RawSocket[] = [];
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      const socket = await rawUpgrade(node.url, "/v1/stream", REMOTE);
      open.push(socket);
      assert.equal(socket.status, 101);
      await writeAll(socket.conn, textFrame("x".repeat(MAX_REQUEST_BYTES + 1)));
      assert.equal(await closeCodeOf(socket), 1009);
      cutOff.push(socket); // never answers the close
    }
    await delay(NOTHING_HAPPENS_MS);
    const over = await rawUpgrade(node.url, "/v1/stream", REMOTE);
    open.push(over);
    assert.equal(over.status, 429, "within the grace the unanswered closes still count");

    timers.fireFor(WS_CLOSE_GRACE_MS);
    for (const socket of cutOff) await connectionEnd(socket);
    const again = await rawUpgrade(node.url, "/v1/stream", REMOTE);
    open.push(again);
    assert.equal(again.status, 101, "a new socket of the same client is accepted");
  } finally {
    dropAll(open);
    await node.close();
  }
});

Deno.test("WS /v1/stream close grace: the idle close (STREAM_SOCKET_IDLE_MS) really ends a socket whose client ignores it", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ timers, edge: { apiKeys: [KEY] } });
  const open: RawSocket[] = [];
  try {
    const socket = await rawUpgrade(node.url, "/v1/stream", REMOTE);
    open.push(socket);
    assert.equal(socket.status, 101);
    await eventually(
      () => [...timers.armed.values()].some((t) => t.ms === STREAM_SOCKET_IDLE_MS),
      "the idle countdown armed",
    );
    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    assert.equal(await closeCodeOf(socket), 1000, "the idle close went out");
    timers.fireFor(WS_CLOSE_GRACE_MS);
    await connectionEnd(socket);
  } finally {
    dropAll(open);
    await node.close();
  }
});

Deno.test("dashboard close grace: a socket closed at its auth deadline whose client ignores the close is dropped after the grace, and its address's place comes back", async () => {
  const { server, timers, peer } = dashboardNode({ limits: { authPendingSocketsPerAddress: 1 } });
  const open: RawSocket[] = [];
  const connect = async () => {
    const socket = await rawUpgrade(server.url, "/dashboard/live");
    open.push(socket);
    return socket;
  };
  try {
    peer.now = addr("203.0.113.20");
    const waiting = await connect();
    assert.equal(waiting.status, 101);
    await eventually(
      () => [...timers.armed.values()].some((t) => t.ms === DASHBOARD_AUTH_TIMEOUT_MS),
      "the auth deadline armed",
    );
    timers.fireFor(DASHBOARD_AUTH_TIMEOUT_MS);
    assert.equal(await closeCodeOf(waiting), 1008, "closed at its auth deadline");
    await delay(NOTHING_HAPPENS_MS);
    assert.equal((await connect()).status, 429, "within the grace its address's place is held");

    timers.fireFor(WS_CLOSE_GRACE_MS);
    await connectionEnd(waiting);
    await eventually(async () => (await connect()).status === 101, "the address's place back");
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});
