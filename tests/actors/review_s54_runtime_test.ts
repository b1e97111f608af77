/**
 * Review s54 of the actor runtime: the `stopped` event and the name it frees, the restart
 * backoff of one child against its siblings', and children that will not come back.
 *
 * Backoff tests run on a fake clock: the runtime reads `performance.now()` and waits with
 * `setTimeout`, so those tests swap both for their own length and fire each timer by hand.
 * Nothing waits on real time.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ChildSpec, RestartPolicy } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorEvent, RestartedEvent } from "../../actors/events.ts";
import type { Supervisor } from "../../actors/supervisor.ts";
import { ActorStoppedError } from "../../actors/errors.ts";
import { FakeClock, until } from "./_fake_clock.ts";

type Msg = "get" | "boom" | "exit";

function echo(name: string, restart?: RestartPolicy): ChildSpec<Msg> {
  return {
    name,
    restart,
    factory: () => ({
      receive: (m, ctx) => {
        if (m === "boom") throw new Error(`${name} crashed`);
        if (m === "exit") return ctx.stop();
        return name;
      },
    }),
  };
}

// ---- the stopped event and the name ---------------------------------------------------------

Deno.test("a stopped listener can respawn a running actor's name as soon as it hears `stopped`", async () => {
  const system = new ActorSystem({ name: "t" });
  await system.spawn(echo("t/worker"));
  const respawned: Promise<unknown>[] = [];
  system.events.subscribe((e) => {
    if (e.type === "stopped" && e.name === "t/worker" && respawned.length === 0) {
      // A watchdog that replaces a removed worker under its well-known name.
      respawned.push(system.spawn(echo("t/worker")));
    }
  });
  assert.equal(await system.stop("t/worker"), true);
  assert.equal(respawned.length, 1, "the stop announced itself");
  await respawned[0]; // rejected with NameTakenError while the name was freed after the event
  assert.equal(await system.lookup<Msg>("t/worker")!.ask("get"), "t/worker");
  await system.shutdown();
});

// ---- backoff: one crash streak per child ----------------------------------------------------

/** Crashes `name`, fires its backoff timer, waits for its restart; returns the delay. */
async function crashAndRestart(
  clock: FakeClock,
  system: ActorSystem,
  events: ActorEvent[],
  name: string,
): Promise<number> {
  const restarted = () => events.filter((e) => e.type === "restarted" && e.name === name).length;
  const before = restarted();
  await system.lookup<Msg>(name)!.tell("boom");
  await until(() => clock.pending === 1, "the backoff timer");
  const waited = clock.fireNext();
  await until(() => restarted() === before + 1, `the restart of ${name}`);
  const event = events.findLast((e) => e.type === "restarted") as RestartedEvent;
  assert.equal(event.delayMs, waited, "the restarted event names the wait");
  return waited;
}

Deno.test("one_for_one: a sibling's crash loop does not lengthen a stable child's first backoff; each keeps its own streak", async () => {
  const clock = new FakeClock();
  const restore = clock.install();
  try {
    const system = new ActorSystem({ name: "t" });
    const events: ActorEvent[] = [];
    system.events.subscribe((e) => void events.push(e));
    await system.supervise({
      name: "t/sup",
      maxRestarts: 10,
      withinMs: 5_000,
      backoff: { initialMs: 2_000, factor: 2, maxMs: 16_000 },
      children: [echo("t/flappy"), echo("t/steady")],
    });
    const delays: string[] = [];
    for (let i = 0; i < 3; i++) {
      delays.push(`flappy ${await crashAndRestart(clock, system, events, "t/flappy")}`);
    }
    // t/steady has run since the start: its first crash is the first of its own streak.
    delays.push(`steady ${await crashAndRestart(clock, system, events, "t/steady")}`);
    // t/flappy crashes again well within withinMs of its restart: its own loop goes on.
    delays.push(`flappy ${await crashAndRestart(clock, system, events, "t/flappy")}`);
    assert.deepEqual(delays, [
      "flappy 2000",
      "flappy 4000",
      "flappy 8000",
      "steady 2000",
      "flappy 16000",
    ]);
    await system.shutdown();
  } finally {
    restore();
  }
});

Deno.test("one_for_all: a child brought back by a group restart carries on that restart's streak", async () => {
  const clock = new FakeClock();
  const restore = clock.install();
  try {
    const system = new ActorSystem({ name: "t" });
    const events: ActorEvent[] = [];
    system.events.subscribe((e) => void events.push(e));
    await system.supervise({
      name: "t/sup",
      strategy: "one_for_all",
      maxRestarts: 10,
      withinMs: 5_000,
      backoff: { initialMs: 2_000, factor: 2, maxMs: 16_000 },
      children: [echo("t/flappy"), echo("t/other")],
    });
    const delays: string[] = [];
    for (let i = 0; i < 2; i++) {
      delays.push(`flappy ${await crashAndRestart(clock, system, events, "t/flappy")}`);
    }
    // t/other was restarted with the group just now: the group's crash loop goes on.
    delays.push(`other ${await crashAndRestart(clock, system, events, "t/other")}`);
    assert.deepEqual(delays, ["flappy 2000", "flappy 4000", "other 8000"]);
    await system.shutdown();
  } finally {
    restore();
  }
});

