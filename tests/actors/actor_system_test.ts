/**
 * The actor system (`actors/actor_system.ts`, `actors/registry.ts`): shutdown and its timeouts,
 * lifecycle hooks, linked children, the supervision tree, the events feed, the name registry, and
 * bad specs or options refused at once with a typed error.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext, ChildSpec } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem, formatTree } from "../../actors/actor_system.ts";
import {
  ActorCrashedError,
  ActorStoppedError,
  EscalatedError,
  HookTimeoutError,
  InvalidNameError,
  NameTakenError,
} from "../../actors/errors.ts";
import type { CrashedEvent } from "../../actors/events.ts";
import { deferred, recordEvents, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { Registry } from "../../actors/registry.ts";
import type { SupervisorSpec } from "../../actors/supervisor.ts";

function recorder(name: string, stops: string[]): { name: string; factory: () => Actor<string> } {
  return {
    name,
    factory: () => ({
      receive: (m: string) => m,
      postStop: () => void stops.push(name),
    }),
  };
}

Deno.test("shutdown stops children in reverse start order, depth first", async () => {
  const system = new ActorSystem({ name: "t" });
  const stops: string[] = [];
  await system.spawn(recorder("first", stops));
  await system.supervise({
    name: "group",
    children: [recorder("g1", stops), recorder("g2", stops)],
  });
  await system.spawn(recorder("last", stops));
  await system.shutdown();
  assert.deepEqual(stops, ["last", "g2", "g1", "first"]);
  assert.deepEqual(await system.terminated, { reason: "shutdown" });
  assert.deepEqual(system.names(), []);
});

Deno.test("shutdown rejects queued asks with ActorStoppedError and lets the in-flight one finish", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const ref = await system.spawn<string>({
    name: "busy",
    factory: () => ({
      async receive(m: string) {
        if (m === "slow") await gate.promise;
        return m;
      },
    }),
  });
  const inFlight = ref.ask("slow");
  await delay(0);
  const queued = [ref.ask("q1"), ref.ask("q2")];
  const done = system.shutdown();
  for (const q of queued) await assert.rejects(q, ActorStoppedError);
  gate.resolve();
  assert.equal(await inFlight, "slow");
  await done;
});

Deno.test("a handler that ignores shutdown is abandoned after stopTimeoutMs and its ask rejected", async () => {
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 30 });
  const ref = await system.spawn<string>({
    name: "stuck",
    factory: () => ({ receive: () => new Promise(() => {}) }),
  });
  const stuck = ref.ask("x", { timeoutMs: Infinity });
  await delay(0);
  const started = performance.now();
  await system.shutdown();
  assert.ok(performance.now() - started >= 25);
  await assert.rejects(stuck, ActorStoppedError);
});

/** An actor whose one job honours ctx.signal: it fails as soon as the signal aborts (after `lagMs`). */
function signalAwareWorker(name: string, log: string[], lagMs: number): ChildSpec<string> {
  return {
    name,
    factory: () => ({
      async preStart(ctx: ActorContext<string>) {
        await ctx.spawn<string>({
          name: `${name}/child`,
          factory: () => ({ receive: () => {}, postStop: () => void log.push("child postStop") }),
        });
      },
      receive: (_m: string, ctx: ActorContext<string>) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener("abort", () => {
            const fail = () => {
              log.push("job failed on abort");
              reject(ctx.signal.reason);
            };
            if (lagMs === 0) fail();
            else setTimeout(fail, lagMs);
          })
        ),
      async postStop() {
        await delay(5);
        log.push("postStop");
      },
    }),
  };
}

