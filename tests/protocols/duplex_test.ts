/**
 * The duplexes a `Connection` runs over: the in-memory pair (`protocols/memory_duplex.ts`) and the
 * socket duplex (`protocols/socket_duplex.ts`): its read buffers and the write batches it gathers.
 */
import assert from "node:assert/strict";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { socketDuplex } from "../../protocols/socket_duplex.ts";
import { joinBytes } from "../_helpers/bytes.ts";

Deno.test("bytes written on one end come out of the other, both ways", async () => {
  const [a, b] = memoryDuplexPair();
  const aw = a.writable.getWriter();
  const bw = b.writable.getWriter();
  await aw.write(new Uint8Array([1]));
  await bw.write(new Uint8Array([2]));
  assert.deepEqual((await b.readable.getReader().read()).value, new Uint8Array([1]));
  assert.deepEqual((await a.readable.getReader().read()).value, new Uint8Array([2]));
});

Deno.test("a writer sees backpressure once highWaterMarkBytes are unread", async () => {
  const [a, b] = memoryDuplexPair({ highWaterMarkBytes: 1024 });
  const writer = a.writable.getWriter();
  let accepted = 0;
  for (let i = 0; i < 100; i++) {
    if (writer.desiredSize !== null && writer.desiredSize <= 0) break;
    writer.write(new Uint8Array(100));
    accepted += 100;
    await Promise.resolve();
  }
  assert.ok(accepted <= 1024 + 200, `accepted ${accepted} bytes without a reader`);
  assert.ok((writer.desiredSize ?? 1) <= 0);
  // Reading drains the queue and releases the writer.
  const reader = b.readable.getReader();
  for (let got = 0; got < accepted;) got += (await reader.read()).value!.byteLength;
  await writer.ready;
});

Deno.test("closing one end's writable ends the other end's readable", async () => {
  const [a, b] = memoryDuplexPair();
  await a.writable.close();
  assert.equal((await b.readable.getReader().read()).done, true);
});

// The socket duplex's write side gathers frames that queue behind a socket write in flight. What
// must hold: small chunks are joined into one write, a large one is written from its own buffer
// (never copied into a batch); the socket gets every byte in order however little each write takes;
// a large chunk's write resolves only once the socket took all of it.

const LARGE = 256 * 1024;

function bytesOf(n: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 11 + n * 17) & 0xff);
}

/**
 * A socket whose writes are recorded (the very arrays passed) and completed only when `take`n,
 * each taking at most `maxPerWrite` bytes; reads never come.
 */
function fakeSocket(maxPerWrite = Infinity, autoTake = false) {
  const writes: Uint8Array[] = [];
  let waiting: (() => void)[] = [];
  const conn = {
    localAddr: { transport: "unix", path: "fake" },
    write(bytes: Uint8Array): Promise<number> {
      writes.push(bytes);
      const n = Math.min(bytes.byteLength, maxPerWrite);
      if (autoTake) return Promise.resolve(n);
      return new Promise((resolve) => waiting.push(() => resolve(n)));
    },
    read: () => new Promise<number | null>(() => {}),
    closeWrite: () => Promise.resolve(),
    close() {},
  };
  return {
    conn: conn as unknown as Deno.Conn,
    writes,
    /** Complete the writes in flight; resolves after the duplex has reacted. */
    async take(): Promise<void> {
      const now = waiting;
      waiting = [];
      for (const done of now) done();
      await new Promise((r) => setTimeout(r, 0));
    },
    /** Take until nothing is in flight. */
    async drain(): Promise<void> {
      await new Promise((r) => setTimeout(r, 0));
      while (waiting.length > 0) await this.take();
    },
    written(): Uint8Array {
      return joinBytes(writes.map((w) => w.subarray(0, Math.min(w.byteLength, maxPerWrite))));
    },
  };
}

Deno.test("chunks queued behind a write in flight: small ones joined in one write, a large one written from its own buffer", async () => {
  const socket = fakeSocket();
  const duplex = socketDuplex(socket.conn, { lingerMs: 0 });
  const writer = duplex.writable.getWriter();
  const first = bytesOf(0, 100);
  await writer.write(first); // goes out at once, and stays in flight
  assert.equal(socket.writes.length, 1);
  assert.equal(socket.writes[0].buffer, first.buffer);
  const head = bytesOf(1, 90);
  const large = bytesOf(2, LARGE);
  const tail = bytesOf(3, 9);
  const next = bytesOf(4, 80);
  const sent = [writer.write(head), writer.write(large), writer.write(tail), writer.write(next)];
  await socket.drain();
  await Promise.all(sent);
  // head alone before the large one (nothing to join it with), the large one itself, then the
  // small ones, each going out at once (the large one's write resolved once it was all taken).
  assert.deepEqual(socket.writes.slice(1).map((w) => w.byteLength), [90, LARGE, 9, 80]);
  assert.equal(socket.writes[2].buffer, large.buffer, "the large chunk is not copied");
  assert.deepEqual(socket.written(), joinBytes([first, head, large, tail, next]));
  duplex.close();
});

