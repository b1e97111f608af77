/**
 * A `Connection` over a byte-stream transport (a socket): the read loop's reused buffer, the
 * zero-copy send of a body's bulk bytes, and the connection layer's limits against hostile peers
 * over such a transport.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import {
  Connection,
  type ConnectionOptions,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_STREAM_CREDIT_TIMEOUT_MS,
  defineProtocol,
  WireBudget,
} from "../../protocols/connection.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  PROTOCOL_VERSION,
} from "../../protocols/envelope.ts";
import { Identity } from "../../protocols/identity.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import {
  type SessionHello,
  sessionIdOf,
  sessionProofBytes,
} from "../../protocols/session_handshake.ts";
import { connectUnix, listenUnix, unixSocketsSupported } from "../../protocols/unix_transport.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameSplitter,
  LengthPrefixedDecoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { concatBytes, joinBytes } from "../_helpers/bytes.ts";
import { byteStreamOf, connectionOverByteStream } from "./_byte_stream_peer.ts";
import { SYSTEM_TIMERS } from "../../protocols/connection_timers.ts";
import {
  FrameTooLargeError,
  PeerTimeoutError,
  TooManyRefusalsError,
} from "../../protocols/protocol_errors.ts";
import {
  DEFAULT_MAX_IDLE_FRAMES,
  DEFAULT_MAX_REFUSALS,
} from "../../protocols/_connection_inbound.ts";
import { WriteQueue, ZERO_COPY_MIN_BYTES } from "../../protocols/_connection_write_queue.ts";
import { CountTo, Echo, ManualTimers, settle } from "./_helpers.ts";

// A `Connection` over a byte-stream transport (a socket): its read loop reads with a BYOB reader
// into one buffer it reuses, lending each read to the framing. What must hold: every body a handler
// kept is intact after later reads reused that buffer, however the bytes were cut; bytes the peer
// sent behind its handshake proof are not lost; the socket duplex serves those BYOB reads.

const Stored = defineMessage("test.stored", z.object({ n: z.number() }));

const Put = defineMessage(
  "test.put",
  z.object({ n: z.number().int(), bytes: z.instanceof(Uint8Array) }),
  { reply: Stored },
);

const BULK = defineProtocol("test.bulk", 1, [Put, Stored]);

const MAX_FRAME = 1 << 20;

function bodyOf(n: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + n * 13) & 0xff);
}

/** Send `count` bodies of `length` bytes to `server`'s handler, which keeps what it gets. */
async function sendAndKeep(
  client: Connection,
  server: Connection,
  count: number,
  length: number,
): Promise<void> {
  const kept: Uint8Array[] = [];
  server.handle(Put, ({ n, bytes }) => {
    kept[n] = bytes; // kept as given: a view of a reused buffer would change under it
    return { n };
  });
  const inFlight = 4;
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const n = next++;
      assert.deepEqual(await client.request(Put, { n, bytes: bodyOf(n, length) }), { n });
    }
  }));
  assert.equal(kept.length, count);
  for (let n = 0; n < count; n++) assert.deepEqual(kept[n], bodyOf(n, length), `body ${n}`);
}

Deno.test("over a byte stream, bodies a handler kept stay intact whatever the read sizes", async () => {
  // Reads of one byte, of a prime size, of about a Unix socket's ~208 KiB, and larger than any
  // frame; bodies small (many frames per read) and 256 KiB (many reads per frame).
  for (const readBytes of [1, 7919, 212_992, 1 << 20]) {
    for (const [count, length] of [[40, 100], [12, 256 * 1024]]) {
      if (readBytes === 1 && length > 1000) continue; // a quarter-million reads: slow, no news
      const [a, b] = memoryDuplexPair();
      const wrapped = byteStreamOf(b.readable, readBytes);
      const client = new Connection(a);
      const server = new Connection({ readable: wrapped.readable, writable: b.writable });
      await sendAndKeep(client, server, count, length);
      assert.ok(wrapped.byobReads() > 0, "the connection read with BYOB");
      await client.close();
      await server.close();
    }
  }
});