Deno.test("stopping an actor whose in-flight handler fails on ctx.signal: children, then postStop, then stop resolves; no crash", async () => {
  for (const lagMs of [0, 10]) {
    const system = new ActorSystem({ name: "t" });
    const { log: eventLog } = recordEvents(system);
    const log: string[] = [];
    const ref = await system.spawn(signalAwareWorker("w", log, lagMs));
    const inFlight = ref.ask("job", { timeoutMs: 10_000 }).catch((e) => e);
    await delay(1);
    assert.equal(await system.stop("w"), true);
    log.push("stop resolved");
    assert.deepEqual(
      log,
      ["job failed on abort", "child postStop", "postStop", "stop resolved"],
      `lag ${lagMs}`,
    );
    assert.ok((await inFlight) instanceof ActorStoppedError, `lag ${lagMs}`);
    assert.equal(system.lookup("w/child"), undefined);
    assert.ok(!eventLog.includes("crashed:w"), eventLog.join(" "));
    assert.deepEqual(eventLog.filter((e) => e.startsWith("stopped:")), [
      "stopped:w/child",
      "stopped:w",
    ]);
    await system.shutdown();
  }
});

Deno.test("shutdown waits for the postStop of an actor whose in-flight handler fails on ctx.signal", async () => {
  const system = new ActorSystem({ name: "t" });
  const { log: eventLog } = recordEvents(system);
  const log: string[] = [];
  const ref = await system.spawn(signalAwareWorker("w", log, 0));
  const inFlight = ref.ask("job", { timeoutMs: 10_000 }).catch((e) => e);
  await delay(1);
  await system.shutdown();
  log.push("shutdown resolved");
  assert.deepEqual(log, ["job failed on abort", "child postStop", "postStop", "shutdown resolved"]);
  assert.ok((await inFlight) instanceof ActorStoppedError);
  assert.ok(!eventLog.includes("crashed:w"), eventLog.join(" "));
});

Deno.test("shutdown abandons a restart's hung preStart after stopTimeoutMs and reports hook_failed", async () => {
  for (const layout of ["under the root", "under a supervisor", "in a restarting supervisor"]) {
    const system = new ActorSystem({ name: "t", stopTimeoutMs: 30 });
    const { events } = recordEvents(system);
    const log: string[] = [];
    let starts = 0;
    const hangsOnRestart: ChildSpec<string> = {
      name: "a",
      factory: () => ({
        preStart: () => {
          if (++starts > 1) return new Promise<void>(() => {}); // waits on a dead dependency
        },
        receive: (m: string) => {
          if (m === "boom") throw new Error("boom");
        },
        postStop: () => void log.push("postStop"),
      }),
    };
    if (layout === "under the root") await system.spawn(hangsOnRestart);
    else {
      const maxRestarts = layout === "in a restarting supervisor" ? 0 : 3;
      await system.supervise({ name: "sup", maxRestarts, children: [hangsOnRestart] });
    }
    await system.lookup<string>("a")!.tell("boom");
    await eventually(() => starts === 2);
    log.length = 0;
    await settlesWithin(system.shutdown(), 3_000, `shutdown (${layout})`);
    assert.deepEqual(log, ["postStop"], layout);
    const failed = events.filter((e) => e.type === "hook_failed");
    assert.equal(failed.length, 1, layout);
    assert.ok(failed[0].type === "hook_failed" && failed[0].hook === "preStart", layout);
    assert.ok(failed[0].reason instanceof HookTimeoutError, layout);
    assert.equal(system.lookup("a"), undefined, layout);
  }
});

Deno.test("a postStop that never finishes is abandoned after stopTimeoutMs: restart and shutdown go on", async () => {
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 30 });
  const { events, log } = recordEvents(system);
  const ref = await system.spawn<string>({
    name: "a",
    factory: () => ({
      receive: (m: string) => {
        if (m === "boom") throw new Error("boom");
        return m;
      },
      postStop: () => new Promise<void>(() => {}),
    }),
  });
  await assert.rejects(ref.ask("boom"), ActorCrashedError);
  assert.equal(await settlesWithin(ref.ask("after"), 3_000, "the restart"), "after");
  await settlesWithin(system.shutdown(), 3_000, "shutdown");
  const failed = events.filter((e) => e.type === "hook_failed");
  assert.equal(failed.length, 2);
  for (const e of failed) {
    assert.ok(e.type === "hook_failed" && e.hook === "postStop");
    assert.ok(e.reason instanceof HookTimeoutError && e.reason.code === "hook_timeout");
  }
  assert.ok(log.includes("stopped:a"));
});

