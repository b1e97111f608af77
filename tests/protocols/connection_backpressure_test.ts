/**
 * A `Connection` under backpressure: streams' credit, the write budget, and hostile stream senders
 * and requesters that must not make queues grow without bound.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { defineMessage, MessageRegistry } from "../../protocols/message_registry.ts";
import {
  ConnectionClosedError,
  FlowControlError,
  type ProtocolError,
  RequestTimeoutError,
} from "../../protocols/protocol_errors.ts";
import { ErrorMessage } from "../../protocols/messages.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  Count,
  CountTo,
  Echo,
  ManualTimers,
  settle,
} from "./_helpers.ts";
import type { Envelope } from "../../protocols/envelope.ts";
import type { ConnectionCore } from "../../protocols/_connection_common.ts";
import { Requester } from "../../protocols/_connection_requester.ts";

const Chunk = defineMessage("test.bp_chunk", z.object({ data: z.instanceof(Uint8Array) }));

const Get = defineMessage("test.bp_get", z.object({ i: z.number().int() }), { reply: Chunk });

const Watch = defineMessage("test.bp_watch", z.object({ i: z.number().int() }), { chunk: Chunk });

const Put = defineMessage("test.bp_put", z.object({ data: z.instanceof(Uint8Array) }), {
  reply: Chunk,
});

/** Frame overhead of a Chunk envelope beyond its data: generous, for the "+ one frame" slack. */
const ENVELOPE_SLACK = 256;

/** An encoded `busy` error answer, at most (a short message and the envelope). */
const BUSY_ANSWER_BYTES = 256;

Deno.test("outbound requests wait for a slot beyond maxPendingRequests, in order", async () => {
  const { client, server, close } = connectedPair({ maxPendingRequests: 2 });
  const release = Promise.withResolvers<void>();
  const started: number[] = [];
  server.handle(Echo, async (b) => {
    started.push(b.n);
    await release.promise;
    return b;
  });
  const replies = Promise.all(
    Array.from({ length: 5 }, (_, n) => client.request(Echo, { text: "x", n })),
  );
  await settle();
  assert.equal(client.stats().pendingRequests, 2);
  assert.equal(client.stats().waitingRequests, 3);
  assert.equal(server.stats().inboundRequests, 2, "only two reached the peer");
  release.resolve();
  assert.deepEqual((await replies).map((r) => r.n), [0, 1, 2, 3, 4]);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  await close();
});

Deno.test("time spent waiting for a slot counts against the request's timeout", async () => {
  const timers = new ManualTimers();
  const { client, server, close } = connectedPair(
    { maxPendingRequests: 1, timers, keepaliveMs: 0, idleTimeoutMs: 0 },
    { timers, keepaliveMs: 0, idleTimeoutMs: 0 },
  );
  let calls = 0;
  server.handle(Echo, () => {
    calls++;
    return new Promise(() => {});
  });
  const first = client.request(Echo, { text: "a", n: 1 });
  const second = client.request(Echo, { text: "b", n: 2 }, { timeoutMs: 1_000 });
  first.catch(() => {});
  const outcome = second.then(() => null, (e) => e);
  await timers.advance(1_000);
  assert.ok((await outcome) instanceof RequestTimeoutError);
  assert.equal(calls, 1, "the second request never went out");
  assert.equal(client.stats().waitingRequests, 0);
  await client.close();
  await timers.advance(3_000);
  await server.closed;
  await close();
});

