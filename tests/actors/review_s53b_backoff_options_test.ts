/**
 * Review s53b of the actor runtime: backoff options no timer can honour (negative, NaN, or past
 * the 2^31 - 1 ms a timer can wait) are refused with `RangeError` where they are given, the
 * system's options and a supervisor's spec. Each test failed before its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { BackoffOptions } from "../../actors/supervisor.ts";

/** The longest wait a timer takes; longer ones (and Infinity) fire after about 1 ms. */
const TIMER_MAX_MS = 2 ** 31 - 1;

const BAD: Array<[string, BackoffOptions]> = [
  ["factor -2", { initialMs: 10, factor: -2 }],
  ["factor NaN", { initialMs: 10, factor: NaN }],
  ["factor Infinity", { initialMs: 10, factor: Infinity }],
  ["maxMs -1", { initialMs: 10, maxMs: -1 }],
  ["maxMs NaN", { initialMs: 10, maxMs: NaN }],
  ["maxMs 2^31", { initialMs: 10, maxMs: TIMER_MAX_MS + 1 }],
  ["maxMs Infinity", { initialMs: 10, maxMs: Infinity }],
  ["initialMs 2^31", { initialMs: TIMER_MAX_MS + 1 }],
  ["initialMs Infinity", { initialMs: Infinity }],
];

Deno.test("a system with backoff factor, maxMs or initialMs no timer can honour is refused with RangeError", () => {
  for (const [label, backoff] of BAD) {
    assert.throws(() => new ActorSystem({ name: "t", backoff }), RangeError, label);
  }
});

Deno.test("a supervisor spec with a bad backoff is refused with RangeError and registers nothing", async () => {
  const system = new ActorSystem({ name: "t" });
  for (const [label, backoff] of BAD) {
    await assert.rejects(
      system.supervise({
        name: "t/sup",
        backoff,
        children: [{ name: "t/child", factory: () => ({ receive: () => 1 }) }],
      }),
      RangeError,
      label,
    );
    assert.deepEqual(system.names(), [], label);
  }
  await system.shutdown();
});

Deno.test("backoff values at the limits are accepted: factor below 1, maxMs and initialMs of 2^31 - 1 ms", async () => {
  const system = new ActorSystem({
    name: "t",
    backoff: { initialMs: TIMER_MAX_MS, maxMs: TIMER_MAX_MS, factor: 0.5 },
  });
  const sup = await system.supervise({ name: "t/sup", backoff: { initialMs: 0, factor: 0 } });
  assert.equal(typeof sup.spawn, "function");
  await system.shutdown();
});
