/**
 * The failover of a forwarded job (`network/failover.ts`): its budget of workers, a resume refused,
 * a client's own prefix, a takeover with no prefix, and the queue hold of a worker that holds the job
 * without its first token.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_QUEUE_HOLD_MS,
  MAX_WORKERS_ASKED_PER_JOB,
  MAX_WORKERS_PER_JOB,
  type RelayedOutput,
  type ResumeOutcome,
  withFailover,
  type WorkerAttempt,
} from "../../network/failover.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  ServedModelInfo,
  StreamedToken,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { attempt, heldAttempt, summary, token, TOKENS } from "./_failover_fixture.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { assert as assertQueueHold, assertEquals } from "../server/_assert.ts";
import { TooManyJobsError } from "../../actors/inference_errors.ts";
import { DEFAULT_FIRST_TOKEN_TIMEOUT_MS } from "../../inference/remote_port.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { eventually } from "../server/_fixtures.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import {
  job,
  routerOver,
  script,
  served,
  TOKENS as TOKENS_QUEUE_HOLD,
} from "./_scripted_workers.ts";

// ---- failover -------------------------------------------------------------------------------------
// The failover budget of a forwarded job (`network/failover.ts`): workers that turn a resume away
// as full spend none of it; the job still asks a bounded number of workers.

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

Deno.test("failover: a client that cancels while the worker finishes anyway (its last tokens unread in the relay) ends cancelled, without the worker's receipt, and is settled as the client's cancel over the tokens it got (where the worker's cancelled receipt over them is asked for: review s80 bill F1)", async () => {
  const first = attempt(0, 0);
  // The worker's end came with all its tokens: a receipt over more than the client will read.
  first.handle.done = Promise.resolve({ ...summary, receipt: { tokenCount: TOKENS } as never });
  const settled: { summary: JobSummary; relayed: RelayedOutput }[] = [];
  const handle = withFailover({
    first,
    settle: (s, _attempt, relayed) => {
      settled.push({ summary: s, relayed });
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
  // Settled as the client's cancel: no receipt of the worker's to check, the client's two tokens.
  assert.equal(settled.length, 1, "the late cancel was not settled: nobody asks for a receipt");
  assert.equal(settled[0].summary.finishReason, "cancelled");
  assert.equal(settled[0].summary.receipt, undefined);
  assert.equal(settled[0].summary.error, undefined);
  assert.equal(settled[0].relayed.tokens, 2);
  assert.equal(settled[0].relayed.output, "ab");
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

// ---- a client's own prefix ------------------------------------------------------------------------
// Failover (`network/failover.ts`): a job submitted with the client's own prefix
// (`SubmitOptions.resume`) is a resume from its first worker on, and a worker that cannot reproduce
// that prefix refuses it as any worker that takes a job over does.

/**
 * A job the client submits after its own 2 tokens; its first worker (0) refuses that prefix,
 * and each later worker asked either refuses it too or, from `reproducer` on, streams on.
 */
async function clientPrefix(reproducer: number) {
  const lost: number[] = [];
  const blamed: number[] = [];
  const handle = withFailover({
    first: refusesPrefix(0),
    prefix: [100, 101],
    settle: (s) => s,
    lost: (worker) => void lost.push(worker[0]),
    unreproduced: (worker) => void blamed.push(worker[0]),
    resume(exclude, prefix): Promise<ResumeOutcome> {
      const worker = exclude.length;
      if (worker > 3) return Promise.resolve({ kind: "none" });
      return Promise.resolve({
        kind: "started",
        attempt: worker >= reproducer ? attempt(worker, prefix.length) : refusesPrefix(worker),
      });
    },
  });
  const got: StreamedToken[] = [];
  let error: unknown;
  try {
    for await (const t of handle.tokens) got.push(t);
  } catch (e) {
    error = e;
  }
  return { got, error, lost, blamed, done: await handle.done };
}

Deno.test("s47 failover: a first worker that cannot reproduce the client's own prefix refused a resume; it is not reported lost, and once a later worker reproduces the prefix it is reported unreproduced", async () => {
  const { got, error, lost, blamed, done } = await clientPrefix(1);
  assert.equal(error, undefined);
  assert.deepEqual(got.map((t) => t.index), [2, 3, 4, 5]);
  assert.equal(done.finishReason, "length");
  // Reported lost, the router kept it off the model as one that failed a job it started.
  assert.deepEqual(lost, [], "an honest refusal of a prefix was taken for a failure");
  assert.deepEqual(blamed, [0]);
});

Deno.test("s47 failover: a client prefix every worker refuses blames none of them (it may be invented) and ends with the refusal's code", async () => {
  const { got, error, lost, blamed, done } = await clientPrefix(Infinity);
  assert.equal(got.length, 0);
  assert.equal((error as VeriflowError).code, "resume_mismatch");
  assert.match((error as Error).message, /could not reproduce the delivered tokens/);
  assert.deepEqual(lost, [], "honest workers that refused an invented prefix were blamed");
  assert.deepEqual(blamed, []);
  assert.equal(done.error?.code, "resume_mismatch");
});

