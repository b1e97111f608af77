/**
 * A non-streamed answer commits its status when the job has ended, as OpenAI's API does: a job
 * that fails after some tokens answers with its error's status and OpenAI error body (a 504
 * `worker_stalled` here), so an OpenAI client raises an `APIError` instead of reading a 200
 * whose body is not a completion. A streamed one keeps its 200 and ends with the error event.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { emptyInferenceStats } from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { fullAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { VeriflowError } from "../../protocols/errors.ts";

const MODEL: ServedModelInfo = { cid: "bafkfailing", name: "failing", kind: "text" };
const JOB_ID = "cd".repeat(32);
const STALLED = {
  code: "worker_stalled",
  message: "worker 0123456789abcdef sent nothing for 60000 ms",
};

/** A job that streams two tokens, then fails as a stalled worker's job does. */
function failingHandle(): InferenceHandle {
  const tokens: StreamedToken[] = [
    { index: 0, tokenId: 0x61, text: "a" },
    { index: 1, tokenId: 0x62, text: "b" },
  ];
  return {
    jobId: JOB_ID,
    model: MODEL,
    promptTokens: 1,
    tokens: new ReadableStream<StreamedToken>({
      start(controller) {
        for (const token of tokens) controller.enqueue(token);
        controller.error(new VeriflowError(STALLED.code, STALLED.message));
      },
    }),
    done: Promise.resolve({
      jobId: JOB_ID,
      finishReason: "error",
      usage: { promptTokens: 1, completionTokens: 2 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      error: STALLED,
    }),
    cancel() {},
  };
}

/** A port whose every job fails midway. */
class FailingPort implements InferencePort {
  submit(_job: TextJob): Promise<InferenceHandle> {
    return Promise.resolve(failingHandle());
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([MODEL]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.resolve(emptyInferenceStats());
  }
}

Deno.test("a non-streamed job that fails midway answers with its error's status and body, and the openai client raises it; a streamed one ends with the error event", async () => {
  const abort = new AbortController();
  const server = serve({ app: createApp({ inference: new FailingPort() }), signal: abort.signal });
  try {
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      const response = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          prompt: "x",
          messages: path.includes("chat") ? [{ role: "user", content: "x" }] : undefined,
          max_tokens: 8,
        }),
      });
      const body = await response.json();
      assertEquals(response.status, 504, JSON.stringify(body));
      assertEquals(body.error.code, "worker_stalled");
      assertEquals(body.error.type, "server_error");
      assertEquals(body.error.message, STALLED.message);
    }
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "dummy", maxRetries: 0 });
    const error = await assertRejects(
      () => client.completions.create({ model: "failing", prompt: "x", max_tokens: 8 }),
      OpenAI.APIError,
    );
    assertEquals(error.status, 504);
    // A stream has sent its 200 with the first token: the failure is its last event.
    const sse = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "x", max_tokens: 8, stream: true }),
    });
    assertEquals(sse.status, 200);
    const text = await sse.text();
    assert(text.includes('"code":"worker_stalled"'), text);
    assert(text.endsWith("data: [DONE]\n\n"), text);
  } finally {
    abort.abort();
    await server.finished;
  }
});

Deno.test("fullAnswer throws the job's failure and cancels the job when the client goes away before its end", async () => {
  const options = {
    stops: [],
    logprobs: false,
    includeUsage: false,
    idleTimeoutMs: 30_000,
    stats: new EdgeStats(),
    computesOnEventLoop: false,
  };
  const failure = await assertRejects(
    () => fullAnswer(failingHandle(), COMPLETION_SHAPE, options),
    VeriflowError,
  );
  assertEquals(failure.code, "worker_stalled");
  // A job that waits forever, and a client that leaves: the job is cancelled, then ends.
  let cancelled = 0;
  const ended = Promise.withResolvers<void>();
  let tokens!: ReadableStreamDefaultController<StreamedToken>;
  const handle: InferenceHandle = {
    ...failingHandle(),
    tokens: new ReadableStream<StreamedToken>({ start: (c) => void (tokens = c) }),
    done: ended.promise.then(() => ({
      jobId: JOB_ID,
      finishReason: "cancelled" as const,
      usage: { promptTokens: 1, completionTokens: 0 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    })),
    cancel() {
      cancelled++;
      tokens.close();
      ended.resolve();
    },
  };
  const gone = new AbortController();
  const answer = fullAnswer(handle, COMPLETION_SHAPE, { ...options, clientGone: gone.signal });
  await Promise.resolve();
  assertEquals(cancelled, 0);
  gone.abort();
  const error = await assertRejects(() => answer, VeriflowError);
  assertEquals([cancelled, error.code], [1, "job_cancelled"]);
});
