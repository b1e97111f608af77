/**
 * Talking to an actor through its ref (`actors/actor_ref.ts`): tell and ask, their replies,
 * timeouts, aborts and deadlines, crashes and restarts behind a ref, full mailboxes; and
 * `LaterReply`, an ask answered when its work settles while the actor goes on with its next
 * messages.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  ActorCrashedError,
  ActorStoppedError,
  AskAbortedError,
  AskTimeoutError,
  MailboxFullError,
} from "../../actors/errors.ts";
import { deferred, isPending } from "./_helpers.ts";
import { delay } from "../_helpers/wait.ts";
import { LaterReply } from "../../actors/actor.ts";

type Msg = { type: "echo"; value: number } | { type: "crash" } | { type: "hold" };

/** An actor that echoes, crashes on demand, or holds its mailbox until `gate` resolves. */
function makeSpec(
  name: string,
  gate: Promise<void>,
  mailbox?: { capacity?: number; overflow?: "backpressure" | "drop" | "fail" },
) {
  return {
    name,
    mailbox,
    factory: () => ({
      receive(m: Msg): unknown {
        if (m.type === "echo") return m.value;
        if (m.type === "crash") throw new Error("boom");
        return gate;
      },
    }),
  };
}

Deno.test("10,000 concurrent asks are all answered with their own reply", async () => {
  const system = new ActorSystem({ name: "t" });
  const ref = await system.spawn(makeSpec("t/echo", Promise.resolve()));
  const n = 10_000;
  const replies = await Promise.all(
    Array.from({ length: n }, (_, i) => ref.ask<number>({ type: "echo", value: i * 3 + 1 })),
  );
  for (let i = 0; i < n; i++) assert.equal(replies[i], i * 3 + 1);
  await system.shutdown();
});

Deno.test("async handler answers asks and handles messages one at a time", async () => {
  const system = new ActorSystem({ name: "t" });
  let active = 0;
  let maxActive = 0;
  const ref = await system.spawn<number>({
    name: "t/slow",
    factory: () => ({
      async receive(m: number) {
        active++;
        maxActive = Math.max(maxActive, active);
        await delay(1);
        active--;
        return m * 2;
      },
    }),
  });
  const replies = await Promise.all([1, 2, 3, 4].map((v) => ref.ask<number>(v)));
  assert.deepEqual(replies, [2, 4, 6, 8]);
  assert.equal(maxActive, 1);
  await system.shutdown();
});

Deno.test("an ask to an actor that crashes on it rejects promptly with ActorCrashedError and the reason", async () => {
  const system = new ActorSystem({ name: "t" });
  const ref = await system.spawn(makeSpec("t/crashy", Promise.resolve()));
  const started = performance.now();
  const error = await ref.ask({ type: "crash" }).catch((e) => e);
  assert.ok(error instanceof ActorCrashedError);
  assert.equal(error.code, "actor_crashed");
  assert.equal(error.actor, "t/crashy");
  assert.equal((error.reason as Error).message, "boom");
  assert.ok(performance.now() - started < 1_000, "rejected promptly, not by a timeout");
  await system.shutdown();
});

Deno.test("asks queued behind a crashing message reject with ActorCrashedError; later asks reach the restarted actor", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const ref = await system.spawn<Msg | { type: "fail-after" }>({
    name: "t/queue",
    factory: () => ({
      async receive(m) {
        if (m.type === "fail-after") {
          await gate.promise;
          throw new Error("late boom");
        }
        if (m.type === "echo") return m.value;
      },
    }),
  });
  const failing = ref.ask({ type: "fail-after" });
  const queued = ref.ask<number>({ type: "echo", value: 1 });
  gate.resolve();
  await assert.rejects(failing, ActorCrashedError);
  await assert.rejects(queued, ActorCrashedError);
  assert.equal(await ref.ask<number>({ type: "echo", value: 2 }), 2);
  await system.shutdown();
});

