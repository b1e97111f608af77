/**
 * Review s71, finding 1: a worker that only had the job queued (a hedge took it over) or refused
 * it as full at its start spent nothing of the job. A failover asks it last — after every worker
 * not tried yet — but asks it: before, it was never asked again, and a job whose takeover was lost
 * ended "no other connected worker serves the model" while that worker was there.
 */
import assert from "node:assert/strict";
import { type ResumeOutcome, withFailover } from "../../network/failover.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { TooManyJobsError } from "../../actors/inference_errors.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";
import { attempt, heldAttempt, TOKENS } from "./_failover_fixture.ts";
import { jobFor, TEXT } from "./_hostile_worker_fixture.ts";
import {
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** Read the whole job: the positions the client got and the error its stream ended with. */
async function readAll(handle: InferenceHandle): Promise<{ got: number[]; error?: unknown }> {
  const got: number[] = [];
  try {
    for await (const t of handle.tokens) got.push(t.index);
  } catch (error) {
    return { got, error };
  }
  return { got };
}

/** A fake `resume` over `workers` that starts the first one not excluded (lowest key first). */
function firstFree(
  workers: number[],
  asked: number[][],
  lostAfter: Record<number, number> = {},
): (exclude: readonly Uint8Array[], prefix: readonly number[]) => Promise<ResumeOutcome> {
  return (exclude, prefix) => {
    const excluded = exclude.map((w) => w[0]);
    asked.push(excluded);
    const free = workers.find((w) => !excluded.includes(w));
    if (free === undefined) return Promise.resolve({ kind: "none" });
    return Promise.resolve({
      kind: "started",
      attempt: attempt(free, prefix.length, lostAfter[free]),
    });
  };
}

Deno.test("s71 failover: the worker a hedge took a queued job from is asked last, not never: the job resumes on a worker never tried first, then on it", async () => {
  const timers = new FakeTimers();
  const { attempt: first } = heldAttempt(0, 0); // worker 0 keeps the job queued, never released
  const asked: number[][] = [];
  const resumeAfterLoss = firstFree([0, 1, 2], asked, { 2: 4 });
  const counted: string[] = []; // what the router's counters hear
  const handle = withFailover({
    first,
    settle: (s) => s,
    queueHoldMs: 1_000,
    timers,
    failedOver: (cause) => void counted.push(`failover ${cause}`),
    hedged: (outcome) => void counted.push(`hedge ${outcome}`),
    resume(exclude, prefix, hedge): Promise<ResumeOutcome> {
      // The hedge: worker 1 runs the job at once and is lost after 3 tokens.
      if (hedge !== undefined) {
        return Promise.resolve({ kind: "started", attempt: attempt(1, 0, 3) });
      }
      return resumeAfterLoss(exclude, prefix);
    },
  });
  const reading = readAll(handle);
  while (timers.armed.size === 0) await turns(1); // the queue hold runs
  timers.fireAll();
  const { got, error } = await reading;
  assert.equal(error, undefined, `the job failed: ${(error as Error)?.message}`);
  assert.deepEqual(got, [...Array(TOKENS).keys()], "every position once, in order");
  // Worker 2 (never tried) is asked before worker 0 (it had the job queued); once 2 is lost too,
  // worker 0 takes it over.
  assert.deepEqual(asked, [[1, 0], [1, 2, 0], [1, 2]], "the queued worker was asked, and last");
  assert.equal((await handle.done).finishReason, "length");
  assert.deepEqual(counted, ["hedge took_over", "failover lost", "failover lost"]);
});

Deno.test("s71 failover: a worker that refused the job as full at its start is asked to resume it when it is the only one left; one that refused it at a cost is not", async () => {
  const asked: number[][] = [];
  const handle = withFailover({
    // Worker 0 refused the job as full, worker 9 at a cost (its model failing); 1 took it.
    first: attempt(1, 0, 3),
    before: { workers: [new Uint8Array([9])], spent: 1, full: [new Uint8Array([0])] },
    settle: (s) => s,
    resume: firstFree([0, 1, 9], asked),
  });
  const { got, error } = await readAll(handle);
  assert.equal(error, undefined, `the job failed: ${(error as Error)?.message}`);
  assert.deepEqual(got, [...Array(TOKENS).keys()]);
  assert.deepEqual(asked, [[9, 1, 0], [9, 1]], "asked last, after a lookup without it");
});

Deno.test("s71 failover: a worker asked last that refuses as full again ends that try, not the job, and is not asked again; the client is told the workers were full, not that none serves the model", async () => {
  const asked: number[][] = [];
  const handle = withFailover({
    first: attempt(1, 0, 3),
    before: { workers: [], spent: 0, full: [new Uint8Array([0]), new Uint8Array([2])] },
    settle: (s) => s,
    resume(exclude): Promise<ResumeOutcome> {
      const excluded = exclude.map((w) => w[0]);
      asked.push(excluded);
      // Workers 0 and 2 are still full; 0 refuses again, 2 is not there any more.
      if (!excluded.includes(0)) {
        const error = new TooManyJobsError("still full");
        return Promise.resolve({ kind: "refused", worker: new Uint8Array([0]), error });
      }
      return Promise.resolve({ kind: "none" });
    },
  });
  const { got, error } = await readAll(handle);
  assert.deepEqual(got, [0, 1, 2]);
  assert.ok(error instanceof VeriflowError);
  assert.deepEqual(
    asked,
    [[1, 0, 2], [1], [1, 0]],
    "each asked-last worker asked at most once more, after the others",
  );
  assert.doesNotMatch(error.message, /no other connected worker serves the model/);
  assert.match(error.message, /full or had it queued/, error.message);
});

Deno.test("s71 router: a worker that refused a job as full at its start takes it over when the worker that started it is lost and no other is there", async () => {
  // The router's first choice is full for the job's start, then has room: it resumes the job.
  const full = await scriptedWorker((body, n, identity) => {
    if (n === 0) throw new TooManyJobsError("full");
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [start(body.job, { resumedFrom: k })];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
  const crashing = await crashingWorker([wireToken(0), wireToken(1), wireToken(2)]);
  const r = await router([full.toWorker, crashing.toWorker]);
  try {
    const got = await run(r.port, jobFor("full-at-start"), crashing);
    assert.equal(got.failed, undefined, `the job failed: ${got.summary.error?.message}`);
    assert.deepEqual(got.positions, [...Array(TOKENS).keys()]);
    assert.equal(got.text, TEXT);
    assert.equal(full.submissions.length, 2, "the full worker was asked again, to resume");
    assert.equal(full.submissions[1].resume?.length, 3);
  } finally {
    await full.close();
    await crashing.close();
    await r.system.shutdown();
  }
});