Deno.test("the read buffer grows for bulk and shrinks back to 64 KiB once the traffic is small again", async () => {
  const [a, b] = memoryDuplexPair();
  const wrapped = byteStreamOf(b.readable, 1 << 20);
  const client = new Connection(a);
  const server = new Connection({ readable: wrapped.readable, writable: b.writable });
  await sendAndKeep(client, server, 12, 256 * 1024);
  assert.equal(Math.max(...wrapped.offered), 256 * 1024, "grown for bulk");
  const afterBulk = wrapped.offered.length;
  // Small requests, one at a time (the handler registered above answers them).
  for (let n = 0; n < 200; n++) {
    assert.deepEqual(await client.request(Put, { n, bytes: bodyOf(n, 100) }), { n });
  }
  const later = wrapped.offered.slice(afterBulk);
  assert.equal(later.at(-1), 64 * 1024, `offered after small traffic: ${later.slice(-5)}`);
  // Not at the first small read: a pause inside a bulk transfer keeps the buffer.
  assert.equal(later[0], 256 * 1024);
  await client.close();
  await server.close();
});

/**
 * A peer that runs the handshake by hand and writes `after(sessionId)` in the same write as its
 * proof; returns the envelopes the connection sends it after its proof.
 */
async function handshakeThenAtOnce(
  duplex: ByteDuplex,
  after: Uint8Array,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const identity = Identity.generate();
  const writer = duplex.writable.getWriter();
  const frames = duplex.readable.pipeThrough(new LengthPrefixedDecoderStream()).getReader();
  const frame = (envelope: Envelope) => encodeFrame(encodeEnvelope(envelope), MAX_FRAME);
  const ours: SessionHello = {
    key: identity.publicKey,
    nonce: crypto.getRandomValues(new Uint8Array(32)),
    protocols: [{ name: BULK.name, version: BULK.version }],
  };
  await writer.write(frame({ v: 1, type: "session.hello", id: 0, body: ours }));
  const theirs = decodeEnvelope((await frames.read()).value!).body as SessionHello;
  const sig = identity.sign(sessionProofBytes(sessionIdOf(ours, theirs), ours.key));
  await writer.write(
    concatBytes(frame({ v: 1, type: "session.proof", id: 1, body: { sig } }), after),
  );
  writer.releaseLock();
  const proof = decodeEnvelope((await frames.read()).value!);
  assert.equal(proof.type, "session.proof");
  return frames;
}

Deno.test("a request sent in the same write as the peer's proof is answered (plain and byte-stream transports)", async () => {
  for (const asByteStream of [false, true]) {
    const [a, b] = memoryDuplexPair();
    const body = { n: 5, bytes: bodyOf(5, 3000) };
    const request = encodeFrame(
      encodeEnvelope({ v: 1, type: Put.type, id: 2, body }),
      MAX_FRAME,
    );
    const wrapped = asByteStream ? byteStreamOf(a.readable, 1 << 20) : undefined;
    const transport = wrapped ? { readable: wrapped.readable, writable: a.writable } : a;
    const kept = Promise.withResolvers<Uint8Array>();
    const [connection, frames] = await Promise.all([
      Connection.open(transport, { identity: Identity.generate(), protocols: [BULK] })
        .then((c) => c.handle(Put, ({ n, bytes }) => (kept.resolve(bytes), { n }))),
      handshakeThenAtOnce(b, request),
    ]);
    const reply = decodeEnvelope((await frames.read()).value!);
    assert.deepEqual([reply.type, reply.re, reply.body], [Stored.type, 2, { n: 5 }]);
    assert.deepEqual(await kept.promise, body.bytes);
    if (wrapped) assert.ok(wrapped.byobReads() > 0, "the connection read with BYOB");
    await b.writable.close();
    await connection.close();
  }
});

Deno.test({
  name:
    "Connection.open over a Unix socket: 256 KiB bodies a handler kept are intact after the socket's later reads",
  ignore: !unixSocketsSupported(),
  async fn() {
    const dir = await Deno.makeTempDir();
    const accepted = Promise.withResolvers<Connection>();
    const listener = listenUnix(`${dir}/bulk.sock`, (duplex) => {
      Connection.open(duplex, { identity: Identity.generate(), protocols: [BULK] })
        .then(accepted.resolve, accepted.reject);
    }, { readBufferBytes: 256 * 1024 });
    const duplex = await connectUnix(`${dir}/bulk.sock`);
    const client = await Connection.open(duplex, {
      identity: Identity.generate(),
      protocols: [BULK],
    });
    const server = await accepted.promise;
    await sendAndKeep(client, server, 24, 256 * 1024);
    await client.close();
    await server.closed;
    await listener.close();
    await Deno.remove(dir, { recursive: true });
  },
});