// ---- children that will not come back, under a supervisor that is down ---------------------

/**
 * `test` on a fake clock with `t/sup` (which gives up at its first crash) holding `t/a`, under a
 * root that restarts it after a 10 s backoff; `t/a` has crashed, so `t/sup` is down, waiting.
 * `clock.fireNext()` then restarts `t/sup`.
 */
async function withDownSupervisor(
  test: (
    clock: FakeClock,
    system: ActorSystem,
    events: ActorEvent[],
    sup: Supervisor,
  ) => Promise<void>,
): Promise<void> {
  const clock = new FakeClock();
  const restore = clock.install();
  try {
    // A postStop's stopTimeoutMs timer must not come due before the backoff's.
    const system = new ActorSystem({
      name: "t",
      backoff: { initialMs: 10_000 },
      stopTimeoutMs: 60_000,
    });
    const events: ActorEvent[] = [];
    system.events.subscribe((e) => void events.push(e));
    const sup = await system.supervise({ name: "t/sup", maxRestarts: 0, children: [echo("t/a")] });
    await system.lookup<Msg>("t/a")!.tell("boom");
    await until(() => clock.pending === 1, "the root's backoff before restarting t/sup");
    assert.equal(system.tree().children[0].status, "down");
    await test(clock, system, events, sup);
    await system.shutdown();
  } finally {
    restore();
  }
}

const restartedSup = (events: ActorEvent[]) => () =>
  events.some((e) => e.type === "restarted" && e.name === "t/sup");

Deno.test("a temporary child that ends while its supervisor is down is removed, and not restarted with it", () =>
  withDownSupervisor(async (clock, system, events, sup) => {
    await sup.spawn(echo("t/tmp", "temporary"));
    await system.lookup<Msg>("t/tmp")!.tell("exit");
    await until(() => !sup.childNames().includes("t/tmp"), "t/tmp leaving t/sup's children");
    assert.equal(system.lookup("t/tmp"), undefined);
    clock.fireNext();
    await until(restartedSup(events), "t/sup's restart");
    assert.deepEqual(sup.childNames(), ["t/a"]);
    assert.ok(!events.some((e) => e.type === "restarted" && e.name === "t/tmp"));
  }));

Deno.test("a supervisor's restart does not restart a temporary child whose exit is still being reported", () =>
  withDownSupervisor(async (clock, system, events, sup) => {
    let releasePostStop!: () => void;
    const postStopped = new Promise<void>((resolve) => (releasePostStop = resolve));
    await sup.spawn<Msg>({
      name: "t/tmp",
      restart: "temporary",
      factory: () => ({ receive: (_m, ctx) => ctx.stop(), postStop: () => postStopped }),
    });
    await system.lookup<Msg>("t/tmp")!.tell("exit");
    await until(
      () => events.some((e) => e.type === "stopped" && e.name === "t/tmp"),
      "t/tmp's exit",
    );
    // Its postStop still runs, so t/sup has not heard of the exit when its restart comes.
    clock.fireNext();
    await until(restartedSup(events), "t/sup's restart");
    releasePostStop();
    await until(() => !sup.childNames().includes("t/tmp"), "t/tmp leaving t/sup's children");
    assert.ok(!events.some((e) => e.type === "restarted" && e.name === "t/tmp"));
  }));

Deno.test("asks queued to a child that was down when its supervisor gave up are answered by its restart", () =>
  withDownSupervisor(async (clock, system, events) => {
    // t/sup halted t/a (already down) when it gave up: what waits for t/a is kept for its next
    // incarnation, as for any message sent while no incarnation runs, not dropped nor leaked.
    const ask = system.lookup<Msg>("t/a")!.ask<string>("get", { timeoutMs: Infinity });
    clock.fireNext();
    await until(restartedSup(events), "t/sup's restart");
    assert.equal(await ask, "t/a");
  }));

Deno.test("asks queued to a down child are rejected when its supervisor is stopped instead", () =>
  withDownSupervisor(async (_clock, system) => {
    const ask = system.lookup<Msg>("t/a")!.ask<string>("get", { timeoutMs: Infinity });
    assert.equal(await system.stop("t/sup"), true);
    await assert.rejects(ask, ActorStoppedError);
  }));
