/**
 * Supervisors (`actors/supervisor.ts`): strategies, restart intensity and escalation, restart
 * backoff (its rhythm under a fake clock, and options no timer can honour refused), the `stopped`
 * event and the name it frees, and children that will not come back.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext, ChildSpec, RestartPolicy } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  ActorCrashedError,
  ActorStoppedError,
  EscalatedError,
  HookTimeoutError,
} from "../../actors/errors.ts";
import type {
  ActorEvent,
  CrashedEvent,
  EscalatedEvent,
  RestartedEvent,
} from "../../actors/events.ts";
import type { BackoffOptions, SupervisionStrategy, Supervisor } from "../../actors/supervisor.ts";
import { deferred, recordEvents, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeClock, until } from "./_fake_clock.ts";

type Msg = "inc" | "get" | "crash" | "exit";

/** A counter that logs its lifecycle into `log` as `start:name`, `stop:name`. */
function counter(name: string, log: string[], restart?: RestartPolicy): ChildSpec<Msg> {
  return {
    name,
    restart,
    factory: (): Actor<Msg> => {
      let n = 0;
      return {
        preStart: () => void log.push(`start:${name}`),
        postStop: () => void log.push(`stop:${name}`),
        receive(m, ctx) {
          if (m === "crash") throw new Error(`${name} crashed`);
          if (m === "exit") return ctx.stop();
          if (m === "inc") n++;
          return n;
        },
      };
    },
  };
}

async function threeCounters(strategy: SupervisionStrategy) {
  const system = new ActorSystem({ name: "t" });
  const log: string[] = [];
  const sup = await system.supervise({
    name: "t/sup",
    strategy,
    children: [counter("a", log), counter("b", log), counter("c", log)],
  });
  const refs = ["a", "b", "c"].map((n) => system.lookup<Msg>(n)!);
  for (const ref of refs) await ref.tell("inc");
  log.length = 0;
  await assert.rejects(refs[1].ask("crash"), ActorCrashedError);
  await eventually(() => log.filter((l) => l.startsWith("start:")).length >= 1);
  // Give a wrong implementation the chance to restart more than it should.
  await new Promise((r) => setTimeout(r, 10));
  const counts = await Promise.all(refs.map((r) => r.ask<number>("get")));
  return { system, sup, log, counts };
}

Deno.test("one_for_one restarts only the crashed child, with fresh state", async () => {
  const { system, log, counts } = await threeCounters("one_for_one");
  assert.deepEqual(counts, [1, 0, 1]);
  assert.deepEqual(log, ["stop:b", "start:b"]);
  await system.shutdown();
});

Deno.test("one_for_all restarts every child: others stopped in reverse order, all started in order", async () => {
  const { system, log, counts } = await threeCounters("one_for_all");
  assert.deepEqual(counts, [0, 0, 0]);
  assert.deepEqual(log, ["stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"]);
  await system.shutdown();
});

Deno.test("rest_for_one restarts the crashed child and those started after it", async () => {
  const { system, log, counts } = await threeCounters("rest_for_one");
  assert.deepEqual(counts, [1, 0, 0]);
  assert.deepEqual(log, ["stop:b", "stop:c", "start:b", "start:c"]);
  await system.shutdown();
});

Deno.test("exceeding the restart intensity escalates to the parent, which restarts the subtree", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events } = recordEvents(system);
  const log: string[] = [];
  await system.supervise({
    name: "t/sup",
    maxRestarts: 2,
    withinMs: 10_000,
    children: [counter("a", log), counter("b", log)],
  });
  const a = system.lookup<Msg>("a")!;
  const b = system.lookup<Msg>("b")!;
  await b.tell("inc");
  for (let i = 0; i < 3; i++) {
    await assert.rejects(a.ask("crash"), ActorCrashedError);
    if (i < 2) {
      await eventually(() => events.filter((e) => e.type === "restarted").length === i + 1);
    }
  }
  await eventually(() => events.some((e) => e.type === "restarted" && e.name === "t/sup"));
  const escalated = events.find((e) => e.type === "escalated") as EscalatedEvent;
  assert.equal(escalated.name, "t/sup");
  assert.equal((escalated.reason as Error).message, "a crashed");
  assert.equal(escalated.restarts, 2);
  // The root (one_for_one) restarted the whole supervisor: b lost its state too.
  assert.equal(await b.ask("get"), 0);
  assert.equal(await a.ask("get"), 0);
  assert.equal(system.tree().status, "running");
  await system.shutdown();
});

