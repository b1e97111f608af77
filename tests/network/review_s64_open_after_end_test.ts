/**
 * Review s64 (red team of the router's failover and remote streams): once a job's `end` event
 * (summary and receipt) was read, the router dropped its reader of the job's event stream
 * (`RemoteJob.#resolve` released the lock) but never cancelled the stream. An honest worker
 * closes it after its end; a worker that keeps it open (or sends more events after the end)
 * held, for every job it ran, one of the router's outbound request slots on the connection
 * (`maxPendingRequests`, 1024) and a receive buffer of up to the stream's credit window until
 * the connection closed: past 1024 jobs every request of the router to that peer (jobs,
 * lost-end receipt asks) waited for a slot that never freed.
 *
 * Now the router reads the stream once more after the end: an event there is cancelled at once,
 * and a stream still open after `END_CLOSE_GRACE_MS` is cancelled then. An honest worker's
 * stream, which ends by itself, is never cancelled (a cancel racing its end would have the
 * worker keep the job's receipt as unsent, for a requester that has it).
 */
import assert from "node:assert/strict";
import { END_CLOSE_GRACE_MS } from "../../inference/_remote_job.ts";
import type { InferenceEvent, SubmitBody } from "../../protocols/inference_messages.ts";
import type { Identity } from "../../protocols/identity.ts";
import { jobFor, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  endEvent,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** Jobs run before the check. */
const JOBS = 3;

/** What the worker's stream does after its end event. */
type AfterEnd = "stays open" | "sends more" | "closes";

/**
 * A worker that streams each job whole with its receipt, then does `after`; `cancelled` counts
 * the router's cancels of its streams.
 */
async function workerThat(after: AfterEnd) {
  const counts = { cancelled: 0 };
  const worker = await scriptedWorker((body: SubmitBody, _n: number, identity: Identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS, receiptFor(body.job, identity, TEXT)));
    if (after === "sends more") list.push(wireToken(0));
    let i = 0;
    return new ReadableStream<InferenceEvent>({
      pull: async (c) => {
        if (i < list.length) c.enqueue(list[i++]);
        else if (after === "closes") c.close();
        else await new Promise(() => {}); // open: no close, no more events
      },
      cancel: () => {
        counts.cancelled++;
      },
    }, { highWaterMark: 0 });
  });
  return { worker, counts };
}

/** Run {@link JOBS} jobs on `r`: each as an honest worker's, its receipt to the validator. */
async function runJobs(r: Awaited<ReturnType<typeof router>>) {
  for (let k = 0; k < JOBS; k++) {
    const got = await run(r.port, jobFor(`open${k}`));
    assert.equal(got.failed, undefined);
    assert.equal(got.text, TEXT);
    assert.equal(got.summary.finishReason, "length");
    assert.ok(got.summary.receipt !== undefined);
  }
  assert.equal(r.recorder.told.length, JOBS, "each receipt reached the validator");
}

Deno.test("review s64: a job's event stream that its worker leaves open after the end event is cancelled by the router once the end is read and the close grace passed (its request slot freed); the client and the ledger outcome are as for an honest worker", async () => {
  const { worker, counts } = await workerThat("stays open");
  const r = await router([worker.toWorker]);
  try {
    await runJobs(r);
    assert.equal(counts.cancelled, 0, "cancelled before the grace");
    assert.equal(worker.toWorker.stats().pendingRequests, JOBS);
    await r.timers.advance(END_CLOSE_GRACE_MS);
    await eventually(
      () => counts.cancelled === JOBS && worker.toWorker.stats().pendingRequests === 0,
      "the router to cancel the event streams its worker left open after the end",
      { timeoutMs: 2_000 },
    );
    assert.ok(!r.workers.avoided.has(worker.key));
  } finally {
    await worker.close();
    await r.system.shutdown();
  }
});

Deno.test("review s64: a job's event stream whose worker sends another event after the end event is cancelled at once, without waiting for the close grace", async () => {
  const { worker, counts } = await workerThat("sends more");
  const r = await router([worker.toWorker]);
  try {
    await runJobs(r);
    await eventually(
      () => counts.cancelled === JOBS && worker.toWorker.stats().pendingRequests === 0,
      "the router to cancel the event streams that went on after the end",
      { timeoutMs: 2_000 },
    );
  } finally {
    await worker.close();
    await r.system.shutdown();
  }
});

Deno.test("review s64: an honest worker's event stream, which ends right after its end event, is never cancelled by the router (its receipt is not kept as unsent for a requester that has it)", async () => {
  const { worker, counts } = await workerThat("closes");
  const r = await router([worker.toWorker]);
  try {
    await runJobs(r);
    await eventually(
      () => worker.toWorker.stats().pendingRequests === 0,
      "the exchanges to end",
      { timeoutMs: 2_000 },
    );
    await r.timers.advance(END_CLOSE_GRACE_MS);
    assert.equal(counts.cancelled, 0);
  } finally {
    await worker.close();
    await r.system.shutdown();
  }
});
