/**
 * A forwarded job's stream as the router reads it (`inference/_remote_job.ts`,
 * `inference/remote_port.ts`): its end (a `length` ending, the usage it claims, a token after the
 * last, an end it cannot read), a stream left open after the end, and a worker's word that the router
 * stopped reading.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import {
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { INFO } from "./_router_fixture.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  routerPort,
  TEXT,
  token,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import { Workers } from "./_router_doubles.ts";
import { assertEquals } from "../server/_assert.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import {
  END_CLOSE_GRACE_MS,
  END_EVENT_TIMEOUT_MS,
  MIN_READER_STALL_MS,
} from "../../inference/_remote_job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import {
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  signed,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { eventually } from "../server/_fixtures.ts";
import type { Identity } from "../../protocols/identity.ts";

// ---- length claim ---------------------------------------------------------------------------------
// The router's check of a job's `length` ending (`inference/_remote_job.ts`): a token may end a job
// for its length only at `maxTokens − 1` or where the prompt and the output fill the context window
// the worker's `start` names (`docs/PROTOCOL.md`, "Failover"). A start that names no window cannot
// have filled one: its worker (an honest one runs with no context limit then,
// `actors/inference_actor.ts`) must not cut the client's job short by leaving the field out.

/** A worker's events for `job`: a start naming no context window, then tokens 0…2, the last ending the job for its length. */
function cutShort(job: TextJob): InferenceEvent[] {
  const wire = (i: number, finishReason?: "length"): InferenceEvent => {
    const { index, tokenId, text } = token(i);
    return { kind: "token", index, tokenId, text, ...(finishReason ? { finishReason } : {}) };
  };
  return [
    // `INFO` names no `contextLength`.
    { kind: "start", jobId: jobId(job), model: INFO, promptTokens: 1 },
    wire(0),
    wire(1),
    wire(2, "length"),
    {
      kind: "end",
      summary: {
        jobId: jobId(job),
        finishReason: "length",
        usage: { promptTokens: 1, completionTokens: 3 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      },
    },
  ];
}

Deno.test("a token that ends the job with length before max_tokens, from a worker whose start names no context window, breaks the stream: the job resumes on another worker and the cutter is kept off the model", async () => {
  const system = new ActorSystem({ name: "review-s48-length" });
  const cutter = await linked((atWorker, _submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      const list = cutShort(body.job);
      let i = 0;
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            pull: async (c) => {
              if (i < list.length) c.enqueue(list[i++]);
              else await new Promise(() => {});
            },
          }, { highWaterMark: 0 }),
          identity,
          body,
        ),
      );
    });
  });
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const workers = new Workers([cutter.toWorker, honest.toWorker]);
  try {
    const port = await routerPort(system, workers, new BusyRefusals({ now: () => 0 }));
    const handle = await port.submit(jobFor("a"));
    const got: number[] = [];
    for await (const t of handle.tokens) got.push(t.index);
    const summary = await handle.done;
    assert.deepEqual(
      got,
      Array.from({ length: TOKENS }, (_, i) => i),
      "the client's job was cut short as if it had filled a context window nobody named",
    );
    assert.equal(summary.finishReason, "length");
    assert.deepEqual(honestPort.resumes, [2], "the honest worker resumed after tokens 0 and 1");
    assert.ok(workers.avoided.has(cutter.key), "the worker that cut the job was not kept off it");
  } finally {
    await cutter.close();
    await honest.close();
    await system.shutdown();
  }
});

// ---- usage claim ----------------------------------------------------------------------------------
// What a worker's `end` event may claim of a forwarded job's usage (`inference/_remote_job.ts`,
// `inference/remote_port.ts`): a worker that streams a job's tokens and then says it generated far
// more. Its count reached the remote port's summary and its `tokensGenerated` (the router's
// heartbeat and `/metrics`); the tokens this side was streamed are what it generated for this side.
// The worker is an in-memory connection that writes raw `inference.event`s.

const CLAIMED = 1_000_000;

