/**
 * Review s51 of the actor runtime: defects found by reading the cell and supervisor code, each
 * pinned by a test that failed before its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import { deferred, recordEvents, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";

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
