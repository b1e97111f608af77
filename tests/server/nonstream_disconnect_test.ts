/**
 * A non-streamed answer whose job runs past `NON_STREAM_HEARTBEAT_AFTER_MS` commits its 200 and
 * writes a space every `NON_STREAM_HEARTBEAT_EVERY_MS` until the JSON (`server/openai_answers.ts`):
 * Deno notices a closed HTTP/1.1 connection only when it writes to it, so without the spaces a
 * client that gave up (its timeout, an SDK retry) left its job running, and each openai SDK retry
 * added another, holding the key's concurrency slots. The clock is the app's injected one: the
 * tests decide when the heartbeat begins and when each space is due.
 */
import OpenAI from "openai";
import { assert, assertEquals } from "./_assert.ts";
import { scriptedText, startTestNode } from "./_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers, tracker } from "../_helpers/fake_timers.ts";
import {
  fullAnswer,
  NON_STREAM_HEARTBEAT_AFTER_MS,
  NON_STREAM_HEARTBEAT_EVERY_MS,
} from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { InferenceHandle, JobSummary, StreamedToken } from "../../inference/inference_port.ts";

const KEY = "test-key-0123456789abcdef";

/** Whether a timer of `ms` is armed on `timers`. */
function armed(timers: FakeTimers, ms: number): boolean {
  return [...timers.armed.values()].some((timer) => timer.ms === ms);
}

/** `promise`'s value, failing the test (rather than hanging it) if it never settles. */
async function settledValue<T>(promise: Promise<T>, what: string): Promise<T> {
  await eventually(tracker(promise), what);
  return await promise;
}

/** A chat request on the gated model, which makes a step only when the test releases one. */
function gatedChat(maxTokens: number): string {
  return JSON.stringify({
    model: "gated",
    messages: [{ role: "user", content: "x" }],
    max_tokens: maxTokens,
  });
}

Deno.test("a client that gives up on a non-streamed request after its heartbeat began has its job cancelled, and its key's slot comes back", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ timers, edge: { apiKeys: [KEY], perKeyConcurrency: 1 } });
  try {
    const leave = new AbortController();
    const pending = fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: gatedChat(50),
      signal: leave.signal,
    });
    await eventually(() => node.gated.waiting > 0, "the job's first step at the gate");
    await eventually(() => armed(timers, NON_STREAM_HEARTBEAT_AFTER_MS), "the heartbeat armed");
    timers.fireFor(NON_STREAM_HEARTBEAT_AFTER_MS);
    const response = await settledValue(pending, "the 200 committed by the heartbeat");
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), "application/json");
    const reader = response.body!.getReader();
    const first = await reader.read();
    assertEquals(new TextDecoder().decode(first.value), " ");

    // The client gives up; the node learns it at the next space it writes.
    leave.abort();
    await eventually(async () => {
      timers.fireFor(NON_STREAM_HEARTBEAT_EVERY_MS);
      return (await node.stats()).activeJobs === 0;
    }, "the job cancelled");
    const stats = await node.stats();
    assertEquals([stats.activeJobs, stats.queuedJobs, stats.jobsCancelled], [0, 0, 1]);
    assertEquals(node.gated.steps, 0, "the cancelled job made no step");

    // The key (held to one job at once) may start another.
    const next = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "hi", max_tokens: 2 }),
    });
    assertEquals(next.status, 200);
    assertEquals((await next.json()).object, "text_completion");
  } finally {
    await node.close();
  }
});

Deno.test("a non-streamed answer slower than the heartbeat's start comes as spaces then the JSON, which the openai SDK parses", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ timers });
  try {
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "x", maxRetries: 0 });
    const answer = client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 5,
    });
    await eventually(() => node.gated.waiting > 0, "the job's first step at the gate");
    await eventually(() => armed(timers, NON_STREAM_HEARTBEAT_AFTER_MS), "the heartbeat armed");
    timers.fireFor(NON_STREAM_HEARTBEAT_AFTER_MS);
    // Three more spaces, a second apart on the node's clock.
    for (let beat = 0; beat < 3; beat++) {
      await eventually(() => armed(timers, NON_STREAM_HEARTBEAT_EVERY_MS), "the next space due");
      timers.fireFor(NON_STREAM_HEARTBEAT_EVERY_MS);
    }
    node.gated.release(5);
    const completion = await settledValue(answer, "the SDK's completion");
    assertEquals(completion.choices[0].message.content, scriptedText(5));
    assertEquals(completion.choices[0].finish_reason, "length");
    assertEquals(completion.object, "chat.completion");
    assertEquals(timers.armed.size, 0, "no space left due once the answer ended");

    // The same over a raw fetch: the leading spaces, then one JSON body.
    const raw = fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: gatedChat(2),
    });
    await eventually(() => armed(timers, NON_STREAM_HEARTBEAT_AFTER_MS), "the heartbeat armed");
    timers.fireFor(NON_STREAM_HEARTBEAT_AFTER_MS);
    await eventually(() => armed(timers, NON_STREAM_HEARTBEAT_EVERY_MS), "the next space due");
    timers.fireFor(NON_STREAM_HEARTBEAT_EVERY_MS);
    node.gated.release(2);
    const text = await (await settledValue(raw, "the raw answer")).text();
    assert(text.startsWith("  {"), JSON.stringify(text.slice(0, 8)));
    assertEquals(JSON.parse(text).choices[0].message.content, scriptedText(2));
  } finally {
    await node.close();
  }
});

Deno.test("a job that fails after the heartbeat committed the 200 ends the body with the failure's OpenAI error body; one that fails before it keeps its status", async () => {
  const stalled = { code: "worker_stalled", message: "the worker sent nothing for 30 s" };
  /** A job whose tokens and end the test controls. */
  const controlled = () => {
    let tokens!: ReadableStreamDefaultController<StreamedToken>;
    const done = Promise.withResolvers<JobSummary>();
    const handle: InferenceHandle = {
      jobId: "0".repeat(64),
      model: { cid: "bafkscripted", name: "scripted", kind: "text" },
      promptTokens: 1,
      tokens: new ReadableStream<StreamedToken>({ start: (c) => void (tokens = c) }),
      done: done.promise,
      cancel() {},
    };
    const fail = () => {
      tokens.error(new Error(stalled.message));
      done.resolve({
        jobId: handle.jobId,
        finishReason: "error",
        usage: { promptTokens: 1, completionTokens: 0 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        error: stalled,
      });
    };
    return { handle, fail };
  };
  const timers = new FakeTimers();
  const options = {
    stops: [],
    logprobs: false,
    includeUsage: false,
    idleTimeoutMs: 30_000,
    stats: new EdgeStats(),
    computesOnEventLoop: false,
    timers,
  };

  const late = controlled();
  const answer = fullAnswer(late.handle, COMPLETION_SHAPE, options);
  timers.fireFor(NON_STREAM_HEARTBEAT_AFTER_MS);
  const response = await answer;
  assertEquals(response.status, 200);
  late.fail();
  const body = await response.text();
  assert(body.startsWith(" {"), JSON.stringify(body.slice(0, 8)));
  assertEquals(JSON.parse(body).error.code, "worker_stalled");
  assertEquals(JSON.parse(body).error.type, "server_error");
  assertEquals(timers.armed.size, 0);

  const early = controlled();
  const refused = fullAnswer(early.handle, COMPLETION_SHAPE, options).catch((error) => error);
  early.fail();
  assertEquals((await refused).code, "worker_stalled");
  assertEquals(timers.armed.size, 0, "the heartbeat's timer cleared");
});
