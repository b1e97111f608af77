/**
 * An actor's incarnations (`actors/_actor_cell.ts`) under stops and crashes: an actor stopping
 * itself, a stop racing a crash, a group restart halting a nested supervisor, and shutdown waiting
 * for a stop in progress. Defects found by reading the cell and supervisor code, each pinned by a
 * test that failed before its fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError, ActorStoppedError } from "../../actors/errors.ts";
import type { ActorEvent } from "../../actors/events.ts";
import { deferred, recordEvents, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";

// -------------------------------------------------------------------------------------------------
// Stopping itself: an actor that stops itself (from a handler, or idle from a callback) and a slow
// restart's preStart next to a sibling's.

/** Resolves with the first event of `system` that matches `match`. */
function nextEvent(
  system: ActorSystem,
  match: (event: ActorEvent) => boolean,
): Promise<ActorEvent> {
  const seen = deferred<ActorEvent>();
  const unsubscribe = system.events.subscribe((event) => {
    if (!match(event)) return;
    unsubscribe();
    seen.resolve(event);
  });
  return seen.promise;
}

Deno.test("an actor that stops itself for good from a sync handler handles nothing queued after it", async () => {
  const system = new ActorSystem({ name: "t" });
  const handled: string[] = [];
  const ref = await system.spawn<string>({
    name: "quitter",
    factory: () => ({
      receive(message, ctx) {
        handled.push(message);
        // Stopping itself for good (not ctx.stop(), which a permanent actor restarts from).
        if (message === "quit") void ctx.system.stop(ctx.name);
        return message;
      },
    }),
  });
  // Both queued before the actor runs: they are handled in one drain batch.
  const quit = ref.ask<string>("quit");
  const after = ref.ask<string>("after");
  assert.equal(await quit, "quit");
  // The stop closed the mailbox and aborted ctx.signal: what is still queued is addressed to an
  // actor that no longer exists, and rejects like every queued ask of a stopped actor.
  await assert.rejects(
    settlesWithin(after, SETTLE_GUARD_MS, "ask after the stop"),
    ActorStoppedError,
  );
  assert.deepEqual(handled, ["quit"]);
  await system.shutdown();
});

Deno.test("ctx.stop() called while the actor is idle (from a callback) ends the incarnation", async () => {
  const system = new ActorSystem({ name: "t" });
  let saved: ActorContext<string> | undefined;
  const ref = await system.spawn<string>({
    name: "idle-stopper",
    restart: "transient",
    factory: () => ({
      receive(message, ctx) {
        saved = ctx; // e.g. a stream or timer callback that later decides the actor is done
        return message;
      },
    }),
  });
  assert.equal(await ref.ask("hello"), "hello");
  const stopped = nextEvent(system, (e) => e.type === "stopped" && e.name === "idle-stopper");
  saved!.stop(); // no message in hand: nothing else will ever wake the actor up
  const event = await settlesWithin(stopped, SETTLE_GUARD_MS, "the idle actor's stop");
  assert.equal((event as { reason?: unknown }).reason, "normal");
  // Transient and exited normally: removed, its name released.
  await settlesWithin(
    (async () => {
      while (system.lookup("idle-stopper") !== undefined) await Promise.resolve();
    })(),
    SETTLE_GUARD_MS,
    "the transient actor's removal",
  );
  await system.shutdown();
});

Deno.test("a permanent actor that called ctx.stop() while idle answers the next message from a fresh incarnation", async () => {
  const system = new ActorSystem({ name: "t" });
  let saved: ActorContext<string> | undefined;
  let built = 0;
  const ref = await system.spawn<string>({
    name: "idle-permanent",
    factory: () => {
      const incarnation = ++built;
      return {
        receive(_message: string, ctx: ActorContext<string>) {
          saved = ctx;
          return incarnation;
        },
      };
    },
  });
  assert.equal(await ref.ask("which"), 1);
  const restarted = nextEvent(system, (e) => e.type === "restarted" && e.name === "idle-permanent");
  saved!.stop();
  await settlesWithin(restarted, SETTLE_GUARD_MS, "the restart after an idle ctx.stop()");
  // The old incarnation asked to end: it must not take another message.
  assert.equal(await ref.ask("which"), 2);
  await system.shutdown();
});

