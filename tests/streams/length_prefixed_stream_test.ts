/**
 * The framing streams (`streams/length_prefixed_stream.ts`, `streams/cbor_stream.ts`): frames cut
 * from and written to a byte stream, chunks only lent for the call, a pipeline stage's back-pressure
 * and cancellation, and CBOR values over frames.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { encodeCbor } from "../../protocols/cbor.ts";
import type { Envelope } from "../../protocols/envelope.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import {
  CborDecoderStream,
  CborEncoderStream,
  EnvelopeDecoderStream,
  EnvelopeEncoderStream,
} from "../../streams/cbor_stream.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameSplitter,
  LengthPrefixedDecoderStream,
  LengthPrefixedEncoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { concatBytes, joinBytes } from "../_helpers/bytes.ts";
import { delay } from "../_helpers/wait.ts";
import { prng } from "../_prng.ts";

// ---- frames in and out --------------------------------------------------------------------------

async function encodeAll(payloads: Uint8Array[]): Promise<Uint8Array> {
  return joinBytes(
    await Array.fromAsync(
      ReadableStream.from(payloads).pipeThrough(new LengthPrefixedEncoderStream()),
    ),
  );
}

function splitRandomly(bytes: Uint8Array, random: () => number, maxPiece: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const n = 1 + Math.floor(random() * maxPiece);
    pieces.push(bytes.slice(offset, offset + n));
    offset += n;
  }
  return pieces;
}

Deno.test("frames round-trip through arbitrary chunk splits, including 1-byte pieces", async () => {
  const random = prng(42);
  const payloads = Array.from({ length: 300 }, (_, i) => {
    const p = new Uint8Array(Math.floor(random() * (i % 10 === 0 ? 5000 : 40)));
    for (let j = 0; j < p.length; j++) p[j] = Math.floor(random() * 256);
    return p;
  });
  const bytes = await encodeAll(payloads);
  for (const maxPiece of [1, 3, 7, 64, 4096, bytes.byteLength]) {
    const decoded = await Array.fromAsync(
      ReadableStream.from(splitRandomly(bytes, random, maxPiece))
        .pipeThrough(new LengthPrefixedDecoderStream()),
    );
    assert.equal(decoded.length, payloads.length, `piece size ${maxPiece}`);
    decoded.forEach((d, i) => assert.deepEqual(d, payloads[i], `frame ${i}, piece ${maxPiece}`));
  }
});

Deno.test("empty payloads are frames too", async () => {
  const bytes = await encodeAll([new Uint8Array(0), new Uint8Array([9]), new Uint8Array(0)]);
  const decoded = await Array.fromAsync(
    ReadableStream.from([bytes]).pipeThrough(new LengthPrefixedDecoderStream()),
  );
  assert.deepEqual(decoded.map((d) => d.length), [0, 1, 0]);
});

Deno.test("the default maximum frame is 1 MiB", () => {
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 1024 * 1024);
});

Deno.test("the encoder refuses a payload over maxFrameBytes", async () => {
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([new Uint8Array(11)])
        .pipeThrough(new LengthPrefixedEncoderStream({ maxFrameBytes: 10 })),
    ),
    (e: unknown) => e instanceof FrameTooLargeError && e.code === "frame_too_large",
  );
});

Deno.test("a frame of exactly maxFrameBytes passes", async () => {
  const bytes = await encodeAll([new Uint8Array(10)]);
  const decoded = await Array.fromAsync(
    ReadableStream.from([bytes])
      .pipeThrough(new LengthPrefixedDecoderStream({ maxFrameBytes: 10 })),
  );
  assert.equal(decoded[0].length, 10);
});

Deno.test("a lying prefix over the limit errors before its body is buffered", async () => {
  // Prefix announces 4 GiB - 1; only the prefix is ever written, and the stream never ends.
  const stream = new TransformStream<Uint8Array, Uint8Array>();
  const writer = stream.writable.getWriter();
  const reader = stream.readable
    .pipeThrough(new LengthPrefixedDecoderStream({ maxFrameBytes: 1024 }))
    .getReader();
  writer.write(new Uint8Array([0xff, 0xff, 0xff])).catch(() => {});
  writer.write(new Uint8Array([0xff])).catch(() => {});
  await assert.rejects(
    reader.read(),
    (e: unknown) => e instanceof FrameTooLargeError && e.code === "frame_too_large",
  );
});

Deno.test("a stream that ends inside a frame errors with truncated_frame", async () => {
  const cut = (await encodeAll([new Uint8Array(100)])).subarray(0, 50);
  await assert.rejects(
    Array.fromAsync(ReadableStream.from([cut]).pipeThrough(new LengthPrefixedDecoderStream())),
    (e: unknown) => e instanceof TruncatedFrameError && e.code === "truncated_frame",
  );
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([new Uint8Array([0, 0])]).pipeThrough(new LengthPrefixedDecoderStream()),
    ),
    TruncatedFrameError,
  );
});

Deno.test("maxFrameBytes must be a valid uint32", () => {
  assert.throws(() => new LengthPrefixedDecoderStream({ maxFrameBytes: -1 }), RangeError);
  assert.throws(() => new LengthPrefixedEncoderStream({ maxFrameBytes: 2 ** 32 }), RangeError);
});

Deno.test("a partial frame holds the bytes that arrived, not its declared length", async () => {
  // 1,000 streams (as if 1,000 peers) each announce a 1 MiB frame and send 10 bytes of it.
  // Allocating the declared length up front would hold 1,000 MiB; growing holds ~10 KB.
  const streams = 1_000;
  const declared = 1 << 20;
  const before = Deno.memoryUsage();
  const open: WritableStreamDefaultWriter<Uint8Array>[] = [];
  for (let i = 0; i < streams; i++) {
    const decoder = new LengthPrefixedDecoderStream({ maxFrameBytes: declared });
    const writer = decoder.writable.getWriter();
    decoder.readable.getReader().read(); // a reader waiting, as a connection's read loop does
    const chunk = new Uint8Array(4 + 10);
    new DataView(chunk.buffer).setUint32(0, declared);
    await writer.write(chunk);
    open.push(writer);
  }
  const after = Deno.memoryUsage();
  const grown = after.heapUsed + after.external - before.heapUsed - before.external;
  console.log(`${streams} partial 1 MiB frames hold ${(grown / 1024).toFixed(0)} KiB`);
  assert.ok(grown < 64 * 1024 * 1024, `held ${grown} bytes for ${streams} partial frames`);
  assert.equal(open.length, streams); // keep every decoder alive until measured
  // The frame still completes when the rest arrives.
  const decoder = new LengthPrefixedDecoderStream();
  const writer = decoder.writable.getWriter();
  const out = decoder.readable.getReader();
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 6);
  writer.write(prefix);
  for (const part of [[1, 2], [3], [4, 5, 6]]) writer.write(new Uint8Array(part));
  assert.deepEqual((await out.read()).value, new Uint8Array([1, 2, 3, 4, 5, 6]));
});

Deno.test("a frame cut into one-byte pieces is reassembled whole, holding at most twice what arrived", () => {
  const splitter = new FrameSplitter();
  const payload = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const framed = new Uint8Array(4 + payload.length);
  new DataView(framed.buffer).setUint32(0, payload.length);
  framed.set(payload, 4);
  const frames: Uint8Array[] = [];
  let worst = 0;
  for (let i = 0; i < framed.length; i++) {
    splitter.push(framed.subarray(i, i + 1), (p) => frames.push(p));
    const arrived = Math.max(0, i + 1 - 4);
    if (frames.length === 0) worst = Math.max(worst, splitter.heldBytes / Math.max(arrived, 2048));
  }
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], payload);
  // Views of each piece, kept until the frame completed, cost ~200 bytes of objects per byte.
  assert.ok(worst <= 2, `held ${worst.toFixed(2)}× what arrived`);
  assert.equal(splitter.heldBytes, 0, "nothing kept once the frame is out");
});

/** What a socket read hands over: a view of a fresh buffer of this size, however few bytes came. */
const READ_BUFFER_BYTES = 64 * 1024;

