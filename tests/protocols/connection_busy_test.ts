/**
 * A `busy` refusal between peers: a one-way message the peer's connection refuses `busy` reaches
 * its sender, also while the receiver's write budget to the sender is full.
 */
import assert from "node:assert/strict";
import {
  BUSY_RETRY_BACKOFF_MS,
  MAX_BUSY_RETRIES,
  MAX_KEPT_NOTICES,
} from "../../protocols/connection.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  Echo,
  ManualTimers,
  Note,
  settle,
} from "./_helpers.ts";
import { ErrorMessage } from "../../protocols/messages.ts";
import { slowReaderPair } from "./_slow_reader_pair.ts";

// A one-way message the peer's connection refuses `busy`.
//
// The receiving connection refuses a request or one-way message `busy` when it already handles
// `maxInboundRequests` of the peer's messages (`_connection_responder.ts`), and tells the sender
// with an `error` frame `about` the envelope. A request fails with it (its caller asks again); a
// one-way message's sender acted on nothing, so the message was lost on that connection: a
// peer's fraud proof refused while a burst of its receipt announcements was in flight never
// reached that ledger (`tests/network/busy_announcements_test.ts`).
//
// @module

/** Well past any backoff of a few tries. */
const PAST_BACKOFF_MS = 60_000;

/**
 * A client on the test's clock and a server that handles one peer message at once, whose
 * `test.echo` handler waits for `release`; `notes` are the `test.note` texts its handler took.
 */
function busyPair() {
  const timers = new ManualTimers();
  // Nothing else is due on this clock: no keepalive, no idle timeout, no request timeout.
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0, requestTimeoutMs: 1e9 };
  const remoteErrors: RemoteError[] = [];
  const refusedByServer: string[] = [];
  const { client, server, close } = connectedPair(
    { ...quiet, onRemoteError: (error) => remoteErrors.push(error) },
    {
      ...quiet,
      maxInboundRequests: 1,
      onProtocolError: (error) => refusedByServer.push(`${error.code} ${error.envelopeType}`),
    },
  );
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  server.handle(Echo, async ({ text, n }) => {
    await held;
    return { text, n };
  });
  const notes: string[] = [];
  server.handle(Note, ({ text }) => {
    notes.push(text);
  });
  return { timers, client, server, close, release, notes, remoteErrors, refusedByServer };
}

Deno.test("a one-way message refused busy is sent again after a backoff, and the peer's handler takes it", async () => {
  const { timers, client, server, close, release, notes, refusedByServer } = busyPair();
  try {
    const echoed = client.request(Echo, { text: "hold", n: 1 });
    await settle();
    assert.equal(server.stats().inboundRequests, 1, "the request holds the server's one slot");
    await client.notify(Note, { text: "evidence" });
    await settle();
    assert.deepEqual(refusedByServer, ["busy test.note"]);
    assert.deepEqual(notes, []);
    release();
    assert.deepEqual(await echoed, { text: "hold", n: 1 });
    await timers.advance(PAST_BACKOFF_MS);
    assert.deepEqual(notes, ["evidence"], "the one-way message was lost");
  } finally {
    await close();
  }
});

Deno.test("a peer that stays busy is sent a one-way message 1 + MAX_BUSY_RETRIES times, each after twice the wait, then the sender gives up", async () => {
  const { timers, client, close, release, notes, remoteErrors, refusedByServer } = busyPair();
  const echoed = client.request(Echo, { text: "hold", n: 1 });
  echoed.catch(() => {}); // a failed assertion closes the connection under it
  try {
    await settle();
    await client.notify(Note, { text: "evidence" });
    await settle();
    let waited = 0;
    for (let retry = 0; retry < MAX_BUSY_RETRIES; retry++) {
      const backoff = BUSY_RETRY_BACKOFF_MS * 2 ** retry;
      await timers.advance(backoff - 1);
      assert.equal(client.stats().resentOneWay, retry, `retry ${retry + 1} not before its wait`);
      await timers.advance(1);
      waited += backoff;
      assert.equal(client.stats().resentOneWay, retry + 1, `retry ${retry + 1} after ${waited} ms`);
    }
    await timers.advance(PAST_BACKOFF_MS);
    const busy = refusedByServer.filter((r) => r === "busy test.note").length;
    assert.equal(busy, 1 + MAX_BUSY_RETRIES, "sent once and retried MAX_BUSY_RETRIES times");
    assert.equal(client.stats().keptOneWay, 0, "nothing kept once it gave up");
    assert.deepEqual(
      remoteErrors.map((e) => e.code),
      Array(1 + MAX_BUSY_RETRIES).fill("busy"),
      "each refusal is reported",
    );
    release();
    await echoed;
    await timers.advance(PAST_BACKOFF_MS);
    assert.deepEqual(notes, [], "given up: not sent again");
  } finally {
    await close();
  }
});