Deno.test("ask times out with AskTimeoutError when the actor does not answer", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const ref = await system.spawn(makeSpec("t/hold", gate.promise));
  const error = await ref.ask({ type: "hold" }, { timeoutMs: 20 }).catch((e) => e);
  assert.ok(error instanceof AskTimeoutError);
  assert.equal(error.code, "ask_timeout");
  assert.equal(error.timeoutMs, 20);
  gate.resolve();
  await system.shutdown();
});

Deno.test("the system's askTimeoutMs is the default timeout", async () => {
  const system = new ActorSystem({ name: "t", askTimeoutMs: 15 });
  const gate = deferred();
  const ref = await system.spawn(makeSpec("t/hold", gate.promise));
  await assert.rejects(ref.ask({ type: "hold" }), AskTimeoutError);
  gate.resolve();
  await system.shutdown();
});

Deno.test("aborting the signal rejects the ask with AskAbortedError carrying the reason", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const ref = await system.spawn(makeSpec("t/hold", gate.promise));
  const controller = new AbortController();
  const pending = ref.ask({ type: "hold" }, { signal: controller.signal });
  assert.equal(await isPending(pending), true);
  controller.abort("user went away");
  const error = await pending.catch((e) => e);
  assert.ok(error instanceof AskAbortedError);
  assert.equal(error.code, "ask_aborted");
  assert.equal(error.cause, "user went away");
  // An already-aborted signal rejects at once.
  await assert.rejects(
    ref.ask({ type: "echo", value: 1 }, { signal: AbortSignal.abort() }),
    AskAbortedError,
  );
  gate.resolve();
  await system.shutdown();
});

Deno.test("tell waits while the mailbox is full and resumes as the actor drains", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const handled: number[] = [];
  const ref = await system.spawn<number>({
    name: "t/bp",
    mailbox: { capacity: 2 },
    factory: () => ({
      receive(m: number) {
        handled.push(m);
        if (m === 0) return gate.promise;
      },
    }),
  });
  await ref.tell(0); // taken out of the mailbox and held by the handler
  await delay(0);
  await ref.tell(1);
  await ref.tell(2); // mailbox now full (capacity 2)
  const third = ref.tell(3);
  const fourth = ref.tell(4);
  assert.equal(await isPending(third), true, "tell blocks on a full mailbox");
  assert.equal(await isPending(fourth), true);
  assert.equal(system.tree().children[0].mailbox?.waiting, 2);
  gate.resolve();
  await third;
  await fourth;
  await ref.ask(99);
  assert.deepEqual(handled, [0, 1, 2, 3, 4, 99], "order preserved through backpressure");
  await system.shutdown();
});

Deno.test("overflow drop discards tells beyond capacity; asks get MailboxFullError", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const handled: number[] = [];
  const ref = await system.spawn<number>({
    name: "t/drop",
    mailbox: { capacity: 2, overflow: "drop" },
    factory: () => ({
      receive(m: number) {
        handled.push(m);
        if (m === 0) return gate.promise;
      },
    }),
  });
  await ref.tell(0);
  await delay(0);
  for (let i = 1; i <= 5; i++) await ref.tell(i); // resolves even when dropped
  await assert.rejects(ref.ask(6), MailboxFullError);
  assert.equal(system.tree().children[0].mailbox?.dropped, 3);
  gate.resolve();
  await delay(0); // let the actor drain 1 and 2 so there is room again
  await ref.ask(7);
  assert.deepEqual(handled, [0, 1, 2, 7]);
  await system.shutdown();
});

Deno.test("overflow fail rejects tell with MailboxFullError when full", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const ref = await system.spawn(
    makeSpec("t/fail", gate.promise, { capacity: 1, overflow: "fail" }),
  );
  await ref.tell({ type: "hold" });
  await delay(0);
  await ref.tell({ type: "echo", value: 1 });
  const error = await ref.tell({ type: "echo", value: 2 }).catch((e) => e);
  assert.ok(error instanceof MailboxFullError);
  assert.equal(error.code, "mailbox_full");
  gate.resolve();
  await system.shutdown();
});

