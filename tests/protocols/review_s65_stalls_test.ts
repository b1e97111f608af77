/**
 * Review s65 (wire): what a peer that keeps a connection alive, but never finishes anything, can
 * hold. A stream it never credits held its handler (and the source's job and buffers) for as long
 * as the peer answered pings; a frame it announced and trickled a byte per keepalive period held
 * the connection for ever, every byte counting as life. Both are cut on the connection's clock
 * (`streamCreditTimeoutMs`, `frameTimeoutMs`), here a fake one.
 */
import assert from "node:assert/strict";
import { connectionWithRawPeer, CountTo, ManualTimers, settle } from "./_helpers.ts";
import type { Connection } from "../../protocols/connection.ts";
import { WireBudget } from "../../protocols/wire_budget.ts";
import {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_STREAM_CREDIT_TIMEOUT_MS,
} from "../../protocols/connection.ts";

/** Close `connection`, moving its fake clock past the close grace (a raw peer never ends its side). */
async function closeOn(connection: Connection, timers: ManualTimers): Promise<void> {
  const closed = connection.close();
  await timers.advance(5_000);
  await closed;
}

/** A source that always has a next chunk, and says when it was cancelled. */
function endless(): { stream: ReadableStream<{ i: number }>; cancelled: Promise<unknown> } {
  const cancelled = Promise.withResolvers<unknown>();
  let i = 0;
  const stream = new ReadableStream<{ i: number }>({
    pull: (controller) => controller.enqueue({ i: i++ }),
    cancel: (reason) => cancelled.resolve(reason),
  }, { highWaterMark: 0 });
  return { stream, cancelled: cancelled.promise };
}

Deno.test("a stream whose requester never grants credit ends credit_timeout after streamCreditTimeoutMs on the connection's clock, its source cancelled and its slots given back", async () => {
  const timers = new ManualTimers();
  const budget = new WireBudget();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    budget,
    streamCreditTimeoutMs: 10_000,
  });
  const source = endless();
  connection.handle(CountTo, () => source.stream);
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 5 } }); // and no credit, ever
  await settle();
  await timers.advance(9_999);
  assert.equal(connection.stats().inboundRequests, 1, "still served just before the deadline");
  assert.equal(budget.stats().streams, 1);
  await timers.advance(1);
  const error = await peer.next();
  assert.equal(error.type, "error");
  assert.equal(error.re, 1);
  assert.equal((error.body as { code: string }).code, "credit_timeout");
  await source.cancelled;
  await settle();
  assert.equal(connection.stats().inboundRequests, 0, "the handler is gone");
  assert.deepEqual(budget.stats(), { handlers: 0, streams: 0, queuedBytes: 0, refused: 0 });
  assert.equal(connection.isClosed, false, "the connection itself goes on");
  await closeOn(connection, timers);
});

Deno.test("credit that comes restarts the stream's credit deadline: a slow honest reader is not cut", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, streamCreditTimeoutMs: 10_000 });
  connection.handle(CountTo, () => endless().stream);
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 5 } });
  let id = 100;
  for (let round = 0; round < 5; round++) {
    await timers.advance(9_000); // a slow reader: one chunk every 9 s
    await peer.send({ v: 1, type: "credit", id: id++, re: 1, body: { chunks: 1 } });
    const chunk = await peer.next();
    assert.equal(chunk.type, CountTo.chunk!.type, `chunk ${round} arrives, not an error`);
  }
  assert.equal(connection.stats().inboundRequests, 1);
  await closeOn(connection, timers);
});

Deno.test("a frame announced and trickled a byte per keepalive period is cut off frameTimeoutMs after its first byte, though bytes keep arriving", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    idleTimeoutMs: 5_000,
    frameTimeoutMs: 30_000,
  });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 1_000);
  await peer.sendBytes(header);
  for (let t = 0; t < 28_000; t += 4_000) {
    await timers.advance(4_000); // under the idle timeout: each byte is life
    await peer.sendBytes(new Uint8Array([0xa0]));
  }
  await settle();
  assert.equal(connection.isClosed, false, "still reading the frame at 28 s");
  await timers.advance(2_000);
  assert.equal(connection.isClosed, true);
  assert.equal(connection.closeReason?.constructor.name, "PeerTimeoutError");
  assert.equal((connection.closeReason as { code?: string }).code, "peer_timeout");
  await timers.advance(5_000);
  await connection.closed;
});

Deno.test("frames that each complete in time never trip the frame deadline, however long the connection lives", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({
    timers,
    idleTimeoutMs: 0,
    frameTimeoutMs: 1_000,
  });
  for (let i = 0; i < 10; i++) {
    // Each ping in two halves, 900 ms apart: never whole-frame late, 9 s in all.
    const frame = new Uint8Array([0, 0, 0, 1, 0xf6]);
    await peer.sendBytes(frame.subarray(0, 2));
    await timers.advance(900);
    await peer.sendBytes(frame.subarray(2));
    await timers.advance(100);
  }
  assert.equal(connection.isClosed, false);
  await closeOn(connection, timers);
  await timers.advance(5_000);
});

Deno.test("the defaults: streams wait 120 s for credit (above the inference worker's 60 s stall), frames 60 s to complete", () => {
  assert.equal(DEFAULT_STREAM_CREDIT_TIMEOUT_MS, 120_000);
  assert.equal(DEFAULT_FRAME_TIMEOUT_MS, 60_000);
});
