/**
 * The OpenAI conventions real clients rely on: stop sequences left out of the text, `usage: null`
 * on non-final chunks, `GET /v1/models/{id}`, `max_tokens` past the context, logprobs, a fresh seed
 * per sampled request, and fields the node cannot honour refused with a 400 that says why.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { params, SCRIPTED_LOGPROB, startTestNode, type TestNode } from "./_fixtures.ts";
import { post, sseEvents } from "./_sse.ts";
import { StopTrimmer } from "../../server/stop_trimmer.ts";
import type {
  InferencePort,
  InferenceStats,
  StreamedToken,
} from "../../inference/inference_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { renderChatPrompt } from "../../server/chat_template.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { GENERATION_LIMITS, type TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { drawRequestSeed } from "../../server/request_seed.ts";

// The OpenAI conventions real clients rely on: stop sequences left out of the text, `usage:
// null` on non-final chunks, `GET /v1/models/{id}`, `max_tokens` past the context, logprobs and
// top logprobs, and refused (not ignored) fields the node cannot honour.

async function withNode(body: (node: TestNode, client: OpenAI) => Promise<void>): Promise<void> {
  const node = await startTestNode();
  node.gated.release(1_000_000); // these tests are about shapes, not timing
  const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 });
  try {
    await body(node, client);
  } finally {
    await node.close();
  }
}

/**
 * The text field of `path`'s body: a prompt for completions, one message for chat. Each route
 * refuses the other's field (an unknown field is a 400), so a body shared by both loops over
 * paths takes its text from here.
 */
function textOf(path: string): Record<string, unknown> {
  return path.includes("chat") ? { messages: [{ role: "user", content: "x" }] } : { prompt: "x" };
}

Deno.test("A matched stop sequence is not part of the returned text (full and streamed); veriflow_stop names it", async () => {
  await withNode(async (node, client) => {
    // The gated model writes "abcdef…"; it stops after "cd", which the client must not see.
    const full = await client.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 10,
      stop: ["cd", "zz"],
    });
    assertEquals(full.choices[0].text, "ab");
    assertEquals(full.choices[0].finish_reason, "stop");
    // deno-lint-ignore no-explicit-any
    assertEquals((full as any).veriflow_stop, "cd");
    assertEquals(full.usage?.completion_tokens, 4); // the work done includes the stop
    const stream = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 10,
      stop: "def",
      stream: true,
    });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assertEquals([text, finish], ["abc", "stop"]);
    // A false start is held back only until it is known not to be a stop: "ce" never comes.
    const events = await sseEvents(
      await post(node, "/v1/completions", {
        model: "gated",
        prompt: "x",
        max_tokens: 6,
        stop: "ce",
        stream: true,
      }),
    );
    const pieces = events.map((e) => (e.choices as { text: string }[])[0]?.text ?? "");
    assertEquals(pieces.join(""), "abcdef");
    assert(pieces.includes("cd"), `"c" is held with "d": ${JSON.stringify(pieces)}`);
    assertEquals(events.at(-1)!.veriflow_stop, undefined);
  });
});

Deno.test("StopTrimmer: holds whole tokens that may start a stop, drops the matched stop across tokens, keeps logprob tokens aligned", () => {
  const token = (text: string, index: number, finishReason?: "stop"): StreamedToken => ({
    index,
    tokenId: index,
    text,
    logprob: -index,
    ...(finishReason ? { finishReason } : {}),
  });
  const trimmer = new StopTrimmer(["\nUser:"]);
  assertEquals(trimmer.push(token("Hi", 0))?.text, "Hi");
  // " there\n" ends with "\n", which may start the stop: the whole token is held.
  assertEquals(trimmer.push(token(" there\n", 1)), undefined);
  assertEquals(trimmer.push(token("Us", 2)), undefined);
  // The last token completes the stop across three tokens: it is dropped, " there" is kept
  // with the one token it came from.
  assertEquals(trimmer.push(token("er:", 3, "stop")), undefined);
  const ended = trimmer.finish("stop");
  assertEquals([ended.piece.text, ended.stop], [" there", "\nUser:"]);
  assertEquals(ended.piece.tokens.map((t) => t.index), [1]);
  // A job that ends another way (length) gets back everything held, as is.
  const cut = new StopTrimmer(["\nUser:"]);
  cut.push(token("Hi\n", 0));
  assertEquals(cut.finish("length"), {
    piece: { text: "Hi\n", tokens: [token("Hi\n", 0)] },
  });
  // Once the held text cannot start a stop any more, it is released with the next token.
  const released = new StopTrimmer(["\nUser:"]);
  released.push(token("a\n", 0));
  assertEquals(released.push(token("b", 1))?.text, "a\nb");
});

