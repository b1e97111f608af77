/** What a router remembers of workers that refused a job as full (`network/busy_refusals.ts`). */
import assert from "node:assert/strict";
import { BusyRefusals } from "../../network/busy_refusals.ts";

function clocked(options: { maxWorkers?: number } = {}) {
  const clock = { now: 0 };
  const busy = new BusyRefusals({ firstMs: 1_000, maxMs: 8_000, now: () => clock.now, ...options });
  return { clock, busy };
}

Deno.test("busy refusals: asked last for one hello interval, twice as long each time it refuses again after it, up to the longest while", () => {
  const { clock, busy } = clocked();
  busy.refused("aa");
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 999;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), [], "the first while is over");
  const whiles: number[] = [];
  for (let i = 0; i < 5; i++) {
    const from = clock.now;
    busy.refused("aa");
    while (busy.askedLast().length > 0) clock.now += 100;
    whiles.push(clock.now - from);
  }
  assert.deepEqual(whiles, [2_000, 4_000, 8_000, 8_000, 8_000]);
});

Deno.test("busy refusals: a burst of refusals within the while does not lengthen it; a job it takes forgets it; a long quiet starts over", () => {
  const { clock, busy } = clocked();
  for (let i = 0; i < 10; i++) busy.refused("aa");
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), [], "ten refusals in one while are one");
  busy.refused("aa"); // asked again after it: 2 s
  clock.now = 2_500;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  busy.took("aa");
  assert.deepEqual(busy.askedLast(), [], "it took a job");
  busy.refused("aa");
  clock.now = 3_500;
  assert.deepEqual(busy.askedLast(), [], "forgotten: the while starts at 1 s again");
  busy.refused("aa"); // 2 s, until 5 500
  clock.now = 5_500 + 8_000;
  busy.refused("aa"); // quiet for the longest while since its last: 1 s again
  clock.now += 1_000;
  assert.deepEqual(busy.askedLast(), []);
});

Deno.test("busy refusals: at most maxWorkers remembered; those whose while ended go first, then the oldest", () => {
  const { clock, busy } = clocked({ maxWorkers: 3 });
  busy.refused("old");
  clock.now = 1_000; // old's while ended
  busy.refused("a");
  busy.refused("b");
  busy.refused("c");
  assert.deepEqual(busy.askedLast(), ["a", "b", "c"]);
  busy.refused("d");
  assert.deepEqual(busy.askedLast(), ["b", "c", "d"], "the oldest live one made room");
});

Deno.test("busy refusals (s54): a job that waited on the worker, reported within a while a quick refusal started, still keeps it asked last for that wait from its report, and the next while doubles it as if it came first", () => {
  const { clock, busy } = clocked();
  busy.refused("aa"); // a quick refusal: 1 s, until 1 000
  clock.now = 500;
  // A job it kept without a token since before that refusal moves on after waiting 5 s.
  busy.refused("aa", 5_000);
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), ["aa"], "asked again after 1 s, it costs the next job 5 s");
  clock.now = 5_499;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 5_500;
  assert.deepEqual(busy.askedLast(), [], "for as long as that job waited, from its report");
  // Refused again after it: twice the 5 s, at most the longest while (8 s).
  busy.refused("aa");
  clock.now = 13_499;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 13_500;
  assert.deepEqual(busy.askedLast(), []);
});