// A `Connection` sends a body's bulk byte string (64 KiB or more, a storage chunk) from the
// caller's own buffer: the frame goes to the transport as head, that very buffer, tail. What must
// hold: the chunks joined are exactly the frame a copy would have made; the frame limit and the
// byte budget count the whole frame; frames stay whole and in order over a socket however many are
// sent at once; and the contract: the caller's buffer is read until the request settled, not after.

const CHUNK = 256 * 1024;

function bytesOf(n: number, length: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + n * 13) & 0xff);
}

/**
 * A writer that records each chunk as it is handed over and takes it (resolves its write) only
 * at the next `release()`: a transport that is slow to take bytes.
 */
function heldWriter(): {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  chunks: Uint8Array[];
  release(): void;
} {
  const chunks: Uint8Array[] = [];
  let held: (() => void)[] = [];
  const writer = {
    write(chunk: Uint8Array): Promise<void> {
      chunks.push(chunk);
      return new Promise((resolve) => held.push(resolve));
    },
  } as unknown as WritableStreamDefaultWriter<Uint8Array>;
  return {
    writer,
    chunks,
    release: () => {
      const taken = held;
      held = [];
      for (const take of taken) take();
    },
  };
}

function queueOf(writer: WritableStreamDefaultWriter<Uint8Array>, maxQueuedBytes = 1 << 22) {
  return new WriteQueue(writer, {
    maxQueuedBytes,
    maxFrameBytes: MAX_FRAME,
    timers: SYSTEM_TIMERS,
  });
}

function putEnvelope(id: number, body: object): Envelope {
  return { v: PROTOCOL_VERSION, type: "test.put", id, body };
}

Deno.test("a bulk byte string goes to the transport as the caller's own buffer, between head and tail that join to the frame", async () => {
  const { writer, chunks, release } = heldWriter();
  const queue = queueOf(writer);
  const bytes = bytesOf(1, CHUNK);
  const body = { cid: "b".repeat(59), bytes, repair: undefined, n: 3 };
  const sent = queue.send([putEnvelope(5, body)]);
  release();
  await sent;
  assert.equal(chunks.length, 3);
  assert.equal(chunks[1], bytes, "the caller's buffer itself, not a copy");
  assert.notEqual(chunks[0].buffer, bytes.buffer);
  assert.notEqual(chunks[2].buffer, bytes.buffer);
  assert.deepEqual(joinBytes(chunks), encodeFrame(encodeEnvelope(putEnvelope(5, body)), MAX_FRAME));
  assert.equal(queue.framesSent, 1);
  assert.equal(queue.queuedBytes, 0);
});

Deno.test("a byte string below ZERO_COPY_MIN_BYTES, or in a class instance body, goes out copied in one frame chunk", async () => {
  const { writer, chunks, release } = heldWriter();
  const queue = queueOf(writer);
  const small = bytesOf(2, ZERO_COPY_MIN_BYTES - 1);
  class Body {
    bytes = bytesOf(3, CHUNK);
  }
  const sent = queue.send([putEnvelope(1, { bytes: small }), putEnvelope(2, new Body())]);
  release();
  await sent;
  assert.equal(chunks.length, 2);
  assert.deepEqual(
    chunks[0],
    encodeFrame(encodeEnvelope(putEnvelope(1, { bytes: small })), MAX_FRAME),
  );
  assert.notEqual(chunks[0].buffer, small.buffer);
});

Deno.test("the frame limit counts the bulk byte string: an oversize frame is refused and nothing is written", async () => {
  const { writer, chunks } = heldWriter();
  const queue = queueOf(writer);
  const tooBig = { bytes: bytesOf(4, MAX_FRAME - 10) }; // the envelope around it tips it over
  await assert.rejects(queue.send([putEnvelope(1, tooBig)]), FrameTooLargeError);
  assert.equal(chunks.length, 0);
  assert.equal(queue.queuedBytes, 0);
});

