import assert from "node:assert/strict";
import { z } from "zod";
import { VeriflowError } from "../../protocols/errors.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { encodeEnvelope } from "../../protocols/envelope.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame } from "../../streams/length_prefixed_stream.ts";
import {
  ConnectionClosedError,
  FrameTooLargeError,
  RemoteError,
  RequestCancelledError,
  RequestTimeoutError,
  StreamCancelledError,
} from "../../protocols/protocol_errors.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  Count,
  CountTo,
  Echo,
  Echoed,
  Note,
} from "./_helpers.ts";
import { delay } from "../_helpers/wait.ts";

const Blob = defineMessage("test.blob", z.object({ data: z.instanceof(Uint8Array) }));
const Blobs = defineMessage("test.blobs", z.object({ size: z.number().int() }), { chunk: Blob });

function countingSource(to: number, onPull?: (i: number) => void): ReadableStream<{ i: number }> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i >= to) return controller.close();
      onPull?.(i);
      controller.enqueue({ i: i++ });
    },
  }, { highWaterMark: 0 });
}

Deno.test("request/response returns the handler's reply, typed and validated", async () => {
  const { client, server, close } = connectedPair();
  server.handle(Echo, (body) => ({ text: body.text.toUpperCase(), n: body.n * 2 }));
  assert.deepEqual(await client.request(Echo, { text: "ab", n: 21 }), { text: "AB", n: 42 });
  // By name, once the type is in the requester's registry.
  assert.deepEqual(await client.request("test.echo", { text: "c", n: 1 }), { text: "C", n: 2 });
  assert.ok((await client.ping()) >= 0);
  await close();
});

Deno.test("10,000 concurrent requests over one connection all get their own reply", async () => {
  const { client, server, close } = connectedPair();
  server.handle(Echo, async (body) => {
    await Promise.resolve();
    return { text: body.text, n: body.n };
  });
  const replies = await Promise.all(
    Array.from({ length: 10_000 }, (_, i) => client.request(Echo, { text: `m${i}`, n: i })),
  );
  replies.forEach((r, i) => assert.deepEqual(r, { text: `m${i}`, n: i }));
  assert.equal(client.stats().pendingRequests, 0);
  await close();
});

Deno.test("both sides can be requester and responder at once, with overlapping ids", async () => {
  const { client, server, close } = connectedPair();
  client.handle(Echo, (b) => ({ text: `client:${b.text}`, n: b.n }));
  server.handle(Echo, (b) => ({ text: `server:${b.text}`, n: b.n }));
  const [a, b] = await Promise.all([
    client.request(Echo, { text: "x", n: 1 }),
    server.request(Echo, { text: "y", n: 1 }),
  ]);
  assert.equal(a.text, "server:x");
  assert.equal(b.text, "client:y");
  await close();
});

Deno.test("a request without a reply times out with request_timeout and aborts the handler", async () => {
  const { client, server, close } = connectedPair();
  let handlerSignal: AbortSignal | undefined;
  server.handle(Echo, (_b, ctx) => {
    handlerSignal = ctx.signal;
    return new Promise(() => {}); // never answers
  });
  await assert.rejects(
    client.request(Echo, { text: "slow", n: 1 }, { timeoutMs: 50 }),
    (e: unknown) => e instanceof RequestTimeoutError && e.code === "request_timeout",
  );
  await delay(20);
  assert.equal(handlerSignal?.aborted, true, "the responder was told to stop");
  assert.equal(client.stats().pendingRequests, 0);
  await close();
});

Deno.test("aborting a request's signal rejects it and cancels the handler", async () => {
  const { client, server, close } = connectedPair();
  const aborted = Promise.withResolvers<void>();
  server.handle(Echo, (_b, ctx) => {
    ctx.signal.addEventListener("abort", () => aborted.resolve());
    return new Promise(() => {});
  });
  const controller = new AbortController();
  const pending = client.request(Echo, { text: "x", n: 1 }, { signal: controller.signal });
  await delay(10);
  controller.abort();
  await assert.rejects(pending, RequestCancelledError);
  await aborted.promise;
  await close();
});

Deno.test("handler failures come back typed: VeriflowError codes kept, others handler_error", async () => {
  const { client, server, close } = connectedPair();
  server.handle(Echo, (b) => {
    if (b.n === 1) throw new VeriflowError("model_not_found", "no such model");
    throw new Error("boom");
  });
  await assert.rejects(
    client.request(Echo, { text: "x", n: 1 }),
    (e: unknown) =>
      e instanceof RemoteError && e.code === "model_not_found" && e.message === "no such model",
  );
  await assert.rejects(client.request(Echo, { text: "x", n: 2 }), { code: "handler_error" });
  assert.deepEqual(await client.ping().then(() => "alive"), "alive");
  await close();
});