Deno.test("escalation past the root is fatal: the system reports it and shuts down", async () => {
  const system = new ActorSystem({ name: "t", maxRestarts: 1, withinMs: 10_000 });
  const { log: eventLog, events } = recordEvents(system);
  const log: string[] = [];
  const a = await system.spawn(counter("a", log));
  await assert.rejects(a.ask("crash"), ActorCrashedError);
  await eventually(() => eventLog.includes("restarted:a"));
  await assert.rejects(a.ask("crash"), ActorCrashedError);
  const termination = await system.terminated;
  assert.equal(termination.reason, "fatal");
  assert.ok(termination.error instanceof Error);
  const fatal = events.find((e) => e.type === "fatal");
  assert.ok(fatal !== undefined && fatal.name === "t");
  assert.ok(eventLog.indexOf("escalated:t") < eventLog.indexOf("fatal:t"));
  await assert.rejects(a.tell("inc"), ActorStoppedError);
  await assert.rejects(system.spawn(counter("late", log)), ActorStoppedError);
});

Deno.test("backoff delays each restart by at least the backoff delay, growing exponentially", async () => {
  const system = new ActorSystem({ name: "t" });
  const starts: number[] = [];
  const crashes: number[] = [];
  await system.supervise({
    name: "t/sup",
    maxRestarts: 5,
    withinMs: 10_000,
    backoff: { initialMs: 40, factor: 2, maxMs: 1_000 },
    children: [{
      name: "flaky",
      factory: (): Actor<string> => ({
        preStart: () => void starts.push(performance.now()),
        receive: () => {
          crashes.push(performance.now());
          throw new Error("flaky");
        },
      }),
    }],
  });
  const { events } = recordEvents(system);
  const ref = system.lookup<string>("flaky")!;
  await assert.rejects(ref.ask("x"), ActorCrashedError);
  await eventually(() => starts.length === 2);
  await assert.rejects(ref.ask("x"), ActorCrashedError);
  await eventually(() => starts.length === 3);
  assert.ok(starts[1] - crashes[0] >= 40 - 1, `first restart after ${starts[1] - crashes[0]} ms`);
  assert.ok(starts[2] - crashes[1] >= 80 - 1, `second restart after ${starts[2] - crashes[1]} ms`);
  const delays = events.filter((e) => e.type === "restarted").map((e) =>
    (e as RestartedEvent).delayMs
  );
  assert.deepEqual(delays, [40, 80]);
  await system.shutdown();
});

Deno.test("one_for_one: a child's backoff does not delay another child's restart", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events, log } = recordEvents(system);
  const crashy = (name: string): ChildSpec<string> => ({
    name,
    factory: () => ({
      receive: (m) => {
        if (m === "boom") throw new Error(`${name} crashed`);
        return `${name} alive`;
      },
    }),
  });
  // Each child's crash streak backs off on its own: 25 ms for the first restart, then 5 s.
  await system.supervise({
    name: "t/sup",
    strategy: "one_for_one",
    maxRestarts: 10,
    withinMs: 60_000,
    backoff: { initialMs: 25, factor: 200, maxMs: 5_000 },
    children: [crashy("a"), crashy("b")],
  });
  const [a, b] = [system.lookup<string>("a")!, system.lookup<string>("b")!];
  const restartsOf = (name: string) => log.filter((l) => l === `restarted:${name}`).length;
  await assert.rejects(a.ask("boom"), ActorCrashedError);
  await eventually(() => restartsOf("a") === 1, "a's first restart");
  await assert.rejects(a.ask("boom"), ActorCrashedError); // a now waits 5 s
  await assert.rejects(b.ask("boom"), ActorCrashedError);
  await eventually(() => log.includes("restarted:b"), "b's restart");
  assert.equal(await b.ask("ping"), "b alive");
  assert.equal(restartsOf("a"), 1, "a still waits out its own backoff");
  const restarted = events.filter((e) => e.type === "restarted") as RestartedEvent[];
  assert.deepEqual(restarted.map((e) => [e.name, e.delayMs]), [["a", 25], ["b", 25]]);
  assert.equal(system.tree().children[0].children[0].status, "down");
  await system.shutdown();
  assert.equal(restartsOf("a"), 1);
});

