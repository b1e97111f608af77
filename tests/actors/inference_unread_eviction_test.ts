/**
 * The node's unread budget makes the job holding the most unread bytes pay when it is full
 * (`actors/_unread_token_budget.ts`, `actors/inference_job.ts`): review s72 F1, where a reader
 * that never read kept its whole backlog while an honest reader that paused next was cut with
 * `slow_reader`; and F2, where a finished job whose stream a library caller dropped held its
 * bytes for good; and the budget's series on `/metrics` (`server/health_routes.ts`).
 *
 * The graces run on {@link FakeTimers}: a test fires them by hand, nothing sleeps.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type InferenceStats,
  submitJob,
  type TextJobHandle,
  type UnreadTokenStats,
} from "../../actors/inference_actor.ts";
import { UnreadTokenBudget, type UnreadTokenHolder } from "../../actors/_unread_token_budget.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { inferenceCollector } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import type { MetricSample, ScalarSample } from "../../server/metrics_registry.ts";
import { ScriptedModel } from "../server/_fixtures.ts";
import { type FakeTimers, turns } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { isPending, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";
import { readN, slowReaderActor, textJob } from "./_slow_reader_actor.ts";

/** A one-letter token with no logprobs is estimated at 130 bytes (`tokenBytes`). */
const TOKEN_BYTES = 130;

/** A holder that releases everything it holds when evicted, and counts its evictions. */
class Holder implements UnreadTokenHolder {
  evicted = 0;
  constructor(readonly budget: UnreadTokenBudget) {}
  evict(): void {
    this.evicted++;
    this.budget.release(this.budget.heldBy(this), this);
  }
}

Deno.test("UnreadTokenBudget: a reservation that does not fit evicts the largest other holder and is taken; a holder that is itself the largest is refused", () => {
  const budget = new UnreadTokenBudget(1000);
  const [small, large, asker] = [new Holder(budget), new Holder(budget), new Holder(budget)];
  assert.ok(budget.reserve(200, small));
  assert.ok(budget.reserve(700, large));
  assert.ok(budget.reserve(50, asker));
  assert.ok(budget.reserve(100, asker), "room made by evicting the largest holder");
  assert.deepEqual([small.evicted, large.evicted, budget.evictions], [0, 1, 1]);
  assert.deepEqual([budget.heldBy(large), budget.heldBy(asker), budget.used], [0, 150, 350]);
  assert.ok(budget.reserve(600, asker));
  assert.ok(!budget.reserve(100, asker), "the asker holds the most: it is the slow one");
  assert.deepEqual([small.evicted, budget.evictions, budget.used], [0, 1, 950]);
  budget.release(750, asker);
  budget.release(200, small);
  assert.equal(budget.used, 0);
});

Deno.test("UnreadTokenBudget: a holder whose eviction frees nothing is asked once, and the reservation is refused", () => {
  const budget = new UnreadTokenBudget(100);
  const stuck: UnreadTokenHolder & { evicted: number } = {
    evicted: 0,
    evict() {
      this.evicted++;
    },
  };
  const asker = new Holder(budget);
  assert.ok(budget.reserve(90, stuck));
  assert.ok(!budget.reserve(20, asker));
  assert.deepEqual([stuck.evicted, budget.evictions, budget.used], [1, 1, 90]);
});

