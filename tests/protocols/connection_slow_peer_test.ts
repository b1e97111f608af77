/**
 * Idle and slow peers: a `Connection`'s keepalive, a peer reading slowly (not cut off) or not at
 * all (cut off) on a socket or over TCP, and manifests in CBOR tags that a structure guard must see
 * through.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import {
  connectionWithRawPeer,
  CountTo,
  Echo,
  ManualTimers,
  type RawPeer,
  settle,
} from "./_helpers.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import {
  decodeManifest,
  encodeManifest,
  InvalidManifestError,
  isManifest,
  type PublicManifest,
} from "../../protocols/manifest.ts";
import { socketDuplex } from "../../protocols/socket_duplex.ts";
import { chunksReferencedBy } from "../../storage/dag_links.ts";
import { SlowConn } from "./_slow_conn.ts";
import { connectTcp, listenTcp, type TcpDuplex, tcpDuplex } from "../../protocols/tcp_transport.ts";

const Payload = defineMessage("test.payload", z.object({ data: z.instanceof(Uint8Array) }));

const Fetch = defineMessage("test.fetch", z.object({ size: z.number().int() }), {
  reply: Payload,
});

/** Read (and count) everything the connection sends, until it ends. */
function drain(peer: RawPeer): { types: string[]; done: Promise<void> } {
  const types: string[] = [];
  const done = (async () => {
    for (;;) {
      const envelope = await peer.next().catch(() => null);
      if (!envelope) return;
      types.push(envelope.type);
    }
  })();
  return { types, done };
}

Deno.test("keepalive pings keep two idle connections open far past the idle timeout", async () => {
  const timers = new ManualTimers();
  const [a, b] = memoryDuplexPair();
  const options = { timers, keepaliveMs: 1_000, idleTimeoutMs: 5_000 };
  const client = new Connection(a, options);
  const server = new Connection(b, options);
  for (let t = 0; t < 60_000; t += 500) await timers.advance(500);
  assert.equal(client.isClosed, false);
  assert.equal(server.isClosed, false);
  assert.ok(client.stats().framesSent >= 10, `client sent ${client.stats().framesSent} frames`);
  await client.close();
  await timers.advance(3_000);
  await server.closed;
  assert.equal(server.closeReason, null);
});

Deno.test("a silent peer: after idleTimeoutMs every pending request and stream fails with peer_timeout", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    keepaliveMs: 1_000,
    idleTimeoutMs: 5_000,
  });
  const seen = drain(peer); // the peer reads everything but never answers
  const request = connection.request(Echo, { text: "x", n: 1 });
  const stream = Array.fromAsync(connection.openStream(CountTo, { to: 3 }));
  let failed = 0;
  request.catch(() => failed++);
  stream.catch(() => failed++);
  await timers.advance(4_999);
  assert.equal(failed, 0, "nothing fails before the idle timeout");
  assert.ok(seen.types.includes("ping"), "the connection pinged the silent peer");
  await timers.advance(1);
  const isTimeout = (e: unknown) => e instanceof PeerTimeoutError && e.code === "peer_timeout";
  await assert.rejects(request, isTimeout);
  await assert.rejects(stream, isTimeout);
  assert.ok(connection.closeReason instanceof PeerTimeoutError);
  await assert.rejects(connection.request(Echo, { text: "y", n: 1 }), {
    code: "connection_closed",
  });
  await peer.close();
  await connection.closed;
  await seen.done;
});

Deno.test("anything the peer sends resets the idle timer; silence then closes it", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    keepaliveMs: 1_000,
    idleTimeoutMs: 5_000,
  });
  const seen = drain(peer);
  for (let i = 0; i < 10; i++) {
    await timers.advance(4_000);
    await peer.send({ v: 1, type: "ping", id: i + 1, body: { nonce: i } });
  }
  assert.equal(connection.isClosed, false, "40 s of pings every 4 s");
  await timers.advance(5_000);
  assert.ok(connection.closeReason instanceof PeerTimeoutError);
  await peer.close();
  await connection.closed;
  await seen.done;
});