Deno.test("a one-way message is kept only until the peer answers something sent after it", async () => {
  const { client, close, release, notes } = busyPair();
  try {
    release(); // the server takes everything
    await client.notify(Note, { text: "a" });
    await client.notify(Note, { text: "b" });
    assert.equal(client.stats().keptOneWay, 2, "kept: a refusal may still come");
    await client.request(Echo, { text: "later", n: 2 });
    assert.deepEqual(notes, ["a", "b"]);
    assert.equal(client.stats().keptOneWay, 0, "the answer to a later request releases them");
  } finally {
    await close();
  }
});

Deno.test("a connection keeps at most MAX_KEPT_NOTICES one-way messages, and at most its write budget of them", async () => {
  const timers = new ManualTimers();
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0 };
  const { client, server, close } = connectedPair({ ...quiet, maxQueuedBytes: 64 * 1024 }, quiet);
  try {
    server.handle(Note, () => {});
    for (let i = 0; i < MAX_KEPT_NOTICES + 10; i++) await client.notify(Note, { text: `n${i}` });
    assert.equal(client.stats().keptOneWay, MAX_KEPT_NOTICES);
    const big = "x".repeat(20 * 1024);
    for (let i = 0; i < 10; i++) await client.notify(Note, { text: big });
    assert.ok(client.stats().keptOneWay <= 3, `${client.stats().keptOneWay} kept past 64 KiB`);
  } finally {
    await close();
  }
});

Deno.test("a one-way message refused for another reason than busy is not sent again", async () => {
  const timers = new ManualTimers();
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0 };
  const remoteErrors: RemoteError[] = [];
  const { client, server, close } = connectedPair(
    { ...quiet, onRemoteError: (error) => remoteErrors.push(error) },
    quiet,
  );
  try {
    let calls = 0;
    server.handle(Note, () => {
      calls++;
      throw new Error("refused (test)");
    });
    await client.notify(Note, { text: "x" });
    await settle();
    await timers.advance(PAST_BACKOFF_MS);
    assert.equal(calls, 1);
    assert.equal(client.stats().resentOneWay, 0);
    assert.equal(client.stats().keptOneWay, 0, "its refusal releases it");
    assert.deepEqual(remoteErrors.map((e) => e.code), ["handler_error"]);
  } finally {
    await close();
  }
});

Deno.test("closing the connection drops the one-way messages waiting to be sent again", async () => {
  const { timers, client, server, close, release } = busyPair();
  try {
    const echoed = client.request(Echo, { text: "hold", n: 1 }).catch(() => {});
    await settle();
    await client.notify(Note, { text: "evidence" });
    await settle();
    assert.equal(client.stats().keptOneWay, 1, "waiting out its backoff");
    await client.close();
    assert.equal(client.stats().keptOneWay, 0);
    await timers.advance(PAST_BACKOFF_MS);
    assert.equal(client.stats().resentOneWay, 0, "nothing sent again after close");
    release();
    await echoed;
    await server.closed;
  } finally {
    await close();
  }
});

// A `busy` refusal made while the receiver's write budget to the sender is full must reach the
// sender, or the refused message must not be refused at all.
//
// Before: a message refused `busy` because the receiver was not being read (`NOT_READING`,
// `_connection_responder.ts`), or because its `maxInboundRequests` were in use while its budget
// was full, was answered with an `error` frame offered to that full budget: always dropped. A
// one-way message (a fraud proof) was lost on that connection without the busy resend ever
// running; a request (a receipt announcement) waited out its 30 s timeout.

/** The receiver's write budget: two of the notes it owes fill it. */
const BUDGET = 16 * 1024;

const OWED_NOTE_BYTES = 8 * 1024;

/**
 * A sender that reads nothing until `open()` (a congested link, a large transfer from the peer),
 * and a receiver that owes it more than its whole write budget, so that budget stays full.
 */
