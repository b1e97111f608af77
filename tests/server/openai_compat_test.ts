/**
 * The OpenAI conventions real clients rely on: stop sequences left out of the text, `usage:
 * null` on non-final chunks, `GET /v1/models/{id}`, `max_tokens` past the context, logprobs and
 * top logprobs, and refused (not ignored) fields the node cannot honour.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { params, SCRIPTED_LOGPROB, startTestNode, type TestNode } from "./_fixtures.ts";
import { post, sseEvents } from "./_sse.ts";
import { StopTrimmer } from "../../server/stop_trimmer.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { renderChatPrompt } from "../../server/chat_template.ts";

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
          prompt: "x",
          messages: [{ role: "user", content: "x" }],
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
          prompt: "x",
          messages: [{ role: "user", content: "x" }],
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
    const request = { model: "gated", prompt: "x", messages: [{ role: "user", content: "x" }] };
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      for (const stream of [undefined, false, null]) {
        const response = await post(node, path, {
          ...request,
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
      const response = await post(node, path, { ...request, max_tokens: 1, stream_options: null });
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
        prompt: "x",
        messages: [{ role: "user", content: "x" }],
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
        prompt: "x",
        messages: [{ role: "user", content: "x" }],
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