Deno.test("a peer that stops reading is cut off with peer_timeout even while it keeps sending", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer(
    { timers, keepaliveMs: 1_000, idleTimeoutMs: 5_000 },
    { highWaterMarkBytes: 16 * 1024 },
  );
  connection.handle(Fetch, ({ size }) => ({ data: new Uint8Array(size) }));
  // Ten 100 KiB replies: far more than the transport and the peer's decoder stages buffer
  // while nobody reads them.
  for (let id = 1; id <= 10; id++) {
    await peer.send({ v: 1, type: Fetch.type, id, body: { size: 100 * 1024 } });
  }
  for (let t = 1_000; t < 5_000; t += 1_000) {
    await timers.advance(1_000);
    await peer.send({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } }); // fresh input
    assert.equal(connection.isClosed, false, `at ${t} ms`);
  }
  assert.ok(connection.stats().queuedBytes > 0, "replies are stuck in the write queue");
  await timers.advance(1_000);
  assert.ok(connection.closeReason instanceof PeerTimeoutError);
  assert.match(connection.closeReason!.message, /not read/);
  await peer.close();
  await timers.advance(3_000);
  await connection.closed;
});

// --- (1) manifests are untrusted CBOR: the wire's structure guard applies to them too ---

const CHUNK = cidOf(new Uint8Array([1]), RAW_CODEC);

/**
 * A public manifest of 2^levels chunks in well under a kilobyte: cbor-x's packed-value tables
 * (tag 51) nest, and a prefix tag (225) applied to a packed reference (tag 6) concatenates two
 * arrays, so each table doubles the array the next one can name.
 */
function amplifiedManifest(levels: number): Uint8Array {
  const out: number[] = [];
  const table = (value: number[]) => {
    out.push(0xd8, 0x33, 0x84); // tag 51, [values, prefixes, suffixes, rump]
    out.push(0x91, ...new Array(16).fill(0xf6), ...value); // 16 nulls, then packed value 16
    out.push(0x82, 0xf6, 0xc6, 0x00); // prefixes: [null, ref(value 16)]
    out.push(0x80); // suffixes: []
  };
  table([0x81, ...encodeCbor(CHUNK)]);
  for (let k = 0; k < levels; k++) table([0xd8, 0xe1, 0xc6, 0x00]); // prefix 1 ++ ref(value 16)
  const fields = {
    type: "veriflow/manifest",
    v: 1,
    tier: "public",
    size: 2 ** levels,
    chunkSize: 1,
  };
  out.push(0xa6);
  for (const [k, v] of Object.entries(fields)) out.push(...encodeCbor(k), ...encodeCbor(v));
  out.push(...encodeCbor("chunks"), 0xc6, 0x00); // chunks: ref(value 16)
  return new Uint8Array(out);
}

Deno.test("a manifest of a few hundred bytes cannot name a million chunks through cbor-x tags", () => {
  const bytes = amplifiedManifest(20);
  assert.ok(bytes.length < 1024, `${bytes.length} bytes`);
  let chunks = -1;
  try {
    chunks = decodeManifest(bytes).chunks.length;
  } catch (error) {
    assert.ok(error instanceof InvalidManifestError, String(error));
  }
  assert.equal(chunks, -1, `decoded as a manifest of ${chunks} chunks`);
  assert.deepEqual(chunksReferencedBy(bytes), []);
});

Deno.test("readers and GC agree: a manifest wrapped in a CBOR tag is no manifest to either", () => {
  const manifest: PublicManifest = {
    type: "veriflow/manifest",
    v: 1,
    tier: "public",
    size: 2,
    chunkSize: 1,
    chunks: [CHUNK, CHUNK],
  };
  const plain = encodeManifest(manifest);
  assert.equal(isManifest(plain), true);
  assert.deepEqual(chunksReferencedBy(plain), [CHUNK, CHUNK]);
  // Tag 55799 (self-described CBOR) around it: GC sees no map, so no links, and would collect
  // the chunks of a file that the readers still serve.
  const wrapped = new Uint8Array([0xd9, 0xd9, 0xf7, ...plain]);
  assert.deepEqual(chunksReferencedBy(wrapped), []);
  assert.equal(isManifest(wrapped), false, "a reader takes it for a manifest GC does not walk");
});

async function slowLink(bytesPerWrite: number, writeMs: number) {
  const timers = new ManualTimers();
  const conn = new SlowConn(timers, bytesPerWrite, writeMs);
  const duplex = socketDuplex(conn as unknown as Deno.Conn, { lingerMs: 0 });
  const connection = new Connection(duplex, {
    timers,
    keepaliveMs: 1_000,
    idleTimeoutMs: 5_000,
  });
  connection.handle(Fetch, ({ size }) => ({ data: new Uint8Array(size) }));
  conn.push({ v: 1, type: Fetch.type, id: 1, body: { size: 256 * 1024 } });
  await settle();
  const end = async () => {
    duplex.close();
    await timers.advance(10_000);
    await connection.closed;
  };
  return { timers, conn, connection, end };
}

