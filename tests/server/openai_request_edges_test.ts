/**
 * Odd and hostile client input at the OpenAI-compatible routes and the WebSocket API: lone
 * surrogates, `top_p: 0`, empty content lists, `null` optional fields, `__proto__` members, union
 * fields of no type, fields that would change the answer, token-id prompts, and a client that goes
 * away while its job waits in the queue.
 */
import { assert, assertEquals } from "./_assert.ts";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  parseJsonText,
  parseRequest,
  toGenerationParams,
  WsClientMessageSchema,
} from "../../server/request_schemas.ts";
import { recordingApp } from "./_recording_app.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { DEFAULT_GENERATION_PARAMS, GENERATION_LIMITS } from "../../protocols/job.ts";
import { RequestValidationError } from "../../server/http_errors.ts";

// Odd client input at the edge of the OpenAI-compatible routes and the WebSocket API: what a
// hostile or careless client sends, and the answer it must get.

async function withNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startTestNode();
  node.gated.release(1_000_000); // these tests are about refusals, not timing
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

/** POST a raw JSON text; the OpenAI error it gets, with its status. */
async function refusal(
  node: TestNode,
  path: string,
  json: string,
): Promise<{ status: number; code: string; param: string | null }> {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: json,
  });
  const { error } = await response.json();
  return { status: response.status, code: error?.code, param: error?.param };
}

Deno.test("A lone UTF-16 surrogate in a prompt, a chat message or a stop sequence is a 400 invalid_request naming that field, on both routes and the WebSocket", async () => {
  await withNode(async (node) => {
    // JSON's "\ud800" parses to a lone surrogate, which has no UTF-8 form a job could carry.
    const bad = String.raw`"\ud800x"`;
    const completions = (fields: string) =>
      refusal(node, "/v1/completions", `{"model":"gated","max_tokens":2,${fields}}`);
    const chat = (fields: string) =>
      refusal(node, "/v1/chat/completions", `{"model":"gated","max_tokens":2,${fields}}`);
    const invalid = (param: string) => ({ status: 400, code: "invalid_request", param });
    assertEquals(await completions(`"prompt":${bad}`), invalid("prompt"));
    assertEquals(await completions(`"prompt":[${bad}]`), invalid("prompt.0"));
    assertEquals(await completions(`"prompt":"x","stop":${bad}`), invalid("stop"));
    assertEquals(await completions(`"prompt":"x","stop":["ok",${bad}]`), invalid("stop.1"));
    const user = `{"role":"user","content":"x"}`;
    assertEquals(
      await chat(`"messages":[${user},{"role":"user","content":${bad}}]`),
      invalid("messages.1.content"),
    );
    assertEquals(
      await chat(`"messages":[{"role":"user","content":[{"type":"text","text":${bad}}]}]`),
      invalid("messages.0.content.0.text"),
    );
    assertEquals(await chat(`"messages":[${user}],"stop":${bad}`), invalid("stop"));
    const probe = await WsProbe.open(node.wsUrl);
    try {
      for (const field of ["prompt", "stop", "nonce"]) {
        const frame = { type: "infer", id: field, model: "gated", prompt: "x", max_tokens: 2 };
        probe.socket.send(
          JSON.stringify(frame).replace(/}$/, `,${JSON.stringify(field)}:${bad}}`),
        );
        const error = await probe.next((m) =>
          m.type === "error" && m.id === field
        ) as WsErrorMessage;
        assertEquals(error.code, "invalid_request", field);
      }
    } finally {
      await probe.close();
    }
  });
});

Deno.test("top_p: 0, which OpenAI accepts (evaluation tools send it with temperature 0), keeps only the most likely token, as top_k: 1; a negative one is still refused", async () => {
  const parsed = CompletionRequestSchema.parse({ prompt: "Hi", top_p: 0, temperature: 0.9 });
  const params = toGenerationParams(parsed);
  assertEquals([params.topK, params.topP, params.temperature], [1, 1, 0.9]);
  assertEquals(toGenerationParams({ top_p: 0.5, top_k: 7 }).topK, 7);
  await withNode(async (node) => {
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "Hi", max_tokens: 2, top_p: 0 }),
    });
    assertEquals(response.status, 200);
    assertEquals((await response.json()).object, "text_completion");
    const negative = await refusal(
      node,
      "/v1/completions",
      `{"model":"gated","prompt":"Hi","top_p":-0.1}`,
    );
    assertEquals(negative, { status: 400, code: "invalid_request", param: "top_p" });
  });
});

// The OpenAI-compatible routes and the WebSocket API as a demanding client and an attacker would
// use them: a chat message whose content is an empty list of parts is refused as OpenAI refuses it
// (not run as an empty turn); a WebSocket `infer` may send `null` for its own optional fields as
// for the sampling ones (a client that writes unset fields as null); a `__proto__` member of a body
// cannot carry values past the schema; and a client that goes away while its job still waits in the
// queue takes the job out of the queue, streamed or not.

