import assert from "node:assert/strict";
import { z } from "zod";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import { connectionWithRawPeer, CountTo, Echo, ManualTimers, type RawPeer } from "./_helpers.ts";

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