function fullBudgetPair(serverOptions?: { maxInboundRequests?: number }) {
  const timers = new ManualTimers();
  const { client, server, open, close } = slowReaderPair(timers, {
    maxQueuedBytes: BUDGET,
    ...serverOptions,
  });
  return {
    timers,
    client,
    server,
    /** The server starts owing the client; resolves once it owes more than its budget. */
    async fill(): Promise<{ owed: Promise<unknown> }> {
      const owed = Promise.all(
        Array.from(
          { length: 8 },
          () => server.notify(Note, { text: "x".repeat(OWED_NOTE_BYTES) }).catch(() => {}),
        ),
      );
      await settle();
      assert.ok(server.stats().waitingSends > 0, "the server's write budget is full");
      return { owed }; // not `owed` itself: an async function would wait for it
    },
    open,
    close,
  };
}

Deno.test("a one-way message that arrives while the receiver's write budget to its sender is full is taken, not refused busy into that budget and lost", async () => {
  const pair = fullBudgetPair();
  const { client, server, timers } = pair;
  const notes: string[] = [];
  server.handle(Note, ({ text }) => {
    notes.push(text);
  });
  server.handle(Echo, ({ text, n }) => ({ text, n }));
  try {
    const { owed } = await pair.fill();
    await client.notify(Note, { text: "evidence" });
    await settle();
    const dropped = server.stats().droppedErrorReplies;
    pair.open();
    await owed;
    // The peer answers something sent later: the sender forgets the message it kept.
    assert.deepEqual(await client.request(Echo, { text: "later", n: 1 }), { text: "later", n: 1 });
    await timers.advance(60_000);
    assert.deepEqual(
      notes.filter((t) => t === "evidence"),
      ["evidence"],
      `the one-way message was lost (${dropped} error frame(s) dropped, ` +
        `${client.stats().resentOneWay} resent)`,
    );
    assert.equal(client.stats().keptOneWay, 0, "nothing left to send again");
  } finally {
    await pair.close();
  }
});

Deno.test("a request refused busy while the receiver's write budget to its sender is full is told busy once the sender reads, not left to its request timeout; asked again it is answered", async () => {
  const pair = fullBudgetPair();
  const { client, server } = pair;
  const seen: string[] = [];
  server.handle(Echo, ({ text, n }) => {
    seen.push(text);
    return { text, n };
  });
  try {
    const { owed } = await pair.fill();
    const first = client.request(Echo, { text: "receipt", n: 1 }).then(
      (reply) => ({ reply }),
      (error: unknown) => ({ error }),
    );
    await settle();
    assert.equal(server.stats().refused, 1, "refused busy: the receiver is not being read");
    pair.open();
    await owed;
    // No clock moves: only the refusal's own frame can settle the request.
    const outcome = await Promise.race([first, settle().then(() => "still waiting" as const)]);
    assert.notEqual(
      outcome,
      "still waiting",
      "the busy refusal was dropped: the request waits out its 30 s timeout",
    );
    assert.ok(outcome !== "still waiting" && "error" in outcome, "refused, not answered");
    const { error } = outcome as { error: unknown };
    assert.ok(error instanceof RemoteError && error.code === "busy", `${error}`);
    // The caller asks again (as `announceReceipt` does): the receiver now takes it.
    assert.deepEqual(await client.request(Echo, { text: "receipt", n: 1 }), {
      text: "receipt",
      n: 1,
    });
    assert.deepEqual(seen, ["receipt"], "handled once, on the second ask");
  } finally {
    await pair.close();
  }
});

Deno.test("a one-way message refused busy for maxInboundRequests while the receiver's write budget is full is sent again and delivered", async () => {
  const pair = fullBudgetPair({ maxInboundRequests: 1 });
  const { client, server, timers } = pair;
  const notes: string[] = [];
  const release = Promise.withResolvers<void>();
  server.handle(Note, async ({ text }) => {
    if (text === "hold") await release.promise; // takes the receiver's only slot
    notes.push(text);
  });
  try {
    const { owed } = await pair.fill();
    await client.notify(Note, { text: "hold" });
    await client.notify(Note, { text: "evidence" });
    await settle();
    pair.open();
    release.resolve();
    await owed;
    await settle();
    await timers.advance(BUSY_RETRY_BACKOFF_MS);
    assert.deepEqual(
      notes,
      ["hold", "evidence"],
      `the refused message was lost (${server.stats().droppedErrorReplies} error frame(s) ` +
        `dropped, ${client.stats().resentOneWay} resent)`,
    );
    assert.equal(client.stats().resentOneWay, 1, "delivered by the s59 resend");
  } finally {
    await pair.close();
  }
});