Deno.test("one_for_one: a child's slow restart preStart (a model load) does not hold up a sibling's restart", async () => {
  const system = new ActorSystem({ name: "t" });
  const loading = deferred();
  const loaded = deferred();
  let aBuilt = 0;
  let bBuilt = 0;
  await system.supervise({
    name: "t/sup",
    strategy: "one_for_one",
    maxRestarts: 10,
    withinMs: 60_000,
    children: [
      {
        name: "a",
        factory: () => {
          const incarnation = ++aBuilt;
          return {
            async preStart() {
              if (incarnation === 1) return;
              loading.resolve();
              await loaded.promise;
            },
            receive(message: string) {
              if (message === "crash") throw new Error("a failed");
              return incarnation;
            },
          };
        },
      },
      {
        name: "b",
        factory: () => {
          const incarnation = ++bBuilt;
          return {
            receive(message: string) {
              if (message === "crash") throw new Error("b failed");
              return incarnation;
            },
          };
        },
      },
    ],
  });
  const a = system.lookup<string>("a")!;
  const b = system.lookup<string>("b")!;
  try {
    await assert.rejects(a.ask("crash"), ActorCrashedError);
    await settlesWithin(loading.promise, SETTLE_GUARD_MS, "a's restart preStart");
    await assert.rejects(b.ask("crash"), ActorCrashedError);
    // b's restart is its own business: it must not queue behind a's load.
    assert.equal(
      await settlesWithin(b.ask("which"), SETTLE_GUARD_MS, "b's answer while a loads"),
      2,
    );
  } finally {
    loaded.resolve();
  }
  assert.equal(await a.ask("which"), 2);
  await system.shutdown();
});

// -------------------------------------------------------------------------------------------------
// Stops racing crashes: a group restart halting a nested supervisor, a stop requested just before a
// crash, and shutdown waiting for a stop in progress.

type Msg = "get" | "crash";

/** An actor that answers `get` and throws on `crash`. */
function crasher(name: string) {
  return {
    name,
    factory: (): Actor<Msg> => ({
      receive(message: Msg) {
        if (message === "crash") throw new Error(`${name} crashed`);
        return name;
      },
    }),
  };
}

Deno.test("a group restart halting a nested supervisor in its first start: supervise() resolves and the subtree restarts with the group", async () => {
  // stopTimeoutMs far beyond the guard: only the halt's abort can end the load in time.
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 60_000 });
  const { log } = recordEvents(system);
  const sup = await system.supervise({
    name: "t/sup",
    strategy: "one_for_all",
    children: [crasher("a")],
  });
  let loads = 0;
  const loading = deferred();
  const added = sup.supervise({
    name: "t/nested",
    children: [{
      name: "b",
      factory: (): Actor<Msg> => ({
        preStart(ctx: ActorContext<Msg>) {
          if (++loads > 1) return;
          loading.resolve();
          // A model load that ends when the incarnation is halted.
          return new Promise<void>((resolve) => {
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        },
        receive: () => "loaded",
      }),
    }],
  });
  await loading.promise;
  // a's crash restarts the whole group, t/nested included, while t/nested is still starting.
  await assert.rejects(system.lookup<Msg>("a")!.ask("crash"), ActorCrashedError);
  // As for an actor spawned into the same spot: a sibling's crash is no failure of this spawn.
  // Before the fix supervise() rejected with ActorStoppedError ("stopped while starting") and the
  // new subtree was torn down and removed, though nothing had stopped it.
  const nested = await settlesWithin(added, SETTLE_GUARD_MS, "supervise() of t/nested");
  assert.equal(nested.name, "t/nested");
  assert.deepEqual(sup.childNames(), ["a", "t/nested"]);
  const b = system.lookup<Msg>("b");
  assert.ok(b !== undefined, "b keeps its name");
  assert.equal(await settlesWithin(b.ask("get"), SETTLE_GUARD_MS, "b after the restart"), "loaded");
  assert.equal(loads, 2);
  assert.ok(!log.includes("crashed:b"), log.join(" "));
  await settlesWithin(system.shutdown(), SETTLE_GUARD_MS, "shutdown");
});

