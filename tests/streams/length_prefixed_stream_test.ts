import assert from "node:assert/strict";
import {
  DEFAULT_MAX_FRAME_BYTES,
  LengthPrefixedDecoderStream,
  LengthPrefixedEncoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import { prng } from "../_prng.ts";

async function encodeAll(payloads: Uint8Array[]): Promise<Uint8Array> {
  const frames = await Array.fromAsync(
    ReadableStream.from(payloads).pipeThrough(new LengthPrefixedEncoderStream()),
  );
  const out = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  let offset = 0;
  for (const f of frames) {
    out.set(f, offset);
    offset += f.byteLength;
  }
  return out;
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
