/**
 * How `/v1/chat/completions` turns a conversation into a job (`server/chat_template.ts`): the end
 * of turn stays a stop beside the client's stop sequences (OpenAI's 4), text parts stay apart,
 * vLLM's extensions are refused naming the field, and the `openai` client's streams cancel and
 * agree.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { GENERATION_LIMITS, type TextJob } from "../../protocols/job.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { CHAT_TURN_STOPS } from "../../server/chat_template.ts";
import { recordingApp } from "./_recording_app.ts";
import OpenAI from "openai";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import type { VeriflowChunkFields } from "../../server/openai_shapes.ts";
import { eventually, startTestNode } from "./_fixtures.ts";

// How `/v1/chat/completions` turns a conversation into a job: the chat template's end-of-turn stop
// (`"\nUser:"`) must stay a stop whatever `stop` the client sends (as a model's end-of-turn token
// stays one under vLLM and OpenAI), or the model runs on into a user turn it makes up and answers
// itself; and a message whose content is text parts
// (`[{type:"text",text:"a"},{type:"text",text:"b"}]`, what OpenAI's clients and LangChain send)
// keeps its parts apart as vLLM does (joined by a newline) instead of gluing their words.

const MODEL: ServedModelInfo = { cid: "bafkchatmodel", name: "chat", kind: "text" };

Deno.test("a chat request's own stop sequences are added to the end-of-turn stop, not put in its place (a list, a string, an empty list)", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  await chat({ stop: ["\n\n"] });
  await chat({ stop: "END" });
  await chat({ stop: [] });
  await chat({});
  assertEquals(jobs.length, 4);
  for (const job of jobs) {
    assert(
      job.params.stop.includes(CHAT_TURN_STOPS[0]),
      `the end-of-turn stop is kept: ${JSON.stringify(job.params.stop)}`,
    );
  }
  assert(jobs[0].params.stop.includes("\n\n"), "the client's stop is kept too");
  assert(jobs[1].params.stop.includes("END"), "the client's stop is kept too");
  // No stop repeated: a job's stops are what its receipt commits to.
  for (const job of jobs) assertEquals(new Set(job.params.stop).size, job.params.stop.length);
});

Deno.test("chat stops that already end every turn (the turn stop itself, or a part of it such as a newline) take no extra slot; a full list of other stops is a 400 naming 'stop', never a job over the limit", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  const full = ["a", "b", "c", "\n"].slice(0, GENERATION_LIMITS.maxStopSequences);
  // "\n" ends the output at the turn's first character, so the list stops every turn already.
  await chat({ stop: full });
  // The turn stop itself is one of the job's turn stops already, which fill the free slots.
  await chat({ stop: [CHAT_TURN_STOPS[0]] });
  assertEquals(jobs.map((job) => job.params.stop), [
    full,
    CHAT_TURN_STOPS.slice(0, GENERATION_LIMITS.maxStopSequences),
  ]);
  // As many stops as a job may hold, none of which ends a turn: no room for the turn's stop.
  const others = ["w", "x", "y", "z"].slice(0, GENERATION_LIMITS.maxStopSequences);
  const refused = await chat({ stop: others });
  assertEquals(refused.status, 400);
  const error = refused.error;
  assertEquals([error.code, error.param, error.type], [
    "invalid_request",
    "stop",
    "invalid_request_error",
  ]);
  assertEquals(jobs.length, 2, "the refused request made no job");
  for (const job of jobs) {
    assert(job.params.stop.length <= GENERATION_LIMITS.maxStopSequences);
  }
});

Deno.test("chat content given as text parts keeps the parts apart (joined by a newline, as vLLM does), so their words are not glued together", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  await chat({
    messages: [{
      role: "user",
      content: [{ type: "text", text: "Translate this:" }, { type: "text", text: "Good morning" }],
    }],
  });
  assertEquals(jobs.length, 1);
  assertEquals(jobs[0].prompt, "User: Translate this:\nGood morning\nAssistant:");
  // One part is the string itself.
  await chat({ messages: [{ role: "user", content: [{ type: "text", text: "Hi there" }] }] });
  assertEquals(jobs[1].prompt, "User: Hi there\nAssistant:");
});

// The OpenAI-compatible API driven by the `openai` package as a demanding client drives it. Chat
// `stop`: OpenAI takes 4 stop sequences, and the chat template's new user turn (`"\nUser:"`,
// `"\nUser ("`) must stay a stop beside them in a job that holds 4; a stop that cannot end the output before another
// of the list (it contains the end of turn, or another stop, or is listed twice) takes no slot of
// the job, so such a list of 4 is a job, not a 400, and its text is still trimmed as OpenAI trims
// it. And the sampling extensions of vLLM's OpenAI server that clients of OpenAI-compatible servers
// send (structured output, token-id stops and bans, beam search, prompt logprobs, prompt
// truncation; chat template switches) are refused naming the field, not ignored into an answer that
// silently differs from what was asked. The last two tests hold what the client already gets right:
// its ways to stop a stream cancel the job, and a stream's chunks agree with each other and with
// their usage.

const SCRIPTED_MODEL: ServedModelInfo = { cid: "bafkscriptedchat", name: "scripted", kind: "text" };
/** The CID of the test node's gated model (`_fixtures.ts`), what its answers name. */
const MODEL_GATED = "bafkscriptedgated";