Deno.test("tell and ask to a stopped actor reject with ActorStoppedError", async () => {
  const system = new ActorSystem({ name: "t" });
  const ref = await system.spawn(makeSpec("t/gone", Promise.resolve()));
  assert.equal(await system.stop("t/gone"), true);
  await assert.rejects(ref.tell({ type: "echo", value: 1 }), ActorStoppedError);
  const error = await ref.ask({ type: "echo", value: 1 }).catch((e) => e);
  assert.ok(error instanceof ActorStoppedError);
  assert.equal(error.code, "actor_stopped");
  assert.equal(system.lookup("t/gone"), undefined);
  await system.shutdown();
});

Deno.test("the ref survives restarts: messages after a crash reach a fresh instance", async () => {
  const system = new ActorSystem({ name: "t" });
  const ref = await system.spawn<"inc" | "get" | "crash">({
    name: "t/counter",
    factory: () => {
      let n = 0;
      return {
        receive(m) {
          if (m === "crash") throw new Error("boom");
          if (m === "inc") n++;
          return n;
        },
      };
    },
  });
  await ref.tell("inc");
  await ref.tell("inc");
  assert.equal(await ref.ask("get"), 2);
  await assert.rejects(ref.ask("crash"), ActorCrashedError);
  assert.equal(await ref.ask("get"), 0, "fresh state from the factory");
  assert.equal(system.lookup("t/counter"), ref);
  await system.shutdown();
});

Deno.test("ask deadlines: a stuck ask still expires on time behind thousands of answered ones", async () => {
  const system = new ActorSystem({ name: "t", askTimeoutMs: 60 });
  const gate = deferred();
  const slow = await system.spawn(makeSpec("t/slow", gate.promise));
  const fast = await system.spawn(makeSpec("t/fast", Promise.resolve()));
  const started = performance.now();
  // Record when each expires as it happens: on a loaded machine the asks below can outlast
  // the 20 ms deadline, and an unobserved rejection would fail the run.
  const expiry = (p: Promise<unknown>) =>
    p.then(
      () => Promise.reject(new Error("ask should have expired")),
      (error) => {
        assert.ok(error instanceof AskTimeoutError, String(error));
        return performance.now() - started;
      },
    );
  const stuck = expiry(slow.ask({ type: "hold" }));
  const shorter = expiry(slow.ask({ type: "echo", value: 0 }, { timeoutMs: 20 }));
  // The answered asks get a deadline no load can reach: only the two above may expire.
  for (let round = 0; round < 3; round++) {
    const replies = await Promise.all(
      Array.from(
        { length: 1_000 },
        (_, i) => fast.ask<number>({ type: "echo", value: i }, { timeoutMs: 600_000 }),
      ),
    );
    assert.equal(replies[999], 999);
  }
  // Different timeouts expire independently, the shorter first.
  const shorterAt = await shorter;
  const stuckAt = await stuck;
  assert.ok(shorterAt >= 19 && shorterAt < stuckAt, `${shorterAt} then ${stuckAt}`);
  assert.ok(stuckAt >= 59, `expired after ${stuckAt} ms`);
  assert.equal(await fast.ask<number>({ type: "echo", value: 7 }, { timeoutMs: 600_000 }), 7);
  gate.resolve();
  await system.shutdown();
});