Deno.test("the byte budget counts every chunk of a bulk frame until the transport took it", async () => {
  const { writer, chunks, release } = heldWriter();
  const queue = queueOf(writer, CHUNK + 1024);
  const first = queue.send([putEnvelope(1, { bytes: bytesOf(5, CHUNK) })]);
  const frameBytes = joinBytes(chunks).byteLength;
  assert.ok(frameBytes > CHUNK);
  assert.equal(queue.queuedBytes, frameBytes);
  let secondDone = false;
  const second = queue.send([putEnvelope(2, { bytes: bytesOf(6, CHUNK) })]).then(() =>
    secondDone = true
  );
  assert.equal(queue.waiting, 1, "no room for a second chunk: it waits");
  const perFrame = chunks.length;
  release();
  await first;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(queue.waiting, 0);
  assert.equal(chunks.length, 2 * perFrame, "the second went once the first was taken");
  assert.equal(secondDone, false);
  release();
  await second;
  assert.equal(queue.queuedBytes, 0);
});

const PutZeroCopySend = defineMessage(
  "test.put",
  z.object({ n: z.number().int(), bytes: z.instanceof(Uint8Array), tag: z.string().optional() }),
  { reply: Stored },
);

const Note = defineMessage("test.note", z.object({ n: z.number().int(), text: z.string() }));

const BULK_ZERO_COPY_SEND = defineProtocol("test.bulk_send", 1, [PutZeroCopySend, Stored, Note]);

async function socketPair(
  onServer: (c: Connection) => void,
): Promise<{ client: Connection; close(): Promise<void> }> {
  const path = `${await Deno.makeTempDir()}/s.sock`;
  const opts = () => ({
    identity: Identity.generate(),
    protocols: [BULK_ZERO_COPY_SEND],
    maxFrameBytes: MAX_FRAME,
  });
  let server: Connection | undefined;
  const ready = Promise.withResolvers<void>();
  const listener = listenUnix(path, (duplex) => {
    Connection.open(duplex, opts()).then((c) => {
      server = c;
      onServer(c);
      ready.resolve();
    });
  });
  const client = await Connection.open(await connectUnix(path), opts());
  await ready.promise;
  return {
    client,
    close: async () => {
      await client.close();
      await server!.closed;
      listener.close();
      await Deno.remove(path.slice(0, -7), { recursive: true });
    },
  };
}

Deno.test({
  name: "bulk frames sent many at once over a socket, among small ones, arrive whole and in order",
  ignore: !unixSocketsSupported(),
  fn: async () => {
    const seen: string[] = [];
    const { client, close } = await socketPair((c) => {
      c.handle(PutZeroCopySend, ({ n, bytes, tag }) => {
        assert.deepEqual(bytes, bytesOf(n, bytes.byteLength), `put ${n} intact`);
        seen.push(`put ${n} ${tag ?? "-"}`);
        return { n };
      });
      c.handle(Note, ({ n, text }) => {
        assert.equal(text, `note ${n}`);
        seen.push(`note ${n}`);
      });
    });
    const sizes = [
      ZERO_COPY_MIN_BYTES,
      CHUNK,
      CHUNK + 1,
      100_003,
      700_000,
      ZERO_COPY_MIN_BYTES - 1,
    ];
    const sends: Promise<unknown>[] = [];
    const expected: string[] = [];
    for (let n = 0; n < 24; n++) {
      const length = sizes[n % sizes.length];
      // The bulk field first, or last, or between others: each place gives another tail.
      const body = n % 3 === 0
        ? { bytes: bytesOf(n, length), n, tag: `t${n}` }
        : n % 3 === 1
        ? { n, bytes: bytesOf(n, length) }
        : { n, bytes: bytesOf(n, length), tag: undefined };
      sends.push(client.request(PutZeroCopySend, body));
      expected.push(`put ${n} ${n % 3 === 0 ? `t${n}` : "-"}`);
      sends.push(client.notify(Note, { n, text: `note ${n}` }));
      expected.push(`note ${n}`);
    }
    const replies = await Promise.all(sends);
    assert.deepEqual(replies.filter((r) => r !== undefined).map((r) => (r as { n: number }).n), [
      ...Array(24).keys(),
    ]);
    assert.deepEqual(seen, expected);
    await close();
  },
});