/** A frame prefix announcing `length` payload bytes. */
function prefixFor(length: number): Uint8Array {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, length);
  return prefix;
}

/**
 * Pushes `bytes` one byte per read, each a view of its own {@link READ_BUFFER_BYTES} buffer, and
 * returns weak references to those buffers (in a function, so no local keeps one alive).
 */
function pushAsOneByteReads(splitter: FrameSplitter, bytes: Uint8Array): WeakRef<ArrayBuffer>[] {
  const buffers: WeakRef<ArrayBuffer>[] = [];
  for (const byte of bytes) {
    const read = new Uint8Array(new ArrayBuffer(READ_BUFFER_BYTES), 0, 1);
    read[0] = byte;
    buffers.push(new WeakRef(read.buffer));
    splitter.push(read, () => assert.fail("the frame is not complete yet"));
  }
  return buffers;
}

Deno.test("a partial frame sent a byte per read does not keep alive the 64 KiB buffers the bytes came in", async () => {
  // Node's trick, supported by Deno: V8's gc() at run time, without a command-line flag.
  v8.setFlagsFromString("--expose-gc");
  const forceGc = vm.runInNewContext("gc") as () => void;
  const arrived = 64; // as many pieces as the splitter keeps before gathering them
  const payload = crypto.getRandomValues(new Uint8Array(arrived + 1));
  const splitter = new FrameSplitter();
  splitter.push(prefixFor(payload.length), () => assert.fail("no frame yet"));
  const buffers = pushAsOneByteReads(splitter, payload.subarray(0, arrived));
  await delay(0); // a WeakRef keeps its target alive until the current job ends
  forceGc();
  const pinned = buffers.filter((b) => b.deref() !== undefined).length;
  assert.equal(pinned, 0, `${pinned} read buffers of ${READ_BUFFER_BYTES} bytes kept alive`);
  assert.ok(splitter.heldBytes <= 2 * arrived, `holds ${splitter.heldBytes} for ${arrived}`);
  const frames: Uint8Array[] = [];
  splitter.push(payload.subarray(arrived), (p) => frames.push(p));
  assert.deepEqual(frames, [payload]);
});

