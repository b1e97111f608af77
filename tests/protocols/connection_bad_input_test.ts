import assert from "node:assert/strict";
import { encodeCbor } from "../../protocols/cbor.ts";
import type { Envelope } from "../../protocols/envelope.ts";
import {
  ConnectionClosedError,
  FrameTooLargeError,
  type ProtocolError,
  TruncatedFrameError,
} from "../../protocols/protocol_errors.ts";
import { connectionWithRawPeer, Echo, Echoed } from "./_helpers.ts";

/** Send a bad frame, expect an error envelope with `code` (addressed by `re` when given). */
async function expectRefusal(
  peer: ReturnType<typeof connectionWithRawPeer>["peer"],
  payload: unknown,
  code: string,
  re?: number,
): Promise<Envelope> {
  await peer.send(payload);
  const reply = await peer.next();
  assert.equal(reply.type, "error", `reply to a ${code} frame`);
  assert.equal((reply.body as { code: string }).code, code);
  assert.equal(reply.re, re, `re of the ${code} error`);
  return reply;
}

Deno.test("each bad inbound message gets its typed error back and the connection stays usable", async () => {
  const seen: string[] = [];
  const { connection, peer } = connectionWithRawPeer({
    onProtocolError: (e: ProtocolError) => seen.push(e.code),
  });
  connection.handle(Echo, (b) => ({ text: b.text, n: b.n }));
  await expectRefusal(peer, new Uint8Array([0xff, 0x00]), "malformed_cbor");
  await expectRefusal(peer, new Uint8Array(5000).fill(0x81), "nesting_too_deep");
  await expectRefusal(peer, [1, 2, 3], "invalid_envelope");
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 5, body: {}, x: 1 },
    "invalid_envelope",
    5,
  );
  await expectRefusal(peer, { v: 7, type: "test.echo", id: 6, body: {} }, "unknown_version", 6);
  await expectRefusal(peer, { v: 1, type: "test.nope", id: 7, body: {} }, "unknown_type", 7);
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 8, body: { text: 1 } },
    "invalid_body",
    8,
  );
  await expectRefusal(
    peer,
    { v: 1, type: "test.echoed", id: 9, body: { text: "a", n: 1 } },
    "no_handler",
    9,
  );
  await expectRefusal(
    peer,
    {
      v: 1,
      type: "test.echo",
      id: 10,
      body: { text: "a", n: 1 },
      sig: new Uint8Array(64),
      from: new Uint8Array(32),
    },
    "bad_signature",
    10,
  );
  // A reply to a request that was never sent is refused, about that envelope.
  const stray = await expectRefusal(
    peer,
    { v: 1, type: Echoed.type, id: 11, re: 999_999, body: { text: "a", n: 1 } },
    "unexpected_message",
  );
  assert.equal((stray.body as { about?: number }).about, 11);
  // An error is never answered with an error (no ping-pong between confused peers).
  await peer.send({ v: 1, type: "error", id: 12, body: { code: 5 } });
  // ...and a valid request still works afterwards.
  await peer.send({ v: 1, type: "test.echo", id: 13, body: { text: "still", n: 1 } });
  const reply = await peer.next();
  assert.deepEqual([reply.type, reply.re, reply.body], ["test.echoed", 13, {
    text: "still",
    n: 1,
  }]);
  assert.equal(connection.isClosed, false);
  assert.equal(seen.length, 11);
  await peer.close();
  await connection.close();
});

Deno.test("a frame over maxFrameBytes closes the connection with frame_too_large, nothing crashes", async () => {
  const { connection, peer } = connectionWithRawPeer({ maxFrameBytes: 1024 });
  connection.handle(Echo, (b) => b);
  const pending = connection.request(Echo, { text: "x", n: 1 });
  await peer.next(); // the request
  await peer.sendBytes(new Uint8Array([0x00, 0x10, 0x00, 0x00])); // announces 1 MiB
  const farewell = await peer.next();
  assert.deepEqual([farewell.type, (farewell.body as { code: string }).code], [
    "error",
    "frame_too_large",
  ]);
  await assert.rejects(pending, ConnectionClosedError);
  await connection.closed;
  assert.ok(connection.closeReason instanceof FrameTooLargeError);
  await peer.close().catch(() => {});
});

Deno.test("a peer that ends inside a frame closes the connection with truncated_frame", async () => {
  const { connection, peer } = connectionWithRawPeer();
  await peer.sendBytes(new Uint8Array([0x00, 0x00, 0x00, 0x20, 0xa1])); // 32 announced, 1 sent
  await peer.close();
  await connection.closed;
  assert.ok(connection.closeReason instanceof TruncatedFrameError);
  assert.equal(connection.closeReason?.code, "truncated_frame");
});

Deno.test("a repeated request id while the first is running is refused", async () => {
  const { connection, peer } = connectionWithRawPeer();
  const release = Promise.withResolvers<void>();
  connection.handle(Echo, async (b) => {
    await release.promise;
    return b;
  });
  await peer.send(encodeCbor({ v: 1, type: "test.echo", id: 1, body: { text: "a", n: 1 } }));
  await expectRefusal(
    peer,
    { v: 1, type: "test.echo", id: 1, body: { text: "b", n: 1 } },
    "unexpected_message",
    1,
  );
  release.resolve();
  assert.deepEqual((await peer.next()).body, { text: "a", n: 1 });
  await peer.close();
  await connection.close();
});
