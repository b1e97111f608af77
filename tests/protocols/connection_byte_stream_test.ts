/**
 * A `Connection` over a byte-stream transport (a socket): its read loop reads with a BYOB reader
 * into one buffer it reuses, lending each read to the framing. What must hold: every body a
 * handler kept is intact after later reads reused that buffer, however the bytes were cut;
 * bytes the peer sent behind its handshake proof are not lost; the socket duplex serves those
 * BYOB reads.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Connection, defineProtocol } from "../../protocols/connection.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import { Identity } from "../../protocols/identity.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import {
  type SessionHello,
  sessionIdOf,
  sessionProofBytes,
} from "../../protocols/session_handshake.ts";
import { connectUnix, listenUnix, unixSocketsSupported } from "../../protocols/unix_transport.ts";
import { encodeFrame, LengthPrefixedDecoderStream } from "../../streams/length_prefixed_stream.ts";
import { concatBytes } from "../_helpers/bytes.ts";
import { byteStreamOf } from "./_byte_stream_peer.ts";

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
