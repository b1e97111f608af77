/**
 * The node-wide wire budget (`protocols/wire_budget.ts`): a node's limits hold for the node, not
 * per connection; the node's config reaches every connection; what a peer that never finishes
 * anything can hold; and the counts the budget keeps for `/metrics`.
 */
import assert from "node:assert/strict";
import {
  Connection,
  type ConnectionOptions,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_STREAM_CREDIT_TIMEOUT_MS,
  defineProtocol,
  WireBudget,
} from "../../protocols/connection.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  CountTo,
  Echo,
  ManualTimers,
  openPair,
  refusedBusy,
  settle,
} from "./_helpers.ts";
import { z } from "zod";
import { defineMessage } from "../../protocols/message_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { connectionOptionsOf, parseNodeConfig } from "../../node/config.ts";
import { eventually } from "../_helpers/wait.ts";

// The node's `WireBudget` counts what each limit did, for `/metrics`: peer messages refused `busy`
// by the bound that refused them (the node's and, on a connection given the budget, the
// connection's own), streams served that a limit ended, and connections a limit closed. Before stop
// 66 it counted only a total of its own refusals, and an operator saw none of it.

/** Liveness off: these tests are about counts, not about time. */
const QUIET: ConnectionOptions = { keepaliveMs: 0, idleTimeoutMs: 0 };

Deno.test("a budget's report names the bound behind each busy refusal: the node's per-peer handlers, its streams, and a connection's own maxInboundRequests", async () => {
  const budget = new WireBudget({ maxHandlersPerPeer: 2, maxStreams: 1 });
  const release = Promise.withResolvers<void>();
  const held = async ({ text, n }: { text: string; n: number }) => {
    await release.promise;
    return { text, n };
  };
  // One peer (one connection without a handshake is its own peer): 3 requests, its share is 2.
  const a = connectedPair(QUIET, { ...QUIET, budget });
  a.server.handle(Echo, held);
  const asked = [1, 2, 3].map((n) => refusedBusy(a.client.request(Echo, { text: "a", n })));
  // Another connection whose own bound is 1: its second request is refused by the connection.
  const b = connectedPair(QUIET, { ...QUIET, budget, maxInboundRequests: 1 });
  b.server.handle(Echo, held);
  b.server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
  const own = [1, 2].map((n) => refusedBusy(b.client.request(Echo, { text: "b", n })));
  await settle();
  // A third peer's stream: the node serves at most 1 stream, and holds none, so it is admitted;
  // a fourth peer's is refused for the node's streams.
  const c = connectedPair(QUIET, { ...QUIET, budget });
  c.server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
  const first = c.client.openStream(CountTo, { to: 1 }).getReader();
  first.read().catch(() => {});
  await settle();
  const d = connectedPair(QUIET, { ...QUIET, budget });
  d.server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
  const second = d.client.openStream(CountTo, { to: 1 }).getReader().read();
  assert.ok(await refusedBusy(second));
  release.resolve();
  assert.deepEqual((await Promise.all(asked)).filter(Boolean).length, 1);
  assert.deepEqual((await Promise.all(own)).filter(Boolean).length, 1);
  const report = budget.report();
  assert.deepEqual(report.refusedBy, {
    handlers: 0,
    handlers_per_peer: 1,
    streams: 1,
    streams_per_peer: 0,
    queued_bytes: 0,
    connection_requests: 1,
    connection_queued_bytes: 0,
  });
  assert.equal(report.refused, 2, "stats().refused stays the node's own refusals");
  assert.deepEqual(report.limits, {
    maxHandlers: 4096,
    maxHandlersPerPeer: 2,
    maxStreams: 1,
    maxStreamsPerPeer: 256,
    maxQueuedBytes: 256 * 1024 * 1024,
  });
  await first.cancel();
  await Promise.all([a, b, c, d].map((p) => p.close()));
});