Deno.test("small chunks queued together are joined into one write", async () => {
  const socket = fakeSocket();
  const duplex = socketDuplex(socket.conn, { lingerMs: 0 });
  const writer = duplex.writable.getWriter();
  const parts = Array.from({ length: 10 }, (_, i) => bytesOf(i, 100 + i));
  const sent = parts.map((p) => writer.write(p));
  await socket.drain();
  await Promise.all(sent);
  assert.equal(socket.writes.length, 2, "the first at once, the other nine in one write");
  assert.deepEqual(socket.written(), joinBytes(parts));
  duplex.close();
});

Deno.test("every byte reaches the socket in order, however few each write takes", async () => {
  for (const maxPerWrite of [1, 7, 4096, 65_537]) {
    const socket = fakeSocket(maxPerWrite, true);
    const duplex = socketDuplex(socket.conn, { lingerMs: 0 });
    const writer = duplex.writable.getWriter();
    const parts = [5, LARGE, 3, 20_000, 1, 16 * 1024, 16 * 1024 - 1, 70_000, 2].map((n, i) =>
      bytesOf(i, maxPerWrite === 1 ? Math.min(n, 100) : n)
    );
    const sent = parts.map((p) => writer.write(p));
    await socket.drain();
    await Promise.all(sent);
    assert.deepEqual(socket.written(), joinBytes(parts), `at most ${maxPerWrite} per write`);
    duplex.close();
  }
});

Deno.test("a large chunk's write resolves only once the socket took all of it (the writer may then reuse it)", async () => {
  const socket = fakeSocket(100_000);
  const duplex = socketDuplex(socket.conn, { lingerMs: 0 });
  const writer = duplex.writable.getWriter();
  let done = false;
  const write = writer.write(bytesOf(0, LARGE)).then(() => done = true);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(done, false, "not taken by the socket yet");
  await socket.take();
  assert.equal(done, false, "a part written, the rest still read from the chunk");
  await socket.drain();
  await write;
  assert.equal(done, true);
  duplex.close();
});

// The socket duplex's reads: once a BYOB reader reads a connection, the buffer of the default reads
// before it (the handshake's) is let go, so a connection holds one read buffer.

/**
 * A socket stand-in: each read gets the next of `chunks` (then EOF) and records the buffer it
 * was offered.
 */
function fakeConn(chunks: Uint8Array[]) {
  const offered: Uint8Array[] = [];
  const conn = {
    read(into: Uint8Array): Promise<number | null> {
      offered.push(into);
      const next = chunks.shift();
      if (next === undefined) return Promise.resolve(null);
      into.set(next);
      return Promise.resolve(next.byteLength);
    },
    write: (bytes: Uint8Array) => Promise.resolve(bytes.byteLength),
    closeWrite: () => Promise.resolve(),
    close() {},
    localAddr: { transport: "unix", path: "" },
  };
  return { conn: conn as unknown as Deno.Conn, offered };
}

Deno.test("socket duplex: once a BYOB reader reads it, the buffer of the default reads before (the handshake's) is let go: one read buffer per connection", async () => {
  const readBufferBytes = 256 * 1024; // the swarm link's
  const { conn, offered } = fakeConn([
    new Uint8Array([1]),
    new Uint8Array([2]),
    new Uint8Array([3]),
  ]);
  const duplex = socketDuplex(conn, { readBufferBytes, lingerMs: 0 });
  // The handshake reads with a default reader, then a Connection takes a BYOB one.
  const handshake = duplex.readable.getReader();
  assert.deepEqual((await handshake.read()).value, new Uint8Array([1]));
  handshake.releaseLock();
  const byob = duplex.readable.getReader({ mode: "byob" });
  const { value } = await byob.read(new Uint8Array(64 * 1024));
  assert.equal(value?.[0], 2);
  byob.releaseLock();
  // A default read now (or the drain) needs a buffer again: a new one, since the first was
  // not kept alive through the BYOB reads.
  const later = duplex.readable.getReader();
  assert.deepEqual((await later.read()).value, new Uint8Array([3]));
  assert.equal(offered.length, 3);
  assert.equal(offered[0].byteLength, readBufferBytes);
  assert.notEqual(offered[2].buffer, offered[0].buffer, "the scratch buffer was kept");
  await later.cancel();
  duplex.close?.();
});
