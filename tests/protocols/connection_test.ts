/**
 * A `Connection` (`protocols/connection.ts`) and its message registry: requests, answers, one-way
 * messages and errors, and what a hostile peer's bad input (bad frames, bad bodies, refused
 * messages) leads to.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { VeriflowError } from "../../protocols/errors.ts";
import { defineMessage, MessageRegistry } from "../../protocols/message_registry.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { encodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  LengthPrefixedDecoderStream,
} from "../../streams/length_prefixed_stream.ts";
import {
  ConnectionClosedError,
  FrameTooLargeError,
  HandshakeError,
  InvalidBodyError,
  type ProtocolError,
  RemoteError,
  RequestCancelledError,
  RequestTimeoutError,
  StreamCancelledError,
  TruncatedFrameError,
  UnknownTypeError,
} from "../../protocols/protocol_errors.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  Count,
  CountTo,
  Echo,
  Echoed,
  ManualTimers,
  Note,
  settle,
} from "./_helpers.ts";
import { delay } from "../_helpers/wait.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";

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

const Reply = defineMessage("reg.reply", z.object({ ok: z.boolean() }));

const Ask = defineMessage("reg.ask", z.object({ q: z.string().max(5) }), { reply: Reply });

Deno.test("registering a request registers its reply type too", () => {
  const registry = new MessageRegistry().register(Ask);
  assert.ok(registry.has("reg.ask") && registry.has("reg.reply"));
});

Deno.test("parseBody returns the parsed body and strips unknown keys", () => {
  const registry = new MessageRegistry([Ask]);
  assert.deepEqual(registry.parseBody("reg.ask", { q: "hi", junk: 1 }), { q: "hi" });
});

Deno.test("parseBody refuses unknown types and bad bodies with typed errors", () => {
  const registry = new MessageRegistry([Ask]);
  assert.throws(() => registry.parseBody("reg.nope", {}), UnknownTypeError);
  assert.throws(
    () => registry.parseBody("reg.ask", { q: "too long" }, { envelopeId: 4 }),
    (e: unknown) =>
      e instanceof InvalidBodyError && e.code === "invalid_body" && e.envelopeId === 4,
  );
});

Deno.test("two different definitions cannot claim one type name", () => {
  const registry = new MessageRegistry([Ask]);
  registry.register(Ask); // same definition again: fine
  assert.throws(() => registry.register(defineMessage("reg.ask", z.null())), TypeError);
});

Deno.test("type names are validated and reply/chunk are exclusive", () => {
  assert.throws(() => defineMessage("Bad Name", z.null()), TypeError);
  assert.throws(() => defineMessage("", z.null()), TypeError);
  assert.throws(() => defineMessage("a.b", z.null(), { reply: Reply, chunk: Reply }), TypeError);
});

Deno.test("the core registry holds the control messages", () => {
  const registry = createCoreRegistry();
  for (const t of ["ping", "pong", "error", "credit", "cancel", "end"]) {
    assert.ok(registry.has(t), t);
  }
  assert.throws(() => registry.parseBody("credit", { chunks: 0 }), InvalidBodyError);
});

// A `Connection` against a hostile peer: each test failed on the code before its fix.

/** Collects unhandled rejections (Deno ends the process on one) while `body` runs. */
async function withoutUnhandledRejections(body: () => Promise<void>): Promise<unknown[]> {
  const rejections: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    rejections.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    await body();
    await settle();
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
  return rejections;
}

function framed(value: unknown): Uint8Array {
  const payload = encodeCbor(value);
  const frame = new Uint8Array(4 + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, 4);
  return frame;
}

Deno.test("a peer that stops reading during the handshake makes open() fail, not the process (our hello's write failing is not an unhandled rejection)", async () => {
  const rejections = await withoutUnhandledRejections(async () => {
    const [a, b] = memoryDuplexPair();
    // The peer hangs up its reading side at once: our hello's write fails while we wait for
    // its hello, which never comes.
    await b.readable.cancel(new Error("peer stopped reading"));
    const timers = new ManualTimers();
    const opening = Connection.open(a, { identity: Identity.generate(), timers });
    const outcome = opening.then(() => "open", (error) => error);
    await settle();
    await timers.advance(10_000);
    assert.equal((await outcome as Error).name, "PeerTimeoutError");
    await b.writable.close().catch(() => {});
  });
  assert.deepEqual(rejections.map(String), [], "an unhandled rejection ends a Deno process");
});

