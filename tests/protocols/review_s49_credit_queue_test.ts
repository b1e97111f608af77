/**
 * Review s49 of the connection layer under a hostile stream sender: the credit frames a stream's
 * reader sends back must not pile up without bound while the peer does not read them
 * (`protocols/_connection_requester.ts`, the receive side of `openStream`).
 *
 * Credit is a frame that must arrive, so it waits for room in the write budget instead of being
 * dropped. The peer's allowance grows as soon as our reader has read (that is what credit is
 * for), so a peer that keeps sending the chunks it knows it may send, and does not read what we
 * send, made our reader queue one more credit frame per half window read, each waiting outside
 * the budget: memory that grew with every chunk the peer sent, for as long as it read a trickle
 * (enough for the keepalive to see progress).
 */
import assert from "node:assert/strict";
import type { Envelope } from "../../protocols/envelope.ts";
import { MessageRegistry } from "../../protocols/message_registry.ts";
import {
  ConnectionClosedError,
  FlowControlError,
  type ProtocolError,
} from "../../protocols/protocol_errors.ts";
import type { ConnectionCore } from "../../protocols/_connection_common.ts";
import { Requester } from "../../protocols/_connection_requester.ts";
import { connectionWithRawPeer, Count, CountTo, ManualTimers, settle } from "./_helpers.ts";

Deno.test("a peer that sends a stream's chunks and never reads our credits leaves at most one credit frame of that stream waiting, and is held to the credit it was sent", async () => {
  const window = 16;
  const chunks = 4_000;
  const timers = new ManualTimers(); // no timeouts fire: this is about memory, not liveness
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: 1024 },
    { highWaterMarkBytes: 1024 },
  );
  const stream = connection.openStream(CountTo, { to: chunks }, { window });
  let read = 0;
  const reading = (async () => {
    for await (const _ of stream) read++;
  })().then(() => null, (error) => error);
  await settle();
  const re = 1; // our first id: the request (the peer never reads it, but knows the scheme)
  let id = 1;
  let mostWaiting = 0;
  for (let i = 0; i < chunks; i++) {
    // As fast as the credit our reader frees would allow, had the peer read it: each half
    // window read frees that much more.
    await peer.send({ v: 1, type: Count.type, id: id++, re, body: { i } });
    if (i % (window / 2) === window / 2 - 1) {
      await settle();
      mostWaiting = Math.max(mostWaiting, connection.stats().waitingSends);
    }
  }
  await peer.send({ v: 1, type: "end", id: id++, re, body: null });
  const outcome = await reading;
  assert.ok(mostWaiting <= 2, `${mostWaiting} sends waited for room (credit frames of one stream)`);
  // Our credit never reached the peer: past the credit that went out, its chunks break the
  // flow control, and the stream ends there.
  assert.ok(outcome instanceof FlowControlError, `the stream ended with ${outcome}`);
  assert.ok(read < chunks, `${read} chunks read`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});

Deno.test("credit the reader frees while its last credit frame waits goes out in one frame once that one is taken, and counts only then", async () => {
  // A Requester alone, over a core whose sends resolve when the test says (the transport
  // taking the frame), so the wait is exact.
  const sent: { envelopes: readonly Envelope[]; taken: PromiseWithResolvers<void> }[] = [];
  const refused: ProtocolError[] = [];
  let nextId = 1;
  const core: ConnectionCore = {
    registry: new MessageRegistry([CountTo]),
    timers: new ManualTimers(),
    isClosing: false,
    hasRoom: true,
    hasRoomForReply: true,
    nextId: () => nextId++,
    send(envelopes) {
      const taken = Promise.withResolvers<void>();
      sent.push({ envelopes, taken });
      return taken.promise;
    },
    post: () => {}, // the cancel at the end
    offer: () => {},
    closedError: () => new ConnectionClosedError("closed"),
    refuse: (error) => void refused.push(error),
  };
  const requester = new Requester(core, { maxPendingRequests: 8 });
  const reader = requester.openStream(CountTo, { to: 100 }, 4).getReader();
  assert.equal(sent.length, 1, "the request and its first credit, together");
  const re = sent[0].envelopes[0].id;
  sent[0].taken.resolve();
  let peerId = 1;
  const chunk = (i: number) =>
    requester.onResponse(
      { v: 1, type: Count.type, id: peerId++, re, body: { i } },
      re,
      nextId,
    );
  const credits = () =>
    sent.slice(1).map((s) => (s.envelopes[0].body as { chunks: number }).chunks);
  for (let i = 0; i < 4; i++) chunk(i);
  for (let i = 0; i < 2; i++) await reader.read();
  assert.deepEqual(credits(), [2], "half the window read: credit for it");
  for (let i = 0; i < 2; i++) await reader.read();
  assert.deepEqual(credits(), [2], "while that frame waits, no second one");
  for (let i = 4; i < 6; i++) chunk(i); // within the 4 + 2 the peer was sent
  for (let i = 0; i < 2; i++) await reader.read();
  assert.equal(refused.length, 0);
  chunk(6); // beyond what the peer was sent: the 4 owed have not gone out
  assert.equal(refused.length, 1);
  assert.equal(refused[0].code, "flow_control_violation");
  // (On a Connection the router then fails the stream.) The waiting frame is taken: what was
  // owed goes out, in one frame.
  sent[1].taken.resolve();
  await settle();
  assert.deepEqual(credits(), [2, 4]);
  await reader.cancel();
});
