/**
 * `FrameSplitter.pushLent`: chunks that are only lent for the call (a `Connection`'s reused read
 * buffer). Every test feeds the bytes through one buffer that is scribbled over after each
 * push, as the next socket read would, so a payload that kept a view of it shows up corrupt.
 */
import assert from "node:assert/strict";
import { encodeFrame, FrameSplitter } from "../../streams/length_prefixed_stream.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import { concatBytes } from "../_helpers/bytes.ts";

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
