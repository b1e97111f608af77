/**
 * A dashboard socket's credential in its handshake (`server/dashboard_handshake.ts`, review s75
 * verify F2): 32 silent connections from 8 addresses kept every place of sockets still to send
 * their `auth` full, and a remote page with a valid key was refused 429 for as long as they stayed.
 * A key or the operator token in the handshake (a subprotocol for browsers, `Authorization` for
 * tools) now reads at once, in its client's allowance, whatever those places hold.
 */
import assert from "node:assert/strict";
import { DASHBOARD_AUTH_TIMEOUT_MS } from "../../server/dashboard_routes.ts";
import { BEARER_PROTOCOL_PREFIX, DASHBOARD_PROTOCOL } from "../../server/dashboard_handshake.ts";
import { addr, dashboardNode, KEY, OPERATOR } from "./_dashboard_node.ts";
import { type RawSocket, rawUpgrade } from "./_raw_ws.ts";
import { eventually } from "../_helpers/wait.ts";

/** Waiting places (and as many pushed-out ones) small enough to fill with a few sockets. */
const PENDING = 2;

/** `text` as base64url without padding, as a browser page encodes its token. */
function base64Url(text: string): string {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** A node whose auth-pending places (waiting and pushed out) are all held by silent sockets. */
async function lockedOut() {
  const node = dashboardNode({
    limits: { authPendingSockets: PENDING, authPendingSocketsPerAddress: 1 },
  });
  const silent: RawSocket[] = [];
  // 2 × PENDING silent sockets from as many addresses: the first PENDING are pushed out by the
  // next and never answer the close.
  for (let i = 0; i < 2 * PENDING; i++) {
    node.peer.now = addr(`203.0.113.${i + 1}`);
    const socket = await rawUpgrade(node.server.url, "/dashboard/live");
    assert.equal(socket.status, 101, `silent socket ${i}`);
    silent.push(socket);
  }
  node.peer.now = addr("203.0.113.200");
  const refused = await rawUpgrade(node.server.url, "/dashboard/live");
  silent.push(refused);
  assert.equal(refused.status, 429, "a page without a credential is locked out");
  return { ...node, silent };
}

/** Open a Deno WebSocket (a browser's events) and gather its messages. */
async function page(url: string, protocols?: string[], headers?: Record<string, string>) {
  const target = url.replace("http", "ws") + "/dashboard/live";
  const ws = headers === undefined
    ? new WebSocket(target, protocols)
    // deno-lint-ignore no-explicit-any
    : new WebSocket(target, { protocols, headers } as any);
  const messages: { type?: string; access?: string; code?: string }[] = [];
  ws.onmessage = (event) => messages.push(JSON.parse(event.data));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = (event) => reject(new Error(`no socket: ${(event as ErrorEvent).message}`));
  });
  return { ws, messages };
}

Deno.test("dashboard handshake: a browser page with a key in the bearer subprotocol reads at once while silent sockets hold every auth-pending place; answered with veriflow.dashboard, never the token", async () => {
  const node = await lockedOut();
  try {
    node.peer.now = addr("198.51.100.77");
    const { ws, messages } = await page(node.server.url, [
      DASHBOARD_PROTOCOL,
      BEARER_PROTOCOL_PREFIX + base64Url(KEY),
    ]);
    assert.equal(ws.protocol, DASHBOARD_PROTOCOL);
    await eventually(
      () => messages.some((m) => m.type === "snapshot"),
      "the key holder's snapshot",
    );
    assert.equal(messages.find((m) => m.type === "hello")?.access, "read");
    ws.close();
  } finally {
    for (const socket of node.silent) socket.conn.close();
    await node.server.shutdown();
  }
});

Deno.test("dashboard handshake: a tool's Authorization header with the operator token reads at once, with operator access, while the auth-pending places are held", async () => {
  const node = await lockedOut();
  try {
    node.peer.now = addr("198.51.100.78");
    const { ws, messages } = await page(node.server.url, undefined, {
      authorization: `Bearer ${OPERATOR}`,
    });
    await eventually(() => messages.some((m) => m.type === "snapshot"), "the operator's snapshot");
    assert.equal(messages.find((m) => m.type === "hello")?.access, "operator");
    ws.close();
  } finally {
    for (const socket of node.silent) socket.conn.close();
    await node.server.shutdown();
  }
});

Deno.test("dashboard auth deadline: a socket closed at its deadline leaves the waiting places then, and the next socket pushes out no one (no too_many_sockets counted)", async () => {
  const node = dashboardNode({
    limits: { authPendingSockets: PENDING, authPendingSocketsPerAddress: 1 },
  });
  const silent: RawSocket[] = [];
  try {
    for (let i = 0; i < PENDING; i++) {
      node.peer.now = addr(`203.0.113.${i + 1}`);
      silent.push(await rawUpgrade(node.server.url, "/dashboard/live"));
    }
    await eventually(
      () =>
        [...node.timers.armed.values()].filter((t) => t.ms === DASHBOARD_AUTH_TIMEOUT_MS)
          .length === PENDING,
      "both auth deadlines armed",
    );
    node.timers.fireFor(DASHBOARD_AUTH_TIMEOUT_MS); // both closed 1008; they never answer
    for (let i = 0; i < PENDING; i++) {
      node.peer.now = addr(`203.0.113.${i + 101}`);
      const socket = await rawUpgrade(node.server.url, "/dashboard/live");
      silent.push(socket);
      assert.equal(socket.status, 101, `a new waiting socket ${i}`);
    }
    assert.equal(
      node.stats.refused.get("too_many_sockets") ?? 0,
      0,
      "no socket was pushed out: the closed ones had left the waiting places already",
    );
  } finally {
    for (const socket of silent) socket.conn.close();
    await node.server.shutdown();
  }
});