// ---- a takeover handed no prefix ------------------------------------------------------------------
// Failover (`network/failover.ts`): a worker handed no prefix to replay cannot refuse one. A worker
// that takes a job over before any token was delivered (the first worker lost after its `start`, or
// a hedge beside a worker that holds the job queued) is submitted the job from its beginning, with
// no `resume`; a `resume_mismatch` or `invalid_resume` from it is a failure of its own, as any
// other code after its `start`, and it is reported lost (the router keeps it off the model), not
// parked as an honest refuser of a prefix.

/** A worker that started the job and fails it with `code` before its first token. */
function failsAtOnce(worker: number, code: string): WorkerAttempt {
  const failing = attempt(worker, 0);
  failing.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) => controller.error(new VeriflowError(code, "no prefix of mine")),
  }, { highWaterMark: 0 });
  return failing;
}

/** A first worker lost after its `start`, before any token. */
function lostAtOnce(worker: number): WorkerAttempt {
  const lost = attempt(worker, 0);
  lost.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) => controller.error(new ConnectionClosedError("worker gone")),
  }, { highWaterMark: 0 });
  return lost;
}

for (const code of ["resume_mismatch", "invalid_resume"]) {
  Deno.test(`s54 failover: a worker that takes a job over before any token (no prefix to replay) and fails it with "${code}" is reported lost, not taken for a refuser of a prefix`, async () => {
    const lost: number[] = [];
    const blamed: number[] = [];
    const prefixes: number[] = [];
    const handle = withFailover({
      first: lostAtOnce(0),
      settle: (s) => s,
      lost: (worker) => void lost.push(worker[0]),
      unreproduced: (worker) => void blamed.push(worker[0]),
      resume(exclude, prefix): Promise<ResumeOutcome> {
        prefixes.push(prefix.length);
        const worker = exclude.length;
        return Promise.resolve({
          kind: "started",
          attempt: worker === 1 ? failsAtOnce(1, code) : attempt(worker, prefix.length),
        });
      },
    });
    const got: StreamedToken[] = [];
    for await (const t of handle.tokens) got.push(t);
    assert.deepEqual(got.map((t) => t.index), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(prefixes, [0, 0], "both takeovers were handed no prefix");
    // Worker 1 was handed nothing to reproduce: its code is its own failure.
    assert.deepEqual(lost, [0, 1]);
    assert.deepEqual(blamed, [], "worker 1 refused no prefix");
  });
}

/** A clock whose timers fire only when the test advances it. */
function fakeTimers() {
  let now = 0;
  const due: { at: number; fn: () => void; id: number }[] = [];
  let next = 1;
  const timers: ConnectionTimers = {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = next++;
      due.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (id: unknown) => {
      const i = due.findIndex((t) => t.id === id);
      if (i >= 0) due.splice(i, 1);
    },
  } as unknown as ConnectionTimers;
  const advance = (ms: number) => {
    now += ms;
    for (const t of due.filter((t) => t.at <= now)) {
      due.splice(due.indexOf(t), 1);
      t.fn();
    }
  };
  return { timers, advance };
}

Deno.test(`s54 failover: a hedge asked beside a worker that holds the job before any token (no prefix to replay) and fails with "resume_mismatch" is reported lost`, async () => {
  const { timers, advance } = fakeTimers();
  // The first worker holds the job (started, no token) until released.
  const { attempt: first, release } = heldAttempt(0, 0);
  const lost: number[] = [];
  const hedgeAsked = Promise.withResolvers<void>();
  const handle = withFailover({
    first,
    settle: (s) => s,
    lost: (worker) => void lost.push(worker[0]),
    queueHoldMs: 1_000,
    timers,
    resume(): Promise<ResumeOutcome> {
      hedgeAsked.resolve();
      return Promise.resolve({ kind: "started", attempt: failsAtOnce(1, "resume_mismatch") });
    },
  });
  const reader = handle.tokens.getReader();
  const firstRead = reader.read();
  await Promise.resolve();
  advance(1_000);
  await hedgeAsked.promise;
  // Let the hedge's failure be taken in before the first worker streams on.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  release();
  assert.equal((await firstRead).value?.index, 0);
  await reader.cancel();
  assert.deepEqual(lost, [1], "the hedge's own failure was not reported");
});

// ---- queue hold -----------------------------------------------------------------------------------
// The queue hold of a forwarded job (`network/failover.ts`): a worker that holds a job without its
// first token ("you are at place 1") is not waited on alone past the hold. Another worker is asked
// to take the job over beside it; the first of the two to send a token keeps the job. A hedge that
// cannot run the job at once is cancelled and the job keeps its place. The router's timers are a
// fake clock the tests advance: no real time is waited on.

/**
 * A worker that starts every job and says it is at place 1 of its queue, for ever (its `queued`
 * repeats keep the job from looking stalled), until its requester cancels it; with `permits`,
 * it runs a job once `release` lets it out of the queue.
 */
class PlaceOnePort implements InferencePort {
  submits = 0;
  cancelled = 0;
  readonly #inner = new StallingPort(served, script, { permits: 0 });
  submit(j: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    options?.onQueued?.(1);
    options?.signal?.addEventListener("abort", () => this.cancelled++, { once: true });
    return this.#inner.submit(j, options);
  }
  /** Let the queued jobs run. */
  release(n: number): void {
    this.#inner.release(n);
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([served]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.reject(new Error("not asked"));
  }
}

/** A worker that refuses every job as full. */
class FullPort implements InferencePort {
  submits = 0;
  submit(_j: TextJob): Promise<InferenceHandle> {
    this.submits++;
    return Promise.reject(new TooManyJobsError("full"));
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([served]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.reject(new Error("not asked"));
  }
}

/** Whether `promise` has settled (after the turns the fake clock already let run). */
function settledFlag(promise: Promise<unknown>): { settled: boolean } {
  const flag = { settled: false };
  promise.then(() => flag.settled = true, () => flag.settled = true);
  return flag;
}

async function readAll(reader: ReadableStreamDefaultReader<StreamedToken>) {
  const tokens: StreamedToken[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return tokens;
    tokens.push(value);
  }
}

Deno.test("a worker that keeps a job at place 1 of its queue holds it for the queue hold, not the first-token timeout: a free worker takes it over, the client gets every token once, and the next job goes to the free worker first", async () => {
  const placeOne = new PlaceOnePort();
  const free = new StallingPort(served, script);
  const t = await routerOver([placeOne, free]);
  try {
    const handle = await t.port.submit(job("held"));
    assertEquals(placeOne.submits, 1, "the worker that claims the place is picked first");
    const reader = handle.tokens.getReader();
    const first = reader.read();
    const flag = settledFlag(first);
    await t.timers.advance(DEFAULT_QUEUE_HOLD_MS - 1);
    assertQueueHold(!flag.settled, "moved before the queue hold");
    await t.timers.advance(1);
    // The fake clock stands still from here, far short of the first-token timeout: only the
    // hold could move the job.
    await eventually(() => flag.settled, "the job moved to the free worker at the hold");
    assertQueueHold(t.timers.now() < DEFAULT_FIRST_TOKEN_TIMEOUT_MS);
    const head = await first;
    assertQueueHold(!head.done);
    const tokens = [head.value, ...await readAll(reader)];
    assertEquals(tokens.map((x) => x.index), script.map((x) => x.index));
    assertEquals(tokens.map((x) => x.tokenId), script.map((x) => x.tokenId));
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assertEquals(summary.usage.completionTokens, TOKENS_QUEUE_HOLD);
    await eventually(() => placeOne.cancelled === 1, "the held job cancelled on its worker");
    // Full against its hello's word: asked last for a while, so the next job runs at once.
    const next = await t.port.submit(job("next"));
    assertEquals(placeOne.submits, 1, "the next job asked the worker that held the last");
    assertEquals((await readAll(next.tokens.getReader())).length, TOKENS_QUEUE_HOLD);
    assertEquals(free.submits, 2);
    assertEquals(jobId(job("next")), (await next.done).jobId);
  } finally {
    await t.close();
  }
});

Deno.test("a job queued on a busy worker keeps its place when no other worker can run it at once: the hedge refused as full, the job runs where it queued", async () => {
  const busy = new PlaceOnePort();
  const full = new FullPort();
  const t = await routerOver([busy, full]);
  try {
    const handle = await t.port.submit(job("keeps-place"));
    const reader = handle.tokens.getReader();
    const first = reader.read();
    const flag = settledFlag(first);
    await t.timers.advance(DEFAULT_QUEUE_HOLD_MS);
    await eventually(() => full.submits === 1, "the other worker asked at the hold");
    // Its refusal as full ends the hedge: the job stays queued where it was, past further holds.
    await t.timers.advance(DEFAULT_QUEUE_HOLD_MS - 1);
    assertQueueHold(!flag.settled, "the job left its place for nothing");
    busy.release(TOKENS_QUEUE_HOLD);
    const head = await first;
    assertQueueHold(!head.done);
    const tokens = [head.value, ...await readAll(reader)];
    assertEquals(tokens.map((x) => x.index), script.map((x) => x.index));
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assertEquals([busy.submits, busy.cancelled], [1, 0]);
  } finally {
    await t.close();
  }
});