Deno.test({
  name:
    "the caller's buffer is read until its request settled: changing it after leaves what the peer got",
  ignore: !unixSocketsSupported(),
  fn: async () => {
    const kept: Uint8Array[] = [];
    const { client, close } = await socketPair((c) =>
      c.handle(PutZeroCopySend, ({ n, bytes }) => {
        kept.push(bytes);
        return { n };
      })
    );
    const buffer = bytesOf(9, CHUNK);
    for (let n = 0; n < 4; n++) {
      await client.request(PutZeroCopySend, { n, bytes: buffer });
      buffer.fill(n); // the caller reuses its buffer once the request settled
    }
    assert.deepEqual(kept[0], bytesOf(9, CHUNK));
    for (let n = 1; n < 4; n++) assert.deepEqual(kept[n], new Uint8Array(CHUNK).fill(n - 1));
    await close();
  },
});

// Red team of the connection layer's limits, as hostile peers over a byte-stream transport (the
// read loop a socket goes through), on a fake clock. For each attack: what the node holds stays
// bounded, the attack ends with a typed code, and an honest peer sharing the node's `WireBudget` is
// served, or told `busy` with the bound that refused it.

/** A source that always has a next chunk, counting the sources open now. */
function endlessSources(): { make: () => ReadableStream<{ i: number }>; open: () => number } {
  let open = 0;
  return {
    make: () => {
      open++;
      let i = 0;
      let done = false;
      const finish = () => {
        if (!done) open--;
        done = true;
      };
      return new ReadableStream<{ i: number }>({
        pull: (controller) => controller.enqueue({ i: i++ }),
        cancel: finish,
      }, { highWaterMark: 0 });
    },
    open: () => open,
  };
}

/** The node's side of a connection over a byte stream, serving `CountTo` and `Echo`. */
function served(
  options: ConnectionOptions,
  sources: ReturnType<typeof endlessSources>,
) {
  const pair = connectionOverByteStream(options);
  pair.connection.handle(CountTo, () => sources.make());
  pair.connection.handle(Echo, ({ text, n }) => ({ text, n }));
  return pair;
}

/**
 * Let the connections run (macrotasks, no clock time) until `done()`; fails after `hops` rounds.
 * Progress here depends only on the event loop, not on time, so a loaded machine is no risk.
 */
async function until(done: () => boolean, what: string, hops = 2_000): Promise<void> {
  for (let i = 0; i < hops && !done(); i++) await settle();
  assert.ok(done(), `${what} within ${hops} rounds of the event loop`);
}

/** The body of an `error` envelope. */
function errorOf(envelope: Envelope): { code: string; message: string } {
  assert.equal(envelope.type, "error", `an error, not ${envelope.type}`);
  return envelope.body as { code: string; message: string };
}

Deno.test("many peers each one stream under their per-peer bound fill the node's streams: an honest peer's stream is refused busy naming the bound, its plain requests are served, and its stream is served once the hostile streams end credit_timeout", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget({ maxStreams: 4, maxStreamsPerPeer: 1 });
  const sources = endlessSources();
  const options = { timers, budget };
  // Four hostile peers (each connection its own peer): one stream each, and never any credit.
  const hostile = Array.from({ length: 4 }, () => served(options, sources));
  for (const { peer } of hostile) {
    await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 1_000_000 } });
  }
  await settle();
  assert.equal(budget.stats().streams, 4);
  assert.equal(sources.open(), 4);
  assert.ok(hostile.every(({ reads }) => reads() > 0), "read through the byte-stream path");
  const honest = served(options, sources);
  await honest.peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 3 } });
  const refusal = errorOf(await honest.peer.next());
  assert.equal(refusal.code, "busy");
  assert.match(refusal.message, /node busy: 4 streams served on all connections \(at most 4\)/);
  await honest.peer.send({ v: 1, type: Echo.type, id: 2, body: { text: "h", n: 2 } });
  const echoed = await honest.peer.next();
  assert.equal(echoed.type, Echo.reply!.type, "a plain request takes no stream slot");
  assert.equal(sources.open(), 4, "the refused stream opened no source");
  // The hostile streams hold their slots until the credit deadline, then end with a code.
  await timers.advance(DEFAULT_STREAM_CREDIT_TIMEOUT_MS);
  for (const { peer } of hostile) assert.equal(errorOf(await peer.next()).code, "credit_timeout");
  await settle();
  assert.equal(budget.stats().streams, 0);
  assert.equal(sources.open(), 0, "every hostile source was cancelled");
  await honest.peer.send({ v: 1, type: CountTo.type, id: 3, body: { to: 3 } });
  await honest.peer.send({ v: 1, type: "credit", id: 4, re: 3, body: { chunks: 1 } });
  assert.equal(
    (await honest.peer.next()).type,
    CountTo.chunk!.type,
    "now the honest one is served",
  );
  assert.deepEqual(budget.report().refusedBy.streams, 1);
  assert.deepEqual(budget.report().streamsEnded, { credit_timeout: 4, busy: 0 });
  const closing = [...hostile, honest].map(({ connection }) => connection.close());
  await timers.advance(5_000);
  await Promise.all(closing);
  assert.deepEqual(budget.stats(), { handlers: 0, streams: 0, queuedBytes: 0, refused: 1 });
});

