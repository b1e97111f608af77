/**
 * `inference/_token_read_ahead.ts`: tokens read ahead of the wire go out together when they are
 * ready together, and, with gathering, when they come faster than `gatherMs` apart — never the
 * first, never from a model slower than that. Clock and timer are injected: the test fires the
 * gathering timer itself.
 */
import assert from "node:assert/strict";
import { type GatherTimer, ReadAhead } from "../../inference/_token_read_ahead.ts";

/** A stream the test feeds, a clock it sets, and the timers the reader arms. */
function harness(limit: number, gatherMs: number) {
  let controller!: ReadableStreamDefaultController<number>;
  const stream = new ReadableStream<number>({ start: (c) => controller = c }, {
    highWaterMark: 0,
  });
  let now = 0;
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const timer: GatherTimer = (fn, ms) => {
    const t = { fn, ms, cancelled: false };
    timers.push(t);
    return () => t.cancelled = true;
  };
  const ahead = new ReadAhead(stream.getReader(), limit, { gatherMs, now: () => now, timer });
  return {
    ahead,
    timers,
    /** Enqueue `token` at time `at` and let the reader see it. */
    async push(token: number, at: number) {
      now = at;
      controller.enqueue(token);
      await settle();
    },
    close: () => controller.close(),
  };
}

/** Let pending promise callbacks run (a few turns of the microtask queue). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

Deno.test("read-ahead gathering: tokens coming faster than gatherMs apart go out together; the first never waits", async () => {
  const h = harness(8, 1);
  const first = h.ahead.take();
  await h.push(10, 0);
  assert.deepEqual(await first, [10], "the first token at once");
  assert.equal(h.timers.length, 0);
  // The next comes 0.3 ms later: fast, so the take waits (one timer) for those right behind.
  await h.push(11, 0.3);
  const second = h.ahead.take();
  await settle();
  assert.equal(h.timers.length, 1);
  assert.equal(h.timers[0].ms, 1);
  await h.push(12, 0.6);
  await h.push(13, 0.9);
  let taken: number[] | undefined;
  second.then((t) => taken = t);
  await settle();
  assert.equal(taken, undefined, "still gathering until the timer fires");
  h.timers[0].fn();
  assert.deepEqual(await second, [11, 12, 13]);
  assert.ok(h.timers[0].cancelled, "the timer is released");
  // `limit` ready ends the wait before the timer.
  for (let i = 0; i < 8; i++) await h.push(20 + i, 1 + i * 0.1);
  assert.deepEqual(await h.ahead.take(), [20, 21, 22, 23, 24, 25, 26, 27]);
  h.close();
  assert.deepEqual(await h.ahead.take(), []);
});

Deno.test("read-ahead gathering: a model slower than gatherMs is never waited for", async () => {
  const h = harness(8, 1);
  for (let i = 0; i < 4; i++) {
    const take = h.ahead.take();
    await h.push(i, i * 10); // 10 ms apart
    assert.deepEqual(await take, [i]);
  }
  assert.equal(h.timers.length, 0, "no take waited");
  // Without gathering, fast tokens leave one by one as the wire takes them.
  const plain = harness(8, 0);
  const take = plain.ahead.take();
  await plain.push(1, 0);
  assert.deepEqual(await take, [1]);
  const next = plain.ahead.take();
  await plain.push(2, 0.1);
  assert.deepEqual(await next, [2]);
  assert.equal(plain.timers.length, 0);
});