const MODEL: ServedModelInfo = { cid: "bafkedgesmodel", name: "edges", kind: "text" };

Deno.test("a chat message whose content is an empty list of parts is a 400 naming it (as OpenAI), not a job on an empty turn; one text part still passes", async () => {
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

Deno.test("a WebSocket infer with null for logprobs, nonce and input runs as if they were absent, as null sampling fields do", async () => {
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

Deno.test("a __proto__ member of a body carries nothing past the schema (an unchecked max_tokens or stop cannot come through the prototype): it is an unknown field, refused naming it", () => {
  const proto = '"__proto__":{"max_tokens":100000,"stop":42,"stream":true}';
  const bodies = [
    [CompletionRequestSchema, `{"prompt":"x",${proto}}`],
    [ChatCompletionRequestSchema, `{"messages":[{"role":"user","content":"x"}],${proto}}`],
  ] as const;
  for (const [schema, json] of bodies) {
    let refused: unknown;
    try {
      parseRequest<unknown>(schema, parseJsonText(json));
    } catch (error) {
      refused = error;
    }
    assert(refused instanceof RequestValidationError, `accepted: ${refused}`);
    assertEquals([refused.code, refused.param], ["invalid_request", "__proto__"]);
  }
  // What the prototype would have carried is not read from an accepted body either.
  const body = parseRequest(CompletionRequestSchema, parseJsonText('{"prompt":"x"}'));
  const params = toGenerationParams(body, body.max_completion_tokens);
  assertEquals([params.maxTokens, params.stop], [DEFAULT_GENERATION_PARAMS.maxTokens, []]);
});

Deno.test("a client that goes away while its job is queued takes the job out of the queue: SSE, one body, and an SSE body never read", async () => {
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

Deno.test("reasoning_effort (which OpenAI refuses for a model that does not reason) and vLLM's sampling extensions that would change the answer are refused with 400 unsupported_field naming them; values that ask for nothing pass", async () => {
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

// A field whose schema is a union (a completion's `prompt`, `stop`, a chat message's `content`) and
// whose value is of none of its types — missing, a number, an object — is named with what it must
// be and what came, as every other field's refusal is: "Invalid input" alone tells a new client
// nothing (as a newcomer's `curl -d '{"max_tokens":4}'` was told).

/** The error `parseRequest` refuses `body` with (the test fails if it accepts it). */
function parseRefusal(
  schema: Parameters<typeof parseRequest>[0],
  body: unknown,
): RequestValidationError {
  try {
    parseRequest(schema, body);
  } catch (error) {
    if (error instanceof RequestValidationError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

Deno.test("a completion without a prompt is told the prompt is missing and what it must be", () => {
  const error = parseRefusal(CompletionRequestSchema, { max_tokens: 4 });
  assertEquals(error.code, "invalid_request");
  assertEquals(error.param, "prompt");
  assertEquals(
    error.message,
    "'prompt': Invalid input: expected string or array, received undefined",
  );
});

Deno.test("a prompt of the wrong type names the type that came", () => {
  const error = parseRefusal(CompletionRequestSchema, { prompt: 5 });
  assertEquals(error.message, "'prompt': Invalid input: expected string or array, received number");
});

Deno.test("a stop of the wrong type, and chat content that is null, say the same", () => {
  assertEquals(
    parseRefusal(CompletionRequestSchema, { prompt: "hi", stop: { a: 1 } }).message,
    "'stop': Invalid input: expected string or array, received object",
  );
  const chat = parseRefusal(ChatCompletionRequestSchema, {
    messages: [{ role: "user", content: null }],
  });
  assertEquals(chat.param, "messages.0.content");
  assertEquals(
    chat.message,
    "'messages.0.content': Invalid input: expected string or array, received null",
  );
});

Deno.test("a value of one branch's type still gets that branch's own reason", () => {
  // Unchanged behaviour, pinned beside the fix: five stop sequences are over the array's four.
  const error = parseRefusal(CompletionRequestSchema, {
    prompt: "hi",
    stop: ["a", "b", "c", "d", "e"],
  });
  assertEquals(error.param, "stop");
  assertEquals(error.message.startsWith("'stop': Too big"), true);
});

// The OpenAI request fields against what real clients send: a field that would change the answer is
// honoured or refused, never silently dropped (`web_search_options`, `verbosity` on chat;
// `max_completion_tokens`, OpenAI's newer name for `max_tokens`, on completions too), and a prompt
// given as token ids (OpenAI's "array of tokens", what lm-evaluation-harness sends by default) is
// refused saying so, not told it is too long a batch.

const FIELDS_MODEL: ServedModelInfo = { cid: "bafkfieldsmodel", name: "fields", kind: "text" };

Deno.test("chat web_search_options and a verbosity other than medium are refused with 400 unsupported_field naming them, not ignored; verbosity medium and null pass", async () => {
  const { jobs, chat } = recordingApp(FIELDS_MODEL);
  for (
    const [field, value] of [
      ["web_search_options", {}],
      ["web_search_options", { search_context_size: "low" }],
      ["verbosity", "low"],
      ["verbosity", "high"],
    ] as const
  ) {
    const { status, error } = await chat({ [field]: value });
    assertEquals(
      [status, error.code, error.param, error.type],
      [400, "unsupported_field", field, "invalid_request_error"],
      `${field}: ${JSON.stringify(value)}`,
    );
  }
  assertEquals(jobs.length, 0, "a refused field made no job");
  // Values that ask for nothing the node lacks go through (the port then answers 429).
  for (const body of [{ verbosity: "medium" }, { verbosity: null }, { web_search_options: null }]) {
    assertEquals((await chat(body)).status, 429, JSON.stringify(body));
  }
  assertEquals(jobs.length, 3);
});

Deno.test("/v1/completions takes max_completion_tokens as chat does (not ignored for the default 64); out of range is a 400 naming it", async () => {
  const { jobs, completions } = recordingApp(FIELDS_MODEL);
  assertEquals((await completions({ max_completion_tokens: 100 })).status, 429);
  assertEquals((await completions({ max_tokens: 10, max_completion_tokens: 200 })).status, 429);
  assertEquals(jobs.map((job) => job.params.maxTokens), [100, 200]);
  const { status, error } = await completions({ max_completion_tokens: 0 });
  assertEquals([status, error.code, error.param], [
    400,
    "invalid_request",
    "max_completion_tokens",
  ]);
  assertEquals(jobs.length, 2);
});

Deno.test("a completions prompt of token ids ([1, 2, 3] or [[1, 2, 3]]) is a 400 naming 'prompt' that says token ids are not taken, not that the array is too long", async () => {
  const { jobs, completions } = recordingApp(FIELDS_MODEL);
  for (const prompt of [[1, 2, 3], [[1, 2, 3]], [7]]) {
    const { status, error } = await completions({ prompt });
    assertEquals([status, error.code, error.param], [400, "invalid_request", "prompt"]);
    assert(/token ids/.test(error.message), `says why: ${error.message}`);
    assert(!/exactly 1/.test(error.message), `not a batch-size message: ${error.message}`);
  }
  // A batch of more than one text prompt is still told it is one prompt per request.
  const batch = await completions({ prompt: ["a", "b"] });
  assertEquals([batch.status, batch.error.param], [400, "prompt"]);
  assert(/1/.test(batch.error.message), batch.error.message);
  assertEquals(jobs.length, 0);
});

// `max_tokens` above a job's cap: clients send 8192 (or a model's whole context) to mean "as long
// as it goes". Taken as the cap, which the job and its receipt then carry, rather than refused;
// what is not a positive integer is still a 400 naming the field.

Deno.test("max_tokens and max_completion_tokens above the cap are taken as the cap on both routes, not refused", async () => {
  const { jobs, chat, completions } = recordingApp(FIELDS_MODEL);
  const cap = GENERATION_LIMITS.maxTokens;
  const asked = [cap, cap + 1, 8192, 1e20];
  for (const value of asked) {
    assertEquals((await chat({ max_tokens: value })).status, 429, `chat max_tokens ${value}`);
    assertEquals((await completions({ max_completion_tokens: value })).status, 429);
  }
  assertEquals(jobs.map((job) => job.params.maxTokens), asked.flatMap(() => [cap, cap]));
  // Below the cap a value is kept as it is.
  assertEquals((await chat({ max_completion_tokens: 100 })).status, 429);
  assertEquals(jobs.at(-1)?.params.maxTokens, 100);
});

Deno.test("max_tokens that is not a positive integer is still a 400 naming the field", async () => {
  const { jobs, chat, completions } = recordingApp(FIELDS_MODEL);
  for (const value of [0, -8192, 1.5, 8192.5, "8192"]) {
    for (const field of ["max_tokens", "max_completion_tokens"]) {
      for (const post of [chat, completions]) {
        const { status, error } = await post({ [field]: value });
        assertEquals(
          [status, error.code, error.param],
          [400, "invalid_request", field],
          `${value}`,
        );
      }
    }
  }
  assertEquals(jobs.length, 0);
});

Deno.test("a WebSocket infer's max_tokens above the cap is taken as the cap too", () => {
  const message = parseRequest(WsClientMessageSchema, {
    type: "infer",
    id: "a",
    prompt: "x",
    max_tokens: 8192,
  });
  assert(message.type === "infer");
  assertEquals(toGenerationParams(message).maxTokens, GENERATION_LIMITS.maxTokens);
});
