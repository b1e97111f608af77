/**
 * Review at stop 63 of the OpenAI-compatible routes and the WebSocket API as a demanding client
 * and an attacker would use them: a chat message whose content is an empty list of parts is
 * refused as OpenAI refuses it (not run as an empty turn); a WebSocket `infer` may send `null`
 * for its own optional fields as for the sampling ones (a client that writes unset fields as
 * null); a `__proto__` member of a body cannot carry values past the schema; and a client that
 * goes away while its job still waits in the queue takes the job out of the queue, streamed or
 * not.
 */
import { assert, assertEquals } from "./_assert.ts";
import { eventually, startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { recordingApp } from "./_recording_app.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import {
  CompletionRequestSchema,
  parseJsonText,
  parseRequest,
  toGenerationParams,
} from "../../server/request_schemas.ts";

const MODEL: ServedModelInfo = { cid: "bafkedgesmodel", name: "edges", kind: "text" };

Deno.test("review s63: a chat message whose content is an empty list of parts is a 400 naming it (as OpenAI), not a job on an empty turn; one text part still passes", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  for (const stream of [false, true]) {
    const { status, error } = await chat({
      stream,
      messages: [{ role: "system", content: "Be terse." }, { role: "user", content: [] }],
    });
    assertEquals(
      [status, error?.code, error?.param, error?.type],
      [400, "invalid_request", "messages.1.content", "invalid_request_error"],
      `stream: ${stream}: ${JSON.stringify(error)}`,
    );
  }
  assertEquals(jobs.length, 0, "an empty content list made no job");
  // A list with a part goes through (the recording port then answers 429).
  const parts = await chat({ messages: [{ role: "user", content: [{ type: "text", text: "" }] }] });
  assertEquals(parts.status, 429);
  assertEquals(jobs.length, 1);
});

Deno.test("review s63: a WebSocket infer with null for logprobs, nonce and input runs as if they were absent, as null sampling fields do", async () => {
  const node = await startTestNode();
  const ws = await WsProbe.open(node.wsUrl);
  try {
    node.gated.release(100);
    ws.send({
      type: "infer",
      id: "nulls",
      prompt: "x",
      model: "gated",
      max_tokens: 2,
      stop: null,
      seed: null,
      logprobs: null,
      nonce: null,
      input: null,
    });
    const end = await ws.end("nulls");
    assertEquals(end.type, "done", JSON.stringify(end));
    assertEquals(ws.text("nulls"), "ab");
    const tokens = ws.messages.filter((m) => m.type === "token");
    assert(tokens.every((m) => !("logprob" in m) && !("top_logprobs" in m)), "no logprobs asked");
  } finally {
    await ws.close();
    await node.close();
  }
});

Deno.test("review s63: a __proto__ member of a body carries nothing past the schema (an unchecked max_tokens or stop cannot come through the prototype)", () => {
  const body = parseRequest(
    CompletionRequestSchema,
    parseJsonText('{"prompt":"x","__proto__":{"max_tokens":100000,"stop":42,"stream":true}}'),
  );
  assertEquals([body.max_tokens, body.stop, body.stream], [undefined, undefined, undefined]);
  const params = toGenerationParams(body, body.max_completion_tokens);
  assertEquals([params.maxTokens, params.stop], [DEFAULT_GENERATION_PARAMS.maxTokens, []]);
});

Deno.test("review s63: a client that goes away while its job is queued takes the job out of the queue: SSE, one body, and an SSE body never read", async () => {
  const node = await startTestNode({ concurrency: 1 });
  const post = (path: string, body: unknown, signal?: AbortSignal) =>
    fetch(`${node.url}${path}`, { method: "POST", body: JSON.stringify(body), signal });
  try {
    // One job holds the only slot (its model is gated: it makes no step until released).
    const holder = post("/v1/completions", { model: "gated", prompt: "x", max_tokens: 2 });
    await eventually(async () => (await node.stats()).activeJobs === 1);
    const queuedThenGone = async (start: (signal: AbortSignal) => Promise<void>) => {
      const before = (await node.stats()).jobsCancelled;
      const abort = new AbortController();
      await start(abort.signal);
      await eventually(async () => (await node.stats()).queuedJobs === 1);
      abort.abort();
      await eventually(async () => {
        const stats = await node.stats();
        return stats.queuedJobs === 0 && stats.jobsCancelled === before + 1;
      });
    };
    // A chat stream read up to its `: queued` comment.
    await queuedThenGone(async (signal) => {
      const response = await post("/v1/chat/completions", {
        model: "gated",
        messages: [{ role: "user", content: "x" }],
        stream: true,
      }, signal);
      const reader = response.body!.getReader();
      let read = "";
      while (!read.includes(": queued 1")) {
        read += new TextDecoder().decode((await reader.read()).value);
      }
      signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
    });
    // One body, waited for.
    await queuedThenGone((signal) => {
      void post("/v1/completions", { model: "gated", prompt: "x", max_tokens: 2 }, signal)
        .catch(() => {});
      return Promise.resolve();
    });
    // A stream whose body is never read.
    await queuedThenGone(async (signal) => {
      const response = await post(
        "/v1/completions",
        { model: "gated", prompt: "x", max_tokens: 2, stream: true },
        signal,
      );
      signal.addEventListener("abort", () => response.body?.cancel().catch(() => {}));
    });
    node.gated.release(2);
    const held = await (await holder).json();
    assertEquals(held.choices[0].text, "ab", "the job holding the slot ran on");
    const stats = await node.stats();
    assertEquals([stats.activeJobs, stats.queuedJobs, stats.jobsCancelled], [0, 0, 3]);
  } finally {
    await node.close();
  }
});

Deno.test("review s63: reasoning_effort (which OpenAI refuses for a model that does not reason) and vLLM's sampling extensions that would change the answer are refused with 400 unsupported_field naming them; values that ask for nothing pass", async () => {
  const { jobs, chat, completions } = recordingApp(MODEL);
  const refused = [
    ["reasoning_effort", "high"],
    ["reasoning_effort", "minimal"],
    ["repetition_penalty", 1.2],
    ["min_p", 0.05],
    ["min_tokens", 8],
    ["ignore_eos", true],
    ["include_stop_str_in_output", true],
  ] as const;
  for (const [field, value] of refused) {
    for (const [route, send] of [["chat", chat], ["completions", completions]] as const) {
      if (field === "reasoning_effort" && route === "completions") continue; // chat's field
      const { status, error } = await send({ [field]: value });
      assertEquals(
        [status, error?.code, error?.param],
        [400, "unsupported_field", field],
        `${route} ${field}: ${JSON.stringify(value)}`,
      );
    }
  }
  assertEquals(jobs.length, 0, "a refused field made no job");
  const harmless = [
    { reasoning_effort: "none" },
    { reasoning_effort: null },
    { repetition_penalty: 1 },
    { min_p: 0 },
    { min_tokens: 0 },
    { ignore_eos: false },
    { include_stop_str_in_output: false },
  ];
  for (const body of harmless) assertEquals((await chat(body)).status, 429, JSON.stringify(body));
  assertEquals(jobs.length, harmless.length);
});