Deno.test("heldBytes counts the whole buffer a kept piece is a view of", () => {
  // A piece over half its buffer is kept as a view (copying it would save less than it costs),
  // and pins the whole buffer: that is what the splitter holds.
  const splitter = new FrameSplitter();
  const chunk = new Uint8Array(1000);
  chunk.set(prefixFor(2000), 400);
  splitter.push(chunk.subarray(400), () => assert.fail("no frame yet"));
  assert.equal(splitter.heldBytes, 1000);
});

Deno.test("a frame spread over whole reads keeps them as views until it completes: one copy, into the payload", () => {
  const splitter = new FrameSplitter();
  const reads = [0, 1, 2].map((i) => new Uint8Array(READ_BUFFER_BYTES).fill(i));
  const frames: Uint8Array[] = [];
  splitter.push(prefixFor(3 * READ_BUFFER_BYTES), () => assert.fail("no frame yet"));
  splitter.push(reads[0], () => assert.fail("no frame yet"));
  splitter.push(reads[1], () => assert.fail("no frame yet"));
  assert.equal(splitter.heldBytes, 2 * READ_BUFFER_BYTES);
  // Still the caller's buffer, not a copy of it: what is written to it shows in the frame.
  reads[1].fill(7);
  splitter.push(reads[2], (p) => frames.push(p));
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0].subarray(READ_BUFFER_BYTES, 2 * READ_BUFFER_BYTES), reads[1]);
  assert.equal(frames[0][2 * READ_BUFFER_BYTES], 2);
});

// ---- the framing streams as a pipeline stage ----------------------------------------------------
//
// The framing streams as a pipeline stage: a slow reader holds the writer back, cancelling either
// end reaches the other, and a stream cut inside a prefix or a payload ends with `truncated_frame`
// naming what was missing.

