/**
 * A job whose consumer stops reading, while other jobs wait for its model's seats
 * (`actors/inference_job.ts`, `actors/_unread_token_budget.ts`, `actors/inference_actor.ts`):
 * after a grace it runs on into memory and frees its seat when it ends, counted against the
 * node's unread budget; past the budget it keeps its seat for a second grace and is then
 * cancelled with `slow_reader` (no receipt). With nobody waiting nothing changes. Review s72 (ws)
 * finding 1: one non-reading WebSocket held every seat of the node for 30 s.
 *
 * The graces run on `FakeTimers`: a test fires them by hand, nothing sleeps.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type InferenceStats,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel } from "../server/_fixtures.ts";
import { turns } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { isPending, SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";
import { readN, slowReaderActor, textJob } from "./_slow_reader_actor.ts";

Deno.test("with one seat and a job queued, a job whose reader stopped reading finishes into memory after the grace, the queued job starts, and the slow reader still gets every token", async () => {
  const model = new ScriptedModel();
  const { system, timers, receipts, ref, budget } = await slowReaderActor(model);
  try {
    const slow = await submitJob(ref, textJob(model.info.cid, 12)) as TextJobHandle;
    const slowReader = slow.tokens.getReader();
    const first = await readN(slowReader, 2); // reads two tokens, then stops reading
    const places: number[] = [];
    const queued = await submitJob(ref, textJob(model.info.cid, 5), {
      onQueued: (p) => places.push(p),
    }) as TextJobHandle;
    assert.deepEqual(places, [1], "the second job waits for the one seat");
    assert.equal(budget.used, 0, "no memory used before the grace ends");
    timers.fireAll(); // the slow reader's grace, started once a job waits
    const slowSummary = await settlesWithin(slow.done, SETTLE_GUARD_MS, "the slow job's end");
    assert.equal(slowSummary.finishReason, "length");
    assert.equal(slowSummary.usage.completionTokens, 12);
    assert.ok(slowSummary.receipt !== undefined, "a job run into memory earns its receipt");
    assert.ok(budget.used > 0, "its unread tokens are counted against the budget");
    await eventually(() => places.includes(0), "the queued job's start");
    const queuedTokens = await readN(queued.tokens.getReader());
    assert.equal(queuedTokens.length, 5);
    // The slow reader reads at last: every token, in order, as a reading client gets them.
    const rest = await readN(slowReader);
    const reference = await submitJob(ref, textJob(model.info.cid, 12)) as TextJobHandle;
    const expected = await readN(reference.tokens.getReader());
    assert.deepEqual([...first, ...rest], expected);
    assert.equal(budget.used, 0, "read tokens give their bytes back");
    await reference.done;
    const stats = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([stats.jobsFinished, stats.jobsCancelled, receipts.length], [3, 0, 3]);
  } finally {
    await system.shutdown();
  }
});

Deno.test("with nothing queued, a job whose reader stopped reading still waits for it: no grace, no memory, no step ahead", async () => {
  const model = new ScriptedModel();
  const { system, timers, ref, budget } = await slowReaderActor(model);
  try {
    const job = await submitJob(ref, textJob(model.info.cid, 8)) as TextJobHandle;
    const reader = job.tokens.getReader();
    const first = await readN(reader, 1);
    await turns(20);
    assert.equal(timers.armed.size, 0, "no grace runs while nobody waits for the seat");
    timers.fireAll();
    await turns(20);
    assert.equal(model.steps, 1, "the model computed only what the reader asked for");
    assert.equal(budget.used, 0);
    assert.ok(await isPending(job.done), "the job holds its seat, waiting for its reader");
    const rest = await readN(reader);
    assert.equal(first.length + rest.length, 8);
    assert.equal((await job.done).finishReason, "length");
  } finally {
    await system.shutdown();
  }
});

Deno.test("a job that runs on into memory stops at the node's unread budget, holds its seat a second grace, then is cancelled with slow_reader and earns no receipt", async () => {
  const model = new ScriptedModel();
  // Room for a few tokens only (a one-letter token with no logprobs is estimated at 130 bytes).
  const budget = new UnreadTokenBudget(800);
  const { system, timers, receipts, ref } = await slowReaderActor(model, budget);
  try {
    const slow = await submitJob(ref, textJob(model.info.cid, 40)) as TextJobHandle;
    const slowReader = slow.tokens.getReader();
    const places: number[] = [];
    const queued = await submitJob(ref, textJob(model.info.cid, 3), {
      onQueued: (p) => places.push(p),
    }) as TextJobHandle;
    timers.fireAll(); // the slow reader's grace
    // It reads ahead until the budget is full, then waits: the second grace is armed.
    await eventually(() => timers.armed.size === 1, "the over-budget grace timer");
    assert.ok(budget.used > 0 && budget.used <= budget.limit, `used ${budget.used}`);
    const stepsAtBudget = model.steps;
    assert.ok(stepsAtBudget < 40, "the job did not run to its end past the budget");
    await turns(20);
    assert.equal(model.steps, stepsAtBudget, "past the budget, the job waits for its reader");
    assert.ok(await isPending(slow.done), "and holds its seat");
    assert.ok(!places.includes(0), "the queued job still waits");
    timers.fireAll();
    const summary = await settlesWithin(slow.done, SETTLE_GUARD_MS, "the slow job's end");
    assert.equal(summary.finishReason, "error");
    assert.equal(summary.error?.code, "slow_reader");
    assert.equal(summary.receipt, undefined, "a job cut for its slow reader earns no receipt");
    await assert.rejects(readN(slowReader), (e: Error & { code?: string }) => {
      assert.equal(e.code, "slow_reader");
      return true;
    });
    assert.equal(budget.used, 0, "its unread tokens were dropped and their bytes given back");
    await eventually(() => places.includes(0), "the queued job's start");
    assert.equal((await readN(queued.tokens.getReader())).length, 3);
    await queued.done;
    const stats = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual(
      [stats.jobsFinished, stats.jobsCancelled, stats.jobsFailed, receipts],
      [1, 1, 0, [queued.jobId]],
    );
  } finally {
    await system.shutdown();
  }
});

// A real model (the project's tiny GPT, one batch seat): a sampled job with top logprobs whose
// reader stalls and reads the rest only after it ran into memory streams exactly what a reading
// client of the same job gets.
const dir = await Deno.makeTempDir({ prefix: "veriflow-slow-reader-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

Deno.test("over a real one-seat model, a slow reader's job runs into memory for a queued job and the slow reader then gets tokens, logprobs and text identical to a reading client's", async () => {
  const model = await TextModel.load(dir, { intraOpThreads: 1, maxBatch: 1, worker: false });
  const { system, timers, ref, budget } = await slowReaderActor(model);
  try {
    assert.equal(model.batchCapacity, 1);
    const job = (n: string): TextJob => ({
      kind: "text",
      model: model.info.cid,
      prompt: "The quick brown fox",
      params: params({ maxTokens: 20, temperature: 0.9, seed: 7, stop: [] }),
      nonce: n,
    });
    const slow = await submitJob(ref, job("slow"), { topLogprobs: 5 }) as TextJobHandle;
    const slowReader = slow.tokens.getReader();
    const first = await readN(slowReader, 3);
    const places: number[] = [];
    const queued = await submitJob(ref, textJob(model.info.cid, 4), {
      onQueued: (p) => places.push(p),
    }) as TextJobHandle;
    timers.fireAll(); // the slow reader's grace
    await settlesWithin(slow.done, SETTLE_GUARD_MS, "the slow job's end");
    await eventually(() => places.includes(0), "the queued job's start");
    assert.equal((await readN(queued.tokens.getReader())).length, 4);
    const rest = await readN(slowReader);
    const reading = await submitJob(ref, job("reading"), { topLogprobs: 5 }) as TextJobHandle;
    const expected = await readN(reading.tokens.getReader());
    assert.equal(expected.length, 20);
    assert.deepEqual([...first, ...rest], expected);
    assert.equal(budget.used, 0);
  } finally {
    await system.shutdown();
    await model.dispose();
  }
});
