/**
 * What the network writes to an operator's log: lines peers cause limited (`network/log_limiter.ts`),
 * `--peer` failures named once and clearly, a peer's down line with its address and reason, and the
 * worker a forwarded job ran on.
 */
import assert from "node:assert/strict";
import { LogLimiter } from "../../network/log_limiter.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  NetworkActor,
  type NetworkMessage,
  type PeerInfo,
  type StaticPeerState,
} from "../../network/network_actor.ts";
import { PEER_UNREACHABLE, peerConditions } from "../../network/peer_conditions.ts";
import { Identity } from "../../protocols/identity.ts";
import type { PeerAddress } from "../../network/peer_address.ts";
import { eventually } from "../_helpers/wait.ts";
import { Connection } from "../../protocols/connection.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { tcpDuplex } from "../../protocols/tcp_transport.ts";
import { toHex } from "../../protocols/hash.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { params } from "../server/_fixtures.ts";
import { connectWorker, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

// ---- log limiter ----------------------------------------------------------------------------------
// LogLimiter (`network/log_limiter.ts`): each kind writes a few lines per window, the rest are
// counted and their count written when the window ends, with the last of them; kinds are
// independent; flush writes what is pending and stops the timers.

Deno.test("LogLimiter writes a burst per kind and window, counts the rest, and writes the count when the window ends", async () => {
  const lines: string[] = [];
  const timers = new ManualTimers();
  const limiter = new LogLimiter((line) => lines.push(line), {
    burst: 2,
    windowMs: 10_000,
    now: () => timers.now(),
    timers,
  });
  for (let i = 0; i < 1_000; i++) limiter.line("handshake failed", `peer ${i}: handshake failed`);
  limiter.line("hello refused", "peer x: hello refused");
  assert.deepEqual(lines, [
    "peer 0: handshake failed",
    "peer 1: handshake failed",
    "peer x: hello refused",
  ]);
  assert.equal(timers.pending, 1, "one timer, for the kind that left lines out");
  await timers.advance(9_999);
  limiter.line("handshake failed", "peer late: handshake failed");
  assert.equal(lines.length, 3, "still the same window");
  await timers.advance(1); // the window ends: its count, with no further line needed
  assert.deepEqual(lines.slice(3), [
    "handshake failed: 999 more line(s) left out in 10 s (last: peer late: handshake failed)",
  ]);
  assert.equal(timers.pending, 0);
  limiter.line("handshake failed", "peer next: handshake failed");
  assert.equal(lines.at(-1), "peer next: handshake failed", "a new window");
  limiter.line("handshake failed", "a");
  limiter.line("handshake failed", "b");
  await timers.advance(2_500);
  limiter.flush(); // a node stopping: what is pending, now
  assert.deepEqual(lines.slice(5), [
    "a",
    "handshake failed: 1 more line(s) left out in 3 s (last: b)",
  ]);
  assert.equal(timers.pending, 0, "no timer left armed");
  limiter.flush();
  assert.equal(lines.length, 7, "nothing more to say");
});

Deno.test("LogLimiter forgets kinds whose window has ended: one kind per peer key does not grow it without end", async () => {
  const lines: string[] = [];
  const timers = new ManualTimers();
  const limiter = new LogLimiter((line) => lines.push(line), {
    windowMs: 10_000,
    now: () => timers.now(),
    timers,
  });
  // Keys are free: a kind per failing peer (`storage: peer <key>`), each one line and gone.
  for (let i = 0; i < 5_000; i++) limiter.line(`peer ${i}`, `peer ${i}: failed`);
  assert.equal(limiter.kinds, 5_000, "all inside their window");
  await timers.advance(10_000);
  limiter.line("peer next", "peer next: failed");
  assert.equal(limiter.kinds, 1, "the ended windows are gone, their lines all written");
  assert.equal(lines.length, 5_001);
  // A kind that left lines out still has its count written when its window ends.
  for (let i = 0; i < 7; i++) limiter.line("peer busy", `peer busy: failed ${i}`);
  await timers.advance(10_000);
  assert.equal(
    lines.at(-1),
    "peer busy: 2 more line(s) left out in 10 s (last: peer busy: failed 6)",
  );
  assert.equal(limiter.kinds, 1, "'peer next' stays until a later line sweeps it");
});

// ---- peer log limit -------------------------------------------------------------------------------
// The log lines peers cause are limited (`network/log_limiter.ts`): a host that holds the node's
// handshake slots with stalled sockets and then opens and drops connections in a loop gets a few
// lines written and the rest counted, and the count is written when the node stops.

Deno.test("refused connects from one host are a few log lines and a count, not a line each", async () => {
  const system = new ActorSystem({ name: "peer-log-limit" });
  const lines: string[] = [];
  const network = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        listen: { hostname: "127.0.0.1", port: 0 },
        log: (line) => lines.push(line),
        now: () => 0, // one window for the whole test
      }),
  });
  const { port } = await network.ask<Deno.NetAddr>({ type: "listening" });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port });
  // Every handshake slot of this host held by a socket that says nothing.
  const stalled = await Promise.all(Array.from({ length: 8 }, connect));
  const N = 200;
  try {
    for (let i = 0; i < N; i += 50) {
      for (const c of await Promise.all(Array.from({ length: 50 }, connect))) c.close();
    }
    const failed = () => lines.filter((l) => l.includes("handshake failed")).length;
    // The refusals come as the listener accepts them: the burst at least before stopping.
    while (failed() < 5) await new Promise((r) => setTimeout(r, 10));
  } finally {
    for (const c of stalled) c.close();
    await system.shutdown();
  }
  const written = lines.filter((l) => /^peer .*: handshake failed/.test(l));
  assert.equal(written.length, 5, "the burst, then counted");
  const summary = lines.find((l) => l.startsWith("handshake failed: "));
  assert.ok(summary, "the count written at stop");
  // As many as the listener accepted before the node stopped, at most every connect made.
  const leftOut = Number(/: (\d+) more line/.exec(summary)![1]);
  assert.ok(leftOut >= 1 && leftOut + 5 <= N + stalled.length, `${leftOut} left out`);
});