Deno.test("a decoder whose reader reads nothing makes its writer wait after a frame or two, not buffer what it is given", async () => {
  const decoder = new LengthPrefixedDecoderStream();
  const writer = decoder.writable.getWriter();
  let accepted = 0;
  for (let i = 0; i < 100; i++) {
    void writer.write(encodeFrame(new Uint8Array(1000), 1 << 20)).then(() => accepted++, () => {});
  }
  await delay(0);
  assert.ok(accepted <= 2, `${accepted} writes accepted with nobody reading`);
  assert.ok((writer.desiredSize ?? 0) <= 0, "the writer is told to wait");
  // Reading lets the writes through, in order.
  const reader = decoder.readable.getReader();
  for (let i = 0; i < 100; i++) assert.equal((await reader.read()).value?.byteLength, 1000);
  await writer.close();
  assert.equal((await reader.read()).done, true);
});

Deno.test("cancelling the frames cancels the byte source; aborting the bytes errors the frames", async () => {
  let cancelled: unknown = undefined;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(encodeFrame(new Uint8Array([1]), 1 << 20));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const frames = source.pipeThrough(new LengthPrefixedDecoderStream()).getReader();
  await frames.read();
  const reason = new Error("connection closed");
  await frames.cancel(reason);
  assert.equal(cancelled, reason);

  const decoder = new LengthPrefixedDecoderStream();
  const writer = decoder.writable.getWriter();
  const reader = decoder.readable.getReader();
  const failure = new Error("socket reset");
  await writer.abort(failure);
  await assert.rejects(reader.read(), (e) => e === failure);
});

Deno.test("a stream cut inside the prefix or the payload ends with truncated_frame naming the bytes missing", async () => {
  const wire = encodeFrame(new Uint8Array(10), 1 << 20); // 4 + 10 bytes
  for (const [cut, missing] of [[1, 3], [3, 1], [4, 10], [9, 5], [13, 1]]) {
    const pieces = Array.from({ length: cut }, (_, i) => wire.slice(i, i + 1));
    await assert.rejects(
      Array.fromAsync(ReadableStream.from(pieces).pipeThrough(new LengthPrefixedDecoderStream())),
      (e: unknown) =>
        e instanceof TruncatedFrameError && e.code === "truncated_frame" &&
        e.message.includes(` ${missing} bytes short`),
      `cut after ${cut} bytes`,
    );
  }
});

// ---- `FrameSplitter.pushLent` -------------------------------------------------------------------
//
// `FrameSplitter.pushLent`: chunks that are only lent for the call (a `Connection`'s reused read
// buffer). Every test feeds the bytes through one buffer that is scribbled over after each push, as
// the next socket read would, so a payload that kept a view of it shows up corrupt.

const MAX = 1 << 20;
const SCRIBBLE = 0xee;