Deno.test("ctx.signal is aborted when the incarnation stops", async () => {
  const system = new ActorSystem({ name: "t" });
  let signal: AbortSignal | undefined;
  await system.spawn<string>({
    name: "sig",
    factory: () => ({
      preStart: (ctx) => void (signal = ctx.signal),
      receive: () => {},
    }),
  });
  assert.equal(signal?.aborted, false);
  await system.shutdown();
  assert.equal(signal?.aborted, true);
  assert.ok(signal?.reason instanceof ActorStoppedError);
});

Deno.test("registry: lookup by name, duplicate names rejected with NameTakenError, bad names rejected", async () => {
  const system = new ActorSystem({ name: "node" });
  const ref = await system.spawn<string>({
    name: "node/storage",
    factory: () => ({ receive: (m) => m }),
  });
  assert.equal(system.lookup("node/storage"), ref);
  assert.equal(system.lookup("node/nothing"), undefined);
  const error = await system.spawn<string>({
    name: "node/storage",
    factory: () => ({ receive: () => {} }),
  })
    .catch((e) => e);
  assert.ok(error instanceof NameTakenError);
  assert.equal(error.code, "name_taken");
  // A supervisor spec whose child collides claims nothing.
  await assert.rejects(
    system.supervise({
      name: "node/group",
      children: [{ name: "node/fresh", factory: () => ({ receive: () => {} }) }, {
        name: "node/storage",
        factory: () => ({ receive: () => {} }),
      }],
    }),
    NameTakenError,
  );
  assert.equal(system.lookupSupervisor("node/group"), undefined);
  assert.equal(system.lookup("node/fresh"), undefined);
  await assert.rejects(
    system.spawn({ name: "", factory: () => ({ receive: () => {} }) }),
    InvalidNameError,
  );
  const sup = await system.supervise({ name: "node/group", children: [] });
  assert.equal(system.lookupSupervisor("node/group"), sup);
  assert.equal(system.lookup("node/group"), undefined, "lookup only returns actors");
  assert.deepEqual(system.names(), ["node/storage", "node/group"]);
  await system.shutdown();
});

Deno.test("events feed: started, crashed (with reason), restarted, stopped in order", async () => {
  const system = new ActorSystem({ name: "t" });
  const { log, events } = recordEvents(system);
  const ref = await system.spawn<string>({
    name: "w",
    factory: () => ({
      receive: (m) => {
        if (m === "crash") throw new Error("bad input");
      },
    }),
  });
  await assert.rejects(ref.ask("crash"), ActorCrashedError);
  await eventually(() => log.includes("restarted:w"));
  await system.shutdown();
  assert.deepEqual(log, [
    "started:w",
    "crashed:w",
    "restarted:w",
    "stopped:w",
    "stopped:t",
  ]);
  const crashed = events[1] as CrashedEvent;
  assert.equal((crashed.reason as Error).message, "bad input");
  assert.equal(crashed.kind, "actor");
  assert.ok(events.every((e) => typeof e.time === "number"));
});

Deno.test("a throwing event listener does not break supervision", async () => {
  const system = new ActorSystem({ name: "t" });
  const originalError = console.error;
  console.error = () => {};
  try {
    system.events.subscribe(() => {
      throw new Error("listener bug");
    });
    const ref = await system.spawn<string>({
      name: "w",
      factory: () => ({
        receive: (m) => {
          if (m === "crash") throw new Error("x");
          return m;
        },
      }),
    });
    await assert.rejects(ref.ask("crash"), ActorCrashedError);
    assert.equal(await ref.ask("ok"), "ok");
    await system.shutdown();
  } finally {
    console.error = originalError;
  }
});

