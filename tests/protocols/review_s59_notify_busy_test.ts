/**
 * Review s59: a one-way message the peer's connection refuses `busy`.
 *
 * The receiving connection refuses a request or one-way message `busy` when it already handles
 * `maxInboundRequests` of the peer's messages (`_connection_responder.ts`), and tells the sender
 * with an `error` frame `about` the envelope. A request fails with it (its caller asks again); a
 * one-way message's sender acted on nothing, so the message was lost on that connection: a
 * peer's fraud proof refused while a burst of its receipt announcements was in flight never
 * reached that ledger (`tests/network/review_s59_busy_evidence_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  BUSY_RETRY_BACKOFF_MS,
  MAX_BUSY_RETRIES,
  MAX_KEPT_NOTICES,
} from "../../protocols/connection.ts";
import type { RemoteError } from "../../protocols/protocol_errors.ts";
import { connectedPair, Echo, ManualTimers, Note, settle } from "./_helpers.ts";

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

Deno.test("review s59: a one-way message refused busy is sent again after a backoff, and the peer's handler takes it", async () => {
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

Deno.test("review s59: a peer that stays busy is sent a one-way message 1 + MAX_BUSY_RETRIES times, each after twice the wait, then the sender gives up", async () => {
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

Deno.test("review s59: a one-way message is kept only until the peer answers something sent after it", async () => {
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

Deno.test("review s59: a connection keeps at most MAX_KEPT_NOTICES one-way messages, and at most its write budget of them", async () => {
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

Deno.test("review s59: a one-way message refused for another reason than busy is not sent again", async () => {
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

Deno.test("review s59: closing the connection drops the one-way messages waiting to be sent again", async () => {
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