Deno.test("a peer that stops reading after our hello and sends a bad proof: open() rejects with handshake_failed, nothing unhandled (our proof's write)", async () => {
  const rejections = await withoutUnhandledRejections(async () => {
    const [a, b] = memoryDuplexPair();
    const opening = Connection.open(a, { identity: Identity.generate() });
    const outcome = opening.then(() => "open", (error) => error);
    const frames = b.readable.pipeThrough(new LengthPrefixedDecoderStream()).getReader();
    await frames.read(); // our hello
    await frames.cancel(new Error("peer stopped reading")); // our proof's write will fail
    const writer = b.writable.getWriter();
    const hello = {
      key: Identity.generate().publicKey,
      nonce: crypto.getRandomValues(new Uint8Array(32)),
      protocols: [],
    };
    await writer.write(framed({ v: 1, type: "session.hello", id: 0, body: hello }));
    await settle();
    await writer.write(
      framed({ v: 1, type: "session.proof", id: 1, body: { sig: new Uint8Array(64) } }),
    )
      .catch(() => {});
    const error = await outcome;
    assert.ok(error instanceof HandshakeError, String(error));
    await writer.close().catch(() => {});
  });
  assert.deepEqual(rejections.map(String), [], "an unhandled rejection ends a Deno process");
});

Deno.test("a body refused by its schema stops at its first wrong-typed item: a frame of 20,000 bad items costs one check, not 20,000 (a 1 MiB frame of them blocked the node ~1 s)", async () => {
  let checks = 0;
  const item = z.preprocess((value) => {
    checks++;
    return value;
  }, z.object({ a: z.number() }));
  const Done = defineMessage("test.batch_done", z.object({}));
  const Batch = defineMessage("test.batch", z.object({ items: z.array(item) }), { reply: Done });
  const { connection, peer } = connectionWithRawPeer();
  let ran = false;
  connection.handle(Batch, () => {
    ran = true;
    return {};
  });
  const items = Array.from({ length: 20_000 }, () => ({ a: "not a number" }));
  await peer.send({ v: 1, type: Batch.type, id: 1, body: { items } });
  const refusal = await peer.next();
  assert.equal(refusal.type, "error");
  assert.equal(refusal.re, 1);
  assert.equal((refusal.body as { code: string }).code, "invalid_body");
  assert.equal(ran, false);
  assert.ok(checks <= 2, `${checks} item checks for one refused frame`);
  await peer.close();
  await connection.close();
});

/** Send a bad frame, expect an error envelope with `code` (addressed by `re` when given). */
async function expectRefusal(
  peer: ReturnType<typeof connectionWithRawPeer>["peer"],
  payload: unknown,
  code: string,
  re?: number,
): Promise<Envelope> {
  await peer.send(payload);
  const reply = await peer.next();
  assert.equal(reply.type, "error", `reply to a ${code} frame`);
  assert.equal((reply.body as { code: string }).code, code);
  assert.equal(reply.re, re, `re of the ${code} error`);
  return reply;
}

Deno.test("each bad inbound message gets its typed error back and the connection stays usable", async () => {
  const seen: string[] = [];
  const { connection, peer } = connectionWithRawPeer({
    onProtocolError: (e: ProtocolError) => seen.push(e.code),
  });
  connection.handle(Echo, (b) => ({ text: b.text, n: b.n }));
  await expectRefusal(peer, new Uint8Array([0xff, 0x00]), "malformed_cbor");
  await expectRefusal(peer, new Uint8Array(5000).fill(0x81), "nesting_too_deep");
  await expectRefusal(peer, [1, 2, 3], "invalid_envelope");
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 5, body: {}, x: 1 },
    "invalid_envelope",
    5,
  );
  await expectRefusal(peer, { v: 7, type: "test.echo", id: 6, body: {} }, "unknown_version", 6);
  await expectRefusal(peer, { v: 1, type: "test.nope", id: 7, body: {} }, "unknown_type", 7);
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 8, body: { text: 1 } },
    "invalid_body",
    8,
  );
  await expectRefusal(
    peer,
    { v: 1, type: "test.echoed", id: 9, body: { text: "a", n: 1 } },
    "no_handler",
    9,
  );
  await expectRefusal(
    peer,
    {
      v: 1,
      type: "test.echo",
      id: 10,
      body: { text: "a", n: 1 },
      sig: new Uint8Array(64),
      from: new Uint8Array(32),
    },
    "bad_signature",
    10,
  );
  // A reply to a request that was never sent is refused, about that envelope.
  const stray = await expectRefusal(
    peer,
    { v: 1, type: Echoed.type, id: 11, re: 999_999, body: { text: "a", n: 1 } },
    "unexpected_message",
  );
  assert.equal((stray.body as { about?: number }).about, 11);
  // An error is never answered with an error (no ping-pong between confused peers).
  await peer.send({ v: 1, type: "error", id: 12, body: { code: 5 } });
  // ...and a valid request still works afterwards.
  await peer.send({ v: 1, type: "test.echo", id: 13, body: { text: "still", n: 1 } });
  const reply = await peer.next();
  assert.deepEqual([reply.type, reply.re, reply.body], ["test.echoed", 13, {
    text: "still",
    n: 1,
  }]);
  assert.equal(connection.isClosed, false);
  assert.equal(seen.length, 11);
  await peer.close();
  await connection.close();
});

