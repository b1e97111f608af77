/**
 * Review s61 (ops): an operator's network walkthrough. A `--peer` that never connects was
 * logged once per redial for as long as the node ran (every 10 s at the cap, 8,640 lines a day
 * for one dead peer), and a `--peer` pointed at something that is not a Veriflow peer port (the
 * peer's HTTP `--port`, another service) said only `frame_too_large: frame of 1008813135 bytes
 * exceeds the maximum of 16384 bytes`, then `no handshake from the peer within 5000 ms`: nothing
 * said the address was the wrong kind of port. A failure is now logged when it first happens
 * and again only when it changes, and each names what to check.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { PeerAddress } from "../../network/peer_address.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";

/** A node that dials `peer` with a 1 ms first redial, its log lines in `lines`. */
async function dialler(peer: PeerAddress) {
  const lines: string[] = [];
  const system = new ActorSystem({ name: "review-s61-ops" });
  await system.spawn<NetworkMessage>({
    name: "d/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        peers: [peer],
        redialMs: 1,
        // The handshake's limit, when none is set: a listener that accepts and says nothing
        // fails the handshake in 300 ms, not 5 s.
        connection: { idleTimeoutMs: 300 },
        log: (line) => lines.push(line),
      }),
  });
  return { lines, close: () => system.shutdown() };
}

/** The dial lines about `peer`. */
function about(lines: string[], peer: PeerAddress): string[] {
  return lines.filter((line) => line.startsWith(`peer ${peer.hostname}:${peer.port}:`));
}

Deno.test("review s61 ops: a --peer that answers like an HTTP server is named as not a peer port, once for many redials", async () => {
  // What a peer's HTTP port (or any other service) sends a client that speaks first.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port };
  let accepted = 0;
  const sockets: Deno.TcpConn[] = [];
  const serving = (async () => {
    for await (const socket of listener) {
      accepted++;
      sockets.push(socket);
      // Kept open: the dialler closes it once it has read what is no frame of ours.
      await socket.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"))
        .catch(() => {});
    }
  })();
  const node = await dialler(peer);
  try {
    await eventually(() => accepted >= 6 ? true : undefined, "six dials to the HTTP server");
    const said = about(node.lines, peer);
    assert.equal(said.length, 1, `one line for six identical failures, got:\n${said.join("\n")}`);
    assert.match(said[0], /not a Veriflow peer port/);
    assert.match(said[0], /--p2p-port/);
    assert.match(said[0], /frame_too_large/, "the underlying failure is still named");
  } finally {
    await node.close();
    listener.close();
    for (const socket of sockets) {
      try {
        socket.close();
      } catch {
        // closed by the dialler already
      }
    }
    await serving.catch(() => {});
  }
});

Deno.test("review s61 ops: a --peer nobody listens on is logged once with what to check, and again when the failure changes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port };
  listener.close(); // nothing listens there now: every dial is refused
  const node = await dialler(peer);
  let server: Deno.Listener | undefined;
  let conns: Deno.Conn[] = [];
  try {
    await eventually(() => about(node.lines, peer).length > 0 ? true : undefined, "a dial line");
    // Many redials (1, 2, 4, … ms) while refused: only the first says so.
    const refusedFor = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await refusedFor(150);
    const said = about(node.lines, peer);
    assert.equal(said.length, 1, `one line for repeated refusals, got:\n${said.join("\n")}`);
    assert.match(said[0], /refused/i);
    assert.match(said[0], /is a node running there/);
    assert.match(said[0], /again only when the failure changes/);
    // Now something that accepts and says nothing (a failure of another kind): a new line.
    server = Deno.listen({ hostname: "127.0.0.1", port: peer.port });
    const accepting = (async () => {
      for await (const conn of server!) conns.push(conn);
    })();
    await eventually(
      () => about(node.lines, peer).length >= 2 ? true : undefined,
      "a second line once the failure changed",
    );
    const changed = about(node.lines, peer)[1];
    assert.match(changed, /no handshake/);
    assert.match(changed, /--p2p-port, not its HTTP --port/);
    server.close();
    await accepting.catch(() => {});
  } finally {
    await node.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    conns = [];
  }
});

Deno.test({
  name:
    "review s61 ops: Ctrl-C on a node whose swarm bootstrap never answered does not log 'swarm unavailable'",
  // The swarm host is a Node.js child process with its own pipes.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const dead = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    listener.close(); // no DHT node answers there
    const lines: string[] = [];
    const system = new ActorSystem({ name: "review-s61-ops-swarm" });
    await system.spawn<NetworkMessage>({
      name: "s/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          swarm: { bootstrap: [dead], bind: "127.0.0.1" },
          log: (line) => lines.push(line),
        }),
    });
    try {
      // Up, but its topic join waits for a DHT node that never answers.
      await eventually(() => lines.includes("swarm up") ? true : undefined, "the swarm host up");
    } finally {
      await system.shutdown();
    }
    await new Promise((resolve) => setTimeout(resolve, 0)); // a rejected join's line, if any
    assert.deepEqual(
      lines.filter((line) => line.startsWith("swarm unavailable")),
      [],
      "a join cut short by the node's own shutdown is no failure of the swarm",
    );
    // Nor, when the stopping host settles the join instead, a "joined" it never was.
    assert.deepEqual(lines.filter((line) => line.startsWith("swarm joined")), []);
  },
});