Deno.test("a stream ended credit_timeout and a connection closed for a frame not whole in time are counted by reason, on the connection's clock", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    budget,
    streamCreditTimeoutMs: 10_000,
  });
  connection.handle(CountTo, () => new ReadableStream({ pull: (c) => c.enqueue({ i: 0 }) }));
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 5 } }); // never any credit
  await timers.advance(10_000);
  const ended = await peer.next();
  assert.equal((ended.body as { code: string }).code, "credit_timeout");
  await settle();
  assert.deepEqual(budget.report().streamsEnded, { credit_timeout: 1, busy: 0 });
  // Now a frame announced and never finished.
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 100);
  await peer.sendBytes(header);
  await timers.advance(DEFAULT_FRAME_TIMEOUT_MS);
  assert.equal(connection.isClosed, true);
  assert.deepEqual(budget.report().connectionsClosed, { frame_timeout: 1 });
  await timers.advance(5_000);
  await connection.closed;
});

Deno.test("a connection closed for too many refusals, for a silent peer or for an oversized frame is counted under that reason; a local close is not", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  // Too many refusals: garbage frames past maxRefusals.
  const refused = connectionWithRawPeer({ timers, budget, maxRefusals: 3 });
  for (let id = 1; id <= 5; id++) {
    await refused.peer.send({ v: 1, type: "test.nobody_handles", id, body: null });
  }
  await settle();
  assert.equal(refused.connection.isClosed, true);
  // Silent: the idle timeout.
  const silent = connectionWithRawPeer({
    timers,
    budget,
    keepaliveMs: 1_000,
    idleTimeoutMs: 3_000,
  });
  await timers.advance(3_000);
  assert.equal(silent.connection.isClosed, true);
  // A frame announced larger than maxFrameBytes.
  const big = connectionWithRawPeer({ timers, budget, maxFrameBytes: 1024 });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 1_000_000);
  await big.peer.sendBytes(header);
  await settle();
  assert.equal(big.connection.isClosed, true);
  // A local close.
  const local = connectionWithRawPeer({ timers, budget });
  const closing = local.connection.close();
  await timers.advance(5_000);
  await Promise.all([
    closing,
    refused.connection.closed,
    silent.connection.closed,
    big.connection.closed,
  ]);
  assert.deepEqual(budget.report().connectionsClosed, {
    too_many_refusals: 1,
    peer_timeout: 1,
    frame_too_large: 1,
  });
});

// A node's limits hold for the node, not per connection. Each connection bounds its own handlers
// (`maxInboundRequests`) and queued bytes (`maxQueuedBytes`); N peers, each within those, made the
// node hold N times them. Every connection given one `WireBudget` (`protocols/wire_budget.ts`) asks
// it too, and a request past it is answered `busy`.

const Big = defineMessage("test.s65_big", z.object({ data: z.instanceof(Uint8Array) }));

const GetBig = defineMessage("test.s65_get_big", z.object({ bytes: z.number().int() }), {
  reply: Big,
});

const ECHO = defineProtocol("test.s65_echo", 1, [Echo]);

/** A handler that holds its request until `release` resolves. */
function heldEcho(release: Promise<void>) {
  return async ({ text, n }: { text: string; n: number }) => {
    await release;
    return { text, n };
  };
}

Deno.test("N connections each within their own maxInboundRequests run at most the node's maxHandlers together; the rest are answered busy", async () => {
  const budget = new WireBudget({ maxHandlers: 8, maxHandlersPerPeer: 8 });
  const release = Promise.withResolvers<void>();
  const pairs = Array.from({ length: 4 }, () => {
    const pair = connectedPair(QUIET, { ...QUIET, maxInboundRequests: 4, budget });
    pair.server.handle(Echo, heldEcho(release.promise));
    return pair;
  });
  // 16 requests, 4 per connection: each connection is within its own bound of 4.
  const asked = pairs.flatMap(({ client }) =>
    Array.from({ length: 4 }, (_, n) => client.request(Echo, { text: "x", n }))
  );
  const outcomes = asked.map((p) => refusedBusy(p));
  await settle();
  const running = pairs.reduce((n, { server }) => n + server.stats().inboundRequests, 0);
  assert.equal(running, 8, "the node runs maxHandlers handlers, not 4 connections × 4");
  assert.equal(budget.stats().handlers, 8);
  release.resolve();
  const busy = (await Promise.all(outcomes)).filter(Boolean).length;
  assert.equal(busy, 8, "the 8 past the node's bound are answered busy");
  await settle();
  assert.equal(budget.stats().handlers, 0, "every slot is given back when its handler ends");
  assert.equal(budget.stats().refused, 8);
  await Promise.all(pairs.map((p) => p.close()));
});