Deno.test("a peer that grants endless credit on many streams and never reads: each stream admitted holds one chunk, the rest are refused busy for the connection's bytes, the idle check closes the connection peer_timeout on the clock, and all it held goes back to the node", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const sources = endlessSources();
  const maxQueuedBytes = 1024;
  const liveness = { keepaliveMs: 1_500, idleTimeoutMs: 5_000 };
  const hostile = connectionOverByteStream(
    { timers, budget, maxQueuedBytes, ...liveness },
    { highWaterMarkBytes: 1024 },
  );
  hostile.connection.handle(CountTo, () => sources.make());
  const streams = 64;
  for (let id = 1; id <= streams; id++) {
    await hostile.peer.send({ v: 1, type: CountTo.type, id, body: { to: 1_000_000 } });
    await hostile.peer.send({
      v: 1,
      type: "credit",
      id: 1000 + id,
      re: id,
      body: { chunks: 1_000_000 },
    });
  }
  // It never reads: the transport's buffer fills, each admitted stream's pump then waits on its
  // one chunk, and the streams asked for after that are refused busy for the connection's bytes.
  const frames = 2 * streams;
  await until(() => hostile.connection.stats().framesReceived === frames, "all frames read");
  for (let i = 0; i < 20; i++) await settle();
  const stats = hostile.connection.stats();
  const admitted = stats.inboundRequests;
  assert.ok(admitted > 0 && admitted < streams, `${admitted} of ${streams} streams admitted`);
  assert.equal(budget.report().refusedBy.connection_queued_bytes, streams - admitted);
  assert.ok(stats.queuedBytes <= maxQueuedBytes + 256, `${stats.queuedBytes} bytes queued`);
  // Waiting to go: one chunk per admitted stream and one small busy answer per refusal, however
  // much credit the peer granted.
  assert.ok(stats.waitingSends <= streams, `${stats.waitingSends} sends wait`);
  assert.ok(stats.waitingBytes <= streams * 128, `${stats.waitingBytes} bytes wait`);
  assert.equal(budget.stats().queuedBytes, stats.queuedBytes, "the node counts what it holds");
  assert.equal(sources.open(), admitted, "no source for a refused stream");
  // An honest peer on the same node is served meanwhile.
  const honest = served({ timers, budget }, sources);
  await honest.peer.send({ v: 1, type: Echo.type, id: 1, body: { text: "h", n: 1 } });
  assert.equal((await honest.peer.next()).type, Echo.reply!.type);
  // Our writes are not taken: past the idle timeout the connection closes with a code.
  await timers.advance(liveness.idleTimeoutMs);
  assert.equal(hostile.connection.isClosed, true);
  assert.equal((hostile.connection.closeReason as { code?: string }).code, "peer_timeout");
  await timers.advance(5_000); // the close grace: its stuck writes are abandoned
  await hostile.connection.closed;
  await settle();
  assert.deepEqual(budget.report().connectionsClosed, { peer_timeout: 1 });
  assert.equal(sources.open(), 0, "every source it opened was cancelled");
  assert.equal(budget.stats().queuedBytes, 0, "its bytes left the node's count");
  assert.equal(budget.stats().handlers, 0);
  assert.equal(budget.stats().streams, 0);
  const closing = honest.connection.close();
  await timers.advance(5_000);
  await closing;
});

