/**
 * Review (stop 53) of the handshake's frame reading: a peer that sends its handshake frame one
 * byte at a time must cost the node copying linear in the frame, not quadratic (before the
 * fix, each byte read copied everything read so far: ~128M byte copies for one 16 KiB frame,
 * before the peer is even authenticated). The first test failed on the code before its fix; the
 * second pins that frames still come through whole when read a byte at a time.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import type { ByteDuplex } from "../../protocols/memory_duplex.ts";
import { HandshakeError } from "../../protocols/protocol_errors.ts";
import {
  authenticateTransport,
  MAX_HANDSHAKE_FRAME_BYTES,
  runSessionHandshake,
} from "../../protocols/session_handshake.ts";
import { LENGTH_PREFIX_BYTES } from "../../streams/length_prefixed_stream.ts";
import { ManualTimers } from "./_helpers.ts";

/** A readable that hands out `bytes` in chunks of `chunkBytes` (views, not copies). */
function trickle(bytes: Uint8Array, chunkBytes: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.byteLength) return; // then silence: the peer keeps the line open
      controller.enqueue(bytes.subarray(at, at + chunkBytes));
      at += chunkBytes;
    },
  }, { highWaterMark: 0 });
}

/** A writable that takes every byte and keeps none. */
function sink(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({ write() {} });
}

/**
 * Run `work`, counting the bytes copied by `Uint8Array.prototype.set` and `slice` meanwhile
 * (the ways bytes are copied between buffers here).
 */
async function countCopiedBytes(work: () => Promise<unknown>): Promise<number> {
  const proto = Uint8Array.prototype;
  const set = proto.set;
  const slice = proto.slice;
  let copied = 0;
  proto.set = function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
    copied += source.length;
    return set.call(this, source, offset);
  };
  proto.slice = function (this: Uint8Array, start?: number, end?: number) {
    const out = slice.call(this, start, end);
    copied += out.byteLength;
    return out;
  };
  try {
    await work();
  } finally {
    proto.set = set;
    proto.slice = slice;
  }
  return copied;
}

Deno.test("a largest handshake frame sent one byte at a time costs copying linear in its size, not quadratic", async () => {
  const payloadBytes = MAX_HANDSHAKE_FRAME_BYTES;
  const wire = new Uint8Array(LENGTH_PREFIX_BYTES + payloadBytes); // zeros: not an envelope
  new DataView(wire.buffer).setUint32(0, payloadBytes);
  const duplex: ByteDuplex = { readable: trickle(wire, 1), writable: sink() };
  const timers = new ManualTimers(); // never advanced: no deadline races the reading
  let refused: unknown;
  const copied = await countCopiedBytes(async () => {
    await authenticateTransport(duplex, { identity: Identity.generate(), timers })
      .catch((error) => refused = error);
  });
  assert.ok(refused instanceof HandshakeError, `refused with ${refused}`);
  // The whole frame was read before it was refused: the cost measured is the reading's.
  // Linear: a few copies of each byte (joining, the payload handed out, our own frames).
  const bound = 8 * wire.byteLength;
  assert.ok(
    copied <= bound,
    `copied ${copied} bytes to read a ${wire.byteLength}-byte frame (bound ${bound})`,
  );
});

Deno.test("a handshake whose peer's bytes arrive one at a time still completes, and the bytes after its proof come through intact", async () => {
  // Two honest sides; between them, each direction re-chunked to one byte per read.
  const alice = Identity.generate();
  const bob = Identity.generate();
  const aToB = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.byteLength; i++) controller.enqueue(chunk.subarray(i, i + 1));
    },
  });
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  const a: ByteDuplex = { readable: bToA.readable, writable: aToB.writable };
  const b: ByteDuplex = { readable: aToB.readable, writable: bToA.writable };
  const after = new TextEncoder().encode("first bytes after the handshake");
  const [ea, eb] = await Promise.all([
    runSessionHandshake(a, { identity: alice, timers: new ManualTimers() }).then((ea) => {
      // Not awaited: the write resolves only as the other side reads, below.
      ea.duplex.writable.getWriter().write(after).catch(() => {});
      return ea;
    }),
    runSessionHandshake(b, { identity: bob, timers: new ManualTimers() }),
  ]);
  assert.deepEqual(ea.session.peerKey, bob.publicKey);
  assert.deepEqual(eb.session.peerKey, alice.publicKey);
  assert.deepEqual(ea.session.sessionId, eb.session.sessionId);
  const reader = eb.duplex.readable.getReader();
  const got: number[] = [];
  while (got.length < after.byteLength) {
    const { done, value } = await reader.read();
    if (done) break;
    got.push(...value);
  }
  assert.deepEqual(new Uint8Array(got), after);
});
