/**
 * The failover budget of a forwarded job (`network/failover.ts`): workers that turn a resume
 * away as full spend none of it; the job still asks a bounded number of workers.
 */
import assert from "node:assert/strict";
import {
  MAX_WORKERS_ASKED_PER_JOB,
  MAX_WORKERS_PER_JOB,
  type ResumeOutcome,
  withFailover,
  type WorkerAttempt,
} from "../../network/failover.ts";
import type { JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { attempt, summary, token, TOKENS } from "./_failover_fixture.ts";

/**
 * A job whose first worker is lost after 2 tokens; `full` other workers then refuse its resume
 * as full (`too_many_jobs`) before the next one takes it.
 */
async function lostThenFull(full: number) {
  const asked: number[] = [];
  const handle = withFailover({
    first: attempt(0, 0, 2),
    settle: (s) => s,
    resume(exclude, prefix): Promise<ResumeOutcome> {
      const worker = exclude.length; // each lookup gives the next worker not yet asked
      asked.push(worker);
      if (worker <= full) {
        const error = new VeriflowError("too_many_jobs", "full");
        return Promise.resolve({ kind: "refused", worker: new Uint8Array([worker]), error });
      }
      return Promise.resolve({ kind: "started", attempt: attempt(worker, prefix.length) });
    },
  });
  const got: StreamedToken[] = [];
  let error: unknown;
  try {
    for await (const t of handle.tokens) got.push(t);
  } catch (e) {
    error = e;
  }
  return { got, error, asked, done: await handle.done };
}

Deno.test("failover: workers that refuse the resume as full spend none of the job's tries: the job resumes on the fifth worker asked", async () => {
  const { got, error, asked, done } = await lostThenFull(MAX_WORKERS_PER_JOB);
  assert.equal(error, undefined);
  assert.deepEqual(got.map((t) => t.index), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(asked, [1, 2, 3, 4, 5]);
  assert.equal(done.finishReason, "length");
});

Deno.test("failover: a job asks at most MAX_WORKERS_ASKED_PER_JOB workers however many are full, and ends with the lost worker's code", async () => {
  const { got, error, asked, done } = await lostThenFull(100);
  assert.equal(got.length, 2);
  assert.equal((error as VeriflowError).code, "connection_closed");
  assert.match((error as Error).message, /lost after 2 tokens.*refused \(too_many_jobs\)/);
  // The lost worker and the full ones asked after it.
  assert.equal(asked.length + 1, MAX_WORKERS_ASKED_PER_JOB);
  assert.equal(done.error?.code, "connection_closed");
});

Deno.test("failover: a client that cancels while the job is between workers gets done cancelled, and the worker that starts meanwhile is cancelled", async () => {
  const resumeAsked = Promise.withResolvers<void>();
  const resumeAnswer = Promise.withResolvers<ResumeOutcome>();
  let nextCancelled = false;
  const next = attempt(1, 2);
  next.handle.cancel = () => void (nextCancelled = true);
  // The first worker's summary once lost: its failure, which the client's cancel must not get.
  const lostSummary: JobSummary = {
    ...summary,
    finishReason: "error",
    error: { code: "connection_closed", message: "worker gone" },
  };
  const first = attempt(0, 0, 2);
  first.handle.done = Promise.resolve(lostSummary);
  const handle = withFailover({
    first,
    settle: (s) => s,
    resume: () => {
      resumeAsked.resolve();
      return resumeAnswer.promise;
    },
  });
  const reader = handle.tokens.getReader();
  await reader.read();
  await reader.read();
  const third = reader.read(); // the first worker is lost here: the next one is asked
  third.catch(() => {});
  await resumeAsked.promise;
  handle.cancel(); // the client leaves meanwhile
  const done = await handle.done;
  assert.equal(done.finishReason, "cancelled");
  assert.equal(done.error, undefined);
  assert.equal(done.usage.completionTokens, 2);
  resumeAnswer.resolve({ kind: "started", attempt: next }); // that worker started anyway
  await third.catch(() => {});
  assert.ok(nextCancelled, "its job is cancelled as it starts");
});

Deno.test("failover: the workers that refused the job at its start count against its one budget and are not asked to resume it", async () => {
  // Two workers refused the job at its start at a cost (say, a failing model): with the first
  // worker lost, the job may spend one more, and never on them.
  const refusedAtStart = [new Uint8Array([8]), new Uint8Array([9])];
  const excludes: number[][] = [];
  const handle = withFailover({
    first: attempt(0, 0, 2),
    before: { workers: refusedAtStart, spent: 2 },
    settle: (s) => s,
    resume(exclude) {
      excludes.push(exclude.map((key) => key[0]));
      const error = new VeriflowError("model_load_failed", "its model fails");
      return Promise.resolve({ kind: "refused", worker: new Uint8Array([excludes.length]), error });
    },
  });
  const reader = handle.tokens.getReader();
  await reader.read();
  await reader.read();
  await assert.rejects(() => reader.read(), { code: "connection_closed" });
  assert.deepEqual(excludes, [[8, 9, 0]], "one resume asked, excluding those already tried");
  assert.equal((await handle.done).error?.code, "connection_closed");
});

Deno.test("failover: a client that cancels while the worker finishes anyway (its last tokens unread in the relay) ends cancelled, without the worker's receipt, and the worker is not judged", async () => {
  const first = attempt(0, 0);
  // The worker's end came with all its tokens: a receipt over more than the client will read.
  first.handle.done = Promise.resolve({ ...summary, receipt: { tokenCount: TOKENS } as never });
  let settled = 0;
  const handle = withFailover({
    first,
    settle: (s) => {
      settled++;
      return s;
    },
    resume: () => Promise.resolve({ kind: "none" }),
  });
  const reader = handle.tokens.getReader();
  await reader.read();
  await reader.read();
  await reader.cancel();
  const done = await handle.done;
  assert.equal(done.finishReason, "cancelled");
  assert.equal(done.receipt, undefined);
  assert.equal(done.error, undefined);
  assert.equal(done.usage.completionTokens, 2);
  assert.equal(settled, 0, "nothing to check the receipt against");
});

Deno.test("failover: an error that is not a worker's coded failure (a bug on the router's own side) ends the job, blames no worker and asks no other", async () => {
  const first = attempt(0, 0);
  let served = 0;
  first.handle.tokens = new ReadableStream<StreamedToken>({
    pull(controller) {
      if (served === 2) return controller.error(new TypeError("the router's own bug"));
      controller.enqueue(token(served++));
    },
  }, { highWaterMark: 0 });
  const lost: Uint8Array[] = [];
  const asked: number[] = [];
  const handle = withFailover({
    first,
    settle: (s) => s,
    lost: (worker) => void lost.push(worker),
    resume(exclude, prefix): Promise<ResumeOutcome> {
      asked.push(exclude.length);
      return Promise.resolve({ kind: "started", attempt: attempt(1, prefix.length) });
    },
  });
  const got: StreamedToken[] = [];
  let error: unknown;
  try {
    for await (const t of handle.tokens) got.push(t);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TypeError);
  assert.equal(got.length, 2);
  assert.deepEqual(lost, [], "a worker was blamed for the router's error");
  assert.deepEqual(asked, []);
});

/** A worker that takes the job over and refuses its prefix before its first token. */
function refusesPrefix(worker: number): WorkerAttempt {
  const refusing = attempt(worker, 0);
  refusing.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) =>
      controller.error(new VeriflowError("resume_mismatch", "not what my model gives")),
  }, { highWaterMark: 0 });
  return refusing;
}