Deno.test("a throwing postStop is reported as hook_failed and shutdown continues", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events } = recordEvents(system);
  const stops: string[] = [];
  await system.spawn(recorder("a", stops));
  await system.spawn<string>({
    name: "b",
    factory: () => ({
      receive: () => {},
      postStop: () => {
        throw new Error("cleanup failed");
      },
    }),
  });
  await system.shutdown();
  assert.deepEqual(stops, ["a"]);
  const failed = events.find((e) => e.type === "hook_failed");
  assert.ok(failed !== undefined && failed.name === "b");
});

type ParentMsg = { type: "start-job"; id: string } | { type: "crash" };

Deno.test("ctx.spawn children are linked: listed in the tree and stopped before the parent", async () => {
  const system = new ActorSystem({ name: "t" });
  const stops: string[] = [];
  const jobRefs: ActorRef<string>[] = [];
  const parent = await system.spawn<ParentMsg>({
    name: "inference",
    factory: () => ({
      async receive(m: ParentMsg, ctx: ActorContext<ParentMsg>) {
        if (m.type === "crash") throw new Error("parent crash");
        const ref = await ctx.spawn<string>(recorder(`inference/job-${m.id}`, stops));
        jobRefs.push(ref);
        return ref.name;
      },
      postStop: () => void stops.push("inference"),
    }),
  });
  assert.equal(await parent.ask({ type: "start-job", id: "1" }), "inference/job-1");
  await parent.ask({ type: "start-job", id: "2" });
  assert.equal(await system.lookup<string>("inference/job-1")!.ask("ping"), "ping");
  const tree = system.tree();
  assert.deepEqual(tree.children[0].children.map((c) => c.name), [
    "inference/job-1",
    "inference/job-2",
  ]);
  assert.match(formatTree(tree), /└── inference\/job-2 \[actor temporary, running/);
  // system.stop reaches linked children too (e.g. to cancel one job).
  assert.equal(await system.stop("inference/job-2"), true);
  assert.deepEqual(stops, ["inference/job-2"]);
  await parent.ask({ type: "start-job", id: "2" });
  stops.length = 0;

  // A crash of the parent takes its linked children down first, then restarts the parent alone.
  await assert.rejects(parent.ask({ type: "crash" }), ActorCrashedError);
  await eventually(() => stops.length === 3);
  assert.deepEqual(stops, ["inference/job-2", "inference/job-1", "inference"]);
  assert.equal(system.lookup("inference/job-1"), undefined);
  await assert.rejects(jobRefs[0].tell("x"), ActorStoppedError);
  await parent.ask({ type: "start-job", id: "3" });
  stops.length = 0;
  await system.shutdown();
  assert.deepEqual(stops, ["inference/job-3", "inference"]);
});

Deno.test("a crashing linked child is removed without crashing its parent", async () => {
  const system = new ActorSystem({ name: "t" });
  const { log } = recordEvents(system);
  const parent = await system.spawn<string>({
    name: "p",
    factory: () => ({
      async receive(m: string, ctx: ActorContext<string>) {
        if (m !== "spawn") return "alive";
        const child = await ctx.spawn<string>({
          name: "p/child",
          factory: () => ({
            receive: () => {
              throw new Error("child bug");
            },
          }),
        });
        await child.tell("boom");
      },
    }),
  });
  await parent.ask("spawn");
  await eventually(() => system.lookup("p/child") === undefined);
  assert.equal(await parent.ask("ping"), "alive");
  assert.ok(log.includes("crashed:p/child"));
  assert.ok(!log.includes("crashed:p"));
  await system.shutdown();
});

Deno.test("tree() describes the supervision tree and formatTree renders it", async () => {
  const system = new ActorSystem({ name: "node" });
  await system.supervise({
    name: "node/core",
    strategy: "rest_for_one",
    children: [
      { name: "node/storage", factory: () => ({ receive: () => {} }), mailbox: { capacity: 64 } },
      { name: "node/inference", factory: () => ({ receive: () => {} }) },
    ],
  });
  const tree = system.tree();
  assert.equal(tree.kind, "system");
  assert.equal(tree.children[0].strategy, "rest_for_one");
  assert.equal(tree.children[0].children[0].mailbox?.capacity, 64);
  assert.equal(
    formatTree(tree),
    [
      "node [system one_for_one, running]",
      "└── node/core [supervisor rest_for_one, running]",
      "    ├── node/storage [actor permanent, running, mailbox 0/64]",
      "    └── node/inference [actor permanent, running, mailbox 0/1024]",
    ].join("\n"),
  );
  await system.shutdown();
});

Deno.test("system.stop removes an actor for good; its supervisor does not restart it", async () => {
  const system = new ActorSystem({ name: "t" });
  const { log } = recordEvents(system);
  await system.supervise({
    name: "sup",
    children: [{ name: "a", factory: () => ({ receive: () => {} }) }],
  });
  assert.equal(await system.stop("a"), true);
  assert.equal(await system.stop("a"), false);
  await delay(5);
  assert.equal(system.lookup("a"), undefined);
  assert.ok(!log.includes("restarted:a"));
  assert.deepEqual(system.lookupSupervisor("sup")!.childNames(), []);
  await system.shutdown();
});

Deno.test("a restartable linked child that keeps crashing escalates into its parent's crash", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events } = recordEvents(system);
  const parent = await system.spawn<string>({
    name: "p",
    factory: () => ({
      async receive(m: string, ctx: ActorContext<string>) {
        if (m !== "spawn") return "alive";
        await ctx.spawn<string>({
          name: "p/worker",
          restart: "permanent",
          factory: () => ({
            preStart: (c) => void c.self.tell("go"),
            receive: () => {
              throw new Error("worker bug");
            },
          }),
        });
      },
    }),
  });
  await parent.ask("spawn");
  await eventually(() => events.some((e) => e.type === "crashed" && e.name === "p"));
  const parentCrash = events.find((e) => e.type === "crashed" && e.name === "p") as CrashedEvent;
  assert.ok(parentCrash.reason instanceof EscalatedError);
  await eventually(() => events.some((e) => e.type === "restarted" && e.name === "p"));
  assert.equal(await parent.ask("ping"), "alive");
  assert.equal(system.lookup("p/worker"), undefined);
  await system.shutdown();
});

