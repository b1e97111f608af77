/**
 * The TCP transport (`protocols/tcp_transport.ts`) and its listener's accept loop: connections over
 * real sockets, and a dial to an address that never answers.
 */
import assert from "node:assert/strict";
import { Connection, defineProtocol } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import type { ByteDuplex } from "../../protocols/memory_duplex.ts";
import {
  FrameTooLargeError,
  PeerTimeoutError,
  TruncatedFrameError,
} from "../../protocols/protocol_errors.ts";
import {
  CONNECT_TIMEOUT_MS,
  connectTcp,
  listenTcp,
  type TcpDuplex,
  tcpDuplex,
} from "../../protocols/tcp_transport.ts";
import { EnvelopeDecoderStream } from "../../streams/cbor_stream.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  LengthPrefixedDecoderStream,
} from "../../streams/length_prefixed_stream.ts";
import { CountTo, Echo, ManualTimers } from "./_helpers.ts";
import { encodeEnvelope } from "../../protocols/envelope.ts";
import { acceptEach } from "../../protocols/_accept_loop.ts";
import { settled } from "../network/_swarm_host_fixture.ts";

// TCP transport tests: every socket is on 127.0.0.1.

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

/** A listener whose accepts answer from `script` in turn: a connection, or an error thrown. */
function scriptedListener(script: (string | Error)[]) {
  let i = 0;
  let closed = false;
  let wake: (() => void) | undefined;
  const listener = {
    accept(): Promise<Deno.Conn> {
      if (closed) return Promise.reject(new Deno.errors.BadResource("closed"));
      const next = script[i++];
      if (next === undefined) {
        // Nothing more: wait until closed, as a real listener does.
        return new Promise((_, reject) => {
          wake = () => reject(new Deno.errors.BadResource("closed"));
        });
      }
      return next instanceof Error
        ? Promise.reject(next)
        : Promise.resolve({ name: next } as unknown as Deno.Conn);
    },
  } as unknown as Deno.Listener<Deno.Conn>;
  const close = () => {
    closed = true;
    wake?.();
  };
  return { listener, close, closed: () => closed };
}

Deno.test("a failed accept (out of file descriptors) is retried, not taken for the listener's end; closing ends the loop", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const { listener, close, closed } = scriptedListener(["a", emfile, emfile, "b", "c"]);
  const accepted: string[] = [];
  const waits: number[] = [];
  const loop = acceptEach(
    listener,
    (conn) => accepted.push((conn as unknown as { name: string }).name),
    closed,
    { wait: (ms) => (waits.push(ms), Promise.resolve()) },
  );
  while (accepted.length < 3) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(accepted, ["a", "b", "c"], "accepting goes on after the errors");
  assert.deepEqual(waits, [50, 100], "backing off between retries");
  close();
  await loop; // and ends once closed
});

Deno.test("a run of failed accepts is logged as a run: its first error, a reminder every 60, and the recovery", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const reset = new Error("Connection reset by peer (os error 104)");
  const script = ["a", ...Array(130).fill(emfile), "b", reset, "c"];
  const { listener, close, closed } = scriptedListener(script);
  const accepted: string[] = [];
  const lines: string[] = [];
  const loop = acceptEach(
    listener,
    (conn) => accepted.push((conn as unknown as { name: string }).name),
    closed,
    { log: (line) => lines.push(line), wait: () => Promise.resolve() },
  );
  while (accepted.length < 3) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(lines, [
    "accept failed (Too many open files (os error 24)); retrying",
    "accept still failing after 60 tries (Too many open files (os error 24))",
    "accept still failing after 120 tries (Too many open files (os error 24))",
    "accepting again after 130 failed accept(s)",
    "accept failed (Connection reset by peer (os error 104)); retrying",
    "accepting again after 1 failed accept(s)",
  ]);
  close();
  await loop;
});

// The TCP transport's dial (`protocols/tcp_transport.ts`): a peer whose address takes the SYN and
// never answers it (a full accept queue here, on 127.0.0.1; a host that is down or a firewall that
// drops, on a network) held `connectTcp` for the system's own SYN retries (about two minutes on
// Linux), with no deadline and no way to give up: a node's dial loop to a static peer waited that
// long between tries, and went on after the node stopped.

/**
 * A listener on 127.0.0.1 that accepts nothing, its accept queue filled: a connect to it is
 * neither accepted nor refused (the kernel drops its SYN). The filling connects are set up
 * one by one until one does not complete within 2 s (a loopback connect takes microseconds;
 * set-up, not the behaviour under test).
 */
async function unansweredAddress(): Promise<{ port: number; close(): Promise<void> }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const held: Deno.Conn[] = [];
  let stuck: Promise<unknown> | undefined;
  while (stuck === undefined && held.length < 20_000) {
    const connecting = Deno.connect({ hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const conn = await Promise.race([
      connecting,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 2_000)),
    ]);
    clearTimeout(timer);
    if (conn === undefined) stuck = connecting.then((c) => c.close(), () => {});
    else held.push(conn);
  }
  return {
    port,
    async close() {
      listener.close(); // the SYNs still sent are refused now
      for (const conn of held) conn.close();
      await stuck;
    },
  };
}

Deno.test({
  name:
    "tcp: a connect the peer never answers fails with peer_timeout at its deadline (CONNECT_TIMEOUT_MS by default), on the connection's clock",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const target = await unansweredAddress();
    try {
      const timers = new ManualTimers();
      const byDefault = connectTcp({ hostname: "127.0.0.1", port: target.port }, { timers });
      const short = connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        timers,
        timeoutMs: 1_000,
      });
      const outcomes = [byDefault, short].map((p) => p.then(() => "connected", (error) => error));
      await timers.advance(1_000);
      const first = await settled(outcomes[1], "the 1 s connect", 5_000);
      assert.ok(first instanceof PeerTimeoutError, String(first));
      assert.equal(first.code, "peer_timeout");
      await timers.advance(CONNECT_TIMEOUT_MS - 1_000);
      const second = await settled(outcomes[0], "the default connect", 5_000);
      assert.ok(second instanceof PeerTimeoutError, String(second));
      assert.equal(timers.pending, 0, "no deadline left armed");
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "tcp: a connect under way gives up when its signal is aborted, with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const target = await unansweredAddress();
    try {
      const timers = new ManualTimers();
      const stop = new AbortController();
      const connecting = connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        timers,
        signal: stop.signal,
      }).then(() => "connected", (error) => error);
      const reason = new Error("the node stopped");
      stop.abort(reason);
      assert.equal(await settled(connecting, "the aborted connect", 5_000), reason);
      assert.equal(timers.pending, 0, "its deadline cleared");
      // Aborted before it started: refused at once.
      const late = await connectTcp({ hostname: "127.0.0.1", port: target.port }, {
        signal: stop.signal,
      }).then(() => "connected", (error) => error);
      assert.equal(late, reason);
    } finally {
      await target.close();
    }
  },
});

Deno.test("tcp: a connect that is answered clears its deadline", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const timers = new ManualTimers();
  try {
    const accepted = listener.accept();
    const duplex = await connectTcp(
      { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
      { timers },
    );
    assert.equal(timers.pending, 0);
    duplex.close();
    (await accepted).close();
  } finally {
    listener.close();
  }
});
