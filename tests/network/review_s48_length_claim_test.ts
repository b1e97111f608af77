/**
 * Review s48 of the router's check of a job's `length` ending (`inference/_remote_job.ts`): a
 * token may end a job for its length only at `maxTokens − 1` or where the prompt and the output
 * fill the context window the worker's `start` names (`docs/PROTOCOL.md`, "Failover"). A start
 * that names no window cannot have filled one: its worker (an honest one runs with no context
 * limit then, `actors/inference_actor.ts`) must not cut the client's job short by leaving the
 * field out.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { INFO } from "./_router_fixture.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  routerPort,
  token,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import { Workers } from "./_router_doubles.ts";

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

Deno.test("review s48: a token that ends the job with length before max_tokens, from a worker whose start names no context window, breaks the stream: the job resumes on another worker and the cutter is kept off the model", async () => {
  const system = new ActorSystem({ name: "review-s48-length" });
  const cutter = await linked((atWorker) => {
    atWorker.handle(SubmitMessage, (body) => {
      const list = cutShort(body.job);
      let i = 0;
      return Promise.resolve(
        new ReadableStream<InferenceEvent>({
          pull: async (c) => {
            if (i < list.length) c.enqueue(list[i++]);
            else await new Promise(() => {});
          },
        }, { highWaterMark: 0 }),
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