Deno.test("a never-reading job's finished backlog fills the budget; an honest reader that pauses while another job waits is not cut: the never-reader's tokens are dropped (slow_reader, its receipt kept) and the budget returns to 0", async () => {
  const model = new ScriptedModel();
  // Room for 30 tokens: the never-reader's 25 and the honest job's 20 do not both fit.
  const budget = new UnreadTokenBudget(TOKEN_BYTES * 30);
  const { system, timers, receipts, ref } = await slowReaderActor(model, budget);
  try {
    // The never-reader: a job queues behind it, so after the grace it runs into memory to its end.
    const hog = await submitJob(ref, textJob(model.info.cid, 25)) as TextJobHandle;
    const hogReader = hog.tokens.getReader();
    const honest = await submitJob(ref, textJob(model.info.cid, 20)) as TextJobHandle;
    timers.fireAll();
    const hogSummary = await settlesWithin(hog.done, SETTLE_GUARD_MS, "the never-reader's end");
    assert.equal(hogSummary.finishReason, "length");
    assert.equal(budget.used, 25 * TOKEN_BYTES, "its whole output waits in memory");
    // The honest reader reads 3 tokens and pauses while a third job waits for the seat.
    const honestReader = honest.tokens.getReader();
    const first = await readN(honestReader, 3);
    const waiting = await submitJob(ref, textJob(model.info.cid, 2)) as TextJobHandle;
    timers.fireAll(); // its grace: it runs into memory, finds the budget full, evicts the hog
    const summary = await settlesWithin(honest.done, SETTLE_GUARD_MS, "the honest job's end");
    assert.equal(summary.finishReason, "length", `cut: ${summary.error?.code}`);
    assert.ok(summary.receipt !== undefined, "the honest job earns its receipt");
    assert.equal(budget.evictions, 1);
    assert.equal(budget.used, 17 * TOKEN_BYTES, "only the honest job's backlog is held");
    await assert.rejects(readN(hogReader), (e: Error & { code?: string }) => {
      assert.equal(e.code, "slow_reader");
      return true;
    });
    assert.ok(
      hogSummary.receipt !== undefined,
      "the never-reader had finished: it keeps its receipt",
    );
    // The honest reader comes back: every token, in order.
    const rest = await readN(honestReader);
    assert.deepEqual([...first, ...rest].map((t) => t.index), [...Array(20).keys()]);
    assert.equal((await readN(waiting.tokens.getReader())).length, 2);
    await waiting.done;
    assert.equal(budget.used, 0, "every unread byte given back");
    const stats = await ref.ask<InferenceStats & UnreadTokenStats>({ type: "stats" });
    assert.deepEqual(
      [stats.jobsFinished, stats.jobsCancelled, receipts.length],
      [3, 0, 3],
    );
    assert.deepEqual([stats.unreadTokenBytes, stats.unreadTokenEvictions], [0, 1]);
  } finally {
    await system.shutdown();
  }
});

Deno.test("a library caller's finished, forgotten job (never read, never cancelled) is evicted when another job needs the room, and the budget returns to 0", async () => {
  const model = new ScriptedModel();
  const budget = new UnreadTokenBudget(TOKEN_BYTES * 30);
  const { system, timers, ref } = await slowReaderActor(model, budget);
  try {
    const forgotten = await submitJob(ref, textJob(model.info.cid, 28)) as TextJobHandle;
    const queued = await submitJob(ref, textJob(model.info.cid, 10)) as TextJobHandle;
    timers.fireAll();
    await settlesWithin(forgotten.done, SETTLE_GUARD_MS, "the forgotten job's end");
    assert.equal(budget.used, 28 * TOKEN_BYTES);
    // The queued job's reader pauses after one token while another job waits.
    const reader = queued.tokens.getReader();
    await readN(reader, 1);
    const third = await submitJob(ref, textJob(model.info.cid, 1)) as TextJobHandle;
    timers.fireAll();
    const summary = await settlesWithin(queued.done, SETTLE_GUARD_MS, "the queued job's end");
    assert.equal(summary.finishReason, "length", `cut: ${summary.error?.code}`);
    assert.equal(budget.evictions, 1, "the forgotten backlog made the room");
    assert.equal((await readN(reader)).length, 9);
    assert.equal((await readN(third.tokens.getReader())).length, 1);
    await third.done;
    await turns(5);
    assert.equal(budget.used, 0);
  } finally {
    await system.shutdown();
  }
});

/** Fire the earliest armed timer only (handles grow: the one armed first). */
function fireFirst(timers: FakeTimers): void {
  const [handle, timer] = [...timers.armed].sort(([a], [b]) => a - b)[0];
  timers.armed.delete(handle);
  timer.callback();
}

