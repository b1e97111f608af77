/**
 * Frames that are valid and do nothing (`protocols/_connection_inbound.ts`): a `ping`, a credit
 * or cancel naming no running stream, a credit past a stream's window, a second cancel, a late
 * answer, an `error` that answers nothing of ours. Each costs the node a decode and a schema
 * check (a ping a pong too) and none is a refusal, so before `maxIdleFrames` a peer could send
 * them without end (100,000 a second kept a core busy) and never reach `maxRefusals`. Now past
 * the allowance each further one is dropped and counted as a refusal, and the flood ends
 * `too_many_refusals` like a garbage flood; an honest peer's few never come near it.
 */
import assert from "node:assert/strict";
import { TooManyRefusalsError } from "../../protocols/protocol_errors.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  CountTo,
  Echo,
  Echoed,
  ManualTimers,
  Note,
  settle,
} from "./_helpers.ts";

/** Small limits, so the tests send tens of frames, not tens of thousands. */
const LIMITS = { maxIdleFrames: 5, maxRefusals: 3, refusalWindowMs: 10_000 };

/** The frames of each kind that do nothing here (no stream runs, no request of ours waits). */
const IDLE_FRAMES: [string, (id: number) => unknown][] = [
  ["ping", (id) => ({ v: 1, type: "ping", id, body: { nonce: id } })],
  ["credit naming no stream", (id) => ({ v: 1, type: "credit", id, re: 7, body: { chunks: 1 } })],
  ["cancel naming no stream", (id) => ({
    v: 1,
    type: "cancel",
    id,
    re: 7,
    body: { code: "x", message: "y" },
  })],
];

for (const [what, frame] of IDLE_FRAMES) {
  Deno.test(`a peer flooding valid frames that do nothing (${what}) is cut off too_many_refusals past maxIdleFrames + maxRefusals in a window`, async () => {
    const timers = new ManualTimers();
    const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
    for (let id = 1; id <= LIMITS.maxIdleFrames + LIMITS.maxRefusals; id++) {
      await peer.send(frame(id));
    }
    await settle();
    assert.equal(connection.isClosed, false, "closed within the allowance");
    assert.equal(connection.stats().refused, LIMITS.maxRefusals);
    await peer.send(frame(100));
    await settle();
    assert.equal(connection.isClosed, true);
    assert.ok(
      connection.closeReason instanceof TooManyRefusalsError,
      String(connection.closeReason),
    );
    await timers.advance(5_000);
    await connection.closed;
  });
}

Deno.test("pings within maxIdleFrames are each answered with a pong; past it they go unanswered", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS, maxRefusals: 100 });
  for (let id = 1; id <= LIMITS.maxIdleFrames + 2; id++) {
    await peer.send({ v: 1, type: "ping", id, body: { nonce: id } });
  }
  await settle();
  const answered: number[] = [];
  for (let i = 0; i < LIMITS.maxIdleFrames; i++) {
    const pong = await peer.next();
    assert.equal(pong.type, "pong");
    answered.push(pong.re!);
  }
  assert.deepEqual(answered, [1, 2, 3, 4, 5]);
  assert.equal(connection.stats().refused, 2, "the two past the allowance are counted");
  const closing = connection.close();
  await timers.advance(5_000);
  await closing;
});

Deno.test("the allowance is per window: an honest peer's pings, a few each window, are answered for as long as the connection lives", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
  let id = 0;
  for (let window = 0; window < 6; window++) {
    for (let i = 0; i < LIMITS.maxIdleFrames; i++) {
      await peer.send({ v: 1, type: "ping", id: ++id, body: { nonce: id } });
      assert.equal((await peer.next()).re, id);
    }
    await timers.advance(LIMITS.refusalWindowMs);
  }
  assert.equal(connection.isClosed, false);
  assert.equal(connection.stats().refused, 0);
  const closing = connection.close();
  await timers.advance(5_000);
  await closing;
});

Deno.test("answers to a request this side gave up on (it timed out) are dropped quietly within maxIdleFrames, and a flood of them is cut off too_many_refusals", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
  connection.registry.register(Echo, Echoed);
  const asked = connection.request(Echo, { text: "hi", n: 1 }, { timeoutMs: 1_000 });
  const timedOut = assert.rejects(asked, { code: "request_timeout" });
  const request = await peer.next();
  await timers.advance(1_000);
  await timedOut;
  const late = (id: number) => ({
    v: 1,
    type: Echoed.type,
    id,
    re: request.id,
    body: { text: "hi", n: 1 },
  });
  for (let id = 1; id <= LIMITS.maxIdleFrames; id++) await peer.send(late(id));
  await settle();
  assert.equal(connection.stats().refused, 0, "late answers within the allowance are no refusal");
  for (let id = 100; id < 100 + LIMITS.maxRefusals + 1; id++) await peer.send(late(id));
  await settle();
  assert.ok(connection.closeReason instanceof TooManyRefusalsError, String(connection.closeReason));
  await timers.advance(5_000);
  await connection.closed;
});

// ---- error frames, credits past a window, second cancels ------------------------------------
// Error frames that do nothing (`protocols/_connection_inbound.ts`): an `error` addressed to no
// request (no `re`), or one whose `about` names no one-way message of ours waiting on it. Like a
// `ping` each costs a decode and a schema check and is no refusal; uncounted, a peer could send
// them without end and never reach `maxRefusals`. They count toward `maxIdleFrames` as the
// other frames that do nothing do, so a flood of them ends `too_many_refusals`.

const ERROR_FRAMES: [string, (id: number) => unknown][] = [
  ["error addressed to nothing", (id) => ({
    v: 1,
    type: "error",
    id,
    body: { code: "x", message: "y" },
  })],
  ["error about no one-way message of ours", (id) => ({
    v: 1,
    type: "error",
    id,
    body: { code: "busy", message: "y", about: 7 },
  })],
];