/** A job lost after 2 tokens whose takeover worker 1 refuses, then `next` answers. */
async function refusedThen(next: (prefix: readonly number[]) => ResumeOutcome) {
  const blamed: number[] = [];
  let asked = 0;
  const handle = withFailover({
    first: attempt(0, 0, 2),
    settle: (s) => s,
    unreproduced: (worker) => blamed.push(worker[0]),
    resume(_exclude, prefix): Promise<ResumeOutcome> {
      asked++;
      if (asked === 1) return Promise.resolve({ kind: "started", attempt: refusesPrefix(1) });
      return Promise.resolve(next(prefix));
    },
  });
  const got: StreamedToken[] = [];
  try {
    for await (const t of handle.tokens) got.push(t);
  } catch { /* the job's end is in `done` */ }
  return { got, blamed, done: await handle.done };
}

Deno.test("failover: a worker that refused a takeover is reported unreproduced once a later worker streams on from the same tokens", async () => {
  const { got, blamed, done } = await refusedThen((prefix) => ({
    kind: "started",
    attempt: attempt(2, prefix.length),
  }));
  assert.deepEqual(got.map((t) => t.index), [0, 1, 2, 3, 4, 5]);
  assert.equal(done.finishReason, "length");
  assert.deepEqual(blamed, [1]);
});

Deno.test("failover: a prefix no later worker takes blames none of the workers that refused it (it may be the lost worker's invention)", async () => {
  const { got, blamed, done } = await refusedThen(() => ({ kind: "none" }));
  assert.equal(got.length, 2);
  assert.equal(done.error?.code, "connection_closed");
  assert.deepEqual(blamed, []);
});