/**
 * A parent whose "work" handler spawns a permanent linked worker that crashes until its group
 * gives up (crashing the parent while the handler runs), then waits on `job`. Every other
 * message answers with the incarnation handling it. `log` records the lifecycle.
 */
function busyParent(job: Promise<void>, log: string[]): ChildSpec<string> {
  let incarnations = 0;
  return {
    name: "p",
    factory: (): Actor<string> => {
      const me = ++incarnations;
      return {
        async receive(m: string, ctx: ActorContext<string>) {
          if (m !== "work") {
            log.push(`${m} handled by #${me}`);
            return me;
          }
          await ctx.spawn<string>({
            name: "p/worker",
            restart: "permanent",
            factory: () => ({
              preStart: (c) => void c.self.tell("go"),
              receive: () => {
                throw new Error("worker bug");
              },
            }),
          });
          await job; // a long job that does not watch ctx.signal
          log.push(`work of #${me} ends, signal ${ctx.signal.aborted ? "aborted" : "live"}`);
        },
        postStop: () => void log.push(`postStop #${me}`),
      };
    },
  };
}

Deno.test("linked children crashing a busy parent: its ask fails at once, but postStop and the restart wait for the handler in flight", async () => {
  // stopTimeoutMs far beyond the test: only the handler ending may let the crash go on.
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 60_000 });
  const { events } = recordEvents(system);
  const log: string[] = [];
  const job = deferred();
  const parent = await system.spawn(busyParent(job.promise, log));
  const error = await parent.ask("work", { timeoutMs: Infinity }).catch((e) => e);
  assert.ok(error instanceof ActorCrashedError, String(error));
  assert.ok(error.reason instanceof EscalatedError, String(error.reason));
  assert.ok(events.some((e) => e.type === "crashed" && e.name === "p"));
  const probe = parent.ask("probe"); // waits in the mailbox for the next incarnation
  // Room for a wrong implementation to run postStop and restart under the running handler.
  await delay(20);
  log.push("job released");
  job.resolve();
  assert.equal(await settlesWithin(probe, SETTLE_GUARD_MS, "the restart"), 2);
  assert.deepEqual(log, [
    "job released",
    "work of #1 ends, signal aborted",
    "postStop #1",
    "probe handled by #2",
  ]);
  await system.shutdown();
});

