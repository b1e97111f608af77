/**
 * The one lever Deno 2.9 has to drop a server WebSocket whose client never answers the node's close
 * (`server/websocket_drop.ts`): closing the socket's resource by hand. These tests pin it with a
 * raw TCP client that never answers a close, so a Deno upgrade that removes or renames the
 * internals it uses (`Deno[Deno.internal].core.tryClose`, the `[[rid]]` symbol) fails here, loudly,
 * instead of leaving every such socket held until its client goes.
 */
import assert from "node:assert/strict";
import {
  checkWebSocketDrop,
  closeThenDrop,
  dropServerWebSocket,
  STUCK_WRITE_BYTES,
  WS_CLOSE_GRACE_MS,
} from "../../server/websocket_drop.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { delay } from "../_helpers/wait.ts";
import { closeCodeOf, dropAll, type RawSocket, rawUpgrade } from "./_raw_ws.ts";
import { connectionEnd, upgradeServer } from "./_upgrade_server.ts";

/** Long enough to see that nothing happens by itself; an ordering pause, not a deadline. */
const NOTHING_HAPPENS_MS = 300;

Deno.test("websocket drop: this Deno has the lever (Deno[Deno.internal].core.tryClose); if this fails, a Deno upgrade removed it and clients that ignore a close are held again", () => {
  const warnings: string[] = [];
  assert.equal(checkWebSocketDrop((line) => warnings.push(line)), true, warnings.join("\n"));
  assert.deepEqual(warnings, []);
});

Deno.test("websocket drop: a server socket closed by the node whose client never answers is dropped at once: onclose fires (1005) and the client's connection ends", async () => {
  const server = upgradeServer();
  const open: RawSocket[] = [];
  try {
    const client = await rawUpgrade(server.url, "/");
    open.push(client);
    assert.equal(client.status, 101);
    const socket = await server.opened();
    socket.close(1008, "go away");
    assert.equal(await closeCodeOf(client), 1008, "the close frame went out");
    // The client never answers: nothing ends by itself (Deno waits for it forever).
    await delay(NOTHING_HAPPENS_MS);
    assert.equal(server.closes(socket).length, 0, "no onclose while the client is silent");
    assert.equal(socket.readyState, WebSocket.CLOSING);

    assert.deepEqual(dropServerWebSocket(socket), { dropped: true });
    await connectionEnd(client);
    const closes = await server.closed(socket);
    assert.equal(closes[0], 1005, "onclose fired with no status received");
    assert.equal(socket.readyState, WebSocket.CLOSED);
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});

Deno.test("websocket drop: refused with a stable code for a socket the node has not closed, and for a stand-in without Deno's internals", async () => {
  const server = upgradeServer();
  const open: RawSocket[] = [];
  try {
    const client = await rawUpgrade(server.url, "/");
    open.push(client);
    const socket = await server.opened();
    assert.deepEqual(dropServerWebSocket(socket), { dropped: false, code: "not_closing" });
    assert.equal(socket.readyState, WebSocket.OPEN, "an open socket is left alone");
    const standIn = { readyState: WebSocket.CLOSING, close() {} };
    assert.deepEqual(dropServerWebSocket(standIn), { dropped: false, code: "no_rid" });
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});

Deno.test("websocket drop: closeThenDrop drops a client that ignores the close once the grace has passed on the injected clock, not before", async () => {
  const timers = new FakeTimers();
  const server = upgradeServer();
  const open: RawSocket[] = [];
  try {
    const client = await rawUpgrade(server.url, "/");
    open.push(client);
    const socket = await server.opened();
    closeThenDrop(socket, 1008, "go away", timers);
    assert.equal(await closeCodeOf(client), 1008);
    assert.deepEqual([...timers.armed.values()].map((t) => t.ms), [WS_CLOSE_GRACE_MS]);
    await delay(NOTHING_HAPPENS_MS);
    assert.equal(server.closes(socket).length, 0, "still waiting for the client within the grace");

    timers.fireFor(WS_CLOSE_GRACE_MS);
    await connectionEnd(client);
    await server.closed(socket);
    assert.equal(socket.readyState, WebSocket.CLOSED);
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});

Deno.test("websocket drop: closeThenDrop does not arm a drop for a socket with more than STUCK_WRITE_BYTES unsent at its close (its stuck writes would hold the connection anyway), and does for one with less", () => {
  const timers = new FakeTimers();
  const standIn = (bufferedAmount: number) => {
    const socket = {
      readyState: WebSocket.OPEN as number,
      bufferedAmount,
      close() {
        socket.readyState = WebSocket.CLOSING;
        socket.bufferedAmount = 0; // as Deno's reads once the socket is not OPEN
      },
    };
    return socket;
  };
  const stuck = standIn(STUCK_WRITE_BYTES + 1);
  closeThenDrop(stuck, 1008, "read nothing", timers);
  assert.equal(stuck.readyState, WebSocket.CLOSING, "closed all the same");
  assert.equal(timers.armed.size, 0, "no drop armed: it keeps its place until its client goes");

  closeThenDrop(standIn(STUCK_WRITE_BYTES), 1009, "too big", timers);
  assert.equal(timers.armed.size, 1, "a drop armed for a socket whose writes are not stuck");
});

Deno.test("websocket drop: closeThenDrop leaves no timer once the client answers the close, and a second close arms nothing", async () => {
  const timers = new FakeTimers();
  const server = upgradeServer();
  try {
    const client = new WebSocket(server.url.replace("http:", "ws:"));
    const clientClosed = new Promise((resolve) => client.onclose = resolve);
    const socket = await server.opened();
    closeThenDrop(socket, 1000, "bye", timers);
    closeThenDrop(socket, 1000, "bye again", timers);
    assert.equal(timers.armed.size, 1, "one grace timer for the socket");
    await clientClosed; // Deno's client answers the close
    await server.closed(socket);
    assert.equal(timers.armed.size, 0, "the grace timer is disarmed at onclose");
  } finally {
    await server.shutdown();
  }
});