Deno.test("a peer that floods requests, pings and 1,000 streams and never reads keeps our queue within budget", async () => {
  const budget = 64 * 1024;
  const chunkBytes = 8 * 1024;
  const maxInboundRequests = 1024; // the default, named for the bound below
  const timers = new ManualTimers(); // no timeouts fire: this is about memory, not liveness
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: budget, maxInboundRequests },
    { highWaterMarkBytes: 16 * 1024 },
  );
  connection.handle(Get, () => ({ data: new Uint8Array(chunkBytes) }));
  connection.handle(Watch, () =>
    new ReadableStream({
      pull: (c) => c.enqueue({ data: new Uint8Array(chunkBytes) }),
    }, { highWaterMark: 0 }));
  let maxQueued = 0;
  const sample = () => (maxQueued = Math.max(maxQueued, connection.stats().queuedBytes));
  let id = 1;
  // Every write below completes only because the read loop keeps reading: it never blocks
  // on the writer, though the writer is stuck.
  for (let i = 0; i < 1_000; i++) {
    await peer.send({ v: 1, type: Get.type, id: id++, body: { i } });
    if (i % 50 === 0) sample();
  }
  for (let i = 0; i < 1_000; i++) {
    await peer.send({ v: 1, type: "ping", id: id++, body: { nonce: i } });
    if (i % 50 === 0) sample();
  }
  for (let i = 0; i < 1_000; i++) {
    const re = id++;
    await peer.send({ v: 1, type: Watch.type, id: re, body: { i } });
    await peer.send({ v: 1, type: "credit", id: id++, re, body: { chunks: 16 } });
    if (i % 50 === 0) sample();
  }
  await settle();
  sample();
  const stats = connection.stats();
  console.log(
    `flood: max queued ${maxQueued} B (budget ${budget}), ${stats.framesReceived} frames read, ` +
      `${stats.droppedFrames} best-effort frames dropped, ${stats.inboundRequests} handlers, ` +
      `${stats.waitingSends} sends waiting`,
  );
  assert.equal(stats.framesReceived, 4_000, "the read loop read every frame");
  assert.ok(maxQueued <= budget + chunkBytes + ENVELOPE_SLACK, `queued up to ${maxQueued} B`);
  assert.ok(stats.droppedFrames > 0, "pongs and busy errors beyond the budget were dropped");
  // Restated in review s60: an admission `busy` answer now waits for room (offered, it was
  // always dropped when the budget was full, and the sender never learnt of the refusal), so
  // beside one waiting send per handler up to maxInboundRequests small `busy` answers wait; past
  // that they are dropped as before. Still a bound: a peer that never reads cannot grow it.
  assert.ok(
    stats.waitingSends <= stats.inboundRequests + maxInboundRequests,
    "at most one waiting send per handler, and maxInboundRequests busy answers",
  );
  assert.ok(
    stats.waitingBytes <= stats.inboundRequests * (chunkBytes + ENVELOPE_SLACK) +
        maxInboundRequests * BUSY_ANSWER_BYTES,
    `${stats.waitingBytes} B waiting`,
  );
  assert.ok(stats.inboundRequests < 100, `${stats.inboundRequests} handlers admitted`);
  await peer.close();
  await connection.close();
  await timers.advance(3_000);
  await connection.closed;
});

Deno.test("replies to a burst of requests from a peer that never reads do not pile up outside the budget, and each request is answered", async () => {
  const budget = 64 * 1024;
  const replyBytes = 16 * 1024;
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: budget },
    { highWaterMarkBytes: 16 * 1024 },
  );
  // An async handler (a store read, an actor ask): the whole burst is admitted before any
  // reply exists, since nothing is owed yet when the requests arrive.
  const release = Promise.withResolvers<void>();
  connection.handle(Get, async () => {
    await release.promise;
    return { data: new Uint8Array(replyBytes) };
  });
  for (let i = 0; i < 1_000; i++) await peer.send({ v: 1, type: Get.type, id: i + 1, body: { i } });
  await settle();
  assert.equal(connection.stats().inboundRequests, 1_000);
  release.resolve();
  await settle();
  const stats = connection.stats();
  // Replies wait beyond the budget up to one more budget's worth; the rest are ~100-byte
  // `busy` answers.
  const held = stats.queuedBytes + stats.waitingBytes;
  const bound = 2 * budget + 2 * (replyBytes + ENVELOPE_SLACK) + 1_000 * BUSY_ANSWER_BYTES;
  assert.ok(held <= bound, `${held} B held for the peer (bound ${bound})`);
  // The peer reads now: every request is answered, with its reply or `busy` (ask again), and
  // none is left to run into its request timeout.
  const answers = { replies: 0, busy: 0 };
  for (let i = 0; i < 1_000; i++) {
    const answer = await peer.next();
    if (answer.type === ErrorMessage.type) {
      assert.equal((answer.body as { code: string }).code, "busy");
      answers.busy++;
    } else answers.replies++;
  }
  assert.ok(answers.busy > 900, `${answers.busy} answered busy`);
  assert.ok(answers.replies >= 1, `${answers.replies} replied`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});