Deno.test("a peer that floods requests and one-way messages and never reads still cannot grow our queue past the budget, maxInboundRequests handlers and maxInboundRequests waiting busy answers", async () => {
  const maxInboundRequests = 8;
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: BUDGET, maxInboundRequests },
    { highWaterMarkBytes: 4 * 1024 },
  );
  connection.handle(Echo, ({ text, n }) => ({ text: text.repeat(1024), n }));
  connection.handle(Note, () => new Promise<void>(() => {})); // a handler that never ends
  let id = 1;
  let most = { queued: 0, handlers: 0, waiting: 0, waitingBeyondHandlers: 0 };
  const sample = () => {
    const s = connection.stats();
    most = {
      queued: Math.max(most.queued, s.queuedBytes),
      handlers: Math.max(most.handlers, s.inboundRequests),
      waiting: Math.max(most.waiting, s.waitingSends),
      waitingBeyondHandlers: Math.max(
        most.waitingBeyondHandlers,
        s.waitingSends - s.inboundRequests,
      ),
    };
  };
  for (let i = 0; i < 300; i++) {
    await peer.send({ v: 1, type: Echo.type, id: id++, body: { text: "0123456789abcdef", n: i } });
    await peer.send({ v: 1, type: Note.type, id: id++, body: { text: "n" } });
    await peer.send({ v: 1, type: "ping", id: id++, body: { nonce: i } });
    sample();
  }
  await settle();
  sample();
  const stats = connection.stats();
  assert.equal(stats.framesReceived, 900, "the read loop read every frame");
  assert.ok(most.queued <= BUDGET + 16 * 1024 + 256, `queued up to ${most.queued} B`);
  assert.ok(most.handlers <= maxInboundRequests, `${most.handlers} handlers at once`);
  // Each handler waits on one send at most; beside them, at most maxInboundRequests `busy`
  // answers wait for room. Past that a refusal is dropped, as any other refusal.
  assert.ok(
    most.waitingBeyondHandlers <= maxInboundRequests,
    `${most.waitingBeyondHandlers} sends waiting beyond one per handler`,
  );
  assert.ok(stats.droppedErrorReplies > 0, "busy answers past the bound were dropped");
  assert.ok(
    stats.waitingBytes <= BUDGET + 16 * 1024 + maxInboundRequests * 256,
    `${stats.waitingBytes} B waiting`,
  );
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});

Deno.test("busy answers that waited for room reach a peer that reads again: every request is answered, in the order it was sent", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer(
    { timers, maxQueuedBytes: BUDGET },
    { highWaterMarkBytes: 4 * 1024 },
  );
  // Replies of 8 KiB: a few fill the budget, and the requests behind them are refused busy.
  connection.handle(Echo, ({ text, n }) => ({ text: text.repeat(512), n }));
  const sent = 40;
  for (let n = 0; n < sent; n++) {
    await peer.send({ v: 1, type: Echo.type, id: n + 1, body: { text: "0123456789abcdef", n } });
  }
  await settle();
  assert.ok(connection.stats().refused > 0, "some were refused busy");
  const answers: { re?: number; code?: string }[] = [];
  for (let i = 0; i < sent; i++) {
    const next = peer.next();
    next.catch(() => {});
    const envelope = await Promise.race([next, settle().then(() => undefined)]);
    if (envelope === undefined) break; // nothing more comes: the rest were dropped
    answers.push({
      re: envelope.re,
      code: envelope.type === ErrorMessage.type
        ? (envelope.body as { code: string }).code
        : undefined,
    });
  }
  assert.deepEqual(
    answers.map((a) => a.re),
    Array.from({ length: sent }, (_, i) => i + 1),
    `each request answered once, in order (${answers.length} of ${sent} answered)`,
  );
  assert.ok(answers.every((a) => a.code === undefined || a.code === "busy"));
  assert.ok(answers.some((a) => a.code === "busy"), "the refused ones are told busy");
  const closed = connection.close();
  await peer.close();
  await timers.advance(3_000);
  await closed;
});
