/**
 * Review s47 of failover, continued (`network/failover.ts`, `network/network_inference_port.ts`,
 * `network/busy_refusals.ts`, `inference/_remote_job.ts`): what a worker can claim about its own
 * failure or its job's end, and what the router sees for itself. Workers are in-memory
 * connections that write raw `inference.event`s (the hostile ones) or serve a port (the honest
 * one).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import {
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { INFO } from "./_router_fixture.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  type TestWorker,
  token,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

/** A worker that answers each job with the stream `script` gives. */
function scriptedWorker(
  script: (body: SubmitBody, atWorker: { close(): Promise<void> }) => ReadableStream,
): Promise<TestWorker> {
  return linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      return Promise.resolve().then(() => script(body, atWorker));
    });
  });
}

/** A stream of `list`, one event per pull, then `then` (fail, close, or stay open). */
function events(
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

function start(job: TextJob, contextLength?: number): InferenceEvent {
  const model = contextLength === undefined ? INFO : { ...INFO, contextLength };
  return { kind: "start", jobId: jobId(job), model, promptTokens: 1 };
}

function wireToken(i: number, finishReason?: "stop" | "length"): InferenceEvent {
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

async function setup(script: Parameters<typeof scriptedWorker>[0]) {
  const system = new ActorSystem({ name: "review-s47-more" });
  const hostile = await scriptedWorker(script);
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
async function run(port: NetworkInferencePort, job: TextJob) {
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
      events(
        [start(body.job), wireToken(0), wireToken(1)],
        (c) => c.error(new VeriflowError(code, "said the worker")),
      )
    );
    try {
      const { got, failed, summary } = await run(t.port, jobFor("a"));
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
    events([start(body.job), wireToken(0), wireToken(1)], async () => {
      await atWorker.close();
      await new Promise(() => {});
    })
  );
  try {
    const { got, failed } = await run(t.port, jobFor("a"));
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
    events([start(body.job), ...WHOLE.map((i) => wireToken(i)), end(body.job, "stop", TOKENS)])
  );
  try {
    const { got, reasons, summary } = await run(t.port, jobFor("a"));
    assert.deepEqual(got, WHOLE);
    assert.equal(reasons[TOKENS - 1], "length");
    assert.equal(summary.finishReason, "length", "the worker's end event overrode the token's");
  } finally {
    await t.close();
  }
});

Deno.test("s47 failover: a token that ends the job with length before max_tokens, the context window its start names far from full, breaks the stream: the job resumes on another worker", async () => {
  const t = await setup((body) =>
    events([
      start(body.job, 2048),
      wireToken(0),
      wireToken(1),
      wireToken(2, "length"),
      end(body.job, "length", 3),
    ])
  );
  try {
    const { got, failed, summary } = await run(t.port, jobFor("a"));
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
    events([
      start(body.job, 4),
      wireToken(0),
      wireToken(1),
      wireToken(2, "length"),
      end(body.job, "length", 3),
    ])
  );
  try {
    const { got, failed, summary } = await run(t.port, jobFor("a"));
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
// `tests/network/review_s59_late_receipt_end_test.ts`; `docs/PROOF.md`, "Failover").
Deno.test("s47 failover: every token delivered and the connection lost before the end event: the client's done says its last token's finish reason with connection_closed and no receipt, nothing reaches the validator, and the worker is not blamed", async () => {
  const lose = Promise.withResolvers<void>();
  const t = await setup((body, atWorker) =>
    events([start(body.job), ...WHOLE.map((i) => wireToken(i))], async () => {
      await lose.promise; // once the client has every token
      await atWorker.close();
      await new Promise(() => {});
    })
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
    assert.equal(t.recorder.told.length, 0);
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