Deno.test("shutdown during a backoff wait does not restart the child and does not hang", async () => {
  const system = new ActorSystem({ name: "t", backoff: { initialMs: 10_000 } });
  const log: string[] = [];
  const a = await system.spawn(counter("a", log));
  await assert.rejects(a.ask("crash"), ActorCrashedError);
  const started = performance.now();
  await system.shutdown();
  assert.ok(performance.now() - started < 1_000);
  assert.deepEqual(log, ["start:a", "stop:a"]);
});

Deno.test("restart policies: permanent comes back after a normal exit, transient only after a crash, temporary never", async () => {
  const system = new ActorSystem({ name: "t" });
  const { log: eventLog } = recordEvents(system);
  const log: string[] = [];
  const perm = await system.spawn(counter("perm", log, "permanent"));
  const trans = await system.spawn(counter("trans", log, "transient"));
  const temp = await system.spawn(counter("temp", log, "temporary"));

  await perm.ask("exit");
  await eventually(() => eventLog.includes("restarted:perm"));

  await assert.rejects(trans.ask("crash"), ActorCrashedError);
  await eventually(() => eventLog.includes("restarted:trans"));
  await trans.ask("exit");
  await eventually(() => system.lookup("trans") === undefined);
  await assert.rejects(trans.tell("inc"), ActorStoppedError);

  await assert.rejects(temp.ask("crash"), ActorCrashedError);
  await eventually(() => system.lookup("temp") === undefined);
  assert.ok(!eventLog.includes("restarted:temp"));
  assert.deepEqual(system.tree().children.map((c) => c.name), ["perm"]);
  await system.shutdown();
});

Deno.test("a preStart that fails on restart counts as a crash and eventually escalates", async () => {
  const system = new ActorSystem({ name: "t", maxRestarts: 10, withinMs: 10_000 });
  const { events } = recordEvents(system);
  let incarnations = 0;
  await system.supervise({
    name: "t/sup",
    maxRestarts: 2,
    withinMs: 10_000,
    restart: "temporary",
    children: [{
      name: "fragile",
      factory: (): Actor<string> => ({
        preStart: () => {
          if (++incarnations > 1) throw new Error("cannot restart");
        },
        receive: () => {
          throw new Error("first crash");
        },
      }),
    }],
  });
  await assert.rejects(system.lookup<string>("fragile")!.ask("x"), ActorCrashedError);
  await eventually(() => events.some((e) => e.type === "escalated"));
  // The supervisor is temporary under the root: it is removed, not restarted.
  await eventually(() => system.lookupSupervisor("t/sup") === undefined);
  assert.equal(incarnations, 3, "first start + 2 failed restarts");
  assert.equal(system.lookup("fragile"), undefined);
  await system.shutdown();
});

