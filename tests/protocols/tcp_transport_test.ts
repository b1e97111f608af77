/** TCP transport tests: every socket is on 127.0.0.1. */
import assert from "node:assert/strict";
import { Connection, defineProtocol } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import type { ByteDuplex } from "../../protocols/memory_duplex.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import { connectTcp, listenTcp, type TcpDuplex, tcpDuplex } from "../../protocols/tcp_transport.ts";
import { EnvelopeDecoderStream } from "../../streams/cbor_stream.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  LengthPrefixedDecoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { CountTo, Echo } from "./_helpers.ts";
import { encodeEnvelope } from "../../protocols/envelope.ts";

const LOCALHOST = "127.0.0.1";
/** Tries of the farewell test: the bug it guards against lost the frame in 80 of 80 tries. */
const FAREWELL_TRIES = 40;

Deno.test("listenTcp on port 0 reports its port; bytes cross both ways and half-close ends cleanly", async () => {
  const accepted = Promise.withResolvers<TcpDuplex>();
  const server = listenTcp({ hostname: LOCALHOST, port: 0 }, (d) => accepted.resolve(d));
  assert.ok(server.addr.port > 0);
  const client = await connectTcp({ hostname: LOCALHOST, port: server.addr.port });
  const remote = await accepted.promise;
  remote.readable.pipeTo(remote.writable); // echo until the client half-closes
  const writer = client.writable.getWriter();
  await writer.write(new TextEncoder().encode("hello "));
  await writer.write(new TextEncoder().encode("world"));
  await writer.close(); // FIN: the echo side still sends back what it got, then ends
  const echoed = (await Array.fromAsync(client.readable)).map((b) => new TextDecoder().decode(b));
  assert.equal(echoed.join(""), "hello world");
  await Promise.all([client.closed, remote.closed]);
  await server.close();
});

Deno.test("Connection.open over TCP: handshake, request/response, clean close", async () => {
  const protocol = defineProtocol("test.echo", 1, [Echo]);
  const serverSide = Promise.withResolvers<{ connection: Connection; duplex: TcpDuplex }>();
  const bob = Identity.generate();
  const server = listenTcp({ hostname: LOCALHOST, port: 0 }, async (duplex) => {
    const connection = await Connection.open(duplex, { identity: bob, protocols: [protocol] });
    connection.handle(Echo, (b) => b);
    serverSide.resolve({ connection, duplex });
  });
  const duplex = await connectTcp({ hostname: LOCALHOST, port: server.addr.port });
  const client = await Connection.open(duplex, {
    identity: Identity.generate(),
    protocols: [protocol],
  });
  assert.deepEqual(client.peerKey, bob.publicKey);
  assert.deepEqual(await client.request(Echo, { text: "tcp", n: 7 }), { text: "tcp", n: 7 });
  const remote = await serverSide.promise;
  await client.close();
  await remote.connection.closed;
  assert.equal(remote.connection.closeReason, null);
  await Promise.all([duplex.closed, remote.duplex.closed]);
  await server.close();
});

/** Read raw bytes until EOF (or reset) and decode the frames that arrived. */
async function readFrames(conn: Deno.TcpConn): Promise<{ codes: string[]; reset: boolean }> {
  const bytes: Uint8Array[] = [];
  let reset = false;
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      reset = true;
      break;
    }
    if (n === null) break;
    bytes.push(buffer.slice(0, n));
  }
  const frames = await Array.fromAsync(
    ReadableStream.from(bytes)
      .pipeThrough(new LengthPrefixedDecoderStream())
      .pipeThrough(new EnvelopeDecoderStream()),
  ).catch(() => []);
  const codes = frames.flatMap((f) =>
    f.ok && f.envelope.type === "error" ? [(f.envelope.body as { code: string }).code] : []
  );
  return { codes, reset };
}

/**
 * A raw client breaks the framing (a prefix over the server's limit followed by 200 KB the
 * server will never parse, or a frame cut by its FIN); the server's Connection answers with
 * its last `error` frame and closes. Deno's own `conn.readable` closes the socket at EOF, so
 * that frame has nowhere to go; and closing a socket with unread bytes sends RST. The frame
 * arrives only if the server half-closes, and drains to the client's EOF before closing.
 */
