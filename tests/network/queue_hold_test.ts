/**
 * The queue hold of a forwarded job (`network/failover.ts`): a worker that holds a job without
 * its first token ("you are at place 1") is not waited on alone past the hold. Another worker
 * is asked to take the job over beside it; the first of the two to send a token keeps the job.
 * A hedge that cannot run the job at once is cancelled and the job keeps its place. The router's
 * timers are a fake clock the tests advance: no real time is waited on.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { TooManyJobsError } from "../../actors/inference_errors.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  StreamedToken,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import { DEFAULT_FIRST_TOKEN_TIMEOUT_MS } from "../../inference/remote_port.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../../network/failover.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { eventually } from "../server/_fixtures.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { job, routerOver, script, served, TOKENS } from "./_scripted_workers.ts";

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
    assert(!flag.settled, "moved before the queue hold");
    await t.timers.advance(1);
    // The fake clock stands still from here, far short of the first-token timeout: only the
    // hold could move the job.
    await eventually(() => flag.settled, "the job moved to the free worker at the hold");
    assert(t.timers.now() < DEFAULT_FIRST_TOKEN_TIMEOUT_MS);
    const head = await first;
    assert(!head.done);
    const tokens = [head.value, ...await readAll(reader)];
    assertEquals(tokens.map((x) => x.index), script.map((x) => x.index));
    assertEquals(tokens.map((x) => x.tokenId), script.map((x) => x.tokenId));
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assertEquals(summary.usage.completionTokens, TOKENS);
    await eventually(() => placeOne.cancelled === 1, "the held job cancelled on its worker");
    // Full against its hello's word: asked last for a while, so the next job runs at once.
    const next = await t.port.submit(job("next"));
    assertEquals(placeOne.submits, 1, "the next job asked the worker that held the last");
    assertEquals((await readAll(next.tokens.getReader())).length, TOKENS);
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
    assert(!flag.settled, "the job left its place for nothing");
    busy.release(TOKENS);
    const head = await first;
    assert(!head.done);
    const tokens = [head.value, ...await readAll(reader)];
    assertEquals(tokens.map((x) => x.index), script.map((x) => x.index));
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assertEquals([busy.submits, busy.cancelled], [1, 0]);
  } finally {
    await t.close();
  }
});