Deno.test("StopTrimmer: a last token that cannot complete a stop sequence goes out at once, with all that was held, not at the job's end", () => {
  const token = (text: string, index: number, finishReason?: "stop" | "length"): StreamedToken => ({
    index,
    tokenId: index,
    text,
    ...(finishReason ? { finishReason } : {}),
  });
  // A length cut: "\n" was held as a possible start of "\nUser:", and nothing comes after.
  const cut = new StopTrimmer(["\nUser:"]);
  assertEquals(cut.push(token("Hi\n", 0)), undefined);
  const lastOfCut = cut.push(token("Us", 1, "length"));
  assertEquals([lastOfCut?.text, lastOfCut?.tokens.map((t) => t.index)], ["Hi\nUs", [0, 1]]);
  assertEquals(cut.finish("length"), { piece: { text: "", tokens: [] } });
  // No stop sequences asked for: the end of text (stop) releases the last token at once too.
  const plain = new StopTrimmer([]);
  assertEquals(plain.push(token("a", 0))?.text, "a");
  assertEquals(plain.push(token("b", 1, "stop"))?.text, "b");
  assertEquals(plain.finish("stop"), { piece: { text: "", tokens: [] } });
  // The first bytes of a character the cut left incomplete stay for the end (no text to send).
  const bytes = new StopTrimmer([]);
  assertEquals(bytes.push(token("", 0, "length")), undefined);
  assertEquals(bytes.finish("length").piece.tokens.map((t) => t.index), [0]);
});

Deno.test("StopTrimmer: the first bytes of a character (tokens with no text) are held with the token that completes it, so a stop starting with it drops them all", () => {
  const token = (text: string, index: number, finishReason?: "stop"): StreamedToken => ({
    index,
    tokenId: index,
    text,
    logprob: -index,
    ...(finishReason ? { finishReason } : {}),
  });
  // "Hi。": "。" is three UTF-8 bytes; the first two tokens have no text until the third.
  const trimmer = new StopTrimmer(["。"]);
  assertEquals(trimmer.push(token("H", 0))?.tokens.map((t) => t.index), [0]);
  assertEquals(trimmer.push(token("i", 1))?.tokens.map((t) => t.index), [1]);
  assertEquals(trimmer.push(token("", 2)), undefined, "the stop's first byte is held");
  assertEquals(trimmer.push(token("", 3)), undefined, "so is its second");
  assertEquals(trimmer.push(token("。", 4, "stop")), undefined);
  assertEquals(trimmer.finish("stop"), { piece: { text: "", tokens: [] }, stop: "。" });
  // Held with the completing token even when that token is held for a longer stop.
  const longer = new StopTrimmer(["。X"]);
  assertEquals(longer.push(token("", 0)), undefined);
  assertEquals(longer.push(token("。", 1)), undefined);
  assertEquals(longer.push(token("X", 2, "stop")), undefined);
  assertEquals(longer.finish("stop"), { piece: { text: "", tokens: [] }, stop: "。X" });
  // A character that starts no stop is released with all its tokens at once.
  const other = new StopTrimmer(["。"]);
  assertEquals(other.push(token("", 0)), undefined);
  const released = other.push(token("é", 1));
  assertEquals([released?.text, released?.tokens.map((t) => t.index)], ["é", [0, 1]]);
});