// ---- ops ------------------------------------------------------------------------------------------
// An operator's network walkthrough. A `--peer` that never connects was logged once per redial for
// as long as the node ran (every 10 s at the cap, 8,640 lines a day for one dead peer), and a
// `--peer` pointed at something that is not a Veriflow peer port (the peer's HTTP `--port`, another
// service) said only `frame_too_large: frame of 1008813135 bytes exceeds the maximum of 16384
// bytes`, then `no handshake from the peer within 5000 ms`: nothing said the address was the wrong
// kind of port. A failure is now logged when it first happens and again only when it changes, and
// each names what to check.

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

Deno.test("a --peer that answers like an HTTP server is named as not a peer port, once for many redials", async () => {
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

Deno.test("a --peer nobody listens on is logged once with what to check, and again when the failure changes", async () => {
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
  name: "Ctrl-C on a node whose swarm bootstrap never answered does not log 'swarm unavailable'",
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

// ---- ops2 peer down -------------------------------------------------------------------------------
// `peer down KEY` named neither the address nor why. A peer killed and a peer stopped gracefully
// both logged `peer down cfb2ea56c5f002b4` with nothing after it, so an operator with several peers
// could not tell which `--peer` it was, or that the connection had only closed. The line now
// carries the peer's address, and a reason (`connection closed` when the connection recorded none).
// B is a bare connection, not a node: a node stopped cleanly says goodbye since review s62 (`peer
// KEY ADDR stopped (stopping)`), and this is the line of a peer that went away without one (killed,
// or older than goodbyes).

Deno.test({
  name: "'peer down' names the peer's address and why, when the peer goes away without a reason",
  sanitizeResources: false,
  fn: async () => {
    // B: a bare connection on a TCP listener that speaks only the peer protocol (no goodbye).
    const bIdentity = Identity.generate();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    const bConnection = (async () => {
      const conn = await listener.accept();
      return await Connection.open(tcpDuplex(conn), {
        identity: bIdentity,
        protocols: [PEER_PROTOCOL],
      });
    })();
    const lines: string[] = [];
    const a = new ActorSystem({ name: "review-s61-ops2-a" });
    const aNet = await a.spawn<NetworkMessage>({
      name: "a/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          peers: [{ hostname: "127.0.0.1", port }],
          // Not redialled within the test: only the `peer down` line is looked at.
          redialMs: 60_000,
          log: (line) => lines.push(line),
        }),
    });
    const key = toHex(bIdentity.publicKey).slice(0, 16);
    try {
      await eventually(
        async () => (await aNet.ask<PeerInfo[]>({ type: "peers" })).length === 1 || undefined,
        "A connected to B",
      );
      await (await bConnection).close();
      const down = await eventually(
        () => lines.find((l) => l.startsWith("peer down")),
        "A's peer down line",
      );
      assert.match(down, new RegExp(`^peer down ${key} 127\\.0\\.0\\.1:${port}: \\S`));
      assert.match(down, /connection closed/);
    } finally {
      listener.close();
      await a.shutdown();
      await (await bConnection.catch(() => undefined))?.close();
    }
  },
});

// ---- ops2 forwarded job ---------------------------------------------------------------------------
// A router's log did not say a job was forwarded, or to whom. The edge logged `job 029d1273a6d4
// ended (length) after 24 tokens in 72 ms`, the same line as for a job it ran itself, so an
// operator could not tell which node did what. The network port's summary now names the worker
// (`JobSummary.worker`), and the edge's end line says `on worker <key16>`.

const LOAD = { running: 0, queued: 0, slots: 4, queueLimit: 0 };

Deno.test("a job the router forwarded names its worker, in the summary and in the edge's end line", async () => {
  const system = new ActorSystem({ name: "review-s61-ops2-forwarded" });
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const lines: string[] = [];
  const gateway = new InferenceGateway({
    inference: new NetworkInferencePort(net),
    log: (line) => lines.push(line),
  });
  const worker = Identity.generate();
  const key = toHex(worker.publicKey);
  let peer: Connection | undefined;
  try {
    peer = await connectWorker(net, new TwoTokenWorker(false, "", ""), LOAD, { identity: worker });
    await eventually(
      async () => (await net.ask({ type: "worker", model: MODEL })) !== undefined || undefined,
      "the worker routable",
    );
    const handle = await gateway.startText({
      model: MODEL,
      prompt: "hi",
      params: params({ maxTokens: 2 }),
    });
    for await (const _ of handle.tokens) { /* drain */ }
    const summary = await handle.done;
    assert.equal(summary.worker, key, "the summary names the worker that ran the job");
    const ended = await eventually(
      () => lines.find((line) => line.includes(" ended ")),
      "the edge's end line",
    );
    assert.match(
      ended,
      new RegExp(
        `^job [0-9a-f]{12} ended \\(length\\) after 2 tokens in \\d+ ms on worker ${
          key.slice(0, 16)
        }`,
      ),
    );
  } finally {
    await peer?.close();
    await system.shutdown();
  }
});

Deno.test("a job run here (no worker in its summary) keeps the end line as it was", async () => {
  const lines: string[] = [];
  const local = new TwoTokenWorker(false, "", "");
  const gateway = new InferenceGateway({ inference: local, log: (line) => lines.push(line) });
  const handle = await gateway.startText({
    model: MODEL,
    prompt: "hi",
    params: params({ maxTokens: 2 }),
  });
  for await (const _ of handle.tokens) { /* drain */ }
  await handle.done;
  const ended = await eventually(
    () => lines.find((line) => line.includes(" ended ")),
    "the edge's end line",
  );
  assert.match(ended, /^job [0-9a-f]{12} ended \(length\) after 2 tokens in \d+ ms$/);
});

Deno.test("a worker node logs each job a peer ran on it, naming the peer (its NetworkActor passes its log to the peer services)", async () => {
  const system = new ActorSystem({ name: "review-s61-ops2-served" });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const workerLines: string[] = [];
  try {
    const [na, nb] = await Promise.all([
      system.spawn<NetworkMessage>({
        name: "a/network",
        factory: () => new NetworkActor({ identity: router, services: {} }),
      }),
      system.spawn<NetworkMessage>({
        name: "b/network",
        factory: () =>
          new NetworkActor({
            identity: worker,
            services: { inference: new TwoTokenWorker(false, "", "") },
            log: (line) => workerLines.push(line),
          }),
      }),
    ]);
    const [da, db] = memoryDuplexPair();
    await Promise.all([
      na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
      nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
    ]);
    await eventually(
      async () => (await na.ask({ type: "worker", model: MODEL })) !== undefined || undefined,
      "the worker routable",
    );
    const handle = await new NetworkInferencePort(na).submit({
      kind: "text",
      model: MODEL,
      prompt: "hi",
      params: params({ maxTokens: 2 }),
      nonce: "s61-served",
    });
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const served = await eventually(
      () => workerLines.find((line) => line.includes(" served for peer ")),
      "the worker's line for the job it served",
    );
    assert.match(served, new RegExp(`served for peer ${toHex(router.publicKey).slice(0, 16)}: `));
  } finally {
    await system.shutdown();
  }
});

// ---- review s74 F3 --------------------------------------------------------------------------------
// A configured peer that could not be reached showed in one log line (said once, on purpose) and
// nowhere else: `/metrics`, `/healthz`, the heartbeat and the dashboard all read the network's
// `static_peers` now, a dial state per configured address.

Deno.test("a --peer that refuses connections is kept as down with its last error and failures, a peer_unreachable condition; once it listens it is up and the condition goes", async () => {
  // A port nothing listens on (taken, then given back), listened on later by a real peer.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = { hostname: "127.0.0.1", port: (probe.addr as Deno.NetAddr).port };
  probe.close();
  const address = `${peer.hostname}:${peer.port}`;
  const system = new ActorSystem({ name: "review-s74-static-peers" });
  const peerSystem = new ActorSystem({ name: "review-s74-static-peer" });
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "d/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          peers: [peer],
          redialMs: 1,
          log: () => {},
        }),
    });
    const states = () => network.ask<StaticPeerState[]>({ type: "static_peers" });
    const down = await eventually(async () => {
      const [state] = await states();
      return state.failures >= 2 ? state : undefined;
    }, "two failed dials");
    assert.equal(down.address, address);
    assert.equal(down.up, false);
    assert.match(down.lastError ?? "", /refused/i);
    const [condition, ...others] = await peerConditions(network);
    assert.deepEqual(others, []);
    assert.equal(condition.code, PEER_UNREACHABLE);
    assert.equal(condition.status, "degraded");
    assert.ok(condition.message.includes(address), condition.message);
    assert.match(condition.message, /refused/i);
    await peerSystem.spawn<NetworkMessage>({
      name: "p/network",
      factory: () =>
        new NetworkActor({ identity: Identity.generate(), services: {}, listen: peer }),
    });
    const up = await eventually(async () => {
      const [state] = await states();
      return state.up ? state : undefined;
    }, "the peer connected");
    assert.equal(up.failures, 0);
    assert.equal(up.lastError, undefined);
    assert.deepEqual(await peerConditions(network), []);
  } finally {
    await system.shutdown();
    await peerSystem.shutdown();
  }
});
