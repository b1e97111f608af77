import { assertEquals } from "../server/_assert.ts";
import { QueuePosition, readOrQueued } from "../../inference/queue_position.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

/** Whether `promise` has settled after the pending microtasks ran, and with what. */
async function peek<T>(promise: Promise<T>): Promise<{ value?: T; settled: boolean }> {
  let out: { value?: T; settled: boolean } = { settled: false };
  promise.then((value) => out = { value, settled: true });
  await new Promise((resolve) => setTimeout(resolve, 0));
  return out;
}

Deno.test("QueuePosition reports a place at once, then each change, never the same place twice without a repeat", async () => {
  const queue = new QueuePosition();
  const before = queue.next();
  assertEquals((await peek(before)).settled, false, "nothing before the port says anything");
  queue.update(3);
  assertEquals(await before, 3);
  const unchanged = queue.next();
  queue.update(3);
  assertEquals((await peek(unchanged)).settled, false, "no repeat without repeatMs");
  queue.update(2); // a waiting reader gets the change at once
  assertEquals(await unchanged, 2);
  queue.update(1);
  queue.update(1); // moves made before the reader looks again: the latest is news, once
  assertEquals(await queue.next(), 1);
  queue.update(0); // a slot: nothing more to say
  const after = queue.next();
  assertEquals((await peek(after)).settled, false);
  queue.close();
  queue.update(5);
  assertEquals((await peek(after)).settled, false, "closed: silent for ever");
});

Deno.test("QueuePosition repeats an unchanged place every repeatMs on its clock, and stops when the job leaves the queue", async () => {
  const timers = new ManualTimers();
  const queue = new QueuePosition({ repeatMs: 10_000, timers });
  queue.update(2);
  assertEquals(await queue.next(), 2);
  const repeat = queue.next();
  await timers.advance(9_999);
  assertEquals((await peek(repeat)).settled, false, "not before repeatMs");
  await timers.advance(1);
  assertEquals(await repeat, 2, "the same place again");
  const moved = queue.next();
  await timers.advance(4_000);
  queue.update(1); // a change comes at once, not at the repeat
  assertEquals(await moved, 1);
  const last = queue.next();
  queue.update(0);
  assertEquals(timers.pending, 0, "no timer left once the job has a slot");
  await timers.advance(60_000);
  assertEquals((await peek(last)).settled, false);
});

Deno.test("QueuePosition ignores places that are not counts, and a closed one arms no timer", async () => {
  const timers = new ManualTimers();
  const queue = new QueuePosition({ repeatMs: 1_000, timers });
  for (const bad of [-1, 1.5, NaN, Infinity]) queue.update(bad);
  const next = queue.next();
  assertEquals((await peek(next)).settled, false);
  queue.update(4);
  assertEquals(await next, 4);
  queue.close();
  void queue.next();
  assertEquals(timers.pending, 0);
});

Deno.test("readOrQueued gives the read when it comes first, else the place, and the same read goes on behind it", async () => {
  const queue = new QueuePosition();
  const read = Promise.withResolvers<string>();
  queue.update(1);
  assertEquals(await readOrQueued(read.promise, queue), { position: 1 });
  read.resolve("token");
  assertEquals(await readOrQueued(read.promise, queue), { read: "token" });
  assertEquals(await readOrQueued(Promise.resolve("alone"), undefined), { read: "alone" });
});
