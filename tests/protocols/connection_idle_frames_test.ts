/**
 * Frames that are valid and do nothing (`protocols/_connection_inbound.ts`): a `ping`, a credit
 * or cancel naming no running stream, a late answer. Each costs the node a decode and a schema
 * check (a ping a pong too) and none is a refusal, so before `maxIdleFrames` a peer could send
 * them without end (100,000 a second kept a core busy) and never reach `maxRefusals`. Now past
 * the allowance each further one is dropped and counted as a refusal, and the flood ends
 * `too_many_refusals` like a garbage flood; an honest peer's few never come near it.
 */
import assert from "node:assert/strict";
import { TooManyRefusalsError } from "../../protocols/protocol_errors.ts";
import { connectionWithRawPeer, Echo, Echoed, ManualTimers, settle } from "./_helpers.ts";

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