Deno.test("linked children crashing a busy parent whose handler ignores ctx.signal: abandoned after stopTimeoutMs, then postStop and the restart", async () => {
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 30 });
  const { log: eventLog } = recordEvents(system);
  const log: string[] = [];
  const parent = await system.spawn(busyParent(new Promise<void>(() => {}), log));
  await assert.rejects(parent.ask("work", { timeoutMs: Infinity }), ActorCrashedError);
  assert.equal(await settlesWithin(parent.ask("probe"), SETTLE_GUARD_MS, "the restart"), 2);
  assert.deepEqual(log, ["postStop #1", "probe handled by #2"]);
  assert.deepEqual(eventLog.filter((e) => e.endsWith(":p")), [
    "started:p",
    "crashed:p",
    "restarted:p",
  ]);
  await system.shutdown();
});

Deno.test("linked children giving up while their parent is in preStart fail that preStart once it returns", async () => {
  const system = new ActorSystem({ name: "t" });
  const { events } = recordEvents(system);
  let starts = 0;
  /** On incarnation `failOn`, preStart spawns a permanent linked child and crashes it until its group gives up. */
  const parent = (name: string, failOn: number): ChildSpec<string> => ({
    name,
    factory: () => ({
      async preStart(ctx: ActorContext<string>) {
        if (++starts !== failOn) return;
        const child = await ctx.spawn<string>({
          name: `${name}/child`,
          restart: "permanent",
          factory: () => ({
            receive: () => {
              throw new Error("child bug");
            },
          }),
        });
        const gaveUp = () =>
          events.some((e) => e.type === "escalated" && e.name === `${name}#linked`);
        while (!gaveUp()) {
          await child.tell("boom");
          await delay(1);
        }
      },
      receive: (m: string) => {
        if (m === "crash") throw new Error("parent crash");
        return "alive";
      },
    }),
  });

  // At spawn: the spawn rejects like any preStart failure, and the names are free again.
  const error = await system.spawn(parent("p", 1)).catch((e) => e);
  assert.ok(error instanceof ActorCrashedError, String(error));
  assert.ok(error.reason instanceof EscalatedError, String(error.reason));
  assert.equal(system.lookup("p"), undefined);
  assert.equal(system.lookup("p/child"), undefined);

  // On a restart: that incarnation crashes with the EscalatedError and is restarted again.
  starts = 0;
  const q = await system.spawn(parent("q", 2));
  await assert.rejects(q.ask("crash"), ActorCrashedError);
  await eventually(() => starts === 3, "the restart after the failed one");
  assert.equal(await q.ask("ping"), "alive");
  const crashes = events.filter((e) => e.type === "crashed" && e.name === "q") as CrashedEvent[];
  assert.equal(crashes.length, 2);
  assert.ok(crashes[1].reason instanceof EscalatedError, String(crashes[1].reason));
  assert.equal(system.lookup("q/child"), undefined);
  await system.shutdown();
});

Deno.test("registry keeps names unique and lets only the holder release a name", () => {
  const registry = new Registry<object>();
  const a = {};
  const b = {};
  registry.register("node/storage", a);
  registry.register("node/storage", a); // idempotent for the same owner
  assert.throws(() => registry.register("node/storage", b), NameTakenError);
  registry.unregister("node/storage", b); // a stale owner cannot evict the holder
  assert.equal(registry.get("node/storage"), a);
  registry.unregister("node/storage", a);
  assert.equal(registry.has("node/storage"), false);
  registry.register("node/storage", b);
  assert.deepEqual(registry.names(), ["node/storage"]);
  assert.equal(registry.size, 1);
});