Deno.test("a stop requested just before the actor crashes resolves only after that incarnation's postStop", async () => {
  for (const trigger of ["handler stops itself, then throws", "crashed listener stops it"]) {
    // postStop is bounded by stopTimeoutMs: far beyond the guard, so only its release ends it.
    const system = new ActorSystem({ name: "t", stopTimeoutMs: 60_000 });
    const cleanup = deferred();
    let cleaned = false;
    let stopping: Promise<boolean> | undefined;
    const ref = await system.spawn<Msg>({
      name: "x",
      factory: (): Actor<Msg> => ({
        async postStop() {
          await cleanup.promise; // closing a file, releasing a model session
          cleaned = true;
        },
        receive(message, ctx) {
          if (trigger.startsWith("handler")) stopping = ctx.system.stop(ctx.name);
          if (message === "crash") throw new Error("bad input");
          return message;
        },
      }),
    });
    if (trigger.startsWith("crashed")) {
      system.events.subscribe((event) => {
        if (event.type === "crashed" && event.name === "x") stopping ??= system.stop("x");
      });
    }
    await assert.rejects(ref.ask("crash"), ActorCrashedError);
    assert.ok(stopping !== undefined, trigger);
    let stopDone = false;
    void stopping.then(() => (stopDone = true));
    // A macrotask: every step that does not wait on postStop has run by now. Before the fix the
    // stop was over here (the stop's step found the incarnation already ended and did not wait
    // for the crash's postStop queued behind it).
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(stopDone, false, `${trigger}: stop resolved before postStop`);
    cleanup.resolve();
    assert.equal(await settlesWithin(stopping, SETTLE_GUARD_MS, `stop (${trigger})`), true);
    assert.ok(cleaned, `${trigger}: postStop done when the stop resolves`);
    await settlesWithin(system.shutdown(), SETTLE_GUARD_MS, `shutdown (${trigger})`);
  }
});

Deno.test("shutdown waits for an actor whose system.stop is still in progress", async () => {
  // postStop is bounded by stopTimeoutMs: far beyond the guard, so only its release ends it.
  const system = new ActorSystem({ name: "t", stopTimeoutMs: 60_000 });
  const cleanup = deferred();
  let cleaned = false;
  const sup = await system.supervise({ name: "t/sup", children: [] });
  for (const parent of ["root", "supervisor"]) {
    const name = `job-${parent}`;
    const spec = {
      name,
      factory: (): Actor<Msg> => ({
        async postStop() {
          await cleanup.promise; // closing a file, releasing a model session
          cleaned = true;
        },
        receive: (message: Msg) => message,
      }),
    };
    if (parent === "root") await system.spawn(spec);
    else await sup.spawn(spec);
  }
  // Cancelling jobs (their postStop still running) while the node shuts down.
  const stopping = [system.stop("job-root"), system.stop("job-supervisor")];
  const shutdown = system.shutdown();
  let shutdownDone = false;
  void shutdown.then(() => (shutdownDone = true));
  // A macrotask: every step that does not wait on postStop has run by now. Before the fix the
  // shutdown was over here: each supervisor forgets a removed child before its stop completes,
  // so shutdown had nothing left to wait for.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(shutdownDone, false, "shutdown resolved while postStop still ran");
  cleanup.resolve();
  await settlesWithin(shutdown, SETTLE_GUARD_MS, "shutdown");
  assert.ok(cleaned, "postStop done when shutdown resolves");
  assert.deepEqual(await Promise.all(stopping), [true, true]);
});