Deno.test("a streamed reply delivers every chunk in order, then ends", async () => {
  const { client, server, close } = connectedPair();
  server.handle(CountTo, ({ to }) => countingSource(to));
  const chunks = await Array.fromAsync(client.openStream(CountTo, { to: 200 }, { window: 4 }));
  assert.deepEqual(chunks, Array.from({ length: 200 }, (_, i) => ({ i })));
  assert.deepEqual(await Array.fromAsync(client.openStream(CountTo, { to: 0 })), []);
  assert.equal(client.stats().pendingRequests, 0);
  await delay(0);
  assert.equal(server.stats().inboundRequests, 0);
  await close();
});

Deno.test("cancelling the reader cancels the handler's stream and aborts its signal", async () => {
  const { client, server, close } = connectedPair();
  const sourceCancelled = Promise.withResolvers<unknown>();
  let signal: AbortSignal | undefined;
  server.handle(CountTo, (_b, ctx) => {
    signal = ctx.signal;
    let i = 0;
    return new ReadableStream({
      pull: (c) => c.enqueue({ i: i++ }),
      cancel: (reason) => sourceCancelled.resolve(reason),
    });
  });
  const reader = client.openStream(CountTo, { to: 1 }).getReader();
  assert.deepEqual((await reader.read()).value, { i: 0 });
  await reader.cancel("enough");
  const reason = await sourceCancelled.promise;
  assert.ok(reason instanceof StreamCancelledError, String(reason));
  assert.equal(signal?.aborted, true);
  await delay(10);
  assert.equal(server.stats().inboundRequests, 0);
  assert.equal(client.stats().pendingRequests, 0);
  await close();
});

Deno.test("aborting openStream's signal errors the stream and cancels the handler", async () => {
  const { client, server, close } = connectedPair();
  const sourceCancelled = Promise.withResolvers<void>();
  server.handle(
    CountTo,
    () => new ReadableStream({ pull: () => delay(5), cancel: () => sourceCancelled.resolve() }),
  );
  const controller = new AbortController();
  const stream = client.openStream(CountTo, { to: 1 }, { signal: controller.signal });
  setTimeout(() => controller.abort(), 10);
  await assert.rejects(Array.fromAsync(stream), StreamCancelledError);
  await sourceCancelled.promise;
  await close();
});

Deno.test("a handler stream that errors errors the requester's stream with a typed error", async () => {
  const { client, server, close } = connectedPair();
  server.handle(CountTo, () => {
    let i = 0;
    return new ReadableStream({
      pull(c) {
        if (i === 3) throw new VeriflowError("inference_failed", "kernel crashed");
        c.enqueue({ i: i++ });
      },
    });
  });
  const seen: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const chunk of client.openStream(CountTo, { to: 10 })) seen.push(chunk);
    })(),
    (e: unknown) => e instanceof RemoteError && e.code === "inference_failed",
  );
  assert.deepEqual(seen, [{ i: 0 }, { i: 1 }, { i: 2 }]);
  // A handler that does not return a stream for a streamed type is a handler error too.
  const { client: c2, server: s2, close: close2 } = connectedPair();
  s2.handle(CountTo, () => ({ i: 1 }) as unknown as ReadableStream<{ i: number }>);
  await assert.rejects(Array.fromAsync(c2.openStream(CountTo, { to: 1 })), {
    code: "handler_error",
  });
  await close();
  await close2();
});