async function farewellTries(
  wrap: (conn: Deno.TcpConn) => ByteDuplex,
  scenario: "oversize" | "truncated",
): Promise<{ arrived: number; reasons: unknown[] }> {
  const reasons: unknown[] = [];
  const closedConnections: Promise<void>[] = [];
  const listener = Deno.listen({ hostname: LOCALHOST, port: 0 });
  const accepting = (async () => {
    for (;;) {
      const conn = await listener.accept().catch(() => null);
      if (!conn) return;
      const connection = new Connection(wrap(conn), { maxFrameBytes: 1024 });
      closedConnections.push(
        connection.closed.then(() => void reasons.push(connection.closeReason)),
      );
    }
  })();
  let arrived = 0;
  for (let i = 0; i < FAREWELL_TRIES; i++) {
    const conn = await Deno.connect({ hostname: LOCALHOST, port: listener.addr.port });
    // oversize: 1 MiB announced (over the 1 KiB limit), then 200 KB never parsed.
    // truncated: 32 bytes announced, 1 sent, then our FIN: the stream ends inside a frame.
    const junk = new Uint8Array(scenario === "oversize" ? 4 + 200_000 : 4 + 1);
    new DataView(junk.buffer).setUint32(0, scenario === "oversize" ? 1 << 20 : 32);
    // A busy peer: it writes everything it has before it reads. The server refuses the frame
    // at its prefix and closes; its error frame must still be readable afterwards.
    try {
      for (let offset = 0; offset < junk.byteLength;) {
        offset += await conn.write(junk.subarray(offset));
      }
      await conn.closeWrite();
    } catch {
      // the server cut us off mid-write
    }
    const { codes } = await readFrames(conn);
    conn.close();
    if (codes.includes(scenario === "oversize" ? "frame_too_large" : "truncated_frame")) arrived++;
  }
  listener.close();
  await accepting;
  await Promise.all(closedConnections);
  return { arrived, reasons };
}

for (const scenario of ["truncated", "oversize"] as const) {
  Deno.test(`the last error frame before close arrives over real TCP: ${scenario} (${FAREWELL_TRIES} tries)`, async () => {
    const { arrived, reasons } = await farewellTries((conn) => tcpDuplex(conn), scenario);
    console.log(`${scenario}: farewell frame arrived in ${arrived} of ${FAREWELL_TRIES} tries`);
    assert.equal(arrived, FAREWELL_TRIES);
    const expected = scenario === "oversize" ? FrameTooLargeError : TruncatedFrameError;
    assert.ok(reasons.every((r) => r instanceof expected), String(reasons[0]));
  });
}

Deno.test("a peer that half-closes and never reads does not hold the socket: it closes within the grace period", async () => {
  const accepted = Promise.withResolvers<{ connection: Connection; duplex: TcpDuplex }>();
  const server = listenTcp({ hostname: LOCALHOST, port: 0 }, (duplex) => {
    const connection = new Connection(duplex, { closeGraceMs: 200, idleTimeoutMs: 0 });
    // A stream far larger than the socket buffers: the writes back up once the peer stops.
    connection.handle(CountTo, () => {
      let i = 0;
      return new ReadableStream({ pull: (c) => c.enqueue({ i: i++ }) });
    });
    accepted.resolve({ connection, duplex });
  });
  const raw = await Deno.connect({ hostname: LOCALHOST, port: server.addr.port });
  const frame = (envelope: Parameters<typeof encodeEnvelope>[0]) =>
    encodeFrame(encodeEnvelope(envelope), DEFAULT_MAX_FRAME_BYTES);
  await raw.write(frame({ v: 1, type: CountTo.type, id: 1, body: { to: 1 } }));
  await raw.write(frame({ v: 1, type: "credit", id: 2, re: 1, body: { chunks: 1 << 20 } }));
  const remote = await accepted.promise;
  // Let the server fill the socket buffers (its frames stop going out), then end our side
  // without having read a byte.
  let sent = -1;
  await waitUntil(() => {
    const now = remote.connection.stats().framesSent;
    const stuck = now === sent && now > 0;
    sent = now;
    return stuck;
  }, 50);
  await raw.closeWrite();
  await remote.connection.closed;
  // Liveness, not timing: before the fix this never resolved.
  const closed = await Promise.race([
    remote.duplex.closed.then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 10_000)),
  ]);
  assert.equal(closed, true, "the server's socket stayed open behind a write nobody reads");
  raw.close();
  await server.close();
});

async function waitUntil(condition: () => boolean, everyMs = 5): Promise<void> {
  for (let i = 0; i < 10_000 / everyMs && !condition(); i++) {
    await new Promise((r) => setTimeout(r, everyMs));
  }
  assert.ok(condition(), "the condition never held");
}