Deno.test("a peer that grants one window of credit, reads it, and never grants more: the stream ends credit_timeout after the default 120 s on the clock, not before", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const sources = endlessSources();
  const hostile = served({ timers, budget }, sources);
  await hostile.peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 1_000_000 } });
  await hostile.peer.send({ v: 1, type: "credit", id: 2, re: 1, body: { chunks: 16 } });
  for (let i = 0; i < 16; i++) assert.equal((await hostile.peer.next()).type, CountTo.chunk!.type);
  await timers.advance(DEFAULT_STREAM_CREDIT_TIMEOUT_MS - 1);
  assert.equal(budget.stats().streams, 1, "a slow reader keeps its stream until the deadline");
  await timers.advance(1);
  assert.equal(errorOf(await hostile.peer.next()).code, "credit_timeout");
  await settle();
  assert.equal(budget.stats().streams, 0);
  assert.equal(sources.open(), 0);
  assert.equal(hostile.connection.isClosed, false, "the connection itself goes on");
  const closing = hostile.connection.close();
  await timers.advance(5_000);
  await closing;
});

Deno.test("frames announced at the largest size and trickled a byte per keepalive period, on many connections: each holds only what arrived, all close peer_timeout at frameTimeoutMs on the clock (counted frame_timeout), and an honest peer is served throughout", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const liveness = { keepaliveMs: 1_500, idleTimeoutMs: 5_000 };
  const hostile = Array.from(
    { length: 8 },
    () => connectionOverByteStream({ timers, budget, ...liveness }),
  );
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, DEFAULT_MAX_FRAME_BYTES); // the largest allowed
  for (const { peer } of hostile) await peer.sendBytes(header);
  const honest = served({ timers, budget }, endlessSources());
  for (let t = 0; t < DEFAULT_FRAME_TIMEOUT_MS - 4_000; t += 4_000) {
    await timers.advance(4_000); // under the idle timeout: each byte is life
    for (const { peer } of hostile) await peer.sendBytes(new Uint8Array([0xa0]));
    await honest.peer.send({ v: 1, type: Echo.type, id: 1 + t, body: { text: "h", n: t } });
    assert.equal((await honest.peer.next()).type, Echo.reply!.type, `served at ${t} ms`);
  }
  assert.ok(hostile.every(({ connection }) => !connection.isClosed), "alive before the deadline");
  await timers.advance(4_000);
  assert.ok(hostile.every(({ connection }) => connection.isClosed));
  assert.ok(hostile.every(({ connection }) => connection.closeReason instanceof PeerTimeoutError));
  assert.deepEqual(budget.report().connectionsClosed, { frame_timeout: 8 });
  const closing = honest.connection.close();
  await timers.advance(5_000);
  await Promise.all([closing, ...hostile.map(({ connection }) => connection.closed)]);
  // What one such frame holds, byte by byte as the read loop lends it (one socket read each, in
  // a 64 KiB read buffer): twice what arrived at most, never the 1 MiB announced.
  const splitter = new FrameSplitter();
  splitter.pushLent(header, () => {});
  const read = new Uint8Array(64 * 1024);
  for (let i = 0; i < 4_096; i++) splitter.pushLent(read.subarray(i, i + 1), () => {});
  assert.ok(splitter.heldBytes <= 2 * 4_096, `${splitter.heldBytes} bytes held for 4,096 arrived`);
});

Deno.test("a frame header announcing 4 GiB is refused at once: frame_too_large to the peer, the connection closed and counted, nothing buffered for it", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const { connection, peer } = connectionOverByteStream({ timers, budget });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 0xffff_ffff);
  await peer.sendBytes(header);
  assert.equal(errorOf(await peer.next()).code, "frame_too_large");
  assert.equal(connection.isClosed, true);
  assert.deepEqual(budget.report().connectionsClosed, { frame_too_large: 1 });
  await timers.advance(5_000);
  await connection.closed;
});