function payloadOf(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/**
 * Feed `wire` to a splitter through one reused buffer, cut at `cuts`; returns the payloads as
 * they are once everything was fed (an `onFrame` view of the lent chunk is copied, as the
 * contract asks; a gathered payload is kept as given).
 */
function feedLent(wire: Uint8Array, cuts: number[], splitter = new FrameSplitter()): Uint8Array[] {
  const lent = new Uint8Array(wire.byteLength);
  const got: Uint8Array[] = [];
  let from = 0;
  for (const to of [...cuts, wire.byteLength]) {
    const chunk = lent.subarray(0, to - from);
    chunk.set(wire.subarray(from, to));
    splitter.pushLent(chunk, (p) => got.push(p.buffer === lent.buffer ? p.slice() : p));
    lent.fill(SCRIBBLE); // the next read lands here
    from = to;
  }
  splitter.end();
  return got;
}

Deno.test("a lent chunk: a frame split at every byte boundary comes out whole and is not a view of the reused buffer", () => {
  const payload = payloadOf(300, 1);
  const wire = encodeFrame(payload, MAX);
  for (let cut = 1; cut < wire.byteLength; cut++) {
    const got = feedLent(wire, [cut]);
    assert.equal(got.length, 1, `cut at ${cut}`);
    assert.deepEqual(got[0], payload, `cut at ${cut}`);
  }
});

Deno.test("a lent chunk: every frame of a run cut into one-byte reads comes out intact", () => {
  const payloads = [payloadOf(5, 2), payloadOf(0, 3), payloadOf(4096 + 7, 4), payloadOf(1, 5)];
  const wire = concatBytes(...payloads.map((p) => encodeFrame(p, MAX)));
  const cuts = Array.from({ length: wire.byteLength - 1 }, (_, i) => i + 1);
  assert.deepEqual(feedLent(wire, cuts), payloads);
});

Deno.test("a lent chunk: two frames in one read, and a prefix split across reads", () => {
  const a = payloadOf(10, 6);
  const b = payloadOf(20, 7);
  const c = payloadOf(70_000, 8);
  const wire = concatBytes(...[a, b, c].map((p) => encodeFrame(p, MAX)));
  // Read 1: frame a, frame b and two bytes of c's prefix; read 2: the rest of the prefix and
  // part of c; read 3: the rest of c.
  const cPrefix = 4 + 10 + 4 + 20;
  for (const cuts of [[cPrefix + 2, cPrefix + 1000], [cPrefix + 2, cPrefix + 4], [cPrefix]]) {
    assert.deepEqual(feedLent(wire, cuts), [a, b, c], `cuts ${cuts}`);
  }
});

Deno.test("a lent chunk: a payload gathered over reads is the splitter's own buffer of exactly its length", () => {
  const payload = payloadOf(262_200, 9);
  const wire = encodeFrame(payload, MAX);
  const lent = new Uint8Array(wire.byteLength);
  const splitter = new FrameSplitter();
  const got: Uint8Array[] = [];
  // As a Unix socket delivers a 256 KiB storage chunk: ~208 KiB, then the rest.
  for (const [from, to] of [[0, 212_992], [212_992, wire.byteLength]]) {
    const chunk = lent.subarray(0, to - from);
    chunk.set(wire.subarray(from, to));
    splitter.pushLent(chunk, (p) => got.push(p));
    // The first read brought over half the frame: its one buffer, of the frame's length, is
    // made now (no more than twice what arrived), so the frame costs one buffer and one copy.
    if (got.length === 0) assert.equal(splitter.heldBytes, payload.byteLength);
    lent.fill(SCRIBBLE);
  }
  assert.equal(got.length, 1);
  assert.notEqual(got[0].buffer, lent.buffer);
  assert.equal(got[0].buffer.byteLength, payload.byteLength);
  assert.deepEqual(got[0], payload);
});

Deno.test("a lent chunk: a frame over the limit is refused from its prefix, before anything is gathered", () => {
  const splitter = new FrameSplitter({ maxFrameBytes: 1000 });
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 1001);
  // The prefix split across reads, as the refusal must not depend on how it arrived.
  splitter.pushLent(prefix.subarray(0, 3), () => assert.fail("no frame"));
  assert.throws(
    () => splitter.pushLent(prefix.subarray(3), () => assert.fail("no frame")),
    FrameTooLargeError,
  );
  assert.equal(splitter.heldBytes, 0);
});

Deno.test("a lent chunk: input that stops inside a frame ends with truncated_frame", () => {
  const wire = encodeFrame(payloadOf(100, 10), MAX);
  const splitter = new FrameSplitter();
  splitter.pushLent(wire.slice(0, 50), () => assert.fail("no frame"));
  assert.throws(() => splitter.end(), TruncatedFrameError);
});

Deno.test("lent and owned chunks mix: views kept from owned chunks are gathered with the lent bytes", () => {
  const payload = payloadOf(5000, 11);
  const wire = encodeFrame(payload, MAX);
  const splitter = new FrameSplitter();
  const got: Uint8Array[] = [];
  splitter.push(wire.slice(0, 3000), (p) => got.push(p)); // the handshake's leftover: owned
  const lent = wire.slice(3000);
  splitter.pushLent(lent, (p) => got.push(p));
  lent.fill(SCRIBBLE);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0], payload);
});

