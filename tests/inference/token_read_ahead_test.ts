/**
 * Token delivery timing: read-ahead with gathering (`inference/_token_read_ahead.ts`) and the time
 * a stream's tokens waited unread (`inference/_unread_time.ts`).
 */
import assert from "node:assert/strict";
import { ReadAhead } from "../../inference/_token_read_ahead.ts";
import { ManualTimers, settle } from "../protocols/_helpers.ts";
import { UnreadTime } from "../../inference/_unread_time.ts";

// ReadAhead (`inference/_token_read_ahead.ts`) with gathering, on a fake clock: the first token
// goes at once, tokens that come within `gatherMs` of the last take wait for it and go out
// together, a token after a longer pause goes at once, a full batch or the stream's end does not
// wait; without gathering, each take returns what is ready.

/** A stream the test feeds, read through a ReadAhead. */
function source(limit: number, gatherMs: number) {
  let controller!: ReadableStreamDefaultController<number>;
  const stream = new ReadableStream<number>({ start: (c) => (controller = c) });
  const timers = new ManualTimers();
  const ahead = new ReadAhead(stream.getReader(), limit, { gatherMs, timers });
  return { controller, timers, ahead };
}

/** `promise`'s value if it has settled by now, else "pending". */
async function peek<T>(promise: Promise<T>): Promise<T | "pending"> {
  let value: T | "pending" = "pending";
  promise.then((v) => (value = v));
  await settle();
  return value;
}

Deno.test("ReadAhead gathers the tokens that come within gatherMs of the last take; the first, and one after a pause, go at once", async () => {
  const { controller, timers, ahead } = source(8, 2);
  controller.enqueue(0);
  assert.deepEqual(await ahead.take(), [0], "the first token at once");
  // Tokens every 0.4 ms: the next take waits until 2 ms after the last and takes them all.
  const next = ahead.take();
  for (let i = 1; i <= 4; i++) {
    controller.enqueue(i);
    await timers.advance(0.4);
    assert.equal(await peek(next), "pending", `held at ${timers.now()} ms`);
  }
  controller.enqueue(5);
  await timers.advance(0.4); // 2 ms since the last take
  assert.deepEqual(await peek(next), [1, 2, 3, 4, 5]);
  // A pause longer than gatherMs: the next token goes at once.
  await timers.advance(10);
  controller.enqueue(6);
  assert.deepEqual(await peek(ahead.take()), [6]);
});

Deno.test("ReadAhead arms one timer per gathered event, not one per token", async () => {
  const { controller, timers, ahead } = source(8, 2);
  let armed = 0;
  const setTimeout = timers.setTimeout.bind(timers);
  timers.setTimeout = (callback, ms) => (armed++, setTimeout(callback, ms));
  controller.enqueue(0);
  assert.deepEqual(await ahead.take(), [0]);
  const next = ahead.take();
  for (let i = 1; i <= 4; i++) {
    controller.enqueue(i);
    await timers.advance(0.4);
  }
  await timers.advance(0.4);
  assert.deepEqual(await peek(next), [1, 2, 3, 4]);
  assert.equal(armed, 1, "one gathering window, one timer");
  assert.equal(timers.pending, 0, "and none left armed");
});

Deno.test("ReadAhead does not wait past a full batch or the end of the stream", async () => {
  const { controller, timers, ahead } = source(3, 50);
  controller.enqueue(0);
  assert.deepEqual(await ahead.take(), [0]);
  const full = ahead.take();
  for (let i = 1; i <= 3; i++) controller.enqueue(i);
  assert.deepEqual(await peek(full), [1, 2, 3], "three ready: no wait for the 50 ms");
  const last = ahead.take();
  controller.enqueue(4);
  await settle();
  assert.equal(await peek(last), "pending");
  controller.close();
  assert.deepEqual(await peek(last), [4], "the end: what is left at once");
  assert.deepEqual(await ahead.take(), []);
  assert.equal(timers.pending, 0, "no timer left armed");
});

Deno.test("ReadAhead without gathering takes what is ready, never waiting on the clock", async () => {
  const { controller, timers, ahead } = source(8, 0);
  controller.enqueue(0);
  assert.deepEqual(await ahead.take(), [0]);
  controller.enqueue(1);
  assert.deepEqual(await peek(ahead.take()), [1]);
  assert.equal(timers.pending, 0);
});

Deno.test("UnreadTime sums the time between reads over the last reads only, and the time since the last read ended", () => {
  const unread = new UnreadTime(2, 0);
  assert.equal(unread.unreadMs(5), 5, "unread since it began");
  unread.reading(5); // 5 ms unread before the first read
  assert.equal(unread.unreadMs(100), 5, "a read in progress is not time left unread");
  unread.read(100);
  unread.reading(130); // 30
  unread.read(130);
  assert.equal(unread.unreadMs(130), 35);
  unread.reading(131); // 1: the first read's 5 ms drops out of the last two
  unread.read(131);
  assert.equal(unread.unreadMs(131), 31);
  assert.equal(unread.unreadMs(141), 41, "and the time since the last read ended");
});

Deno.test("UnreadTime counts a read begun twice once", () => {
  const unread = new UnreadTime(4, 0);
  unread.reading(10);
  unread.reading(20);
  unread.read(20);
  assert.equal(unread.unreadMs(20), 10);
});