Deno.test("an honest peer is served while a flooding peer holds its whole share, on any number of its connections", async () => {
  const budget = new WireBudget({ maxHandlers: 8, maxHandlersPerPeer: 4 });
  const release = Promise.withResolvers<void>();
  const serverIdentity = Identity.generate();
  const flooder = Identity.generate();
  const server = { identity: serverIdentity, protocols: [ECHO], ...QUIET, budget };
  const serve = (c: Connection) => c.handle(Echo, heldEcho(release.promise));
  // The flooder opens two connections under one key, 4 requests on each (its own bound is 1024).
  const floods = await Promise.all(
    [0, 1].map(() => openPair({ identity: flooder, protocols: [ECHO], ...QUIET }, server)),
  );
  floods.forEach((p) => serve(p.server));
  const flooded = floods.flatMap(({ client }) =>
    Array.from({ length: 4 }, (_, n) => refusedBusy(client.request(Echo, { text: "f", n })))
  );
  await settle();
  assert.equal(budget.stats().handlers, 4, "one key holds its share on all its connections");
  const honest = await openPair({ protocols: [ECHO], ...QUIET }, server);
  honest.server.handle(Echo, ({ text, n }) => ({ text, n })); // answers at once
  assert.deepEqual(await honest.client.request(Echo, { text: "h", n: 1 }), { text: "h", n: 1 });
  release.resolve();
  assert.equal((await Promise.all(flooded)).filter(Boolean).length, 4, "the flood's rest: busy");
  await Promise.all([...floods, honest].map((p) => p.close()));
  assert.equal(budget.stats().handlers, 0);
});

Deno.test("streams served on all connections stay within the node's maxStreams; one past it is answered busy, and the slot comes back when a stream ends", async () => {
  const budget = new WireBudget({ maxStreams: 2 });
  const pairs = Array.from({ length: 3 }, () => {
    const pair = connectedPair(QUIET, { ...QUIET, budget });
    // A stream that never ends on its own: it ends when its reader cancels it.
    pair.server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
    return pair;
  });
  const readers = pairs.map(({ client }) => client.openStream(CountTo, { to: 1 }).getReader());
  const third = readers[2].read();
  third.catch(() => {}); // checked below
  await settle();
  assert.equal(budget.stats().streams, 2);
  await assert.rejects(third, (e: unknown) => e instanceof RemoteError && e.code === "busy");
  await readers[0].cancel();
  await settle();
  assert.equal(budget.stats().streams, 1, "a cancelled stream gives its slot back");
  const again = pairs[2].client.openStream(CountTo, { to: 1 }).getReader();
  await settle();
  assert.equal(budget.stats().streams, 2, "and another peer's stream takes it");
  await again.cancel();
  await readers[1].cancel();
  await Promise.all(pairs.map((p) => p.close()));
  assert.equal(budget.stats().streams, 0);
  assert.equal(budget.stats().handlers, 0);
});