Deno.test("a lent chunk: a frame whose start came at the end of a full read gets one buffer of its length at once", () => {
  // 256 KiB storage chunks through a 256 KiB read buffer: each frame (payload and prefix) is a
  // little larger than one read, so it spans two, and where it starts in the first depends on
  // the frames before it. Growing from twice its first piece copied the frame twice.
  const readBuffer = new Uint8Array(256 * 1024);
  const payload = payloadOf(262_263, 12);
  const before = payloadOf(readBuffer.byteLength - 4 - 36_667, 13);
  const wire = concatBytes(encodeFrame(before, MAX), encodeFrame(payload, MAX));
  const splitter = new FrameSplitter();
  const got: Uint8Array[] = [];
  for (const [from, to] of [[0, readBuffer.byteLength], [readBuffer.byteLength, wire.byteLength]]) {
    const chunk = readBuffer.subarray(0, to - from);
    chunk.set(wire.subarray(from, to));
    splitter.pushLent(chunk, (p) => got.push(p.buffer === readBuffer.buffer ? p.slice() : p));
    if (got.length === 1) assert.equal(splitter.heldBytes, payload.byteLength);
    readBuffer.fill(SCRIBBLE);
  }
  assert.equal(got.length, 2);
  assert.deepEqual(got[0], before);
  assert.equal(got[1].buffer.byteLength, payload.byteLength);
  assert.deepEqual(got[1], payload);
});

Deno.test("a lent chunk: a partial frame holds at most twice what arrived, or what a full read brought", () => {
  // A peer announcing the largest frame and sending ten bytes of it costs a small buffer, not
  // the announced length and not the read buffer's size: those bytes did not fill the read.
  const readBuffer = new Uint8Array(64 * 1024);
  const splitter = new FrameSplitter({ maxFrameBytes: 16 << 20 });
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 16 << 20);
  const chunk = readBuffer.subarray(0, 14);
  chunk.set(prefix);
  splitter.pushLent(chunk, () => assert.fail("no frame"));
  assert.ok(splitter.heldBytes <= 4096, `holds ${splitter.heldBytes}`);
  // As more arrives, the bound grows with it: twice what arrived.
  const more = readBuffer.subarray(0, 60_000);
  for (let i = 0; i < 3; i++) splitter.pushLent(more, () => assert.fail("no frame"));
  assert.ok(splitter.heldBytes <= 2 * (10 + 3 * 60_000), `holds ${splitter.heldBytes}`);
});

// ---- CBOR values over frames --------------------------------------------------------------------

Deno.test("envelopes round-trip through the envelope codec streams", async () => {
  const envelopes: Envelope[] = [
    { v: 1, type: "ping", id: 1, body: { nonce: 5 } },
    { v: 1, type: "test.data", id: 2, re: 1, body: { bytes: new Uint8Array([1, 2, 3]) } },
  ];
  const out = await Array.fromAsync(
    ReadableStream.from(envelopes)
      .pipeThrough(new EnvelopeEncoderStream())
      .pipeThrough(new EnvelopeDecoderStream()),
  );
  assert.deepEqual(out.map((f) => f.ok && f.envelope), envelopes);
});

Deno.test("absent optional envelope fields are left out of the encoding, not sent as null", async () => {
  const [payload] = await Array.fromAsync(
    ReadableStream.from([{ v: 1, type: "ping", id: 1, re: undefined, body: null } as Envelope])
      .pipeThrough(new EnvelopeEncoderStream()),
  );
  assert.equal(
    payload.byteLength,
    encodeCbor({ v: 1, type: "ping", id: 1, body: null }).byteLength,
  );
});

Deno.test("the envelope decoder reports a bad frame as a typed result and keeps going", async () => {
  const good = encodeCbor({ v: 1, type: "ping", id: 1, body: { nonce: 1 } });
  const out = await Array.fromAsync(
    ReadableStream.from([
      new Uint8Array([0xff]),
      encodeCbor({ v: 9, type: "x", id: 2, body: 0 }),
      good,
    ])
      .pipeThrough(new EnvelopeDecoderStream()),
  );
  assert.equal(out.length, 3);
  assert.deepEqual(out.map((f) => f.ok ? "ok" : f.error.code), [
    "malformed_cbor",
    "unknown_version",
    "ok",
  ]);
});

Deno.test("the plain CBOR decoder round-trips values and errors on a bad payload", async () => {
  const values = [1, "two", { three: [3] }, new Uint8Array([4])];
  const out = await Array.fromAsync(
    ReadableStream.from(values).pipeThrough(new CborEncoderStream())
      .pipeThrough(new CborDecoderStream()),
  );
  assert.deepEqual(out, values);
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([new Uint8Array([0x9f])]).pipeThrough(new CborDecoderStream()),
    ),
    (e: unknown) => (e as { code?: string }).code === "malformed_cbor",
  );
});