for (const [what, frame] of ERROR_FRAMES) {
  Deno.test(`a peer flooding error frames that do nothing (${what}) is cut off too_many_refusals past maxIdleFrames + maxRefusals in a window`, async () => {
    const timers = new ManualTimers();
    const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
    for (let id = 1; id <= LIMITS.maxIdleFrames + LIMITS.maxRefusals; id++) {
      await peer.send(frame(id));
    }
    await settle();
    assert.equal(connection.isClosed, false, "closed within the allowance");
    assert.equal(connection.stats().refused, LIMITS.maxRefusals);
    await peer.send(frame(100));
    await settle();
    assert.equal(connection.isClosed, true, "still open after the flood");
    assert.ok(
      connection.closeReason instanceof TooManyRefusalsError,
      String(connection.closeReason),
    );
    await timers.advance(5_000);
    await connection.closed;
  });
}

Deno.test("a peer that refuses each of our one-way messages busy is not counted: those errors each send a message again", async () => {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
  const count = 2 * (LIMITS.maxIdleFrames + LIMITS.maxRefusals);
  for (let i = 0; i < count; i++) await connection.notify(Note, { text: `n${i}` });
  for (let i = 0; i < count; i++) {
    const note = await peer.next();
    assert.equal(note.type, Note.type);
    await peer.send({
      v: 1,
      type: "error",
      id: i + 1,
      body: { code: "busy", message: "full", about: note.id },
    });
  }
  await settle();
  assert.equal(connection.isClosed, false, "an honest busy peer was cut off");
  assert.equal(connection.stats().refused, 0);
  const closing = connection.close();
  await timers.advance(5_000);
  await closing;
});

/**
 * A stream of ours whose handler returns nothing until `release` (it stays running): the raw peer
 * opens it with a window of `window` chunks.
 */
async function heldStream(window: number) {
  const timers = new ManualTimers();
  const { connection, peer } = connectionWithRawPeer({ timers, ...LIMITS });
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  connection.handle(CountTo, async () => {
    await held; // deaf to the stream's abort, as a handler winding down may be for a while
    return new ReadableStream({ start: (controller) => controller.close() });
  });
  await peer.send({ v: 1, type: CountTo.type, id: 1, body: { to: 3 } });
  await peer.send({ v: 1, type: "credit", id: 2, re: 1, body: { chunks: window } });
  await settle();
  const close = async () => {
    release();
    const closing = connection.close();
    await timers.advance(5_000);
    await closing;
  };
  return { connection, peer, close };
}

Deno.test("credits on a running stream past its first grant (more than an honest reader ever owes) are frames that do nothing: a flood of them is cut off too_many_refusals", async () => {
  const { connection, peer, close } = await heldStream(2);
  try {
    for (let id = 3; id < 3 + LIMITS.maxIdleFrames + LIMITS.maxRefusals; id++) {
      await peer.send({ v: 1, type: "credit", id, re: 1, body: { chunks: 1 } });
    }
    await settle();
    assert.equal(connection.isClosed, false, "closed within the allowance");
    assert.equal(connection.stats().refused, LIMITS.maxRefusals);
    await peer.send({ v: 1, type: "credit", id: 100, re: 1, body: { chunks: 1 } });
    await settle();
    assert.equal(connection.isClosed, true, "still open after the flood");
    assert.ok(
      connection.closeReason instanceof TooManyRefusalsError,
      String(connection.closeReason),
    );
  } finally {
    await close();
  }
});

Deno.test("cancels of a stream already cancelled (its handler still winding down) are frames that do nothing: a flood of them is cut off too_many_refusals", async () => {
  const { connection, peer, close } = await heldStream(2);
  try {
    const cancel = (id: number) => ({
      v: 1,
      type: "cancel",
      id,
      re: 1,
      body: { code: "stream_cancelled", message: "x" },
    });
    for (let id = 3; id < 3 + 1 + LIMITS.maxIdleFrames + LIMITS.maxRefusals; id++) {
      await peer.send(cancel(id));
    }
    await settle();
    assert.equal(connection.isClosed, false, "closed within the allowance");
    assert.equal(connection.stats().refused, LIMITS.maxRefusals);
    await peer.send(cancel(100));
    await settle();
    assert.equal(connection.isClosed, true, "still open after the flood");
    assert.ok(
      connection.closeReason instanceof TooManyRefusalsError,
      String(connection.closeReason),
    );
  } finally {
    await close();
  }
});

Deno.test("an honest reader's credits never count: streams of every window read to their end, and one read in part then cancelled, leave the server no refusal with no allowance at all", async () => {
  const strict = { maxIdleFrames: 0, maxRefusals: 0, refusalWindowMs: 10_000 };
  const { client, server, close } = connectedPair({}, strict);
  try {
    server.handle(CountTo, ({ to }) => {
      let i = 0;
      return new ReadableStream({
        pull: (controller) => i < to ? controller.enqueue({ i: i++ }) : controller.close(),
      });
    });
    for (const window of [1, 2, 3, 4, 7, 16]) {
      const chunks = await Array.fromAsync(client.openStream(CountTo, { to: 50 }, { window }));
      assert.equal(chunks.length, 50, `window ${window}`);
    }
    const reader = client.openStream(CountTo, { to: 50 }, { window: 4 }).getReader();
    for (let i = 0; i < 10; i++) await reader.read();
    await reader.cancel();
    // A round trip: the server has read the cancel by the time this stream ends.
    await Array.fromAsync(client.openStream(CountTo, { to: 1 }));
    assert.equal(server.stats().refused, 0);
    assert.equal(server.isClosed, false, "an honest reader was cut off");
  } finally {
    await close();
  }
});