Deno.test("open-and-cancel in a loop on one connection: every handler, stream slot and source is given back, cancels are not refusals, and the same peer's request after the loop is served", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget({ maxStreamsPerPeer: 8 });
  const sources = endlessSources();
  const hostile = served({ timers, budget }, sources);
  const cycles = 500;
  for (let n = 0; n < cycles; n++) {
    const id = 2 * n + 1;
    await hostile.peer.send({ v: 1, type: CountTo.type, id, body: { to: 1_000_000 } });
    await hostile.peer.send({
      v: 1,
      type: "cancel",
      id: id + 1,
      re: id,
      body: { code: "request_cancelled", message: "again" },
    });
  }
  await until(
    () => hostile.connection.stats().framesReceived === 2 * cycles,
    "every frame read",
  );
  await until(() => budget.stats().streams === 0, "every stream slot back");
  assert.equal(budget.stats().handlers, 0);
  assert.equal(hostile.connection.stats().inboundRequests, 0);
  assert.equal(sources.open(), 0, "every source cancelled");
  assert.equal(hostile.connection.stats().refused, 0, "a cancel is no refusal");
  assert.ok(
    budget.report().refusedBy.streams_per_peer <= cycles / 2,
    "most opens were served, not refused",
  );
  await hostile.peer.send({ v: 1, type: Echo.type, id: 5_000, body: { text: "h", n: 1 } });
  let answer = await hostile.peer.next();
  while (answer.re !== 5_000) answer = await hostile.peer.next(); // past the busy answers, if any
  assert.equal(answer.type, Echo.reply!.type);
  const closing = hostile.connection.close();
  await timers.advance(5_000);
  await closing;
});

Deno.test("connections that open streams with credit and then drop their transport, again and again: the node's budget is back to empty after each, its sources cancelled", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const sources = endlessSources();
  for (let round = 0; round < 20; round++) {
    const { connection, peer } = served({ timers, budget }, sources);
    for (let id = 1; id <= 4; id++) {
      await peer.send({ v: 1, type: CountTo.type, id, body: { to: 1_000_000 } });
      await peer.send({ v: 1, type: "credit", id: 100 + id, re: id, body: { chunks: 1_000 } });
    }
    await until(() => budget.stats().streams === 4, "its streams admitted");
    await peer.close(); // the transport ends under them: no cancel, no goodbye
    await timers.advance(5_000); // the close grace for our writes the peer will never read
    await connection.closed;
    await until(() => budget.stats().handlers === 0, `round ${round}: slots back`);
    assert.deepEqual(budget.stats(), { handlers: 0, streams: 0, queuedBytes: 0, refused: 0 });
    assert.equal(sources.open(), 0, `round ${round}: sources cancelled`);
  }
});

Deno.test("a flood of tiny frames that each do nothing (credit for no stream) is read a socket read at a time: an honest connection is answered between the flooder's reads, long before the flood is decoded, and the flood is cut off too_many_refusals past the idle allowance", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const flooder = connectionOverByteStream({ timers, budget });
  const honest = served({ timers, budget }, endlessSources());
  const count = 20_000;
  const frames = Array.from({ length: count }, (_, i) =>
    encodeFrame(
      encodeEnvelope({ v: 1, type: "credit", id: i + 1, re: 999_999, body: { chunks: 1 } }),
      DEFAULT_MAX_FRAME_BYTES,
    ));
  // ~1 MiB in one write, never read to its end (the flooder is cut off first).
  flooder.peer.sendBytes(concatBytes(...frames)).catch(() => {});
  await honest.peer.send({ v: 1, type: Echo.type, id: 1, body: { text: "h", n: 1 } });
  assert.equal((await honest.peer.next()).type, Echo.reply!.type);
  const decoded = flooder.connection.stats().framesReceived;
  assert.ok(decoded < count, `answered after ${decoded} of ${count} flood frames`);
  // Such frames are no refusal, but past the idle allowance each counts as one: the flooder is
  // cut off after DEFAULT_MAX_IDLE_FRAMES + DEFAULT_MAX_REFUSALS of them, not read to the end.
  await until(() => flooder.connection.isClosed, "the flood cut off");
  assert.ok(flooder.connection.closeReason instanceof TooManyRefusalsError);
  const read = flooder.connection.stats().framesReceived;
  assert.equal(
    read,
    DEFAULT_MAX_IDLE_FRAMES + DEFAULT_MAX_REFUSALS + 1,
    `read ${read} of ${count}`,
  );
  const closing = [flooder, honest].map(({ connection }) => connection.close());
  await timers.advance(5_000);
  await Promise.all(closing);
});
