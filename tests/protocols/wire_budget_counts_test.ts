/**
 * The node's `WireBudget` counts what each limit did, for `/metrics`: peer messages refused
 * `busy` by the bound that refused them (the node's and, on a connection given the budget, the
 * connection's own), streams served that a limit ended, and connections a limit closed. Before
 * stop 66 it counted only a total of its own refusals, and an operator saw none of it.
 */
import assert from "node:assert/strict";
import {
  type ConnectionOptions,
  DEFAULT_FRAME_TIMEOUT_MS,
  WireBudget,
} from "../../protocols/connection.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  CountTo,
  Echo,
  ManualTimers,
  refusedBusy,
  settle,
} from "./_helpers.ts";

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