Deno.test("our own requests wait for room in the byte budget when the peer does not read", async () => {
  const budget = 32 * 1024;
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: budget },
    { highWaterMarkBytes: 8 * 1024 },
  );
  const body = { data: new Uint8Array(4 * 1024) };
  const pending = Array.from({ length: 100 }, () => connection.request(Put, body).catch(() => {}));
  await settle();
  const stats = connection.stats();
  assert.ok(stats.queuedBytes <= budget + 4 * 1024 + ENVELOPE_SLACK, `${stats.queuedBytes} B`);
  assert.ok(stats.waitingSends > 50, `${stats.waitingSends} requests waiting for room`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
  await Promise.all(pending);
});

// The connection layer under a hostile stream sender: the credit frames a stream's reader sends
// back must not pile up without bound while the peer does not read them
// (`protocols/_connection_requester.ts`, the receive side of `openStream`).
//
// Credit is a frame that must arrive, so it waits for room in the write budget instead of being
// dropped. The peer's allowance grows as soon as our reader has read (that is what credit is
// for), so a peer that keeps sending the chunks it knows it may send, and does not read what we
// send, made our reader queue one more credit frame per half window read, each waiting outside
// the budget: memory that grew with every chunk the peer sent, for as long as it read a trickle
// (enough for the keepalive to see progress).

Deno.test("a peer that sends a stream's chunks and never reads our credits leaves at most one credit frame of that stream waiting, and is held to the credit it was sent", async () => {
  const window = 16;
  const chunks = 4_000;
  const timers = new ManualTimers(); // no timeouts fire: this is about memory, not liveness
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: 1024 },
    { highWaterMarkBytes: 1024 },
  );
  const stream = connection.openStream(CountTo, { to: chunks }, { window });
  let read = 0;
  const reading = (async () => {
    for await (const _ of stream) read++;
  })().then(() => null, (error) => error);
  await settle();
  const re = 1; // our first id: the request (the peer never reads it, but knows the scheme)
  let id = 1;
  let mostWaiting = 0;
  for (let i = 0; i < chunks; i++) {
    // As fast as the credit our reader frees would allow, had the peer read it: each half
    // window read frees that much more.
    await peer.send({ v: 1, type: Count.type, id: id++, re, body: { i } });
    if (i % (window / 2) === window / 2 - 1) {
      await settle();
      mostWaiting = Math.max(mostWaiting, connection.stats().waitingSends);
    }
  }
  await peer.send({ v: 1, type: "end", id: id++, re, body: null });
  const outcome = await reading;
  assert.ok(mostWaiting <= 2, `${mostWaiting} sends waited for room (credit frames of one stream)`);
  // Our credit never reached the peer: past the credit that went out, its chunks break the
  // flow control, and the stream ends there.
  assert.ok(outcome instanceof FlowControlError, `the stream ended with ${outcome}`);
  assert.ok(read < chunks, `${read} chunks read`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});

Deno.test("credit the reader frees while its last credit frame waits goes out in one frame once that one is taken, and counts only then", async () => {
  // A Requester alone, over a core whose sends resolve when the test says (the transport
  // taking the frame), so the wait is exact.
  const sent: { envelopes: readonly Envelope[]; taken: PromiseWithResolvers<void> }[] = [];
  const refused: ProtocolError[] = [];
  let nextId = 1;
  const core: ConnectionCore = {
    registry: new MessageRegistry([CountTo]),
    timers: new ManualTimers(),
    isClosing: false,
    hasRoom: true,
    hasRoomForReply: true,
    nextId: () => nextId++,
    send(envelopes) {
      const taken = Promise.withResolvers<void>();
      sent.push({ envelopes, taken });
      return taken.promise;
    },
    post: () => {}, // the cancel at the end
    offer: () => {},
    closedError: () => new ConnectionClosedError("closed"),
    refuse: (error) => void refused.push(error),
  };
  const requester = new Requester(core, { maxPendingRequests: 8 });
  const reader = requester.openStream(CountTo, { to: 100 }, 4).getReader();
  assert.equal(sent.length, 1, "the request and its first credit, together");
  const re = sent[0].envelopes[0].id;
  sent[0].taken.resolve();
  let peerId = 1;
  const chunk = (i: number) =>
    requester.onResponse(
      { v: 1, type: Count.type, id: peerId++, re, body: { i } },
      re,
      nextId,
    );
  const credits = () =>
    sent.slice(1).map((s) => (s.envelopes[0].body as { chunks: number }).chunks);
  for (let i = 0; i < 4; i++) chunk(i);
  for (let i = 0; i < 2; i++) await reader.read();
  assert.deepEqual(credits(), [2], "half the window read: credit for it");
  for (let i = 0; i < 2; i++) await reader.read();
  assert.deepEqual(credits(), [2], "while that frame waits, no second one");
  for (let i = 4; i < 6; i++) chunk(i); // within the 4 + 2 the peer was sent
  for (let i = 0; i < 2; i++) await reader.read();
  assert.equal(refused.length, 0);
  chunk(6); // beyond what the peer was sent: the 4 owed have not gone out
  assert.equal(refused.length, 1);
  assert.equal(refused[0].code, "flow_control_violation");
  // (On a Connection the router then fails the stream.) The waiting frame is taken: what was
  // owed goes out, in one frame.
  sent[1].taken.resolve();
  await settle();
  assert.deepEqual(credits(), [2, 4]);
  await reader.cancel();
});