Deno.test("With stream_options.include_usage, every chunk but the last carries usage: null; the last carries the usage", async () => {
  await withNode(async (node) => {
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      const events = await sseEvents(
        await post(node, path, {
          model: "gated",
          ...textOf(path),
          max_tokens: 3,
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      const usage = events.at(-1)!.usage as { completion_tokens: number };
      assertEquals(usage.completion_tokens, 3);
      assertEquals(events.at(-1)!.choices, []);
      assert(events.length > 2);
      for (const event of events.slice(0, -1)) assertEquals(event.usage, null, path);
      // Without include_usage, no usage member at all (as OpenAI).
      const plain = await sseEvents(
        await post(node, path, {
          model: "gated",
          ...textOf(path),
          max_tokens: 2,
          stream: true,
        }),
      );
      assert(plain.every((event) => !("usage" in event)), path);
    }
  });
});

Deno.test("stream_options without stream: true is refused with 400 invalid_request naming stream_options (as OpenAI); null passes", async () => {
  await withNode(async (node) => {
    const request = (path: string) => ({ model: "gated", ...textOf(path) });
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      for (const stream of [undefined, false, null]) {
        const response = await post(node, path, {
          ...request(path),
          stream,
          stream_options: { include_usage: true },
        });
        const { error } = await response.json();
        assertEquals(
          [response.status, error.code, error.param],
          [400, "invalid_request", "stream_options"],
          `${path} stream: ${stream}`,
        );
        assert(error.message.includes("'stream_options'"), error.message);
      }
    }
    assertEquals((await node.stats()).jobsStarted, 0);
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      const response = await post(node, path, {
        ...request(path),
        max_tokens: 1,
        stream_options: null,
      });
      assertEquals(response.status, 200, path);
      await response.body?.cancel();
    }
  });
});

Deno.test("GET /v1/models/{id} by CID or name; an unknown id is a 404 (openai client: NotFoundError)", async () => {
  await withNode(async (node, client) => {
    const byCid = await client.models.retrieve(node.model.info.cid);
    assertEquals([byCid.id, byCid.object], [node.model.info.cid, "model"]);
    const byName = await client.models.retrieve("gated");
    assertEquals(byName.id, node.gated.info.cid);
    // deno-lint-ignore no-explicit-any
    assertEquals((byName as any).veriflow.context_length, node.gated.info.contextLength);
    await assertRejects(() => client.models.retrieve("no-such-model"), OpenAI.NotFoundError);
  });
});

Deno.test("max_tokens beyond the context is truncated (documented): the job ends at the context with finish_reason length", async () => {
  await withNode(async (node, client) => {
    const context = node.model.info.contextLength!;
    const completion = await client.completions.create({
      model: "default",
      prompt: "Hello",
      max_tokens: 4096,
    });
    assertEquals(completion.choices[0].finish_reason, "length");
    assertEquals(completion.usage!.prompt_tokens + completion.usage!.completion_tokens, context);
  });
});

Deno.test("logprobs: the chosen tokens' log-probabilities, completions (logprobs: 0: top_logprobs the sampled token alone) and chat (logprobs: true), full and streamed", async () => {
  await withNode(async (_node, client) => {
    const completion = await client.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 3,
      logprobs: 0,
    });
    assertEquals(completion.choices[0].logprobs, {
      tokens: ["a", "b", "c"],
      token_logprobs: [SCRIPTED_LOGPROB, SCRIPTED_LOGPROB, SCRIPTED_LOGPROB],
      // OpenAI: the sampled token is always listed, so logprobs: 0 lists it alone.
      top_logprobs: [{ a: SCRIPTED_LOGPROB }, { b: SCRIPTED_LOGPROB }, { c: SCRIPTED_LOGPROB }],
      text_offset: [0, 1, 2],
    });
    const chat = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 2,
      logprobs: true,
    });
    assertEquals(chat.choices[0].logprobs?.content, [
      { token: "a", logprob: SCRIPTED_LOGPROB, bytes: [97], top_logprobs: [] },
      { token: "b", logprob: SCRIPTED_LOGPROB, bytes: [98], top_logprobs: [] },
    ]);
    const stream = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 3,
      logprobs: true,
      stream: true,
    });
    const streamed = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    assertEquals(streamed.map((entry) => entry.token), ["a", "b", "c"]);
    // Without logprobs asked: null, as before.
    const plain = await client.completions.create({ model: "gated", prompt: "x", max_tokens: 2 });
    assertEquals(plain.choices[0].logprobs, null);
  });
});

Deno.test("logprobs of the real model are its fingerprints' logProb, token by token", async () => {
  await withNode(async (node) => {
    const response = await post(node, "/v1/completions", {
      prompt: "Once upon a time",
      max_tokens: 12,
      logprobs: 0,
    });
    const { choices } = await response.json();
    const expected: number[] = [];
    const ids = node.model.tokenizer.encode("Once upon a time");
    for await (
      const chunk of node.model.generate(ids, {
        maxTokens: 12,
        temperature: 0,
        topK: 0,
        topP: 1,
        seed: 0,
        stop: [],
      })
    ) expected.push(chunk.fingerprint.logProb);
    assertEquals(choices[0].logprobs.token_logprobs, expected);
    assert(expected.every((lp) => lp <= 0 && Number.isFinite(lp)));
  });
});