Deno.test("bytes queued to a peer that does not read count for the whole node: another peer's requests are answered busy until that connection closes", async () => {
  const budget = new WireBudget({ maxQueuedBytes: 64 * 1024 });
  const timers = new ManualTimers();
  // A peer that asks for 10 × 32 KiB and never reads: the transport takes the first replies
  // (to its 16 KiB), the rest stay queued.
  const { connection, peer } = connectionWithRawPeer(
    { timers, budget },
    { highWaterMarkBytes: 16 * 1024 },
  );
  connection.handle(GetBig, ({ bytes }) => ({ data: new Uint8Array(bytes) }));
  for (let id = 1; id <= 10; id++) {
    await peer.send({ v: 1, type: GetBig.type, id, body: { bytes: 32 * 1024 } });
  }
  await settle();
  assert.ok(connection.stats().queuedBytes > budget.maxQueuedBytes);
  assert.equal(budget.stats().queuedBytes, connection.stats().queuedBytes);
  const other = connectedPair(QUIET, { ...QUIET, budget });
  other.server.handle(Echo, ({ text, n }) => ({ text, n }));
  assert.ok(
    await refusedBusy(other.client.request(Echo, { text: "o", n: 1 })),
    "another peer is told busy while the node holds its bytes",
  );
  const closed = connection.close();
  await timers.advance(5_000); // past the close grace: the stuck write is abandoned
  await closed;
  assert.equal(budget.stats().queuedBytes, 0, "a closed connection's bytes leave the node's count");
  assert.deepEqual(await other.client.request(Echo, { text: "o", n: 2 }), { text: "o", n: 2 });
  await other.close();
});

// The node's budget reaches its connections. The node's config (`network.wire`) becomes one
// `WireBudget` and the two deadlines in the options of every peer connection
// (`connectionOptionsOf`), and the NetworkActor opens every connection with that one budget,
// logging its refusals (`network/_peer_transports.ts`). Peers connect over in-memory duplexes.

/** The code a request failed with (or "ok"). */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return error instanceof RemoteError ? error.code : String(error);
  }
}

Deno.test("network.wire in the node's config becomes one budget and the deadlines of every peer connection", () => {
  const network = parseNodeConfig({
    network: { wire: { maxHandlers: 3, maxStreamsPerPeer: 2, frameTimeoutMs: 0 } },
  }).network;
  const options = connectionOptionsOf(network);
  assert.equal(options.budget?.maxHandlers, 3);
  assert.equal(options.budget?.maxStreamsPerPeer, 2);
  assert.equal(options.budget?.maxHandlersPerPeer, 1024, "the rest keep their defaults");
  assert.equal(options.frameTimeoutMs, 0);
  assert.equal(options.streamCreditTimeoutMs, 120_000);
  assert.equal(options.keepaliveMs, network.keepaliveMs);
  assert.throws(() => parseNodeConfig({ network: { wire: { maxHandlers: 0 } } }));
});

Deno.test("the NetworkActor opens every connection with the node's one budget: a request past it is answered busy and logged, and served once there is room", async () => {
  const budget = new WireBudget({ maxHandlers: 1 });
  const system = new ActorSystem({ name: "s65-wiring" });
  const logs: string[] = [];
  const network = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        connection: { budget },
        log: (line) => logs.push(line),
      }),
  });
  const [near, far] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    network.ask<Connection>({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
  ]);
  try {
    const ask = () => peer.request(ProofRequestMessage, { receiptId: "ab".repeat(32) });
    assert.equal(budget.admit("another connection", false), undefined); // the node's one slot
    assert.equal(await outcome(ask()), "busy", "refused by the node's budget, not its own");
    assert.ok(logs.some((l) => l.includes("request refused busy") && l.includes("at most 1")));
    budget.release("another connection", false);
    // Served now: this node runs no prover, which is its answer.
    assert.equal(await outcome(ask()), "service_unavailable");
    await eventually(() => budget.stats().handlers === 0, "the handler's slot given back");
  } finally {
    await peer.close();
    await system.shutdown();
  }
});

// What a peer that keeps a connection alive, but never finishes anything, can hold. A stream it
// never credits held its handler (and the source's job and buffers) for as long as the peer
// answered pings; a frame it announced and trickled a byte per keepalive period held the connection
// for ever, every byte counting as life. Both are cut on the connection's clock
// (`streamCreditTimeoutMs`, `frameTimeoutMs`), here a fake one.

/** Close `connection`, moving its fake clock past the close grace (a raw peer never ends its side). */
async function closeOn(connection: Connection, timers: ManualTimers): Promise<void> {
  const closed = connection.close();
  await timers.advance(5_000);
  await closed;
}