// The connection layer under a hostile requester: the chunks of streams we serve to a peer that
// does not read must stay within the write budget, as replies do
// (`protocols/_connection_responder.ts`, `#pump`; `protocols/_connection_write_queue.ts`).
//
// A burst of stream requests is admitted while nothing is owed yet (the write queue is empty
// when they arrive); once their handlers answer, each stream's pump encodes its next chunk and
// waits for room with it. Replies in the same burst wait beyond the budget only up to one more
// budget's worth and are answered `busy` past that; stream chunks had no such bound, so every
// admitted stream held one encoded chunk outside the budget: `maxInboundRequests` (1024) times
// the largest chunk per connection.

const ChunkStreamBudget = defineMessage(
  "test.s49_chunk",
  z.object({ data: z.instanceof(Uint8Array) }),
);

const WatchStreamBudget = defineMessage("test.s49_watch", z.object({ i: z.number().int() }), {
  chunk: ChunkStreamBudget,
});

Deno.test("chunks of a burst of streams to a peer that never reads do not pile up outside the budget, and each stream is ended", async () => {
  const budget = 64 * 1024;
  const chunkBytes = 16 * 1024;
  const streams = 1_000;
  const timers = new ManualTimers(); // no timeouts fire: this is about memory, not liveness
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: budget },
    { highWaterMarkBytes: 16 * 1024 },
  );
  // An async handler (a job that starts, an actor ask): the whole burst is admitted before any
  // chunk exists, since nothing is owed yet when the requests arrive.
  const release = Promise.withResolvers<void>();
  connection.handle(WatchStreamBudget, async () => {
    await release.promise;
    return new ReadableStream({
      pull: (c) => c.enqueue({ data: new Uint8Array(chunkBytes) }),
    }, { highWaterMark: 0 });
  });
  let id = 1;
  for (let i = 0; i < streams; i++) {
    const re = id++;
    await peer.send({ v: 1, type: WatchStreamBudget.type, id: re, body: { i } });
    await peer.send({ v: 1, type: "credit", id: id++, re, body: { chunks: 16 } });
  }
  await settle();
  assert.equal(connection.stats().inboundRequests, streams, "the burst was admitted");
  release.resolve();
  await settle();
  const stats = connection.stats();
  // As for replies: one budget queued, at most one more budget's worth waiting (plus a frame
  // each way over), and the rest are ~100-byte `busy` answers.
  const held = stats.queuedBytes + stats.waitingBytes;
  const bound = 2 * budget + 2 * (chunkBytes + ENVELOPE_SLACK) + streams * BUSY_ANSWER_BYTES;
  assert.ok(held <= bound, `${held} B held for the peer (bound ${bound})`);
  // The peer reads now: every stream is ended (`busy` or still running), none left hanging.
  const busy = new Set<number>();
  const chunked = new Set<number>();
  while (busy.size + chunked.size < streams) {
    const frame = await peer.next();
    if (frame.type === ErrorMessage.type) {
      assert.equal((frame.body as { code: string }).code, "busy");
      busy.add(frame.re!);
      chunked.delete(frame.re!);
    } else if (!busy.has(frame.re!)) chunked.add(frame.re!);
  }
  assert.ok(busy.size > 900, `${busy.size} answered busy`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});
