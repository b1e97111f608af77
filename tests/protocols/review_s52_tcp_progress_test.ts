/**
 * Review s52 (wire): a TCP duplex reports the bytes its socket took (`bytesWritten`), as a
 * socket duplex does, so a `Connection` over TCP sees a slow peer's partial progress through a
 * large chunk. Every real socket is on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Connection } from "../../protocols/connection.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { connectTcp, listenTcp, type TcpDuplex, tcpDuplex } from "../../protocols/tcp_transport.ts";
import { ManualTimers, settle } from "./_helpers.ts";
import { SlowConn } from "./_slow_conn.ts";

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

// A Connection over a TCP duplex on a slow link: the partial progress of a large chunk counts.

const Payload = defineMessage("test.payload", z.object({ data: z.instanceof(Uint8Array) }));
const Fetch = defineMessage("test.fetch", z.object({ size: z.number().int() }), {
  reply: Payload,
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
