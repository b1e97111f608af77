/**
 * Review s50 of what a worker's `end` event may claim of a forwarded job's usage
 * (`inference/_remote_job.ts`, `inference/remote_port.ts`): a worker that streams a job's tokens
 * and then says it generated far more. Its count reached the remote port's summary and its
 * `tokensGenerated` (the router's heartbeat and `/metrics`); the tokens this side was streamed
 * are what it generated for this side. The worker is an in-memory connection that writes raw
 * `inference.event`s.
 */
import { assertEquals } from "../server/_assert.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { INFO } from "./_router_fixture.ts";
import { jobFor, linked, token, TOKENS } from "./_hostile_worker_fixture.ts";

const CLAIMED = 1_000_000;

Deno.test("s50: a worker whose end event claims more completion tokens than it streamed is counted for the tokens it streamed, in the job's summary and in the port's tokensGenerated", async () => {
  const worker = await linked((atWorker, submissions) => {
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
        new ReadableStream<InferenceEvent>({
          pull: (c) => {
            if (i < list.length) c.enqueue(list[i++]);
            else c.close();
          },
        }, { highWaterMark: 0 }),
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
