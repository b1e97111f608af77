/**
 * Handshakes the dashboard socket refuses before the upgrade (review s75 vhandshake F3, F4): a
 * token it does not accept (401 `bad_token`, counted in /metrics as a wrong `auth` is, where it
 * was upgraded, read nothing and counted nowhere), and the token's subprotocol offered without
 * `veriflow.dashboard` (400 `bad_subprotocol`, where the node upgraded with no subprotocol, which a
 * browser fails as a bare 1006, after the socket had taken its key's place).
 */
import assert from "node:assert/strict";
import { BEARER_PROTOCOL_PREFIX, DASHBOARD_PROTOCOL } from "../../server/dashboard_handshake.ts";
import { addr, dashboardNode, KEY } from "./_dashboard_node.ts";
import { type RawSocket, rawUpgrade } from "./_raw_ws.ts";

/** More handshakes than the one place each test leaves: a place taken would show as a 429. */
const TRIES = 3;

/** `text` as base64url without padding, as a browser page encodes its token. */
function base64Url(text: string): string {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** A refused handshake's body: what came with its head, then the rest up to `content-length`. */
async function bodyOf(socket: RawSocket): Promise<string> {
  const length = Number(socket.headers.get("content-length"));
  let body = socket.rest;
  const buffer = new Uint8Array(4096);
  while (body.length < length) {
    const read = await socket.conn.read(buffer);
    if (read === null) break;
    body = new Uint8Array([...body, ...buffer.subarray(0, read)]);
  }
  return new TextDecoder().decode(body);
}

/** The error code of a refused handshake's JSON body. */
async function codeOf(socket: RawSocket): Promise<string | undefined> {
  return JSON.parse(await bodyOf(socket)).error?.code;
}

Deno.test("dashboard handshake: a wrong token, in the subprotocol or Authorization, is refused 401 bad_token before the upgrade, counted each time, and takes no place", async () => {
  const node = dashboardNode({ limits: { authPendingSocketsPerAddress: 1 } });
  const sockets: RawSocket[] = [];
  try {
    node.peer.now = addr("198.51.100.79");
    const guess = BEARER_PROTOCOL_PREFIX + base64Url("not-a-key-0123456789");
    for (let i = 0; i < TRIES; i++) {
      const socket = await rawUpgrade(node.server.url, "/dashboard/live", {
        "Sec-WebSocket-Protocol": `${DASHBOARD_PROTOCOL}, ${guess}`,
      });
      sockets.push(socket);
      assert.equal(socket.status, 401, `guess ${i}`);
      const body = await bodyOf(socket);
      assert.equal(JSON.parse(body).error.code, "bad_token", `guess ${i}`);
      assert.ok(!body.includes("not-a-key"), "token not echoed");
    }
    const header = await rawUpgrade(node.server.url, "/dashboard/live", {
      Authorization: "Bearer not-a-key-0123456789",
    });
    sockets.push(header);
    assert.equal(header.status, 401);
    assert.equal(await codeOf(header), "bad_token");
    assert.equal(node.stats.refused.get("bad_token"), TRIES + 1, "each wrong token counted");

    const honest = await rawUpgrade(node.server.url, "/dashboard/live");
    sockets.push(honest);
    assert.equal(honest.status, 101, "the address's one waiting place is still free");
  } finally {
    for (const socket of sockets) socket.conn.close();
    await node.server.shutdown();
  }
});

Deno.test("dashboard handshake: the bearer subprotocol without veriflow.dashboard is refused 400 bad_subprotocol naming both, before the key's place is taken", async () => {
  const node = dashboardNode({ limits: { socketsPerClient: 1 } });
  const sockets: RawSocket[] = [];
  try {
    node.peer.now = addr("198.51.100.80");
    const bearer = BEARER_PROTOCOL_PREFIX + base64Url(KEY);
    for (let i = 0; i < TRIES; i++) {
      const socket = await rawUpgrade(node.server.url, "/dashboard/live", {
        "Sec-WebSocket-Protocol": bearer,
      });
      sockets.push(socket);
      assert.equal(socket.status, 400, `try ${i}`);
      const body = await bodyOf(socket);
      assert.equal(JSON.parse(body).error.code, "bad_subprotocol", `try ${i}`);
      assert.ok(body.includes(DASHBOARD_PROTOCOL), body);
      assert.ok(!body.includes(base64Url(KEY)) && !body.includes(KEY), "token not echoed");
    }
    assert.equal(node.stats.refused.get("bad_subprotocol"), TRIES);

    const both = await rawUpgrade(node.server.url, "/dashboard/live", {
      "Sec-WebSocket-Protocol": `${DASHBOARD_PROTOCOL}, ${bearer}`,
    });
    sockets.push(both);
    assert.equal(both.status, 101, "the key's one place is still free");
    assert.equal(both.headers.get("sec-websocket-protocol"), DASHBOARD_PROTOCOL);
  } finally {
    for (const socket of sockets) socket.conn.close();
    await node.server.shutdown();
  }
});
