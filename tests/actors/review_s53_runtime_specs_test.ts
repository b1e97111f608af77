/**
 * Review s53 of the actor runtime: bad input to `spawn`/`supervise` and to the system options
 * must fail at once with a typed error, not be taken as something else. Each test failed before
 * its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ChildSpec } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { SupervisorSpec } from "../../actors/supervisor.ts";

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