Deno.test("s50: a worker whose end event claims more completion tokens than it streamed is counted for the tokens it streamed, in the job's summary and in the port's tokensGenerated", async () => {
  const worker = await linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const list: InferenceEvent[] = [
        { kind: "start", jobId: jobId(body.job), model: INFO, promptTokens: 1 },
        ...Array.from(
          { length: TOKENS },
          (_, i): InferenceEvent => ({ kind: "token", ...token(i) }),
        ),
        {
          kind: "end",
          summary: {
            jobId: jobId(body.job),
            finishReason: "length",
            usage: { promptTokens: 1, completionTokens: CLAIMED },
            timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
          },
        },
      ];
      let i = 0;
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            pull: (c) => {
              if (i < list.length) c.enqueue(list[i++]);
              else c.close();
            },
          }, { highWaterMark: 0 }),
          identity,
          body,
        ),
      );
    });
  });
  try {
    const remote = new RemoteInferencePort(worker.toWorker, { tokensPerEvent: 1 });
    const handle = await remote.submit(jobFor("claims"));
    let got = 0;
    for await (const _ of handle.tokens) got++;
    assertEquals(got, TOKENS);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(summary.usage.completionTokens, TOKENS, "the job's usage: the tokens streamed");
    assertEquals((await remote.stats()).tokensGenerated, TOKENS, "the port's count of tokens");
  } finally {
    await worker.close();
  }
});

// ---- after last token -----------------------------------------------------------------------------
// A worker that breaks the protocol after the job's last token — it sends another token where its
// `end` event (summary, receipt) is due — is not judged. Every other broken stream (a token out of
// order, one past `max_tokens`, an end without a last token) keeps the worker off the model
// (`WORKER_FAULT_CODES`); this one ends the job `inference_stream_invalid` on the router's side
// (`RemoteJob.#awaitEnd`), nothing reaches the validator, and the worker stays first for the next
// job, which it breaks the same way. So did one that sent its last token and then nothing, its
// connection up (cut after `END_EVENT_TIMEOUT_MS`), or closed or failed its stream there.
//
// Now each is a broken stream where the end was due (`RemoteJob.#brokeAfterLastToken`): the
// client, which has every token, is told the job ended as its last token said, with no receipt
// and the break as the summary's `error` (as a finished job whose receipt is withheld is); no
// receipt is read, so nothing pays the worker; and the router keeps it off the model.