Deno.test("Fields the node cannot honour are refused with 400 unsupported_field naming the field; values that ask for nothing pass", async () => {
  await withNode(async (node) => {
    const refused: [string, string, unknown][] = [
      ["/v1/chat/completions", "tools", [{ type: "function", function: { name: "f" } }]],
      ["/v1/chat/completions", "response_format", { type: "json_object" }],
      ["/v1/chat/completions", "logit_bias", { "97": 10 }],
      ["/v1/chat/completions", "presence_penalty", 0.5],
      // Chat's field: completions ask with logprobs: N, so it would be silently ignored there.
      ["/v1/completions", "top_logprobs", 2],
      ["/v1/completions", "frequency_penalty", 1],
      ["/v1/completions", "suffix", "end"],
      ["/v1/completions", "best_of", 3],
    ];
    for (const [path, field, value] of refused) {
      const response = await post(node, path, {
        model: "gated",
        ...textOf(path),
        [field]: value,
      });
      const { error } = await response.json();
      assertEquals([response.status, error.code, error.param], [400, "unsupported_field", field]);
      assert(error.message.includes(`'${field}'`), error.message);
    }
    const harmless = await post(node, "/v1/chat/completions", {
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 2,
      tools: [],
      logit_bias: {},
      presence_penalty: 0,
      frequency_penalty: 0,
      response_format: { type: "text" },
      top_logprobs: 0,
      user: "someone",
    });
    assertEquals(harmless.status, 200);
    await harmless.text();
    assertEquals((await node.stats()).jobsStarted, 1);
  });
});

/** The direct generation an OpenAI request must match, with `k` top tokens per chunk. */
async function directChunks(node: TestNode, prompt: string, maxTokens: number, k: number) {
  const ids = node.model.tokenizer.encode(prompt);
  const chunks: TokenChunk[] = [];
  for await (
    const chunk of node.model.generate(ids, params({ maxTokens }), { topLogprobs: k })
  ) chunks.push(chunk);
  return chunks;
}

/** Checks every top list: k entries, log-probabilities ≤ 0 and descending, the greedy token's first. */
function assertTopLists(
  entries: { logprob: number; top_logprobs: { logprob: number }[] }[],
  k: number,
) {
  assert(entries.length > 0);
  for (const entry of entries) {
    const top = entry.top_logprobs;
    assertEquals(top.length, k);
    assertEquals(top[0].logprob, entry.logprob, "greedy: the chosen token is the most likely");
    top.forEach((t, j) => assert(t.logprob <= 0 && (j === 0 || t.logprob <= top[j - 1].logprob)));
  }
}

Deno.test("chat top_logprobs: each logprobs.content entry lists the k most likely tokens as {token, logprob, bytes}, the greedy token first, full and streamed", async () => {
  await withNode(async (node, client) => {
    const K = 5;
    const messages = [{ role: "user" as const, content: "Say hi." }];
    // stop [] adds no stop of the request's own; the chat-turn stop still applies, and the
    // comparison with the direct chunks below holds only while these tokens never write it.
    const request = { model: "default", messages, max_tokens: 12, stop: [], logprobs: true };
    const encoder = new TextEncoder();
    const expected = (await directChunks(node, renderChatPrompt(messages), 12, K)).map((c) => ({
      token: c.text,
      logprob: c.fingerprint.logProb,
      bytes: [...encoder.encode(c.text)],
      top_logprobs: c.topLogprobs!.map((t) => ({
        token: t.text,
        logprob: t.logprob,
        bytes: [...encoder.encode(t.text)],
      })),
    }));
    const full = await (await post(node, "/v1/chat/completions", { ...request, top_logprobs: K }))
      .json();
    assertEquals(full.choices[0].logprobs.content, expected);
    assertTopLists(full.choices[0].logprobs.content, K);
    const stream = await client.chat.completions.create({
      ...request,
      top_logprobs: K,
      stream: true,
    });
    const streamed = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    assertEquals(streamed, expected);
    // Without top_logprobs: the chosen tokens' entries, top lists empty.
    const plain = await (await post(node, "/v1/chat/completions", request)).json();
    assertEquals(
      plain.choices[0].logprobs.content,
      expected.map((entry) => ({ ...entry, top_logprobs: [] })),
    );
  });
});