Deno.test("registry rejects empty and padded names with InvalidNameError", () => {
  const registry = new Registry<object>();
  for (const bad of ["", " x", "x ", 42 as unknown as string]) {
    const error = (() => {
      try {
        registry.register(bad, {});
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof InvalidNameError, `accepted ${JSON.stringify(bad)}`);
    assert.equal(error.code, "invalid_name");
  }
});

// -------------------------------------------------------------------------------------------------
// Bad input to `spawn`/`supervise` and to the system options must fail at once with a typed error,
// not be taken as something else. Each test failed before its fix.

Deno.test("spawn of a spec without a factory rejects with TypeError and registers nothing", async () => {
  const system = new ActorSystem({ name: "t" });
  // A spec built from configuration (untyped) that lost its factory.
  const spec = { name: "t/worker" } as unknown as ChildSpec<string>;
  await assert.rejects(system.spawn(spec), TypeError);
  assert.equal(system.lookupSupervisor("t/worker"), undefined, "taken for a supervisor");
  assert.deepEqual(system.names(), []);
  assert.deepEqual(system.tree().children, []);
  // The name is still free for the real actor.
  const ref = await system.spawn<string>({
    name: "t/worker",
    factory: () => ({ receive: (m) => m }),
  });
  assert.equal(await ref.ask("hi"), "hi");
  await system.shutdown();
});

Deno.test("ctx.spawn of a spec without a factory rejects with TypeError", async () => {
  const system = new ActorSystem({ name: "t" });
  const parent = await system.spawn<string>({
    name: "t/parent",
    factory: () => ({
      async receive(_m, ctx) {
        const child = await ctx.spawn({ name: "t/parent/job" } as unknown as ChildSpec<string>);
        return typeof child;
      },
    }),
  });
  await assert.rejects(parent.ask("go"), (error: Error) => {
    // The parent crashed on the rejected spawn: the cause must be the TypeError.
    return error.cause instanceof TypeError;
  });
  assert.equal(system.lookupSupervisor("t/parent/job"), undefined, "taken for a supervisor");
  await system.shutdown();
});

Deno.test("supervise of an actor spec rejects with TypeError and registers nothing", async () => {
  const system = new ActorSystem({ name: "t" });
  const spec = {
    name: "t/sup",
    factory: () => ({ receive: () => 1 }),
  } as unknown as SupervisorSpec;
  await assert.rejects(system.supervise(spec), TypeError);
  assert.equal(system.lookup("t/sup"), undefined, "taken for an actor");
  assert.deepEqual(system.names(), []);
  await system.shutdown();
});

Deno.test("a stopTimeoutMs no timer can honour (Infinity, NaN, negative, past 2^31-1 ms) is refused with RangeError", () => {
  // Timers clamp such delays to 1 ms: `Infinity` ("never abandon") abandoned every in-flight
  // message, preStart and postStop of a stop after 1 ms and rejected their asks.
  for (const stopTimeoutMs of [Infinity, NaN, -1, 2 ** 31]) {
    assert.throws(() => new ActorSystem({ stopTimeoutMs }), RangeError, String(stopTimeoutMs));
  }
  for (const stopTimeoutMs of [0, 1, 2 ** 31 - 1]) new ActorSystem({ stopTimeoutMs });
});

Deno.test("a negative or NaN askTimeoutMs is refused when the system is built, not at every ask", () => {
  for (const askTimeoutMs of [-1, NaN]) {
    assert.throws(() => new ActorSystem({ askTimeoutMs }), RangeError, String(askTimeoutMs));
  }
  for (const askTimeoutMs of [0, 1, Infinity]) new ActorSystem({ askTimeoutMs });
});
