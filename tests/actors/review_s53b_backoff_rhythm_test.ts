/**
 * Review s53b of supervisor backoff: a child that keeps crashing backs off all the way to
 * `maxMs`, even when each delay is longer than the intensity window. Before the fix the backoff
 * exponent was the number of restarts inside `withinMs`, and that window (which includes the
 * backoff wait) never held more than the latest exit once delays outgrew it: such a crash loop
 * restarted at `initialMs` forever, neither backing off nor escalating.
 *
 * Time is a fake clock: the runtime reads `performance.now()` and waits with `setTimeout`, so the
 * test swaps both for the length of a test and fires each backoff timer by hand. Nothing waits on
 * real time.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ChildSpec } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorEvent, RestartedEvent } from "../../actors/events.ts";
import { FakeClock, until } from "./_fake_clock.ts";

const crashy: ChildSpec<string> = {
  name: "t/crashy",
  factory: () => ({
    receive: (m) => {
      if (m === "boom") throw new Error("crash loop");
      return m;
    },
  }),
};

/** Crashes the child, fires its backoff timer, waits for the restart; returns the delay. */
async function crashAndRestart(
  clock: FakeClock,
  system: ActorSystem,
  events: ActorEvent[],
): Promise<number> {
  const restarts = events.filter((e) => e.type === "restarted").length;
  await system.lookup<string>("t/crashy")!.tell("boom");
  await until(() => clock.pending === 1, "the backoff timer");
  const waited = clock.fireNext();
  await until(
    () => events.filter((e) => e.type === "restarted").length === restarts + 1,
    "the restart",
  );
  const restarted = events.findLast((e) => e.type === "restarted") as RestartedEvent;
  assert.equal(restarted.delayMs, waited, "the restarted event names the wait");
  return waited;
}

/**
 * `test` with a fake clock installed and a system whose `t/sup` supervises the crashy child
 * (3 restarts within 1 s; backoff from 2 s, doubling, to 16 s), its events recorded.
 */
async function withCrashLoop(
  test: (clock: FakeClock, system: ActorSystem, events: ActorEvent[]) => Promise<void>,
): Promise<void> {
  const clock = new FakeClock();
  const restore = clock.install();
  try {
    const system = new ActorSystem({ name: "t" });
    const events: ActorEvent[] = [];
    system.events.subscribe((e) => void events.push(e));
    await system.supervise({
      name: "t/sup",
      maxRestarts: 3,
      withinMs: 1_000,
      backoff: { initialMs: 2_000, factor: 2, maxMs: 16_000 },
      children: [crashy],
    });
    await test(clock, system, events);
    await system.shutdown();
  } finally {
    restore();
  }
}

Deno.test("a crash-looping child whose backoff outgrows withinMs still backs off to maxMs", () =>
  withCrashLoop(async (clock, system, events) => {
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) delays.push(await crashAndRestart(clock, system, events));
    // Every crash comes right after its restart: a crash loop, which must back off.
    assert.deepEqual(delays, [2_000, 4_000, 8_000, 16_000, 16_000, 16_000]);
  }));

Deno.test("the backoff starts over at initialMs once the children stayed up a whole withinMs", () =>
  withCrashLoop(async (clock, system, events) => {
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) delays.push(await crashAndRestart(clock, system, events));
    clock.now += 1_001; // up for longer than withinMs since its last restart
    delays.push(await crashAndRestart(clock, system, events));
    delays.push(await crashAndRestart(clock, system, events));
    clock.now += 999; // not quite: the loop goes on
    delays.push(await crashAndRestart(clock, system, events));
    assert.deepEqual(delays, [2_000, 4_000, 8_000, 2_000, 4_000, 8_000]);
  }));