/** A worker that streams the whole job, then one more token, then its end with a receipt. */
function overrunner() {
  return scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push({ kind: "token", index: TOKENS, tokenId: 1, text: "!" });
    list.push(endEvent(body.job, TOKENS + 1, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
}

// Failed before the fix: "the worker that broke its stream after the last token stayed in favour"
// (the client's done said error inference_stream_invalid; nothing was paid to anyone).
Deno.test({
  name: "a worker that sends a token after the job's last one (where its end event " +
    "is due) broke its stream: the client keeps the whole text, nothing is paid, and the worker " +
    "is kept off the model like any worker whose stream broke the protocol",
  fn: async () => {
    const worker = await overrunner();
    const r = await router([worker.toWorker]);
    try {
      const got = await run(r.port, jobFor("o"));
      assert.equal(got.failed, undefined);
      assert.equal(got.text, TEXT);
      assert.equal(got.summary.receipt, undefined);
      assert.equal(got.summary.finishReason, "length", "the client was told its answer failed");
      assert.equal(got.summary.error?.code, "inference_stream_invalid");
      // No receipt reaches the validator; the worker's signed stream does, for a replay of
      // every token (no takeover replays a finished job's tokens).
      assert.deepEqual(r.recorder.told.map((m) => m.type), ["stream_claim"]);
      assert.ok(
        r.workers.avoided.has(worker.key),
        "the worker that broke its stream after the last token stayed in favour",
      );
    } finally {
      await worker.close();
      await r.system.shutdown();
    }
  },
});

/** Every token of the job on the wire, then what `after` gives (a stream left open: nothing). */
function lastTokenThen(after: "nothing" | "close" | "fail") {
  return scriptedWorker((body) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    if (after === "close") return closedAfter(list);
    return events(
      list,
      after === "fail"
        ? Promise.resolve(new VeriflowError("internal_error", "the prover died"))
        : undefined,
    );
  });
}

/** A stream of `list`, one event per pull, then closed. */
function closedAfter(list: InferenceEvent[]): ReadableStream<InferenceEvent> {
  let i = 0;
  return new ReadableStream<InferenceEvent>({
    pull: (c) => {
      if (i < list.length) c.enqueue(list[i++]);
      else c.close();
    },
  }, { highWaterMark: 0 });
}

for (const after of ["nothing", "close", "fail"] as const) {
  // Before the fix the job ended `error` (inference_stream_invalid, or the worker's code), and
  // the worker stayed first for the next job.
  Deno.test(`a worker whose last token is followed by ${after === "nothing" ? "nothing (its connection up) for the end event's timeout" : after === "close" ? "the close of its stream, without an end event" : "an error of its own"} broke its stream: the client keeps the whole text, told it ended as its last token said, nothing is paid, and the worker is kept off the model`, async () => {
    const worker = await lastTokenThen(after);
    const r = await router([worker.toWorker]);
    try {
      const job: TextJob = jobFor(`t-${after}`);
      const handle = await r.port.submit(job);
      let text = "";
      for await (const t of handle.tokens) text += t.text;
      assert.equal(text, TEXT);
      if (after === "nothing") {
        let ended = false;
        handle.done.then(() => (ended = true));
        await r.timers.advance(END_EVENT_TIMEOUT_MS - 1);
        assert.ok(!ended, "the job ended before the end event's timeout");
        await r.timers.advance(1);
      }
      const summary = await handle.done;
      assert.equal(summary.finishReason, "length");
      assert.equal(summary.error?.code, "inference_stream_invalid");
      assert.equal(summary.receipt, undefined);
      // No receipt reaches the validator; the worker's signed stream does, for a replay of
      // every token (no takeover replays a finished job's tokens).
      assert.deepEqual(r.recorder.told.map((m) => m.type), ["stream_claim"]);
      assert.ok(r.workers.avoided.has(worker.key), "the worker stayed in favour");
    } finally {
      await worker.close();
      await r.system.shutdown();
    }
  });
}

// ---- malformed end --------------------------------------------------------------------------------
// A worker that streams every token of a job and then sends an end event its requester cannot read
// (a body the wire schema refuses: `invalid_body`) broke the inference protocol where its end was
// due, as one that sends another event there. Its stream is judged as such
// (`inference_stream_invalid`): kept off the model, paid nothing; the client keeps its whole
// answer. Before the fix the refused end was taken for a lost connection (any error but the
// worker's own `error` frame or a stream break): the job ended with `invalid_body` and the worker
// went unjudged, free to do it on every job of the model.

Deno.test("a worker whose end event is refused (invalid_body) after every token is judged a broken stream: kept off the model, paid nothing", async () => {
  const bad = await scriptedWorker((body) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    // An end whose summary is not a summary: the requester's wire refuses the frame.
    list.push({ kind: "end", summary: { jobId: 7 } } as unknown as InferenceEvent);
    return events(list);
  });
  const r = await router([bad.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("malformed-end"));
    let text = "";
    for await (const t of handle.tokens) text += t.text;
    const summary = await handle.done;
    assert.equal(text.length, TOKENS, "the client has its whole answer");
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.receipt, undefined);
    assert.equal(summary.error?.code, "inference_stream_invalid", "judged as a broken stream");
    assert.deepEqual(r.recorder.told.filter((m) => m.type === "receipt"), [], "paid");
    await eventually(() => r.workers.avoided.has(bad.key), "the worker kept off the model");
  } finally {
    await bad.close();
    await r.system.shutdown();
  }
});