/** A source that always has a next chunk, and says when it was cancelled. */
function endless(): { stream: ReadableStream<{ i: number }>; cancelled: Promise<unknown> } {
  const cancelled = Promise.withResolvers<unknown>();
  let i = 0;
  const stream = new ReadableStream<{ i: number }>({
    pull: (controller) => controller.enqueue({ i: i++ }),
    cancel: (reason) => cancelled.resolve(reason),
  }, { highWaterMark: 0 });
  return { stream, cancelled: cancelled.promise };
}

Deno.test("a stream whose requester never grants credit ends credit_timeout after streamCreditTimeoutMs on the connection's clock, its source cancelled and its slots given back", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    budget,
    streamCreditTimeoutMs: 10_000,
  });
  const source = endless();
  connection.handle(CountTo, () => source.stream);
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 5 } }); // and no credit, ever
  await settle();
  await timers.advance(9_999);
  assert.equal(connection.stats().inboundRequests, 1, "still served just before the deadline");
  assert.equal(budget.stats().streams, 1);
  await timers.advance(1);
  const error = await peer.next();
  assert.equal(error.type, "error");
  assert.equal(error.re, 1);
  assert.equal((error.body as { code: string }).code, "credit_timeout");
  await source.cancelled;
  await settle();
  assert.equal(connection.stats().inboundRequests, 0, "the handler is gone");
  assert.deepEqual(budget.stats(), { handlers: 0, streams: 0, queuedBytes: 0, refused: 0 });
  assert.equal(connection.isClosed, false, "the connection itself goes on");
  await closeOn(connection, timers);
});

Deno.test("credit that comes restarts the stream's credit deadline: a slow honest reader is not cut", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, streamCreditTimeoutMs: 10_000 });
  connection.handle(CountTo, () => endless().stream);
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 5 } });
  let id = 100;
  for (let round = 0; round < 5; round++) {
    await timers.advance(9_000); // a slow reader: one chunk every 9 s
    await peer.send({ v: 1, type: "credit", id: id++, re: 1, body: { chunks: 1 } });
    const chunk = await peer.next();
    assert.equal(chunk.type, CountTo.chunk!.type, `chunk ${round} arrives, not an error`);
  }
  assert.equal(connection.stats().inboundRequests, 1);
  await closeOn(connection, timers);
});

Deno.test("a frame announced and trickled a byte per keepalive period is cut off frameTimeoutMs after its first byte, though bytes keep arriving", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    idleTimeoutMs: 5_000,
    frameTimeoutMs: 30_000,
  });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 1_000);
  await peer.sendBytes(header);
  for (let t = 0; t < 28_000; t += 4_000) {
    await timers.advance(4_000); // under the idle timeout: each byte is life
    await peer.sendBytes(new Uint8Array([0xa0]));
  }
  await settle();
  assert.equal(connection.isClosed, false, "still reading the frame at 28 s");
  await timers.advance(2_000);
  assert.equal(connection.isClosed, true);
  assert.equal(connection.closeReason?.constructor.name, "PeerTimeoutError");
  assert.equal((connection.closeReason as { code?: string }).code, "peer_timeout");
  await timers.advance(5_000);
  await connection.closed;
});

Deno.test("frames that each complete in time never trip the frame deadline, however long the connection lives", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    idleTimeoutMs: 0,
    frameTimeoutMs: 1_000,
  });
  for (let i = 0; i < 10; i++) {
    // Each ping in two halves, 900 ms apart: never whole-frame late, 9 s in all.
    const frame = new Uint8Array([0, 0, 0, 1, 0xf6]);
    await peer.sendBytes(frame.subarray(0, 2));
    await timers.advance(900);
    await peer.sendBytes(frame.subarray(2));
    await timers.advance(100);
  }
  assert.equal(connection.isClosed, false);
  await closeOn(connection, timers);
  await timers.advance(5_000);
});

Deno.test("the defaults: streams wait 120 s for credit (above the inference worker's 60 s stall), frames 60 s to complete", () => {
  assert.equal(DEFAULT_STREAM_CREDIT_TIMEOUT_MS, 120_000);
  assert.equal(DEFAULT_FRAME_TIMEOUT_MS, 60_000);
});
