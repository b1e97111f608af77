/**
 * A finished job whose unread tokens the node's full unread-token budget dropped (`slow_reader`)
 * is told to its client as that error, never as a normal end (review s77 sse, F1): before the fix
 * an SSE client got `finish_reason`, the full `usage` and `[DONE]` after part of the text, a
 * WebSocket client a `done`, a JSON client a 200 with the part it got, so none could tell that
 * tokens were missing. The real InferenceActor and its budget, behind the real app and server.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { WsProbe } from "./_ws_probe.ts";
import { ScriptedModel, scriptedText } from "./_fixtures.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { parseReceipt, verifyReceipt } from "../../protocols/receipt.ts";
import { EVICTED_JOB_TOKENS, evictedJobPort } from "./_evicted_job_port.ts";
import { submitJob, type TextJobHandle } from "../../actors/inference_actor.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import { readN, slowReaderActor, textJob } from "../actors/_slow_reader_actor.ts";

/** Run `body` against the real app and server over an {@link evictedJobPort}. */
async function withEvictingNode(
  body: (
    url: string,
    evicted: Awaited<ReturnType<typeof evictedJobPort>>,
  ) => Promise<void>,
): Promise<void> {
  const evicted = await evictedJobPort();
  const [model] = await evicted.port.models();
  // Manual timers: a non-streamed answer's heartbeat never starts, so its status is the error's.
  const app = createApp({
    inference: evicted.port,
    defaultModel: model.cid,
    timers: new ManualTimers(),
  });
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  try {
    await body(server.url, evicted);
  } finally {
    abort.abort();
    await server.finished;
    await evicted.close();
  }
}

/**
 * What the job earned: it had finished, so the prover signed its receipt over every token the
 * model made, the 25, not over what reached the client (`received`), whose check of it fails.
 */
function assertReceiptCoversAll(
  evicted: Awaited<ReturnType<typeof evictedJobPort>>,
  received: string,
): void {
  const [summary] = evicted.summaries;
  assertEquals(summary.finishReason, "length");
  assertEquals(summary.usage.completionTokens, EVICTED_JOB_TOKENS);
  assertEquals(evicted.evictions(), 1);
  const receipt = toJsonValue(summary.receipt);
  assertEquals(parseReceipt(receipt).tokenCount, EVICTED_JOB_TOKENS);
  const whole = verifyReceipt(receipt, { output: scriptedText(EVICTED_JOB_TOKENS) });
  assert(whole.ok, JSON.stringify(whole));
  const partial = verifyReceipt(receipt, { output: received });
  assertEquals(partial.ok ? "ok" : partial.reason, "output_mismatch");
}

/** The error says why the text is short and what the receipt covers. */
function assertSaysWhatWasLost(message: string): void {
  assert(message.includes(`0 of its ${EVICTED_JOB_TOKENS} tokens`), message);
  assert(message.includes("receipt"), message);
}

Deno.test("WebSocket: a finished job whose unread tokens were evicted ends with a slow_reader error, not done", async () => {
  await withEvictingNode(async (url, evicted) => {
    const probe = await WsProbe.open(`${url.replace("http:", "ws:")}/v1/stream`);
    try {
      probe.send({ type: "infer", id: "e", prompt: "x", max_tokens: EVICTED_JOB_TOKENS });
      const end = await probe.end("e");
      assertEquals(end.type, "error", JSON.stringify(end));
      const error = end as WsErrorMessage;
      assertEquals(error.code, "slow_reader");
      assertSaysWhatWasLost(error.message);
      assertEquals(probe.tokens("e"), 0);
      assertReceiptCoversAll(evicted, probe.text("e"));
    } finally {
      await probe.close();
    }
  });
});

