import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameSplitter,
  LengthPrefixedDecoderStream,
  LengthPrefixedEncoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import { prng } from "../_prng.ts";
import { delay } from "../_helpers/wait.ts";
import { joinBytes } from "../_helpers/bytes.ts";

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