Deno.test("a frame over maxFrameBytes closes the connection with frame_too_large, nothing crashes", async () => {
  const { connection, peer } = connectionWithRawPeer({ maxFrameBytes: 1024 });
  connection.handle(Echo, (b) => b);
  const pending = connection.request(Echo, { text: "x", n: 1 });
  await peer.next(); // the request
  await peer.sendBytes(new Uint8Array([0x00, 0x10, 0x00, 0x00])); // announces 1 MiB
  const farewell = await peer.next();
  assert.deepEqual([farewell.type, (farewell.body as { code: string }).code], [
    "error",
    "frame_too_large",
  ]);
  await assert.rejects(pending, ConnectionClosedError);
  await connection.closed;
  assert.ok(connection.closeReason instanceof FrameTooLargeError);
  await peer.close().catch(() => {});
});

Deno.test("a peer that ends inside a frame closes the connection with truncated_frame", async () => {
  const { connection, peer } = connectionWithRawPeer();
  await peer.sendBytes(new Uint8Array([0x00, 0x00, 0x00, 0x20, 0xa1])); // 32 announced, 1 sent
  await peer.close();
  await connection.closed;
  assert.ok(connection.closeReason instanceof TruncatedFrameError);
  assert.equal(connection.closeReason?.code, "truncated_frame");
});

Deno.test("a repeated request id while the first is running is refused", async () => {
  const { connection, peer } = connectionWithRawPeer();
  const release = Promise.withResolvers<void>();
  connection.handle(Echo, async (b) => {
    await release.promise;
    return b;
  });
  await peer.send(encodeCbor({ v: 1, type: "test.echo", id: 1, body: { text: "a", n: 1 } }));
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 1, body: { text: "b", n: 1 } },
    "unexpected_message",
    1,
  );
  release.resolve();
  assert.deepEqual((await peer.next()).body, { text: "a", n: 1 });
  await peer.close();
  await connection.close();
});

// The wire between peers: each test failed on the code before its fix.

Deno.test("a one-way message the peer refuses (no handler, bad body, busy) reaches the sender's onRemoteError: the refusal was addressed re = its id, which the sender drops as a late answer", async () => {
  const told: string[] = [];
  const Strict = defineMessage("test.strict_note", z.object({ n: z.number().int() }));
  const { client, server, close } = connectedPair(
    { onRemoteError: (e: RemoteError) => told.push(e.code) },
    { maxInboundRequests: 1 },
  );
  // Note is known to the server, but it has no handler for it.
  server.registry.register(Note);
  await client.notify(Note, { text: "nobody listens" });
  // A body the server's schema refuses (outbound bodies are not validated by the sender).
  let release!: () => void;
  server.handle(Strict, () => new Promise<void>((resolve) => (release = resolve)));
  await client.notify(Strict, { n: 1.5 });
  await settle();
  // The one inbound slot is taken by a running one-way handler: the next one is busy.
  await client.notify(Strict, { n: 1 });
  await settle();
  await client.notify(Strict, { n: 2 });
  await settle();
  assert.deepEqual(told, ["no_handler", "invalid_body", "busy"]);
  assert.equal(client.stats().pendingRequests, 0);
  release();
  await close();
});
