/**
 * Review (stop 44) of a `Connection` against a hostile peer: each test failed on the code
 * before its fix.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Connection } from "../../protocols/connection.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { HandshakeError } from "../../protocols/protocol_errors.ts";
import { LengthPrefixedDecoderStream } from "../../streams/length_prefixed_stream.ts";
import { connectionWithRawPeer, ManualTimers, settle } from "./_helpers.ts";

/** Collects unhandled rejections (Deno ends the process on one) while `body` runs. */
async function withoutUnhandledRejections(body: () => Promise<void>): Promise<unknown[]> {
  const rejections: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    rejections.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    await body();
    await settle();
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
  return rejections;
}

function framed(value: unknown): Uint8Array {
  const payload = encodeCbor(value);
  const frame = new Uint8Array(4 + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, 4);
  return frame;
}

Deno.test("a peer that stops reading during the handshake makes open() fail, not the process (our hello's write failing is not an unhandled rejection)", async () => {
  const rejections = await withoutUnhandledRejections(async () => {
    const [a, b] = memoryDuplexPair();
    // The peer hangs up its reading side at once: our hello's write fails while we wait for
    // its hello, which never comes.
    await b.readable.cancel(new Error("peer stopped reading"));
    const timers = new ManualTimers();
    const opening = Connection.open(a, { identity: Identity.generate(), timers });
    const outcome = opening.then(() => "open", (error) => error);
    await settle();
    await timers.advance(10_000);
    assert.equal((await outcome as Error).name, "PeerTimeoutError");
    await b.writable.close().catch(() => {});
  });
  assert.deepEqual(rejections.map(String), [], "an unhandled rejection ends a Deno process");
});

Deno.test("a peer that stops reading after our hello and sends a bad proof: open() rejects with handshake_failed, nothing unhandled (our proof's write)", async () => {
  const rejections = await withoutUnhandledRejections(async () => {
    const [a, b] = memoryDuplexPair();
    const opening = Connection.open(a, { identity: Identity.generate() });
    const outcome = opening.then(() => "open", (error) => error);
    const frames = b.readable.pipeThrough(new LengthPrefixedDecoderStream()).getReader();
    await frames.read(); // our hello
    await frames.cancel(new Error("peer stopped reading")); // our proof's write will fail
    const writer = b.writable.getWriter();
    const hello = {
      key: Identity.generate().publicKey,
      nonce: crypto.getRandomValues(new Uint8Array(32)),
      protocols: [],
    };
    await writer.write(framed({ v: 1, type: "session.hello", id: 0, body: hello }));
    await settle();
    await writer.write(
      framed({ v: 1, type: "session.proof", id: 1, body: { sig: new Uint8Array(64) } }),
    )
      .catch(() => {});
    const error = await outcome;
    assert.ok(error instanceof HandshakeError, String(error));
    await writer.close().catch(() => {});
  });
  assert.deepEqual(rejections.map(String), [], "an unhandled rejection ends a Deno process");
});

Deno.test("a body refused by its schema stops at its first wrong-typed item: a frame of 20,000 bad items costs one check, not 20,000 (a 1 MiB frame of them blocked the node ~1 s)", async () => {
  let checks = 0;
  const item = z.preprocess((value) => {
    checks++;
    return value;
  }, z.object({ a: z.number() }));
  const Done = defineMessage("test.batch_done", z.object({}));
  const Batch = defineMessage("test.batch", z.object({ items: z.array(item) }), { reply: Done });
  const { connection, peer } = connectionWithRawPeer();
  let ran = false;
  connection.handle(Batch, () => {
    ran = true;
    return {};
  });
  const items = Array.from({ length: 20_000 }, () => ({ a: "not a number" }));
  await peer.send({ v: 1, type: Batch.type, id: 1, body: { items } });
  const refusal = await peer.next();
  assert.equal(refusal.type, "error");
  assert.equal(refusal.re, 1);
  assert.equal((refusal.body as { code: string }).code, "invalid_body");
  assert.equal(ran, false);
  assert.ok(checks <= 2, `${checks} item checks for one refused frame`);
  await peer.close();
  await connection.close();
});
