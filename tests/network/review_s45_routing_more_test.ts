/**
 * Review s45 of the router, continued: what a worker can make the client see or be billed, and
 * whether the router holds it to account. Workers are in-memory connections that write raw
 * `inference.event`s (the hostile ones) or serve a port (the honest one); the router's clocks
 * are fake.
 */
import assert from "node:assert/strict";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { ManualTimers, settle } from "../protocols/_helpers.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  type TestWorker,
  TEXT,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import {
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

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
    const list: InferenceEvent[] = [start(body.job, from > 0 ? { resumedFrom: from } : {})];
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
    assert.equal(r.recorder.told.length, 0, "the receipt reached the validator");
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

Deno.test("s45 more: a worker's claim of the prompt's tokens is bounded by the prompt the router sent (one token per UTF-8 byte, and one more) in what the client is told", async () => {
  const inflate = 1_000_000;
  const w = await scriptedWorker((body) =>
    events([
      start(body.job, { promptTokens: inflate }),
      ...Array.from({ length: TOKENS }, (_, i) => wireToken(i)),
      endEvent(body.job, TOKENS, undefined, inflate),
    ])
  );
  const r = await router([w.toWorker]);
  try {
    const got = await run(r.port, jobFor("p")); // prompt "hi": 2 bytes
    assert.equal(got.text, TEXT);
    assert.ok(got.handle.promptTokens <= 3, `handle: ${got.handle.promptTokens}`);
    assert.ok(got.summary.usage.promptTokens <= 3, `usage: ${got.summary.usage.promptTokens}`);
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
