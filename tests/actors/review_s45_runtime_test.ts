/**
 * Review s45 of the actor runtime: defects found by reading the cell and supervisor code, each
 * pinned by a test that failed before its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError, ActorStoppedError } from "../../actors/errors.ts";
import type { ActorEvent } from "../../actors/events.ts";
import { deferred, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";

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
