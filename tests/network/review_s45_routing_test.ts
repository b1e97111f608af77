/**
 * Review s45 of the router's failover: a hostile worker, picked first, against an honest one.
 * Workers are in-memory connections; the hostile one writes raw `inference.event`s.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFO, MODEL } from "./_router_fixture.ts";
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

/** A worker that answers every job with the events `script` gives, then leaves it open. */
function scriptedWorker(script: (job: TextJob) => InferenceEvent[]): Promise<TestWorker> {
  return linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const events = script(body.job);
      return Promise.resolve(
        new ReadableStream<InferenceEvent>({
          start: (c) => events.forEach((e) => c.enqueue(e)),
        }),
      );
    });
  });
}

async function setup(script: (job: TextJob) => InferenceEvent[]) {
  const system = new ActorSystem({ name: "review-s45" });
  const hostile = await scriptedWorker(script);
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const workers = new Workers([hostile.toWorker, honest.toWorker]);
  const { port, recorder, settled } = await spawnRouter(system, workers, { tokensPerEvent: 1 });
  const close = async () => {
    await hostile.close();
    await honest.close();
    await system.shutdown();
  };
  const run1 = (nonce: string) => run(port, jobFor(nonce));
  return { port, hostile, honest, honestPort, workers, recorder, settled, close, run1 };
}

/** Read a job to its end: the indices the client got, and how it ended. */
async function run(port: NetworkInferencePort, job: TextJob) {
  const handle = await port.submit(job);
  const got: number[] = [];
  let failed: string | undefined;
  try {
    for await (const t of handle.tokens) got.push(t.index);
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  const summary = await handle.done;
  return { got, failed, finishReason: summary.finishReason, code: summary.error?.code };
}

const WHOLE = Array.from({ length: TOKENS }, (_, i) => i);

function start(job: TextJob): InferenceEvent {
  return { kind: "start", jobId: jobId(job), model: INFO, promptTokens: 1 };
}

function wireToken(i: number): InferenceEvent {
  const { index, tokenId, text } = token(i);
  return { kind: "token", index, tokenId, text };
}

for (const finishReason of ["cancelled", "error"] as const) {
  Deno.test(`s45: a worker that ends a started job mid-stream with an end event (${finishReason}) instead of an error does not cut the client's job short: it resumes on the honest worker, and the worker is not asked first again`, async () => {
    const t = await setup((job) => [
      start(job),
      wireToken(0),
      wireToken(1),
      {
        kind: "end",
        summary: {
          jobId: jobId(job),
          finishReason,
          usage: { promptTokens: 1, completionTokens: 2 },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        },
      },
    ]);
    try {
      assert.deepEqual(await t.run1("a"), {
        got: WHOLE,
        failed: undefined,
        finishReason: "length",
        code: undefined,
      });
      assert.deepEqual(t.honestPort.resumes, [2], "resumed after the 2 tokens delivered");
      await t.run1("b");
      assert.equal(t.hostile.submissions.length, 1, "the hostile worker was asked first again");
    } finally {
      await t.close();
    }
  });
}

Deno.test("s45: a worker whose start names another model than the job's is passed over for the next and kept off the model: the client is never told it ran another model", async () => {
  const t = await setup((job) => [
    {
      kind: "start",
      jobId: jobId(job),
      model: { ...INFO, cid: "bafkothermodel" },
      promptTokens: 1,
    },
    ...WHOLE.map(wireToken),
  ]);
  try {
    const handle = await t.port.submit(jobFor("m"));
    assert.equal(handle.model.cid, MODEL, "the client was told another model");
    const got: number[] = [];
    for await (const x of handle.tokens) got.push(x.index);
    assert.deepEqual(got, WHOLE);
    assert.equal((await handle.done).finishReason, "length");
    assert.deepEqual(t.honestPort.resumes, [undefined], "the honest worker ran it from the start");
    assert.ok(t.workers.avoided.has(toHex(t.hostile.identity.publicKey)));
  } finally {
    await t.close();
  }
});