Deno.test("a preStart crash on restart rejects the asks queued for that incarnation and discards its tells", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events } = recordEvents(system);
  const inSecondPreStart = deferred();
  const failSecondPreStart = deferred();
  const handled: string[] = [];
  let starts = 0;
  await system.supervise({
    name: "t/sup",
    children: [{
      name: "a",
      factory: (): Actor<string> => ({
        async preStart() {
          if (++starts !== 2) return;
          inSecondPreStart.resolve();
          await failSecondPreStart.promise;
          throw new Error("preStart failed");
        },
        receive: (m) => {
          if (m === "boom") throw new Error("boom");
          handled.push(m);
          return m;
        },
      }),
    }],
  });
  const a = system.lookup<string>("a")!;
  await assert.rejects(a.ask("boom"), ActorCrashedError);
  await inSecondPreStart.promise;
  const queued = a.ask("queued ask").catch((e) => e);
  await a.tell("queued tell");
  failSecondPreStart.resolve();
  const error = await queued;
  assert.ok(error instanceof ActorCrashedError, String(error));
  assert.equal((error.reason as Error).message, "preStart failed");
  await eventually(() =>
    starts === 3 && system.tree().children[0].children[0].status === "running"
  );
  assert.equal(await a.ask("after"), "after");
  assert.deepEqual(
    handled,
    ["after"],
    "nothing queued for the failed incarnation reached the next",
  );
  const crashes = events.filter((e) => e.type === "crashed") as CrashedEvent[];
  assert.deepEqual(crashes.map((e) => e.discarded), [0, 2]);
  await system.shutdown();
});

Deno.test("a failing preStart at spawn rejects with ActorCrashedError and frees the name", async () => {
  const system = new ActorSystem({ name: "t" });
  const error = await system.spawn<string>({
    name: "bad",
    factory: () => ({
      preStart: () => {
        throw new Error("no disk");
      },
      receive: () => {},
    }),
  }).catch((e) => e);
  assert.ok(error instanceof ActorCrashedError);
  assert.equal((error.reason as Error).message, "no disk");
  assert.equal(system.lookup("bad"), undefined);
  const ok = await system.spawn<string>({ name: "bad", factory: () => ({ receive: (m) => m }) });
  assert.equal(await ok.ask("hi"), "hi");
  await system.shutdown();
});

Deno.test("nested supervisors: a child spec list can hold supervisors; escalation carries EscalatedError", async () => {
  const system = new ActorSystem({ name: "t" });
  const log: string[] = [];
  const seen: unknown[] = [];
  system.events.subscribe((e) => {
    if (e.type === "escalated") seen.push(e.reason);
  });
  const outer = await system.supervise({
    name: "outer",
    strategy: "one_for_all",
    children: [
      counter("x", log),
      { name: "inner", maxRestarts: 0, children: [counter("y", log)] },
    ],
  });
  assert.deepEqual(outer.childNames(), ["x", "inner"]);
  const x = system.lookup<Msg>("x")!;
  await x.tell("inc");
  log.length = 0;
  await assert.rejects(system.lookup<Msg>("y")!.ask("crash"), ActorCrashedError);
  await eventually(() => log.includes("start:x"));
  // inner gave up at once (maxRestarts 0); outer (one_for_all) restarted x and inner.
  assert.equal(seen.length, 1);
  assert.equal(await x.ask("get"), 0);
  const innerNode = system.tree().children[0].children[1];
  assert.equal(innerNode.name, "inner");
  assert.equal(innerNode.restarts, 1);
  assert.ok(new EscalatedError("inner", "r").code === "escalated");
  await system.shutdown();
});

Deno.test("system.stop of a child waiting out its backoff is immediate and final", async () => {
  const system = new ActorSystem({ name: "t", backoff: { initialMs: 10_000 } });
  const { log: eventLog } = recordEvents(system);
  const log: string[] = [];
  const a = await system.spawn(counter("a", log));
  await assert.rejects(a.ask("crash"), ActorCrashedError);
  await eventually(() => log.includes("stop:a"));
  assert.equal(system.tree().children[0].status, "down");
  const started = performance.now();
  assert.equal(await system.stop("a"), true);
  assert.ok(performance.now() - started < 1_000);
  assert.ok(eventLog.includes("stopped:a"));
  await system.shutdown();
  assert.ok(!eventLog.includes("restarted:a"));
});

/**
 * A model load as the docs ask preStart to write it: it ends when ctx.signal aborts, resolving
 * (`resolves`) or failing like an aborted fetch (`rejects`), or it never ends (`hangs`).
 */
