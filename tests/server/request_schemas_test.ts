/**
 * What the request schemas make of a body: the temperature a request samples at when it sets a
 * sampling knob but no `temperature`, and which `/v1/*` fields are taken, ignored or refused.
 */
import { assert, assertEquals } from "./_assert.ts";
import { postJson, withTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  IGNORED_REQUEST_FIELDS,
  parseRequest,
  SAMPLING_DEFAULT_TEMPERATURE,
  toGenerationParams,
} from "../../server/request_schemas.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { RequestValidationError } from "../../server/http_errors.ts";

/** The text of a chat answer. */
function chatText(json: Record<string, unknown>): string {
  const choices = json.choices as { message: { content: string } }[];
  return choices[0].message.content;
}

/** The `RequestValidationError` that parsing `value` throws (fails when it parses). */
function refusalOf(schema: Parameters<typeof parseRequest>[0], value: unknown) {
  try {
    parseRequest(schema, value);
  } catch (error) {
    assert(error instanceof RequestValidationError, `expected a RequestValidationError: ${error}`);
    return error;
  }
  throw new Error(`${JSON.stringify(value)} was accepted`);
}

Deno.test("a request that sets top_p, top_k or seed without temperature samples at OpenAI's default temperature of 1", () => {
  assertEquals(SAMPLING_DEFAULT_TEMPERATURE, 1);
  for (const knob of [{ top_p: 0.9 }, { top_k: 40 }, { seed: 7 }, { top_p: 1 }, { top_k: 0 }]) {
    assertEquals(toGenerationParams(knob).temperature, 1, JSON.stringify(knob));
    // `null` is absent, as for every field.
    assertEquals(toGenerationParams({ ...knob, temperature: null }).temperature, 1);
  }
  // The knobs still reach the job.
  const nucleus = toGenerationParams({ top_p: 0.9, seed: 3 });
  assertEquals([nucleus.topP, nucleus.seed], [0.9, 3]);
});

Deno.test("a request that sets none of temperature, top_p, top_k and seed keeps the greedy default; a sent temperature always wins", () => {
  assertEquals(toGenerationParams({}).temperature, DEFAULT_GENERATION_PARAMS.temperature);
  assertEquals(DEFAULT_GENERATION_PARAMS.temperature, 0);
  assertEquals(
    toGenerationParams({ top_p: null, top_k: null, seed: null }).temperature,
    0,
  );
  assertEquals(toGenerationParams({ max_tokens: 5, stop: "x" }).temperature, 0);
  assertEquals(toGenerationParams({ temperature: 0, top_p: 0.9, seed: 1 }).temperature, 0);
  assertEquals(toGenerationParams({ temperature: 0.5, top_k: 3 }).temperature, 0.5);
});

Deno.test("chat with top_p and a seed but no temperature samples: two seeds give two answers, one seed the same answer twice", async () => {
  await withTestNode(async (node) => {
    const ask = async (seed: number) => {
      const { status, json } = await postJson(node, "/v1/chat/completions", {
        messages: [{ role: "user", content: "Tell me" }],
        max_tokens: 24,
        top_p: 0.9,
        seed,
      });
      assertEquals(status, 200, JSON.stringify(json));
      return chatText(json);
    };
    const [one, two, oneAgain] = [await ask(1), await ask(2), await ask(1)];
    assert(one !== two, `seeds 1 and 2 gave the same answer: ${JSON.stringify(one)}`);
    assertEquals(oneAgain, one);
  });
});

Deno.test("the WebSocket API takes the same rule: an infer with top_p and a seed but no temperature samples", async () => {
  await withTestNode(async (node) => {
    const ws = await WsProbe.open(node.wsUrl);
    try {
      const run = async (id: string, fields: Record<string, unknown>) => {
        ws.send({ type: "infer", id, prompt: "Tell me", max_tokens: 24, ...fields });
        const end = await ws.end(id);
        assertEquals(end.type, "done", JSON.stringify(end));
        return ws.text(id);
      };
      const greedy = await run("greedy", {});
      assertEquals(await run("greedy-again", {}), greedy);
      const one = await run("seed-1", { top_p: 0.9, seed: 1 });
      const two = await run("seed-2", { top_p: 0.9, seed: 2 });
      assert(one !== two, `seeds 1 and 2 gave the same text: ${JSON.stringify(one)}`);
      assert(one !== greedy || two !== greedy, "top_p without temperature decoded greedily");
    } finally {
      await ws.close();
    }
  });
});