// ---- open after end -------------------------------------------------------------------------------
// Once a job's `end` event (summary and receipt) was read, the router dropped its reader of the
// job's event stream (`RemoteJob.#resolve` released the lock) but never cancelled the stream. An
// honest worker closes it after its end; a worker that keeps it open (or sends more events after
// the end) held, for every job it ran, one of the router's outbound request slots on the connection
// (`maxPendingRequests`, 1024) and a receive buffer of up to the stream's credit window until the
// connection closed: past 1024 jobs every request of the router to that peer (jobs, lost-end
// receipt asks) waited for a slot that never freed.
//
// Now the router reads the stream once more after the end: an event there is cancelled at once,
// and a stream still open after `END_CLOSE_GRACE_MS` is cancelled then. An honest worker's
// stream, which ends by itself, is never cancelled (a cancel racing its end would have the
// worker keep the job's receipt as unsent, for a requester that has it).

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

Deno.test("a job's event stream that its worker leaves open after the end event is cancelled by the router once the end is read and the close grace passed (its request slot freed); the client and the ledger outcome are as for an honest worker", async () => {
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

Deno.test("a job's event stream whose worker sends another event after the end event is cancelled at once, without waiting for the close grace", async () => {
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

Deno.test("an honest worker's event stream, which ends right after its end event, is never cancelled by the router (its receipt is not kept as unsent for a requester that has it)", async () => {
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

// ---- reader stalled -------------------------------------------------------------------------------
// A worker's word that the requester stopped reading (`reader_stalled`) is believed whenever the
// read in progress has waited less than `READER_STALL_GRACE_MS`, however steadily the router has
// read. An honest worker says it only after its requester gave it no credit for its reader stall
// timeout (60 s by default): a router that reads each token as it comes never earns it. A worker
// that starts each job and at once says so ends every client's job it is picked for with an error,
// no other worker is asked, and it stays in favour, first for the next job.
//
// Now the router believes the worker only when it left the job's events unread for
// `MIN_READER_STALL_MS` over its last two credit windows of reads (`inference/_unread_time.ts`):
// what it knows of its own of how long the worker may have gone without credit.
// `worker_choice_test.ts`'s test of a worker that says so now has its client really stop reading.

/** A worker that streams the job's first two tokens and then fails it with its own error. */
function dropper() {
  return scriptedWorker((body) =>
    events(
      [start(body.job), wireToken(0), wireToken(1)],
      Promise.resolve(new VeriflowError("internal_error", "gone")),
    )
  );
}

/** A worker that takes each job over (its `start` confirms the resume) and says reader_stalled. */
function falseStallingResumer() {
  return scriptedWorker((body) =>
    events(
      [start(body.job, { resumedFrom: body.resume?.length ?? 0 })],
      Promise.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
    )
  );
}

/** A worker that starts each job, streams its first `tokens` tokens, and says reader_stalled. */
function falseStaller(tokens: number) {
  return scriptedWorker((body) =>
    events(
      [start(body.job), ...Array.from({ length: tokens }, (_, i) => wireToken(i))],
      Promise.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
    )
  );
}

for (const tokens of [0, 2]) {
  // Failed before the fix: the client's stream failed with reader_stalled after `tokens` tokens
  // (text "" or "ab", honestPort.resumes []), and the worker was not kept off the model.
  Deno.test({
    name: `a worker that says the requester stopped reading after ${tokens} tokens, ` +
      `while the router read every token at once (no time passed), is lost: the job resumes on ` +
      `the honest worker, the client gets the whole text, and the liar is kept off the model`,

    fn: async () => {
      const liar = await falseStaller(tokens);
      const honestPort = new Honest();
      const honest = await honestWorker(honestPort);
      const r = await router([liar.toWorker, honest.toWorker]);
      try {
        const got = await run(r.port, jobFor(`s${tokens}`));
        assert.equal(got.failed, undefined, "the client's stream failed");
        assert.equal(got.text, TEXT);
        assert.deepEqual(honestPort.resumes, [tokens === 0 ? undefined : tokens]);
        assert.equal(got.summary.finishReason, "length");
        assert.ok(r.workers.avoided.has(liar.key), "the liar stayed in favour");
      } finally {
        await liar.close();
        await honest.close();
        await r.system.shutdown();
      }
    },
  });
}

// Failed before the fix: the client's stream failed with reader_stalled after "ab" (the honest
// worker was never asked: honestPort.resumes []), and the liar was not kept off the model.
Deno.test({
  name: "a worker that takes a job over after a lost one and at once says the " +
    "requester stopped reading (the router read every token as it came) is lost in turn: the " +
    "job resumes on the third worker, and the client gets the whole text",

  fn: async () => {
    const lost = await dropper();
    const liar = await falseStallingResumer();
    const honestPort = new Honest();
    const honest = await honestWorker(honestPort);
    const r = await router([lost.toWorker, liar.toWorker, honest.toWorker]);
    try {
      const got = await run(r.port, jobFor("r"));
      assert.equal(liar.submissions.length, 1);
      assert.equal(got.failed, undefined, "the client's stream failed");
      assert.equal(got.text, TEXT);
      assert.deepEqual(honestPort.resumes, [2]);
      assert.ok(r.workers.avoided.has(liar.key), "the liar stayed in favour");
    } finally {
      await lost.close();
      await liar.close();
      await honest.close();
      await r.system.shutdown();
    }
  },
});

/**
 * A worker that sends each job's start and every token but the last at once (its credit window
 * holds them), then, once `gaveUp` is resolved, says the requester stopped reading.
 */
async function bufferedStaller() {
  const gaveUp = Promise.withResolvers<VeriflowError>();
  const worker = await scriptedWorker((body) =>
    events(
      [start(body.job), ...Array.from({ length: TOKENS - 1 }, (_, i) => wireToken(i))],
      gaveUp.promise,
    )
  );
  return {
    worker,
    gaveUp: () =>
      gaveUp.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
  };
}

for (const pausedMs of [60_000, MIN_READER_STALL_MS - 1]) {
  const believed = pausedMs >= MIN_READER_STALL_MS;
  Deno.test(`a worker that says the requester stopped reading after the client stopped for ${pausedMs} ms, behind events the router then reads at once, is ${believed ? "believed: the client's job ends with it, no other worker is asked, and the worker stays in favour" : "not believed: the job resumes on the honest worker, and the worker is kept off the model"}`, async () => {
    const { worker, gaveUp } = await bufferedStaller();
    const honestPort = new Honest();
    const honest = await honestWorker(honestPort);
    const r = await router([worker.toWorker, honest.toWorker]);
    try {
      const handle = await r.port.submit(jobFor(`b${pausedMs}`));
      const reader = handle.tokens.getReader();
      let text = (await reader.read()).value!.text;
      // The client stops reading; the worker's events wait in the router's buffer, and it gives
      // up on the client. Then the client reads the buffered tokens, no time passing.
      await r.timers.advance(pausedMs);
      gaveUp();
      let failed: string | undefined;
      try {
        for (let result = await reader.read(); !result.done; result = await reader.read()) {
          text += result.value.text;
        }
      } catch (error) {
        failed = (error as { code?: string }).code;
      }
      const summary = await handle.done;
      if (believed) {
        assert.equal(failed, "reader_stalled");
        assert.equal(text, TEXT.slice(0, TOKENS - 1));
        assert.equal(summary.error?.code, "reader_stalled");
        assert.deepEqual(honestPort.resumes, []);
        assert.ok(!r.workers.avoided.has(worker.key), "an honest worker was kept off the model");
      } else {
        assert.equal(failed, undefined);
        assert.equal(text, TEXT);
        assert.deepEqual(honestPort.resumes, [TOKENS - 1]);
        assert.ok(r.workers.avoided.has(worker.key), "the liar stayed in favour");
      }
    } finally {
      await worker.close();
      await honest.close();
      await r.system.shutdown();
    }
  });
}