Deno.test("flow control: a stalled reader does not stall another stream, and buffers stay bounded", async () => {
  const window = 8;
  const chunkBytes = 16 * 1024;
  const { client, server, close } = connectedPair({ streamWindow: window });
  let slowPulled = 0;
  server.handle(Blobs, ({ size }) => {
    if (size === 0) {
      // The slow stream's source is infinite: only credits keep it from flooding.
      return new ReadableStream({
        pull(c) {
          slowPulled++;
          c.enqueue({ data: new Uint8Array(chunkBytes) });
        },
      }, { highWaterMark: 0 });
    }
    let sent = 0;
    return new ReadableStream({
      pull(c) {
        if (sent++ === size) return c.close();
        c.enqueue({ data: new Uint8Array(chunkBytes) });
      },
    }, { highWaterMark: 0 });
  });
  const slow = client.openStream(Blobs, { size: 0 }).getReader();
  await slow.read(); // read one chunk, then stall

  let maxServerInFlight = 0;
  let maxClientBuffered = 0;
  let maxQueuedBytes = 0;
  // 400 chunks (6.4 MiB) on a second stream must flow while the first is stalled; the
  // gauges are sampled at every chunk, while both streams are open.
  let fastCount = 0;
  for await (const _ of client.openStream(Blobs, { size: 400 })) {
    fastCount++;
    maxServerInFlight = Math.max(maxServerInFlight, server.stats().inFlightChunks);
    maxClientBuffered = Math.max(maxClientBuffered, client.stats().bufferedChunks);
    maxQueuedBytes = Math.max(maxQueuedBytes, server.stats().queuedBytes);
    if (fastCount % 50 === 0) await delay(1); // let the sender run ahead if it could
  }
  assert.equal(fastCount, 400);
  assert.ok(maxServerInFlight > 0, "the probe saw the streams in flight");

  // The stalled stream's source was pulled at most window + the one chunk read + 1 (the
  // chunk the pump holds while waiting for credit is never read before it has credit).
  assert.ok(slowPulled <= window + 2, `slow source pulled ${slowPulled} times`);
  const snapshot = client.stats();
  assert.ok(snapshot.bufferedChunks <= window, `buffered ${snapshot.bufferedChunks}`);
  assert.ok(maxClientBuffered <= 2 * window, `client buffered up to ${maxClientBuffered} chunks`);
  assert.ok(maxServerInFlight <= 2 * window, `server had ${maxServerInFlight} chunks in flight`);
  // Bytes waiting in the sender's write queue never exceed two windows of chunks.
  assert.ok(
    maxQueuedBytes <= 2 * window * (chunkBytes + 128),
    `sender queued up to ${maxQueuedBytes} bytes`,
  );
  console.log(
    `flow control: slow source pulled ${slowPulled}, max in flight ${maxServerInFlight}, ` +
      `max receiver buffered ${maxClientBuffered} chunks, max sender queued ${maxQueuedBytes} B`,
  );
  await slow.cancel();
  await close();
});

Deno.test("a one-way message runs its handler and gets no reply", async () => {
  const { client, server, close } = connectedPair();
  const got = Promise.withResolvers<string>();
  server.handle(Note, (b) => void got.resolve(b.text));
  await client.notify(Note, { text: "fyi" });
  assert.equal(await got.promise, "fyi");
  await close();
});

Deno.test("an outbound frame over maxFrameBytes is refused locally; the connection goes on", async () => {
  const { client, server, close } = connectedPair({ maxFrameBytes: 1024 });
  server.handle(Echo, (b) => b);
  await assert.rejects(client.request(Echo, { text: "x".repeat(2000), n: 1 }), FrameTooLargeError);
  assert.deepEqual(await client.request(Echo, { text: "ok", n: 1 }), { text: "ok", n: 1 });
  await close();
});

Deno.test("a chunk too large for the frame limit ends the stream with frame_too_large", async () => {
  const { client, server, close } = connectedPair({}, { maxFrameBytes: 4096 });
  server.handle(Blobs, () => ReadableStream.from([{ data: new Uint8Array(8192) }]));
  await assert.rejects(Array.fromAsync(client.openStream(Blobs, { size: 1 })), {
    code: "frame_too_large",
  });
  await close();
});

Deno.test("more concurrent inbound requests than allowed are refused with busy", async () => {
  const { client, server, close } = connectedPair({}, { maxInboundRequests: 2 });
  const release = Promise.withResolvers<void>();
  server.handle(Echo, async (b) => {
    await release.promise;
    return b;
  });
  const results = Array.from(
    { length: 5 },
    (_, i) => client.request(Echo, { text: "x", n: i }).then(() => "ok", (e) => e.code),
  );
  await delay(20);
  release.resolve();
  assert.deepEqual((await Promise.all(results)).sort(), ["busy", "busy", "busy", "ok", "ok"]);
  await close();
});

Deno.test("close() fails pending requests with connection_closed and aborts handlers", async () => {
  const { client, server, close } = connectedPair();
  const handlerAborted = Promise.withResolvers<void>();
  server.handle(Echo, (_b, ctx) => {
    ctx.signal.addEventListener("abort", () => handlerAborted.resolve());
    return new Promise(() => {});
  });
  server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
  const pending = client.request(Echo, { text: "x", n: 1 });
  const stream = client.openStream(CountTo, { to: 5 });
  await delay(10);
  await client.close();
  await assert.rejects(pending, ConnectionClosedError);
  await assert.rejects(Array.fromAsync(stream), ConnectionClosedError);
  await server.closed; // the peer sees the transport end and closes too
  await handlerAborted.promise;
  assert.equal(server.closeReason, null, "a clean close is not an error");
  await assert.rejects(client.request(Echo, { text: "x", n: 1 }), ConnectionClosedError);
  await close();
});