Deno.test("an unknown field on /v1/completions or /v1/chat/completions is a 400 invalid_request naming it", async () => {
  // Typos and other servers' names for the length, stop and sampling settings.
  for (const field of ["maxTokens", "max_token", "max_new_tokens", "n_predict", "typical_p"]) {
    const completion = refusalOf(CompletionRequestSchema, { prompt: "a", [field]: 3 });
    assertEquals([completion.code, completion.param], ["invalid_request", field]);
    assert(completion.message.includes(`'${field}': unknown field`), completion.message);
    const chat = refusalOf(ChatCompletionRequestSchema, {
      messages: [{ role: "user", content: "a" }],
      [field]: 3,
    });
    assertEquals([chat.code, chat.param], ["invalid_request", field]);
  }
  // `null` does not make a field known.
  assertEquals(
    refusalOf(CompletionRequestSchema, { prompt: "a", stop_sequences: null }).param,
    "stop_sequences",
  );
  await withTestNode(async (node) => {
    const { status, json } = await postJson(node, "/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      max_new_tokens: 3,
    });
    const error = json.error as { code: string; param: string; type: string };
    assertEquals([status, error.code, error.param], [400, "invalid_request", "max_new_tokens"]);
    assertEquals(error.type, "invalid_request_error");
  });
});

Deno.test("an unknown member of stream_options is a 400 naming it: a typo of include_usage, or another server's option, is not streamed without it", () => {
  for (const member of ["include_usag", "continuous_usage_stats"]) {
    const completion = refusalOf(CompletionRequestSchema, {
      prompt: "a",
      stream: true,
      stream_options: { include_usage: true, [member]: true },
    });
    assertEquals([completion.code, completion.param], [
      "invalid_request",
      `stream_options.${member}`,
    ]);
    const chat = refusalOf(ChatCompletionRequestSchema, {
      messages: [{ role: "user", content: "a" }],
      stream: true,
      stream_options: { [member]: true },
    });
    assertEquals(chat.param, `stream_options.${member}`);
  }
  // OpenAI's include_obfuscation pads chunks against a length side channel; none is added here,
  // so asking for it is refused, and turning it off is what the node does anyway.
  const obfuscation = refusalOf(CompletionRequestSchema, {
    prompt: "a",
    stream: true,
    stream_options: { include_obfuscation: true },
  });
  assertEquals(obfuscation.param, "stream_options.include_obfuscation");
  parseRequest(ChatCompletionRequestSchema, {
    messages: [{ role: "user", content: "a" }],
    stream: true,
    stream_options: { include_usage: true, include_obfuscation: false },
  });
});

Deno.test("the fields that change nothing are accepted and ignored; the fields the node cannot honour keep their unsupported_field refusal", async () => {
  assertEquals(
    [...IGNORED_REQUEST_FIELDS].sort(),
    [
      "metadata",
      "parallel_tool_calls",
      "prompt_cache_key",
      "safety_identifier",
      "service_tier",
      "store",
      "user",
    ],
  );
  const ignored = Object.fromEntries([...IGNORED_REQUEST_FIELDS].map((f) => [f, null]));
  parseRequest(CompletionRequestSchema, { prompt: "a", ...ignored, user: "u", store: false });
  parseRequest(ChatCompletionRequestSchema, {
    messages: [{ role: "user", content: "a" }],
    ...ignored,
    metadata: { k: "v" },
    // What the openai SDKs send as they are told: every field here is one the node reads.
    stream: true,
    stream_options: { include_usage: true },
    n: 1,
    logprobs: false,
  });
  await withTestNode(async (node) => {
    const chat = await postJson(node, "/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
      user: "alice",
      tools: [{ type: "function", function: { name: "f" } }],
    });
    const error = chat.json.error as { code: string; param: string };
    assertEquals([chat.status, error.code, error.param], [400, "unsupported_field", "tools"]);
    const input = await postJson(node, "/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      veriflow_input: "bafkreiabc",
    });
    assertEquals((input.json.error as { code: string }).code, "unsupported_field");
    const fine = await postJson(node, "/v1/completions", {
      prompt: "hi",
      max_tokens: 2,
      user: "alice",
      metadata: { run: "1" },
      frequency_penalty: 0,
    });
    assertEquals(fine.status, 200, JSON.stringify(fine.json));
  });
});