Deno.test("a peer reading steadily at 32 KiB/s is not cut off while a 256 KiB chunk goes out", async () => {
  // 8 KiB per 250 ms: the chunk takes 8 s, longer than the 5 s idle timeout.
  const { timers, conn, connection, end } = await slowLink(8 * 1024, 250);
  for (let t = 1; t <= 9; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } }); // the peer is alive
    assert.equal(connection.closeReason, null, `cut off at ${t} s: ${connection.closeReason}`);
  }
  assert.ok(conn.written > 256 * 1024, `${conn.written} bytes taken`);
  await end();
});

Deno.test("a peer that stops reading midway through a large chunk is still cut off", async () => {
  const { timers, conn, connection, end } = await slowLink(8 * 1024, 250);
  await timers.advance(2_000); // 64 KiB of the chunk taken
  conn.stall();
  for (let t = 1; t <= 12 && connection.closeReason === null; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } });
  }
  assert.ok(connection.closeReason instanceof PeerTimeoutError, String(connection.closeReason));
  assert.match(connection.closeReason.message, /not read/);
  await end();
});

Deno.test("a peer taking a trickle (16 bytes a second) of a large chunk is still cut off: partial progress counts only in whole KiBs", async () => {
  // Any growth counted, a peer reading a few bytes per ping interval held a 256 KiB write (and
  // its connection) open for good.
  const { timers, conn, connection, end } = await slowLink(16, 1_000);
  for (let t = 1; t <= 12 && connection.closeReason === null; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } });
  }
  assert.ok(connection.closeReason instanceof PeerTimeoutError, String(connection.closeReason));
  assert.ok(conn.written < 1024, `${conn.written} bytes taken`);
  await end();
});

// A TCP duplex reports the bytes its socket took (`bytesWritten`), as a socket duplex does, so a
// `Connection` over TCP sees a slow peer's partial progress through a large chunk. Every real
// socket is on 127.0.0.1.

const LOCALHOST = "127.0.0.1";

Deno.test("a TCP duplex counts the bytes its socket took: bytesWritten grows with each write, not frozen at 0", async () => {
  const accepted = Promise.withResolvers<TcpDuplex>();
  const server = listenTcp({ hostname: LOCALHOST, port: 0 }, (d) => accepted.resolve(d));
  const client = await connectTcp({ hostname: LOCALHOST, port: server.addr.port });
  const remote = await accepted.promise;
  const drained = Array.fromAsync(remote.readable);
  const writer = client.writable.getWriter();
  const chunk = new Uint8Array(100 * 1024); // large: written from its own buffer, awaited whole
  await writer.write(chunk);
  assert.equal(client.bytesWritten, chunk.byteLength);
  await writer.write(chunk);
  assert.equal(client.bytesWritten, 2 * chunk.byteLength);
  await writer.close();
  const received = (await drained).reduce((n, b) => n + b.byteLength, 0);
  assert.equal(received, 2 * chunk.byteLength);
  await remote.writable.close();
  assert.deepEqual(await Array.fromAsync(client.readable), []); // the peer's end, then closed
  await Promise.all([client.closed, remote.closed]);
  await server.close();
});

Deno.test("a Connection over a TCP duplex does not cut off a peer reading a 256 KiB chunk steadily at 32 KiB/s", async () => {
  const timers = new ManualTimers();
  // 8 KiB per 250 ms: the chunk takes 8 s, longer than the 5 s idle timeout.
  const conn = new SlowConn(timers, 8 * 1024, 250, "tcp");
  const duplex = tcpDuplex(conn as unknown as Deno.TcpConn, { lingerMs: 0 });
  const connection = new Connection(duplex, { timers, keepaliveMs: 1_000, idleTimeoutMs: 5_000 });
  connection.handle(Fetch, ({ size }) => ({ data: new Uint8Array(size) }));
  conn.push({ v: 1, type: Fetch.type, id: 1, body: { size: 256 * 1024 } });
  await settle();
  for (let t = 1; t <= 9; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } }); // the peer is alive
    assert.equal(connection.closeReason, null, `cut off at ${t} s: ${connection.closeReason}`);
  }
  assert.ok(conn.written > 256 * 1024, `${conn.written} bytes taken`);
  duplex.close();
  await timers.advance(10_000);
  await connection.closed;
});
