/**
 * A `Connection` sends a body's bulk byte string (64 KiB or more, a storage chunk) from the
 * caller's own buffer: the frame goes to the transport as head, that very buffer, tail. What must
 * hold: the chunks joined are exactly the frame a copy would have made; the frame limit and the
 * byte budget count the whole frame; frames stay whole and in order over a socket however many
 * are sent at once; and the contract: the caller's buffer is read until the request settled,
 * not after.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Connection, defineProtocol } from "../../protocols/connection.ts";
import { encodeEnvelope, type Envelope, PROTOCOL_VERSION } from "../../protocols/envelope.ts";
import { Identity } from "../../protocols/identity.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { SYSTEM_TIMERS } from "../../protocols/connection_timers.ts";
import { FrameTooLargeError } from "../../protocols/protocol_errors.ts";
import { WriteQueue, ZERO_COPY_MIN_BYTES } from "../../protocols/_connection_write_queue.ts";
import { connectUnix, listenUnix, unixSocketsSupported } from "../../protocols/unix_transport.ts";
import { encodeFrame } from "../../streams/length_prefixed_stream.ts";
import { joinBytes } from "../_helpers/bytes.ts";

const MAX_FRAME = 1 << 20;
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

const Stored = defineMessage("test.stored", z.object({ n: z.number() }));
const Put = defineMessage(
  "test.put",
  z.object({ n: z.number().int(), bytes: z.instanceof(Uint8Array), tag: z.string().optional() }),
  { reply: Stored },
);
const Note = defineMessage("test.note", z.object({ n: z.number().int(), text: z.string() }));
const BULK = defineProtocol("test.bulk_send", 1, [Put, Stored, Note]);

async function socketPair(
  onServer: (c: Connection) => void,
): Promise<{ client: Connection; close(): Promise<void> }> {
  const path = `${await Deno.makeTempDir()}/s.sock`;
  const opts = () => ({
    identity: Identity.generate(),
    protocols: [BULK],
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
      c.handle(Put, ({ n, bytes, tag }) => {
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
      sends.push(client.request(Put, body));
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
      c.handle(Put, ({ n, bytes }) => {
        kept.push(bytes);
        return { n };
      })
    );
    const buffer = bytesOf(9, CHUNK);
    for (let n = 0; n < 4; n++) {
      await client.request(Put, { n, bytes: buffer });
      buffer.fill(n); // the caller reuses its buffer once the request settled
    }
    assert.deepEqual(kept[0], bytesOf(9, CHUNK));
    for (let n = 1; n < 4; n++) assert.deepEqual(kept[n], new Uint8Array(CHUNK).fill(n - 1));
    await close();
  },
});