type Load = "resolves" | "rejects" | "hangs";

function load(ctx: ActorContext<Msg>, how: Load): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (how === "hangs") return;
    ctx.signal.addEventListener("abort", () => {
      if (how === "resolves") resolve();
      else reject(new DOMException("load aborted", "AbortError"));
    }, { once: true });
  });
}

Deno.test("giving up halts a child still in its restart preStart at once: the preStart is aborted (or abandoned), fatal and shutdown follow", async () => {
  for (const how of ["resolves", "rejects", "hangs"] as const) {
    // A signal-aware load must end on the halt's abort alone, long before stopTimeoutMs; one
    // that ignores the signal gets stopTimeoutMs, as under a stop.
    const stopTimeoutMs = how === "hangs" ? 30 : 60_000;
    const system = new ActorSystem({ name: "t", maxRestarts: 0, stopTimeoutMs });
    const { log: eventLog, events } = recordEvents(system);
    let loads = 0;
    const reloading = deferred();
    await system.supervise({
      name: "t/sup",
      children: [{
        name: "loader",
        factory: (): Actor<Msg> => ({
          preStart(ctx) {
            if (++loads === 1) return;
            reloading.resolve();
            return load(ctx, how);
          },
          receive(m) {
            if (m === "crash") throw new Error("loader crashed");
          },
        }),
      }],
    });
    const other = await system.spawn(counter("other", []));
    await assert.rejects(system.lookup<Msg>("loader")!.ask("crash"), ActorCrashedError);
    await reloading.promise;
    // The root may not restart anything (maxRestarts 0): it gives up and halts t/sup, which
    // halts the loader in the middle of its restart.
    await assert.rejects(other.ask("crash"), ActorCrashedError);
    const termination = await settlesWithin(system.terminated, SETTLE_GUARD_MS, `fatal (${how})`);
    assert.equal(termination.reason, "fatal", how);
    await settlesWithin(system.shutdown(), SETTLE_GUARD_MS, `shutdown (${how})`);
    // The halt's doing, not a crash of the new incarnation, and reported as its stop.
    assert.equal(eventLog.filter((e) => e === "crashed:loader").length, 1, eventLog.join(" "));
    assert.ok(!eventLog.includes("restarted:loader"), eventLog.join(" "));
    assert.ok(
      eventLog.indexOf("stopped:loader") < eventLog.indexOf("fatal:t"),
      eventLog.join(" "),
    );
    const failed = events.filter((e) => e.type === "hook_failed");
    if (how === "hangs") {
      assert.equal(failed.length, 1, eventLog.join(" "));
      assert.ok(failed[0].type === "hook_failed" && failed[0].reason instanceof HookTimeoutError);
    } else assert.equal(failed.length, 0, eventLog.join(" "));
  }
});

Deno.test("a group restart halts a sibling still in its first preStart at once: its spawn resolves and it restarts with the group", async () => {
  // stopTimeoutMs far beyond the guard: only the halt's abort can end the load in time.
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 60_000 });
  const { log: eventLog } = recordEvents(system);
  const sup = await system.supervise({
    name: "t/sup",
    strategy: "one_for_all",
    children: [counter("a", [])],
  });
  let loads = 0;
  const loading = deferred();
  const spawned = sup.spawn<Msg>({
    name: "b",
    factory: (): Actor<Msg> => ({
      preStart(ctx) {
        if (++loads > 1) return;
        loading.resolve();
        return load(ctx, "resolves");
      },
      receive: () => "loaded",
    }),
  });
  await loading.promise;
  await assert.rejects(system.lookup<Msg>("a")!.ask("crash"), ActorCrashedError);
  const b = await settlesWithin(spawned, SETTLE_GUARD_MS, "b's spawn");
  assert.equal(await settlesWithin(b.ask("get"), SETTLE_GUARD_MS, "b after the restart"), "loaded");
  assert.equal(loads, 2);
  assert.deepEqual(sup.childNames(), ["a", "b"]);
  assert.ok(!eventLog.includes("crashed:b"), eventLog.join(" "));
  await settlesWithin(system.shutdown(), SETTLE_GUARD_MS, "shutdown");
});