Deno.test("SSE: a finished job whose unread tokens were evicted ends with the slow_reader error event, then [DONE]: no finish_reason, no usage", async () => {
  await withEvictingNode(async (url, evicted) => {
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({
        prompt: "x",
        max_tokens: EVICTED_JOB_TOKENS,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    assertEquals(response.status, 200);
    const text = await response.text();
    const events = text.trim().split("\n\n");
    assertEquals(events.at(-1), "data: [DONE]");
    const last = JSON.parse(events.at(-2)!.slice("data: ".length));
    assertEquals(last.error?.code, "slow_reader", text);
    assertSaysWhatWasLost(last.error.message);
    const chunks = events.filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    assertEquals(chunks.some((c) => c.choices?.[0]?.finish_reason), false, text);
    assertEquals(chunks.some((c) => c.usage), false, text);
    assertReceiptCoversAll(evicted, chunks.map((c) => c.choices?.[0]?.text ?? "").join(""));
  });
});

Deno.test("One JSON body: a finished job whose unread tokens were evicted is answered 408 slow_reader, not a 200 with part of its text", async () => {
  await withEvictingNode(async (url, evicted) => {
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "x", max_tokens: EVICTED_JOB_TOKENS }),
    });
    const json = await response.json();
    assertEquals(response.status, 408, JSON.stringify(json));
    assertEquals(json.error.code, "slow_reader");
    assertSaysWhatWasLost(json.error.message);
    assertReceiptCoversAll(evicted, "");
  });
});

Deno.test("SSE: a client that read 3 events, paused, and whose finished job was then evicted gets its 3 tokens, then slow_reader naming 3 of 25: no finish_reason, usage or normal end", async () => {
  const TOKEN_BYTES = 130; // a one-letter token's estimate (`tokenBytes`), as the actor tests use
  const model = new ScriptedModel();
  const { system, timers, ref } = await slowReaderActor(
    model,
    new UnreadTokenBudget(TOKEN_BYTES * 30),
  );
  try {
    const hog = await submitJob(ref, textJob(model.info.cid, EVICTED_JOB_TOKENS)) as TextJobHandle;
    const body = sseAnswer(hog, COMPLETION_SHAPE, {
      stops: [],
      logprobs: false,
      includeUsage: true,
      idleTimeoutMs: 30_000,
      timers: new ManualTimers(),
      stats: new EdgeStats(),
      computesOnEventLoop: false,
    }).body!.getReader();
    const decoder = new TextDecoder();
    const events: string[] = [];
    for (let i = 0; i < 3; i++) events.push(decoder.decode((await body.read()).value));
    // The client pauses; a job waits for the seat, so the paused one runs on to its end.
    const pushing = await submitJob(ref, textJob(model.info.cid, 20)) as TextJobHandle;
    timers.fireAll();
    const summary = await hog.done;
    assertEquals([summary.finishReason, summary.receipt !== undefined], ["length", true]);
    // That job's reader pauses too while a third waits: the finished job's backlog is evicted.
    const pushingReader = pushing.tokens.getReader();
    await readN(pushingReader, 3);
    const waiting = await submitJob(ref, textJob(model.info.cid, 2)) as TextJobHandle;
    timers.fireAll();
    await pushing.done;
    while (true) {
      const { done, value } = await body.read();
      if (done) break;
      events.push(decoder.decode(value));
    }
    await readN(pushingReader);
    await readN(waiting.tokens.getReader());
    const all = events.join("").trim().split("\n\n");
    assertEquals(all.at(-1), "data: [DONE]");
    const chunks = all.filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    assertEquals(chunks.map((c) => c.choices?.[0]?.text ?? "").join(""), "abc");
    const error = chunks.at(-1).error;
    assertEquals(error?.code, "slow_reader", all.join("\n"));
    assert(error.message.includes(`3 of its ${EVICTED_JOB_TOKENS} tokens`), error.message);
    assertEquals(chunks.some((c) => c.choices?.[0]?.finish_reason || c.usage), false);
  } finally {
    await system.shutdown();
  }
});