Deno.test("replies of the wrong type or shape fail the request locally, typed", async () => {
  const { connection, peer } = connectionWithRawPeer();
  const a = connection.request(Echo, { text: "x", n: 1 });
  const req = await peer.next();
  await peer.send({ v: 1, type: Echoed.type, id: 1, re: req.id, body: { text: 5, n: 1 } });
  await assert.rejects(a, { code: "invalid_body" });
  const cancel = await peer.next();
  assert.equal(cancel.type, "cancel");
  assert.equal(cancel.re, req.id);

  const b = connection.request(Echo, { text: "x", n: 1 });
  const req2 = await peer.next();
  await peer.send({ v: 1, type: "pong", id: 2, re: req2.id, body: { nonce: 1 } });
  await assert.rejects(b, { code: "unexpected_message" });
  await peer.close();
  await connection.close();
});

Deno.test("a sender that ignores its credit window is stopped with flow_control_violation", async () => {
  const { connection, peer } = connectionWithRawPeer({ streamWindow: 2 });
  const stream = connection.openStream(CountTo, { to: 10 });
  const reader = stream.getReader();
  const req = await peer.next();
  const credit = await peer.next();
  assert.deepEqual([credit.type, credit.re, credit.body], ["credit", req.id, { chunks: 2 }]);
  for (let i = 0; i < 3; i++) {
    await peer.send({ v: 1, type: Count.type, id: 10 + i, re: req.id, body: { i } });
  }
  await assert.rejects(
    (async () => {
      for (;;) if ((await reader.read()).done) break;
    })(),
    { code: "flow_control_violation" },
  );
  await peer.close();
  await connection.close();
});

Deno.test("a transport that re-chunks bytes arbitrarily changes nothing", async () => {
  const [a, b] = memoryDuplexPair();
  // Split every chunk from the client into pieces of 1..7 bytes, and coalesce nothing.
  const rechunk = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (
        let offset = 0, step = 1;
        offset < chunk.byteLength;
        offset += step, step = (step % 7) + 1
      ) {
        controller.enqueue(chunk.slice(offset, offset + step));
      }
    },
  });
  rechunk.readable.pipeTo(a.writable);
  const client = new Connection({ readable: a.readable, writable: rechunk.writable });
  const server = new Connection(b);
  server.handle(Echo, (body) => body);
  server.handle(CountTo, ({ to }) => countingSource(to));
  const replies = await Promise.all(
    Array.from({ length: 200 }, (_, i) => client.request(Echo, { text: "é✓".repeat(i), n: i })),
  );
  replies.forEach((r, i) => assert.equal(r.n, i));
  assert.equal((await Array.fromAsync(client.openStream(CountTo, { to: 100 }))).length, 100);
  await client.close();
  await server.closed;
});

Deno.test("errors the peer reports outside any request reach onRemoteError", async () => {
  const remote: string[] = [];
  const { connection, peer } = connectionWithRawPeer({ onRemoteError: (e) => remote.push(e.code) });
  await peer.send({ v: 1, type: "error", id: 1, body: { code: "malformed_cbor", message: "x" } });
  await delay(10); // let the read loop take the frame
  assert.deepEqual(remote, ["malformed_cbor"]);
  await peer.close();
  await connection.close();
});

Deno.test("bytes a handler keeps do not pin the socket read they arrived in", async () => {
  const Blob = defineMessage(
    "test.blob",
    z.object({ bytes: z.instanceof(Uint8Array) }),
  );
  const { connection, peer } = connectionWithRawPeer();
  const kept = Promise.withResolvers<Uint8Array>();
  connection.handle(Blob, ({ bytes }) => void kept.resolve(bytes));
  // Two frames in one chunk, as one socket read delivers them, the second padded large.
  const frame = (id: number, size: number) =>
    encodeFrame(
      encodeEnvelope({ v: 1, type: Blob.type, id, body: { bytes: new Uint8Array(size) } }),
      DEFAULT_MAX_FRAME_BYTES,
    );
  const one = frame(1, 16);
  const two = frame(2, 60_000);
  const read = new Uint8Array(one.byteLength + two.byteLength);
  read.set(one);
  read.set(two, one.byteLength);
  await peer.sendBytes(read);
  const bytes = await kept.promise;
  assert.equal(bytes.byteLength, 16);
  assert.ok(bytes.buffer.byteLength < 1024, `16 bytes pin ${bytes.buffer.byteLength}`);
  await peer.close();
  await connection.close();
});
