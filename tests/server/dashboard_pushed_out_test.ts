/**
 * The dashboard's sockets waiting for their `auth`, pushed out by newer ones (review s75 F1): a
 * pushed-out socket whose client never answers the close keeps its connection, and Deno keeps
 * reading a message of up to 64 MiB for it, so it must count until its `onclose`, not from when
 * the node closes it. Up to `http.dashboardAuthPendingSockets` wait and as many pushed out may be
 * still closing; with both full, a new socket is refused 429 `too_many_sockets`.
 */
import assert from "node:assert/strict";
import { eventually } from "../_helpers/wait.ts";
import { addr, dashboardNode } from "./_dashboard_node.ts";
import { closeCodeOf, dropAll, type RawSocket, rawUpgrade } from "./_raw_ws.ts";

Deno.test("dashboard caps: sockets pushed out of the auth-waiting places count until their close really fires; with as many not closed, a new socket gets 429 too_many_sockets", async () => {
  const { server, stats, peer } = dashboardNode({ limits: { authPendingSockets: 2 } });
  const open: RawSocket[] = [];
  /** A raw socket from its own address: it never answers a close, as a stuck client. */
  const connect = async (i: number) => {
    peer.now = addr(`203.0.113.${i}`);
    const socket = await rawUpgrade(server.url, "/dashboard/live");
    open.push(socket);
    return socket;
  };
  try {
    const first = await connect(1);
    const second = await connect(2);
    assert.equal(first.status, 101);
    assert.equal(second.status, 101);
    // Two more push the first two out (close 1013), which never answer their close.
    assert.equal((await connect(3)).status, 101);
    assert.equal(await closeCodeOf(first), 1013, "the oldest pushed out");
    assert.equal((await connect(4)).status, 101);
    assert.equal(await closeCodeOf(second), 1013, "the next oldest pushed out");
    assert.equal(stats.refused.get("too_many_sockets"), 2);

    // Two wait, two pushed out still hold their connections: no place for a fifth.
    const over = await connect(5);
    assert.equal(over.status, 429, "the unclosed pushed-out sockets still count");
    assert.equal(over.headers.get("retry-after"), "10");
    const body = new TextDecoder().decode(over.rest);
    assert.match(body, /"code":"too_many_sockets"/);
    assert.match(body, /2 more it pushed out have not closed yet/);
    assert.equal(stats.refused.get("too_many_sockets"), 3, "counted");

    // Once a pushed-out connection has really closed, its place comes back.
    first.conn.close();
    await eventually(async () => (await connect(6)).status === 101, "a place given back");
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});