/** The model's output, "Hi\n\nUser:" as a byte-pair tokenizer might split it. */
const TOKENS: readonly string[] = ["Hi", "\n", "\nUser", ":"];

/**
 * A node on 127.0.0.1 whose port records each job and answers it with {@link TOKENS}, the job
 * ending on its last token as a stop (the model's output then contains the end of turn).
 */
function scriptedNode() {
  const jobs: TextJob[] = [];
  const inference: InferencePort = {
    submit: (job: TextJob): Promise<InferenceHandle> => {
      jobs.push(job);
      const jobId = String(jobs.length).padStart(64, "0");
      const tokens: StreamedToken[] = TOKENS.map((text, index) => ({
        index,
        tokenId: index,
        text,
        ...(index === TOKENS.length - 1 ? { finishReason: "stop" as const } : {}),
      }));
      return Promise.resolve({
        jobId,
        model: SCRIPTED_MODEL,
        promptTokens: 3,
        tokens: ReadableStream.from(tokens),
        done: Promise.resolve({
          jobId,
          finishReason: "stop" as const,
          usage: { promptTokens: 3, completionTokens: tokens.length },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        }),
        cancel() {},
      });
    },
    models: () => Promise.resolve([SCRIPTED_MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const abort = new AbortController();
  const server = serve({ app: createApp({ inference }), port: 0, signal: abort.signal });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  return {
    jobs,
    client,
    close: async () => {
      abort.abort();
      await server.finished;
    },
  };
}

Deno.test("chat takes OpenAI's 4 stop sequences when the job can hold them with the end of turn (one contains it, contains another stop, or is listed twice); the text is trimmed as if every one were the job's, full and streamed", async () => {
  const node = scriptedNode();
  const chat = { model: "scripted", messages: [{ role: "user" as const, content: "Hi" }] };
  try {
    // "\n\nUser:" contains the end of turn, which ends the output no later: it takes no slot.
    const stop = ["END", "THE END", "\n\nUser:", "</s>"];
    const full = await node.client.chat.completions.create({ ...chat, stop });
    // The model's "Hi\n\nUser:" ended on the client's own stop (the end of turn inside it): the
    // text leaves all of it out, as OpenAI would, not only the end of turn.
    assertEquals(full.choices[0].message.content, "Hi");
    assertEquals(full.choices[0].finish_reason, "stop");
    const fullFields = full as typeof full & VeriflowChunkFields;
    assertEquals(fullFields.veriflow_stop, "\n\nUser:");
    let text = "";
    let end: VeriflowChunkFields = {};
    const stream = await node.client.chat.completions.create({ ...chat, stop, stream: true });
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      const fields = chunk as typeof chunk & VeriflowChunkFields;
      if (fields.veriflow_job_id !== undefined) end = fields;
    }
    assertEquals([text, end.veriflow_stop], ["Hi", "\n\nUser:"]);
    // The receipt's output is the text and the stop put back.
    assertEquals(text + end.veriflow_stop, TOKENS.join(""));

    // A stop that contains another ("THE END" ⊃ "END") can never end the output first, and a
    // stop listed twice is one.
    await node.client.chat.completions.create({ ...chat, stop: ["END", "THE END", "#", "#"] });
    await node.client.chat.completions.create({ ...chat, stop: ["a", "b", "a", "b"] });
    // A new user turn, plain or named, takes 2 of the job's 4 slots (`CHAT_TURN_STOPS`).
    const userTurn = CHAT_TURN_STOPS.slice(0, 2);
    assertEquals(node.jobs.map((job) => job.params.stop), [
      ["END", "</s>", ...userTurn],
      ["END", "</s>", ...userTurn],
      ["END", "#", ...userTurn],
      ["a", "b", ...userTurn],
    ]);
    for (const job of node.jobs) {
      assert(job.params.stop.length <= GENERATION_LIMITS.maxStopSequences);
    }

    // Four stops that would each end the output on their own need more slots: a 400 on
    // `stop` (the openai client's BadRequestError) that says what takes the slot.
    const refused = await assertRejects(
      () => node.client.chat.completions.create({ ...chat, stop: ["w", "x", "y", "z"] }),
      OpenAI.BadRequestError,
    );
    assertEquals([refused.code, refused.param], ["invalid_request", "stop"]);
    assert(refused.message.includes(JSON.stringify(CHAT_TURN_STOPS[0])), refused.message);
    assertEquals(node.jobs.length, 4, "the refused request made no job");
  } finally {
    await node.close();
  }
});

Deno.test("vLLM's sampling extensions that would change the answer (structured output, token-id stops and bans, beam search, prompt logprobs and truncation) and its chat template switches are 400 unsupported_field naming the field; values that ask for nothing pass", async () => {
  const node = scriptedNode();
  const chat = (body: Record<string, unknown>) =>
    node.client.chat.completions.create({
      model: "scripted",
      messages: [{ role: "user", content: "Hi" }],
      ...body,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const completion = (body: Record<string, unknown>) =>
    node.client.completions.create({
      model: "scripted",
      prompt: "Hi",
      ...body,
    } as OpenAI.CompletionCreateParamsNonStreaming);
  try {
    const refused: [
      (body: Record<string, unknown>) => Promise<unknown>,
      Record<string, unknown>,
    ][] = [
      [chat, { guided_json: { type: "object" } }],
      [completion, { guided_regex: "[0-9]+" }],
      [chat, { guided_choice: ["yes", "no"] }],
      [completion, { guided_grammar: "root ::= 'a'" }],
      [chat, { structured_outputs: { json: { type: "object" } } }],
      [completion, { stop_token_ids: [2] }],
      [chat, { bad_words: ["darn"] }],
      [completion, { allowed_token_ids: [1, 2] }],
      [chat, { use_beam_search: true }],
      [completion, { prompt_logprobs: 1 }],
      [chat, { truncate_prompt_tokens: 8 }],
      [chat, { continue_final_message: true }],
      [chat, { add_generation_prompt: false }],
      [chat, { chat_template: "{{ messages }}" }],
      [chat, { echo: true }],
    ];
    for (const [route, body] of refused) {
      const [field] = Object.keys(body);
      const error = await assertRejects(() => route(body), OpenAI.BadRequestError);
      assertEquals([error.code, error.param], ["unsupported_field", field], field);
    }
    assertEquals(node.jobs.length, 0, "no refused request made a job");
    // The values that ask for nothing (vLLM's defaults) run as if absent.
    await chat({
      stop_token_ids: [],
      bad_words: [],
      use_beam_search: false,
      continue_final_message: false,
      add_generation_prompt: true,
      echo: false,
      guided_json: null,
    });
    await completion({ stop_token_ids: [], use_beam_search: false, prompt_logprobs: null });
    assertEquals(node.jobs.length, 2);
  } finally {
    await node.close();
  }
});

// A non-streamed call aborted by its client is not here: Deno's server does not abort a request's
// signal when its client closes the connection unless the request arrived in one read (headers and
// a small body together), and the openai client's requests do not, so such a job runs to its end
// (docs/API.md, "Responses").
Deno.test("the openai client's ways to stop a stream (stream.controller.abort() mid-stream, a break out of the loop) each cancel the job on the node", async () => {
  const node = await startTestNode();
  const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 });
  const chat = { model: "gated", messages: [{ role: "user" as const, content: "x" }] };
  try {
    // stream.controller.abort() once "b" has come: the loop ends without an error.
    node.gated.release(2);
    const aborted = await client.chat.completions.create({ ...chat, max_tokens: 50, stream: true });
    let text = "";
    for await (const chunk of aborted) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (text === "ab") aborted.controller.abort();
    }
    assertEquals(text, "ab");
    await eventually(async () => (await node.stats()).jobsCancelled === 1);
    // A cancelled job's step that was waiting at the gate takes a release and computes nothing:
    // let it go before the next job is given its steps.
    node.gated.release(node.gated.waiting);

    // A break out of the loop.
    node.gated.release(1);
    const broken = await client.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 50,
      stream: true,
    });
    for await (const chunk of broken) {
      if (chunk.choices[0]?.text === "a") break;
    }
    await eventually(async () => (await node.stats()).jobsCancelled === 2);

    const stats = await node.stats();
    assertEquals([stats.activeJobs, stats.jobsFinished, stats.jobsCancelled], [0, 0, 2]);
    // Each job computed only the steps released to it: none ran on to its 50 tokens.
    assertEquals(node.gated.steps, 3);
  } finally {
    await node.close();
  }
});