Deno.test("ask deadlines: a timeout beyond the timer limit (30 days) arms clamped timers and re-arms, no spin", async () => {
  const MAX_TIMER_MS = 2 ** 31 - 1;
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  const slow = await system.spawn(makeSpec("t/slow", gate.promise));
  const longTimers: number[] = [];
  const realSetTimeout = globalThis.setTimeout;
  // Record the long timers; let the first one fire at once, as a clamped timer would end early.
  const fake = (fn: () => void, ms?: number) => {
    if ((ms ?? 0) < 1_000_000) return realSetTimeout(fn, ms);
    longTimers.push(ms!);
    return realSetTimeout(fn, longTimers.length === 1 ? 0 : Math.min(ms!, MAX_TIMER_MS));
  };
  globalThis.setTimeout = fake as typeof setTimeout;
  try {
    const answer = slow.ask({ type: "hold" }, { timeoutMs: 30 * 24 * 3600 * 1000 });
    await delay(20);
    assert.ok(await isPending(answer), "not expired by the early fire");
    assert.deepEqual(longTimers, [MAX_TIMER_MS, MAX_TIMER_MS], "clamped, re-armed once");
    gate.resolve();
    await answer;
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  await system.shutdown();
});

Deno.test("a long backlog is drained in batches that let timers run in between", async () => {
  const system = new ActorSystem({ name: "t", drainBatch: 100 });
  let handled = 0;
  let handledWhenTimerFired = -1;
  const total = 200_000; // enough work to outlast a 0 ms timer (about 1 ms) many times over
  const ref = await system.spawn<number>({
    name: "t/backlog",
    mailbox: { capacity: total },
    factory: () => ({ receive: () => void handled++ }),
  });
  const timer = new Promise<void>((resolve) =>
    setTimeout(() => {
      handledWhenTimerFired = handled;
      resolve();
    }, 0)
  );
  for (let i = 0; i < total; i++) void ref.tell(i);
  await timer;
  await ref.ask(-1);
  assert.equal(handled, total + 1);
  assert.ok(
    handledWhenTimerFired >= 0 && handledWhenTimerFired < total,
    `timer starved until ${handledWhenTimerFired} messages were handled`,
  );
  await system.shutdown();
});

Deno.test("messages an actor tells itself are handled after the current one, in order", async () => {
  const system = new ActorSystem({ name: "t" });
  const seen: number[] = [];
  const done = deferred();
  const ref = await system.spawn<number>({
    name: "t/self",
    factory: () => ({
      receive(m: number, ctx) {
        seen.push(m);
        if (m < 5) void ctx.self.tell(m + 1);
        else done.resolve();
      },
    }),
  });
  await ref.tell(0);
  await done.promise;
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
  await system.shutdown();
});

// -------------------------------------------------------------------------------------------------
// `LaterReply`: an ask answered when its work settles, while the actor goes on with its next
// messages (the gen_server `noreply` shape the StorageActor's long asks use).

type SlowMsg = { type: "slow"; fail?: boolean } | { type: "ping" };

Deno.test("a later reply lets the next message in, answers its ask when its work settles, and a failed one crashes nothing", async () => {
  const system = new ActorSystem({ name: "later-reply-test" });
  const gate = Promise.withResolvers<void>();
  let starts = 0;
  try {
    const ref = await system.spawn<SlowMsg>({
      name: "later",
      factory: () => {
        starts++;
        return {
          receive: (msg: SlowMsg) => {
            if (msg.type === "ping") return "pong";
            return new LaterReply(
              gate.promise.then(() => {
                if (msg.fail) throw new Error("the work failed");
                return "slow done";
              }),
            );
          },
        };
      },
    });
    const slow = ref.ask<string>({ type: "slow" });
    const failing = ref.ask<string>({ type: "slow", fail: true });
    // Answered while both slow asks wait on the gate.
    assert.equal(await ref.ask<string>({ type: "ping" }), "pong");
    gate.resolve();
    assert.equal(await slow, "slow done");
    await assert.rejects(failing, /the work failed/);
    assert.equal(await ref.ask<string>({ type: "ping" }), "pong");
    assert.equal(starts, 1, "the failed answer is the asker's, not a crash");
  } finally {
    gate.resolve();
    await system.shutdown();
  }
});