// -------------------------------------------------------------------------------------------------
// Backoff rhythm: a child that keeps crashing backs off all the way to `maxMs`, even when each
// delay is longer than the intensity window. Before the fix the backoff exponent was the number of
// restarts inside `withinMs`, and that window (which includes the backoff wait) never held more
// than the latest exit once delays outgrew it: such a crash loop restarted at `initialMs` forever,
// neither backing off nor escalating.
//
// Time is a fake clock: the runtime reads `performance.now()` and waits with `setTimeout`, so the
// test swaps both for the length of a test and fires each backoff timer by hand. Nothing waits on
// real time.

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

// -------------------------------------------------------------------------------------------------
// Backoff options no timer can honour (negative, NaN, or past the 2^31 - 1 ms a timer can wait) are
// refused with `RangeError` where they are given, the system's options and a supervisor's spec.
// Each test failed before its fix.

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

// -------------------------------------------------------------------------------------------------
// The `stopped` event and the name it frees, the restart backoff of one child against its
// siblings', and children that will not come back.
//
// Backoff tests run on a fake clock: the runtime reads `performance.now()` and waits with
// `setTimeout`, so those tests swap both for their own length and fire each timer by hand.
// Nothing waits on real time.

type EchoMsg = "get" | "boom" | "exit";

function echo(name: string, restart?: RestartPolicy): ChildSpec<EchoMsg> {
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
  assert.equal(await system.lookup<EchoMsg>("t/worker")!.ask("get"), "t/worker");
  await system.shutdown();
});

// ---- backoff: one crash streak per child ----------------------------------------------------

/** Crashes `name`, fires its backoff timer, waits for its restart; returns the delay. */
async function crashAndRestartNamed(
  clock: FakeClock,
  system: ActorSystem,
  events: ActorEvent[],
  name: string,
): Promise<number> {
  const restarted = () => events.filter((e) => e.type === "restarted" && e.name === name).length;
  const before = restarted();
  await system.lookup<EchoMsg>(name)!.tell("boom");
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
      delays.push(`flappy ${await crashAndRestartNamed(clock, system, events, "t/flappy")}`);
    }
    // t/steady has run since the start: its first crash is the first of its own streak.
    delays.push(`steady ${await crashAndRestartNamed(clock, system, events, "t/steady")}`);
    // t/flappy crashes again well within withinMs of its restart: its own loop goes on.
    delays.push(`flappy ${await crashAndRestartNamed(clock, system, events, "t/flappy")}`);
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
      delays.push(`flappy ${await crashAndRestartNamed(clock, system, events, "t/flappy")}`);
    }
    // t/other was restarted with the group just now: the group's crash loop goes on.
    delays.push(`other ${await crashAndRestartNamed(clock, system, events, "t/other")}`);
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
    await system.lookup<EchoMsg>("t/a")!.tell("boom");
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
    await system.lookup<EchoMsg>("t/tmp")!.tell("exit");
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
    await sup.spawn<EchoMsg>({
      name: "t/tmp",
      restart: "temporary",
      factory: () => ({ receive: (_m, ctx) => ctx.stop(), postStop: () => postStopped }),
    });
    await system.lookup<EchoMsg>("t/tmp")!.tell("exit");
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
    const ask = system.lookup<EchoMsg>("t/a")!.ask<string>("get", { timeoutMs: Infinity });
    clock.fireNext();
    await until(restartedSup(events), "t/sup's restart");
    assert.equal(await ask, "t/a");
  }));

Deno.test("asks queued to a down child are rejected when its supervisor is stopped instead", () =>
  withDownSupervisor(async (_clock, system) => {
    const ask = system.lookup<EchoMsg>("t/a")!.ask<string>("get", { timeoutMs: Infinity });
    assert.equal(await system.stop("t/sup"), true);
    await assert.rejects(ask, ActorStoppedError);
  }));