Deno.test("completions logprobs: N lists the N most likely tokens and the sampled one per position as { text: logprob } (legacy shape), full and streamed", async () => {
  await withNode(async (node) => {
    const N = 3;
    const prompt = "Once upon a time";
    const chunks = await directChunks(node, prompt, 12, N);
    const offsets: number[] = [];
    let offset = 0;
    for (const chunk of chunks) {
      offsets.push(offset);
      offset += chunk.text.length;
    }
    const expected = {
      tokens: chunks.map((c) => c.text),
      token_logprobs: chunks.map((c) => c.fingerprint.logProb),
      // The sampled token under its text, then the N most likely (greedy: it is the first).
      top_logprobs: chunks.map((c) => {
        const byText: Record<string, number> = { [c.text]: c.fingerprint.logProb };
        for (const t of c.topLogprobs!) if (t.tokenId !== c.tokenId) byText[t.text] ??= t.logprob;
        return byText;
      }),
      text_offset: offsets,
    };
    const body = { prompt, max_tokens: 12, logprobs: N };
    const full = await (await post(node, "/v1/completions", body)).json();
    assertEquals(full.choices[0].logprobs, expected);
    full.choices[0].logprobs.top_logprobs.forEach((top: Record<string, number>, i: number) => {
      const values = Object.values(top);
      assert(values.length >= 1 && values.length <= N + 1 && values.every((v) => v <= 0));
      assertEquals(Math.max(...values), expected.token_logprobs[i], "greedy: the most likely");
    });
    const events = await sseEvents(await post(node, "/v1/completions", { ...body, stream: true }));
    const merged = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] } as Record<
      string,
      unknown[]
    >;
    for (const event of events) {
      const logprobs = (event.choices as { logprobs: Record<string, unknown[]> | null }[])[0]
        ?.logprobs;
      if (logprobs) { for (const key in merged) merged[key].push(...logprobs[key]); }
    }
    assertEquals(merged, expected);
  });
});

Deno.test("top logprobs out of range are refused with 400 naming the field: chat top_logprobs 21, completions logprobs 6; chat top_logprobs needs logprobs: true", async () => {
  await withNode(async (node) => {
    const cases: [string, Record<string, unknown>, string][] = [
      ["/v1/chat/completions", { logprobs: true, top_logprobs: 21 }, "top_logprobs"],
      ["/v1/chat/completions", { logprobs: true, top_logprobs: -1 }, "top_logprobs"],
      ["/v1/chat/completions", { top_logprobs: 2 }, "top_logprobs"],
      ["/v1/chat/completions", { logprobs: false, top_logprobs: 2 }, "top_logprobs"],
      ["/v1/completions", { logprobs: 6 }, "logprobs"],
      ["/v1/completions", { logprobs: 1.5 }, "logprobs"],
    ];
    for (const [path, fields, param] of cases) {
      const response = await post(node, path, {
        model: "gated",
        ...textOf(path),
        ...fields,
      });
      const { error } = await response.json();
      assertEquals(
        [response.status, error.code, error.param],
        [400, "invalid_request", param],
        `${path} ${JSON.stringify(fields)}`,
      );
      assert(error.message.includes(`'${param}'`), error.message);
    }
    assertEquals((await node.stats()).jobsStarted, 0);
  });
});

// The OpenAI-compatible API as client libraries use it (the `openai` package, LangChain, chat UIs):
// a request that samples (`temperature` above 0) without a `seed` gets a fresh seed per request, as
// OpenAI's samples vary from call to call — a chat UI's "regenerate", or N requests standing in for
// `n: N`, would otherwise get the same text every time; and the fields the node takes one value of
// (`n`, `echo`) or the message roles it has no use for (`tool`, `function`) are refused with a 400
// that says why, not zod's bare "expected 1".

const MODEL = { cid: "bafkrecorded", name: "recorded", kind: "text" as const, contextLength: 64 };

/**
 * A node whose port records each job and refuses it (429, so the `openai` client's call rejects
 * once the job is made), with the app's seeds drawn by `drawSeed`.
 */
