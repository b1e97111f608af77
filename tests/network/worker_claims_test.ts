/**
 * What a worker can claim to the router and make the client see or be billed: text and receipts of a
 * takeover, the prompt's tokens, errors about the job after its start, its own failure or its job's
 * end; and whether the router holds it to account.
 */
import assert from "node:assert/strict";
import { VeriflowError } from "../../protocols/errors.ts";
import { ManualTimers, settle } from "../protocols/_helpers.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  type TestWorker,
  TEXT,
  token,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
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
import { ActorSystem } from "../../actors/actor_system.ts";
import { NFKC_MAX_EXPANSION } from "../../inference/remote_port.ts";
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import {
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { INFO } from "./_router_fixture.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

// ---- routing more ---------------------------------------------------------------------------------
// The router, continued: what a worker can make the client see or be billed, and whether the router
// holds it to account. Workers are in-memory connections that write raw `inference.event`s (the
// hostile ones) or serve a port (the honest one); the router's clocks are fake.

// 1. A worker that took a job over and signs a receipt that fails only over the text.

/** A worker that streams the job's first two tokens and then fails it with its own error. */
function dropper(): Promise<TestWorker> {
  return scriptedWorker((body) =>
    events(
      [start(body.job), wireToken(0), wireToken(1)],
      Promise.resolve(new VeriflowError("internal_error", "gone")),
    )
  );
}

/**
 * A worker that takes jobs over and streams the rest with altered text ("X" for each token),
 * signing a receipt over the honest whole text; `refuseFirst`: it refuses its first job as full.
 */
function alterer(refuseFirst = false): Promise<TestWorker> {
  return scriptedWorker((body, n, identity) => {
    if (refuseFirst && n === 0) throw new VeriflowError("too_many_jobs", "full");
    const from = body.resume?.length ?? 0;
    // It says the prefix's true text (`resumedText`), so a receipt that fails over the text is over
    // its own tokens' (a taker that says none is not asked last for it: review s81 vfotext F3).
    const resumed = from > 0 ? { resumedFrom: from, resumedText: TEXT.slice(0, from) } : {};
    const list: InferenceEvent[] = [start(body.job, resumed)];
    for (let i = from; i < TOKENS; i++) list.push(wireToken(i, "X"));
    list.push(endEvent(body.job, TOKENS - from, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
}

Deno.test("s45 more: a worker that takes a job over, streams altered text and signs a receipt over other text is not forgiven its earlier refusals: it stays asked last", async () => {
  const a = await dropper();
  const b = await alterer(true);
  const honestPort = new Honest();
  const c = await honestWorker(honestPort);
  const r = await router([b.toWorker]);
  try {
    // b refuses a job as full (no other worker yet): asked last for a while.
    await assert.rejects(r.port.submit(jobFor("full")), { code: "too_many_jobs" });
    assert.deepEqual(r.busy.askedLast(), [b.key]);
    // a starts the next job and fails it; b, asked last but the only one left, takes it over.
    r.workers.connections.unshift(a.toWorker);
    const got = await run(r.port, jobFor("j1"));
    assert.equal(got.text, "abXXXX", "what the client got");
    assert.equal(got.summary.finishReason, "length");
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(b.submissions.length, 2);
    // Its receipt was withheld: the job it took is no job it ran to its end for the client.
    assert.ok(r.busy.askedLast().includes(b.key), "b was forgiven for a withheld receipt");
    // The next job goes to c, not back to b.
    r.workers.connections.push(c.toWorker);
    const next = await run(r.port, jobFor("j2"));
    assert.equal(next.text, TEXT);
    assert.equal(b.submissions.length, 2, "b was asked first again");
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await r.system.shutdown();
  }
});

Deno.test("s45 more: a worker that takes a job over and signs a receipt that fails only over the text is asked last to take the next job over", async () => {
  const a = await dropper();
  const b = await alterer();
  const honestPort = new Honest();
  const c = await honestWorker(honestPort);
  const r = await router([a.toWorker, b.toWorker]);
  try {
    const got = await run(r.port, jobFor("j1"));
    assert.equal(got.text, "abXXXX");
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.equal(
      r.recorder.told.filter((m) => m.type === "receipt").length,
      0,
      "the receipt reached the validator",
    );
    // Not kept off the model: the text before the resume came from a worker that signed none
    // of it, so which of the two altered the text is not known here.
    assert.ok(!r.workers.avoided.has(b.key));
    // A fresh dropper starts the next job, and b and c could take it over: c is asked.
    const d = await dropper();
    try {
      r.workers.connections.splice(0, r.workers.connections.length, d.toWorker, b.toWorker);
      r.workers.connections.push(c.toWorker);
      const next = await run(r.port, jobFor("j2"));
      assert.equal(next.text, TEXT);
      assert.deepEqual(honestPort.resumes, [2], "c did not take the job over");
      assert.equal(b.submissions.length, 1, "b was asked to take it over first");
    } finally {
      await d.close();
    }
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await r.system.shutdown();
  }
});

// 2. The worker's claim of the prompt's size.

Deno.test("s45 more: a worker's claim of the prompt's tokens is bounded in what the client is told by the model's window it stated (less one) and by the most a normalizer can grow the prompt's bytes (s79 F1, vlate F4)", async () => {
  const inflate = 1_000_000;
  const window = 256;
  const w = await scriptedWorker((body) =>
    events([
      start(body.job, { promptTokens: inflate, model: { ...INFO, contextLength: window } }),
      ...Array.from({ length: TOKENS }, (_, i) => wireToken(i)),
      endEvent(body.job, TOKENS, undefined, inflate),
    ])
  );
  const r = await router([w.toWorker]);
  try {
    const got = await run(r.port, jobFor("p")); // prompt "hi": 2 bytes
    assert.equal(got.text, TEXT);
    // "hi" and one marker, each byte grown at most NFKC_MAX_EXPANSION times: 33, under 255.
    const bound = Math.min(window - 1, NFKC_MAX_EXPANSION * ("hi".length + 1));
    assert.equal(got.handle.promptTokens, bound);
    assert.equal(got.summary.usage.promptTokens, bound);
  } finally {
    await w.close();
    await r.system.shutdown();
  }
});

Deno.test("s45 more: an honest worker's count of the prompt's tokens reaches the client as it is", async () => {
  const w = await scriptedWorker((body) =>
    events([
      start(body.job, { promptTokens: 2 }),
      ...Array.from({ length: TOKENS }, (_, i) => wireToken(i)),
      endEvent(body.job, TOKENS, undefined, 2),
    ])
  );
  const r = await router([w.toWorker]);
  try {
    const got = await run(r.port, jobFor("p"));
    assert.equal(got.handle.promptTokens, 2);
    assert.equal(got.summary.usage.promptTokens, 2);
  } finally {
    await w.close();
    await r.system.shutdown();
  }
});

// 3. A started job failed with an error about the job or its requester.

for (const code of ["context_length_exceeded", "invalid_generation_params", "empty_prompt"]) {
  Deno.test(`s45 more: a worker that starts a job and then fails it with an error about the job (${code}) contradicts its own start: the job resumes on the honest worker, and the worker is kept off the model`, async () => {
    const hostile = await scriptedWorker((body) =>
      events(
        [start(body.job), wireToken(0), wireToken(1)],
        Promise.resolve(new VeriflowError(code, "says the job is bad")),
      )
    );
    const honestPort = new Honest();
    const honest = await honestWorker(honestPort);
    const r = await router([hostile.toWorker, honest.toWorker]);
    try {
      const got = await run(r.port, jobFor("c"));
      assert.equal(got.failed, undefined);
      assert.equal(got.text, TEXT);
      assert.deepEqual(honestPort.resumes, [2]);
      assert.ok(r.workers.avoided.has(hostile.key));
    } finally {
      await hostile.close();
      await honest.close();
      await r.system.shutdown();
    }
  });
}

/**
 * A worker that streams two tokens, then, when `fail` is resolved, says the requester stopped
 * reading.
 */
async function readerStaller() {
  const fail = Promise.withResolvers<VeriflowError>();
  const worker = await scriptedWorker((body) =>
    events([start(body.job), wireToken(0), wireToken(1)], fail.promise)
  );
  return {
    worker,
    fail: () => fail.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
  };
}

Deno.test("s45 more: a worker that says the requester stopped reading while the router had been waiting on it for its next token is lost: the job resumes on the honest worker, and the worker is kept off the model", async () => {
  const { worker, fail } = await readerStaller();
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const r = await router([worker.toWorker, honest.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("s"));
    const reader = handle.tokens.getReader();
    let text = "";
    for (let i = 0; i < 2; i++) text += (await reader.read()).value!.text;
    // The client reads on, and the worker sends nothing for 30 s (under the stall timeout).
    const next = reader.read();
    await r.timers.advance(30_000);
    fail();
    for (let result = await next; !result.done; result = await reader.read()) {
      text += result.value.text;
    }
    assert.equal(text, TEXT);
    assert.deepEqual(honestPort.resumes, [2]);
    assert.equal((await handle.done).finishReason, "length");
    assert.ok(r.workers.avoided.has(worker.key));
  } finally {
    await worker.close();
    await honest.close();
    await r.system.shutdown();
  }
});

Deno.test("s45 more: a worker that says the requester stopped reading when the router had stopped reading ends the client's job, and stays in favour", async () => {
  const { worker, fail } = await readerStaller();
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const r = await router([worker.toWorker, honest.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("s"));
    const reader = handle.tokens.getReader();
    for (let i = 0; i < 2; i++) await reader.read();
    // The client stops reading for a minute; the worker gives up on it meanwhile.
    await r.timers.advance(60_000);
    fail();
    await settle();
    await assert.rejects(reader.read(), { code: "reader_stalled" });
    assert.equal((await handle.done).error?.code, "reader_stalled");
    assert.deepEqual(honestPort.resumes, []);
    assert.ok(!r.workers.avoided.has(worker.key));
  } finally {
    await worker.close();
    await honest.close();
    await r.system.shutdown();
  }
});

Deno.test("s45 more: a worker asked to take a job over beside one that holds it, that starts it and then calls it bad (context_length_exceeded), is kept off the model", async () => {
  const holder = await scriptedWorker((body) => events([start(body.job)]));
  const hedge = await scriptedWorker((body) =>
    events(
      [start(body.job)],
      Promise.resolve(new VeriflowError("context_length_exceeded", "says the job is bad")),
    )
  );
  const r = await router([holder.toWorker, hedge.toWorker], new ManualTimers(), 30_000);
  try {
    const handle = await r.port.submit(jobFor("h"));
    const reader = handle.tokens.getReader();
    const next = reader.read();
    next.catch(() => {});
    await r.timers.advance(30_000); // the queue hold: the hedge is asked, starts, and fails
    await settle();
    assert.equal(hedge.submissions.length, 1);
    handle.cancel();
    await handle.done;
    assert.ok(r.workers.avoided.has(hedge.key), "the hedge stayed in favour");
    assert.ok(!r.workers.avoided.has(holder.key));
  } finally {
    await holder.close();
    await hedge.close();
    await r.system.shutdown();
  }
});

// ---- failover more --------------------------------------------------------------------------------
// Failover, continued (`network/failover.ts`, `network/network_inference_port.ts`,
// `network/busy_refusals.ts`, `inference/_remote_job.ts`): what a worker can claim about its own
// failure or its job's end, and what the router sees for itself. Workers are in-memory connections
// that write raw `inference.event`s (the hostile ones) or serve a port (the honest one).

/** A worker that answers each job with the stream `script` gives. */
function scriptedWorkerFailoverMore(
  script: (body: SubmitBody, atWorker: { close(): Promise<void> }) => ReadableStream,
): Promise<TestWorker> {
  return linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      return Promise.resolve().then(() => signed(script(body, atWorker), identity, body));
    });
  });
}

/** A stream of `list`, one event per pull, then `then` (fail, close, or stay open). */
function eventsFailoverMore(
  list: InferenceEvent[],
  then: (c: ReadableStreamDefaultController<InferenceEvent>) => Promise<void> | void = () =>
    new Promise(() => {}),
): ReadableStream<InferenceEvent> {
  let i = 0;
  return new ReadableStream<InferenceEvent>({
    pull: async (c) => {
      if (i < list.length) c.enqueue(list[i++]);
      else await then(c);
    },
  }, { highWaterMark: 0 });
}

function startFailoverMore(job: TextJob, contextLength?: number): InferenceEvent {
  const model = contextLength === undefined ? INFO : { ...INFO, contextLength };
  return { kind: "start", jobId: jobId(job), model, promptTokens: 1 };
}

function wireTokenFailoverMore(i: number, finishReason?: "stop" | "length"): InferenceEvent {
  const { index, tokenId, text } = token(i);
  const reason = finishReason ?? token(i).finishReason;
  return { kind: "token", index, tokenId, text, ...(reason ? { finishReason: reason } : {}) };
}

function end(job: TextJob, finishReason: "stop" | "length", tokens: number): InferenceEvent {
  return {
    kind: "end",
    summary: {
      jobId: jobId(job),
      finishReason,
      usage: { promptTokens: 1, completionTokens: tokens },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    },
  };
}

async function setup(script: Parameters<typeof scriptedWorkerFailoverMore>[0]) {
  const system = new ActorSystem({ name: "review-s47-more" });
  const hostile = await scriptedWorkerFailoverMore(script);
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const workers = new Workers([hostile.toWorker, honest.toWorker]);
  let now = 0;
  const busy = new BusyRefusals({ now: () => now });
  const { port, recorder } = await spawnRouter(system, workers, { tokensPerEvent: 1 }, busy);
  const close = async () => {
    await hostile.close();
    await honest.close();
    await system.shutdown();
  };
  const tick = (ms: number) => void (now += ms);
  return { port, hostile, honest, honestPort, workers, recorder, busy, tick, close };
}

/** Read a job to its end: the indices the client got, and how it ended. */
async function runFailoverMore(port: NetworkInferencePort, job: TextJob) {
  const handle = await port.submit(job);
  const got: number[] = [];
  const reasons: (string | undefined)[] = [];
  let failed: string | undefined;
  try {
    for await (const t of handle.tokens) {
      got.push(t.index);
      reasons.push(t.finishReason);
    }
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  const summary = await handle.done;
  return { got, reasons, failed, summary };
}

const WHOLE = Array.from({ length: TOKENS }, (_, i) => i);

// (1) A worker's own error frame after its `start`, whatever code it names.
for (const code of ["connection_closed", "peer_timeout", "too_many_jobs", "busy"]) {
  Deno.test(`s47 failover: a worker that fails a job it started with its own error frame "${code}" (its connection up) is kept off the model, not only asked last: the code is its claim, not what the router saw`, async () => {
    const t = await setup((body) =>
      eventsFailoverMore(
        [startFailoverMore(body.job), wireTokenFailoverMore(0), wireTokenFailoverMore(1)],
        (c) => c.error(new VeriflowError(code, "said the worker")),
      )
    );
    try {
      const { got, failed, summary } = await runFailoverMore(t.port, jobFor("a"));
      assert.deepEqual(got, WHOLE, "the job resumed on the honest worker");
      assert.equal(failed, undefined);
      assert.equal(summary.finishReason, "length");
      assert.deepEqual(t.honestPort.resumes, [2]);
      assert.ok(
        t.workers.avoided.has(t.hostile.key),
        `a worker that picked "${code}" for its own failure was only asked last`,
      );
    } finally {
      await t.close();
    }
  });
}

Deno.test("s47 failover: a worker whose connection really closes under a started job is asked last, not kept off the model", async () => {
  const t = await setup((body, atWorker) =>
    eventsFailoverMore([
      startFailoverMore(body.job),
      wireTokenFailoverMore(0),
      wireTokenFailoverMore(1),
    ], async () => {
      await atWorker.close();
      await new Promise(() => {});
    })
  );
  try {
    const { got, failed } = await runFailoverMore(t.port, jobFor("a"));
    assert.deepEqual(got, WHOLE);
    assert.equal(failed, undefined);
    assert.equal(t.workers.avoided.has(t.hostile.key), false, "an honest loss was punished");
    assert.deepEqual(t.busy.askedLast(), [t.hostile.key]);
  } finally {
    await t.close();
  }
});

// (2) The job's finish reason: what the router saw, not what the worker's end event says.
Deno.test("s47 failover: an end event whose finish reason contradicts the last token's (stop after a token that ended the job at max_tokens with length) is not what the client is told", async () => {
  const t = await setup((body) =>
    eventsFailoverMore([
      startFailoverMore(body.job),
      ...WHOLE.map((i) => wireTokenFailoverMore(i)),
      end(body.job, "stop", TOKENS),
    ])
  );
  try {
    const { got, reasons, summary } = await runFailoverMore(t.port, jobFor("a"));
    assert.deepEqual(got, WHOLE);
    assert.equal(reasons[TOKENS - 1], "length");
    assert.equal(summary.finishReason, "length", "the worker's end event overrode the token's");
  } finally {
    await t.close();
  }
});

Deno.test("s47 failover: a token that ends the job with length before max_tokens, the context window its start names far from full, breaks the stream: the job resumes on another worker", async () => {
  const t = await setup((body) =>
    eventsFailoverMore([
      startFailoverMore(body.job, 2048),
      wireTokenFailoverMore(0),
      wireTokenFailoverMore(1),
      wireTokenFailoverMore(2, "length"),
      end(body.job, "length", 3),
    ])
  );
  try {
    const { got, failed, summary } = await runFailoverMore(t.port, jobFor("a"));
    assert.deepEqual(got, WHOLE, "the client's job was cut short as if it reached max_tokens");
    assert.equal(failed, undefined);
    assert.equal(summary.finishReason, "length");
    assert.deepEqual(t.honestPort.resumes, [2]);
    assert.ok(t.workers.avoided.has(t.hostile.key));
  } finally {
    await t.close();
  }
});

Deno.test("s47 failover: a token that ends the job with length where the prompt and the output fill the context window its start names ends the job there, as an honest worker's does", async () => {
  // 1 prompt token + 3 output tokens fill a context window of 4.
  const t = await setup((body) =>
    eventsFailoverMore([
      startFailoverMore(body.job, 4),
      wireTokenFailoverMore(0),
      wireTokenFailoverMore(1),
      wireTokenFailoverMore(2, "length"),
      end(body.job, "length", 3),
    ])
  );
  try {
    const { got, failed, summary } = await runFailoverMore(t.port, jobFor("a"));
    assert.deepEqual(got, [0, 1, 2]);
    assert.equal(failed, undefined);
    assert.equal(summary.finishReason, "length");
    assert.deepEqual(t.honestPort.resumes, []);
    assert.equal(t.workers.avoided.has(t.hostile.key), false);
  } finally {
    await t.close();
  }
});

// (3) Every token delivered, the end event (receipt) lost with the connection: the client's
// stream ends without a receipt (the receipt is asked of the worker later, on another connection:
// `tests/network/lost_end_test.ts`; `docs/PROOF.md`, "Failover").
Deno.test("s47 failover: every token delivered and the connection lost before the end event: the client's done says its last token's finish reason with connection_closed and no receipt, nothing reaches the validator, and the worker is not blamed", async () => {
  const lose = Promise.withResolvers<void>();
  const t = await setup((body, atWorker) =>
    eventsFailoverMore(
      [startFailoverMore(body.job), ...WHOLE.map((i) => wireTokenFailoverMore(i))],
      async () => {
        await lose.promise; // once the client has every token
        await atWorker.close();
        await new Promise(() => {});
      },
    )
  );
  try {
    const handle = await t.port.submit(jobFor("a"));
    const got: number[] = [];
    for await (const x of handle.tokens) got.push(x.index);
    assert.deepEqual(got, WHOLE);
    lose.resolve();
    const summary = await handle.done;
    // Review s66: the client has its whole answer; only the receipt was lost (asked for later).
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.error?.code, "connection_closed");
    assert.equal(summary.receipt, undefined);
    assert.equal(
      t.recorder.told.filter((m) => m.type === "receipt").length,
      0,
      "a receipt reached the validator",
    );
    assert.equal(t.workers.avoided.has(t.hostile.key), false);
    assert.deepEqual(t.honestPort.resumes, [], "nothing was left to resume");
  } finally {
    await t.close();
  }
});

// (4) BusyRefusals' bound.
Deno.test("s47 failover: BusyRefusals refuses a maxWorkers below 1 (0 looped forever in its first refusal)", () => {
  for (const maxWorkers of [0, -1, NaN]) {
    assert.throws(() => new BusyRefusals({ maxWorkers }), RangeError, `maxWorkers ${maxWorkers}`);
  }
  const one = new BusyRefusals({ maxWorkers: 1, now: () => 0 });
  one.refused("a");
  one.refused("b");
  assert.deepEqual(one.askedLast(), ["b"]);
});
