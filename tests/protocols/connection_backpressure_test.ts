import assert from "node:assert/strict";
import { z } from "zod";
import { defineMessage } from "../../protocols/message_registry.ts";
import { RequestTimeoutError } from "../../protocols/protocol_errors.ts";
import { ErrorMessage } from "../../protocols/messages.ts";
import { connectedPair, connectionWithRawPeer, Echo, ManualTimers, settle } from "./_helpers.ts";

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