function recordingNode(drawSeed?: () => number) {
  const jobs: TextJob[] = [];
  const inference: InferencePort = {
    submit: (job: TextJob) => {
      jobs.push(job);
      return Promise.reject(new VeriflowError("too_many_jobs", "recorded"));
    },
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  } as unknown as InferencePort;
  const app = createApp({ inference, drawSeed });
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  return {
    jobs,
    client,
    url: server.url,
    close: async () => {
      abort.abort();
      await server.finished;
    },
  };
}

Deno.test("an OpenAI request that samples without a seed gets a fresh one per request (chat and completions, streamed or not); a seed sent, and a greedy request, keep theirs", async () => {
  let draws = 0;
  const node = recordingNode(() => 1000 + ++draws);
  const chat = (body: Record<string, unknown>) =>
    node.client.chat.completions.create({
      model: "recorded",
      messages: [{ role: "user", content: "Hi" }],
      ...body,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming).catch(() => undefined);
  const completion = (body: Record<string, unknown>) =>
    node.client.completions.create({
      model: "recorded",
      prompt: "Hi",
      ...body,
    } as OpenAI.CompletionCreateParamsNonStreaming).catch(() => undefined);
  try {
    await chat({ temperature: 0.8 });
    await chat({ temperature: 0.8 }); // "regenerate": the same request again
    await chat({ temperature: 0.8, stream: true });
    await completion({ temperature: 1, seed: null });
    await completion({ temperature: 1, seed: 7 }); // the client's seed: reproducible
    await chat({ temperature: 0.8, seed: 0 }); // 0 is a seed like any other
    await chat({}); // greedy by default: nothing to draw
    await completion({ temperature: 0 });
    await completion({ temperature: 1e-7 }); // below MIN_SAMPLING_TEMPERATURE: greedy
    await completion({ temperature: 1, top_p: 0 }); // the most likely token only: greedy
    assertEquals(
      node.jobs.map((job) => job.params.seed),
      [1001, 1002, 1003, 1004, 7, 0, 0, 0, 0, 0],
    );
    assertEquals(draws, 4);
  } finally {
    await node.close();
  }
});

Deno.test("the default seed draw is a job seed (a safe integer within GENERATION_LIMITS), whatever it draws", () => {
  for (let i = 0; i < 1000; i++) {
    const seed = drawRequestSeed();
    assert(Number.isSafeInteger(seed), String(seed));
    assert(seed >= GENERATION_LIMITS.minSeed && seed <= GENERATION_LIMITS.maxSeed, String(seed));
  }
});

Deno.test("n other than 1, echo: true and tool or function messages are 400s that say why (one choice per request, no echo, no tool calling), naming the field", async () => {
  const node = recordingNode();
  const post = async (path: string, body: Record<string, unknown>) => {
    const response = await fetch(`${node.url}/v1/${path}`, {
      method: "POST",
      body: JSON.stringify({ model: "recorded", ...body }),
    });
    return { status: response.status, error: (await response.json()).error };
  };
  try {
    for (
      const [path, body, param, says] of [
        ["chat/completions", { n: 2 }, "n", "one choice per request"],
        ["completions", { n: 3 }, "n", "one choice per request"],
        ["completions", { echo: true }, "echo", "the prompt is not echoed"],
        [
          "chat/completions",
          {
            messages: [
              { role: "user", content: "Hi" },
              { role: "tool", content: "42", tool_call_id: "call_1" },
            ],
          },
          "messages.1.role",
          "without tool calling",
        ],
        [
          "chat/completions",
          { messages: [{ role: "function", content: "42", name: "f" }] },
          "messages.0.role",
          "without tool calling",
        ],
      ] as const
    ) {
      const full = {
        ...(path === "completions"
          ? { prompt: "Hi" }
          : { messages: [{ role: "user", content: "Hi" }] }),
        ...body,
      };
      const { status, error } = await post(path, full);
      assertEquals([status, error.code, error.param], [400, "invalid_request", param], path);
      assert(error.message.includes(says), `${JSON.stringify(body)}: ${error.message}`);
    }
    // Their one value still passes (and becomes a job).
    assertEquals(
      (await post("chat/completions", { messages: [{ role: "user", content: "Hi" }], n: 1 }))
        .status,
      429,
    );
    assertEquals((await post("completions", { prompt: "Hi", n: 1, echo: false })).status, 429);
    assertEquals(node.jobs.length, 2);
  } finally {
    await node.close();
  }
});
