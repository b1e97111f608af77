/**
 * Review s49 of the connection layer under a hostile requester: the chunks of streams we serve
 * to a peer that does not read must stay within the write budget, as replies do
 * (`protocols/_connection_responder.ts`, `#pump`; `protocols/_connection_write_queue.ts`).
 *
 * A burst of stream requests is admitted while nothing is owed yet (the write queue is empty
 * when they arrive); once their handlers answer, each stream's pump encodes its next chunk and
 * waits for room with it. Replies in the same burst wait beyond the budget only up to one more
 * budget's worth and are answered `busy` past that; stream chunks had no such bound, so every
 * admitted stream held one encoded chunk outside the budget: `maxInboundRequests` (1024) times
 * the largest chunk per connection.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { defineMessage } from "../../protocols/message_registry.ts";
import { ErrorMessage } from "../../protocols/messages.ts";
import { connectionWithRawPeer, ManualTimers, settle } from "./_helpers.ts";

const Chunk = defineMessage("test.s49_chunk", z.object({ data: z.instanceof(Uint8Array) }));
const Watch = defineMessage("test.s49_watch", z.object({ i: z.number().int() }), {
  chunk: Chunk,
});

/** Frame overhead of a Chunk envelope beyond its data: generous. */
const ENVELOPE_SLACK = 256;
/** An encoded `busy` error answer, at most (a short message and the envelope). */
const BUSY_ANSWER_BYTES = 256;

Deno.test("chunks of a burst of streams to a peer that never reads do not pile up outside the budget, and each stream is ended", async () => {
  const budget = 64 * 1024;
  const chunkBytes = 16 * 1024;
  const streams = 1_000;
  const timers = new ManualTimers(); // no timeouts fire: this is about memory, not liveness
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: budget },
    { highWaterMarkBytes: 16 * 1024 },
  );
  // An async handler (a job that starts, an actor ask): the whole burst is admitted before any
  // chunk exists, since nothing is owed yet when the requests arrive.
  const release = Promise.withResolvers<void>();
  connection.handle(Watch, async () => {
    await release.promise;
    return new ReadableStream({
      pull: (c) => c.enqueue({ data: new Uint8Array(chunkBytes) }),
    }, { highWaterMark: 0 });
  });
  let id = 1;
  for (let i = 0; i < streams; i++) {
    const re = id++;
    await peer.send({ v: 1, type: Watch.type, id: re, body: { i } });
    await peer.send({ v: 1, type: "credit", id: id++, re, body: { chunks: 16 } });
  }
  await settle();
  assert.equal(connection.stats().inboundRequests, streams, "the burst was admitted");
  release.resolve();
  await settle();
  const stats = connection.stats();
  // As for replies: one budget queued, at most one more budget's worth waiting (plus a frame
  // each way over), and the rest are ~100-byte `busy` answers.
  const held = stats.queuedBytes + stats.waitingBytes;
  const bound = 2 * budget + 2 * (chunkBytes + ENVELOPE_SLACK) + streams * BUSY_ANSWER_BYTES;
  assert.ok(held <= bound, `${held} B held for the peer (bound ${bound})`);
  // The peer reads now: every stream is ended (`busy` or still running), none left hanging.
  const busy = new Set<number>();
  const chunked = new Set<number>();
  while (busy.size + chunked.size < streams) {
    const frame = await peer.next();
    if (frame.type === ErrorMessage.type) {
      assert.equal((frame.body as { code: string }).code, "busy");
      busy.add(frame.re!);
      chunked.delete(frame.re!);
    } else if (!busy.has(frame.re!)) chunked.add(frame.re!);
  }
  assert.ok(busy.size > 900, `${busy.size} answered busy`);
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});