Deno.test("a running job that holds the most unread bytes is evicted for another: cancelled with slow_reader and no receipt, and the other is not cut", async () => {
  const model = new ScriptedModel();
  const budget = new UnreadTokenBudget(TOKEN_BYTES * 30);
  const { system, timers, receipts, ref } = await slowReaderActor(model, budget, 2);
  try {
    const hog = await submitJob(ref, textJob(model.info.cid, 40)) as TextJobHandle;
    const hogReader = hog.tokens.getReader();
    const other = await submitJob(ref, textJob(model.info.cid, 10)) as TextJobHandle;
    const queued = await submitJob(ref, textJob(model.info.cid, 2)) as TextJobHandle;
    await eventually(() => timers.armed.size === 2, "both running jobs' graces");
    fireFirst(timers); // the hog's: it reads ahead until the budget is full, then waits
    // Full: its over-budget grace is armed beside the other's grace.
    await eventually(() => timers.armed.size === 2, "the hog's over-budget grace");
    assert.ok(budget.used > 25 * TOKEN_BYTES, `the hog holds ${budget.used} bytes`);
    await turns(5);
    assert.ok(await isPending(hog.done), "the hog, holding the most, waits for its reader");
    fireFirst(timers); // the other's grace: it needs room, and the hog holds the most
    const hogSummary = await settlesWithin(hog.done, SETTLE_GUARD_MS, "the hog's end");
    assert.equal(hogSummary.error?.code, "slow_reader");
    assert.equal(hogSummary.receipt, undefined, "a running job cut earns no receipt");
    await assert.rejects(readN(hogReader), (e: Error & { code?: string }) => {
      assert.equal(e.code, "slow_reader");
      return true;
    });
    // The hog's seat went to the queued job, so nobody waits: the other job waits for its reader
    // again, which reads every token.
    assert.equal((await readN(other.tokens.getReader())).length, 10);
    const summary = await settlesWithin(other.done, SETTLE_GUARD_MS, "the other job's end");
    assert.equal(summary.finishReason, "length", `cut: ${summary.error?.code}`);
    assert.equal((await readN(queued.tokens.getReader())).length, 2);
    await queued.done;
    assert.equal(budget.used, 0);
    const stats = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual(
      [stats.jobsFinished, stats.jobsCancelled, receipts.length],
      [2, 1, 2],
    );
  } finally {
    await system.shutdown();
  }
});

// Best effort on top of the eviction above: needs `--v8-flags=--expose-gc`, which the CI
// command does not pass, so it runs only where `gc` is exposed.
const gc = (globalThis as { gc?: () => void }).gc;
Deno.test({
  name: "a finished job's unread backlog is dropped when its stream is garbage-collected unread",
  ignore: gc === undefined,
  async fn() {
    const model = new ScriptedModel();
    const budget = new UnreadTokenBudget();
    const { system, timers, ref } = await slowReaderActor(model, budget);
    try {
      let forgotten: TextJobHandle | undefined = await submitJob(
        ref,
        textJob(model.info.cid, 20),
      ) as TextJobHandle;
      const queued = await submitJob(ref, textJob(model.info.cid, 3)) as TextJobHandle;
      timers.fireAll();
      await settlesWithin(forgotten.done, SETTLE_GUARD_MS, "the forgotten job's end");
      await readN(queued.tokens.getReader());
      await queued.done;
      assert.ok(budget.used > 0);
      forgotten = undefined;
      await eventually(async () => {
        gc!();
        await turns(2);
        return budget.used === 0;
      }, "the collected stream's bytes given back");
      assert.equal(budget.evictions, 0, "given back by the finalizer, not an eviction");
    } finally {
      await system.shutdown();
    }
  },
});

Deno.test("/metrics exports the unread budget's bytes and evictions where the port reports them, and nothing for a port that does not", async () => {
  const stats = (extra: object) =>
    ({
      stats: () => Promise.resolve({ ...emptyInferenceStats(), ...extra }),
    }) as unknown as InferencePort;
  const local = await inferenceCollector(
    new InferenceGateway({
      inference: stats({ unreadTokenBytes: 2600, unreadTokenEvictions: 3 }),
    }),
  )();
  const value = (samples: readonly MetricSample[], name: string) =>
    (samples.find((s) => s.name === name) as ScalarSample | undefined)?.value;
  assert.equal(value(local, "veriflow_unread_token_bytes"), 2600);
  assert.equal(value(local, "veriflow_unread_token_evictions_total"), 3);
  const forwarding = await inferenceCollector(new InferenceGateway({ inference: stats({}) }))();
  assert.ok(!forwarding.some((s) => s.name.startsWith("veriflow_unread_token")));
});