Deno.test("a stream read with the openai client keeps id, created and model on every chunk (the usage chunk too), its usage counts the tokens streamed, and it comes unbuffered as text/event-stream", async () => {
  const node = await startTestNode();
  node.gated.release(1_000_000);
  const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 });
  try {
    const { data: stream, response } = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 5,
      logprobs: true,
      stream: true,
      stream_options: { include_usage: true },
    }).withResponse();
    assertEquals(
      ["content-type", "cache-control", "x-accel-buffering"].map((h) => response.headers.get(h)),
      ["text/event-stream; charset=utf-8", "no-cache", "no"],
    );
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const [first] = chunks;
    assert(first.id.startsWith("chatcmpl-"), first.id);
    for (const chunk of chunks) {
      assertEquals([chunk.id, chunk.created, chunk.model], [first.id, first.created, MODEL_GATED]);
    }
    const usage = chunks.at(-1)!.usage!;
    assertEquals(chunks.at(-1)!.choices, []);
    const streamed = chunks.flatMap((chunk) => chunk.choices[0]?.logprobs?.content ?? []);
    assertEquals(streamed.map((token) => token.token).join(""), "abcde");
    assertEquals([usage.completion_tokens, usage.total_tokens], [
      streamed.length,
      usage.prompt_tokens + streamed.length,
    ]);
    assertEquals(chunks.at(-2)!.choices[0].finish_reason, "length");
    // Without include_usage no chunk has a usage member, as OpenAI's.
    const plain = await client.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 2,
      stream: true,
    });
    for await (const chunk of plain) assert(!("usage" in chunk), JSON.stringify(chunk));
  } finally {
    await node.close();
  }
});

// The 400 for a chat `stop` list that needs a fifth slot names the stop that takes no slot as JSON
// (`"\n"`, two characters between quotes), as it names the end of turn. Written into a template
// literal as `"\n"`, it was a real line break between two quotes: the message a client logs showed
// `"` and `"` on two lines instead of the stop to send.

Deno.test("the chat 'stop' refusal names the newline stop as JSON, with no line break in the message", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  const refused = await chat({ stop: ["w", "x", "y", "z"] });
  assertEquals(refused.status, 400);
  const message: string = refused.error.message;
  assert(!message.includes("\n"), `a line break in the message: ${JSON.stringify(message)}`);
  assert(message.includes('"\\n"'), message);
  assertEquals(jobs.length, 0);
});
