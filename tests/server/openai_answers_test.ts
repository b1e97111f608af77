/**
 * What an OpenAI-style answer carries (`server/openai_answers.ts`): the text and logprobs of a
 * scripted stream ending on a trimmed stop, the chunk types a real node writes (Veriflow's fields
 * included), the status of a whole answer whose job fails, and the error event a stream ends with.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fullAnswer, sseAnswer } from "../../server/openai_answers.ts";
import { type Drain, serve } from "../../server/serve.ts";
import { CHAT_SHAPE, COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import OpenAI from "openai";
import { startTestNode } from "./_fixtures.ts";
import { post, sseEvents } from "./_sse.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatTokenLogprob,
  CompletionChunk,
  CompletionChunkChoice,
  CompletionLogprobs,
  VeriflowChunkFields,
} from "../../client/mod.ts";
import { createApp } from "../../server/app.ts";
import type { TextJob } from "../../protocols/job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { failingPort } from "./_failing_port.ts";
import { topLogprobsOf } from "../../inference/top_logprobs.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";

// `fullAnswer` and `sseAnswer` on a scripted token stream: what text and logprobs reach the
// client when the output ends on a stop sequence the edge trims.

const JOB_ID = "ab".repeat(32);

/** A finished job whose model wrote `tokens` and stopped. */
function scriptedHandle(tokens: StreamedToken[]): InferenceHandle {
  return {
    jobId: JOB_ID,
    model: { cid: "bafkscripted", name: "scripted", kind: "text" },
    promptTokens: 1,
    tokens: ReadableStream.from(tokens),
    done: Promise.resolve({
      jobId: JOB_ID,
      finishReason: "stop",
      usage: { promptTokens: 1, completionTokens: tokens.length },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    }),
    cancel() {},
  };
}

/** "Hi。" as byte tokens: "。" is three UTF-8 bytes, the first two of which have no text yet. */
const HI_THEN_STOP = (): StreamedToken[] => [
  { index: 0, tokenId: 0x48, text: "H", logprob: -0.1 },
  { index: 1, tokenId: 0x69, text: "i", logprob: -0.2 },
  { index: 2, tokenId: 0xe3, text: "", logprob: -0.3 },
  { index: 3, tokenId: 0x80, text: "", logprob: -0.4 },
  { index: 4, tokenId: 0x82, text: "。", logprob: -0.5, finishReason: "stop" },
];

const OPTIONS = {
  stops: ["。"],
  logprobs: true,
  includeUsage: false,
  idleTimeoutMs: 30_000,
  stats: new EdgeStats(),
  computesOnEventLoop: false,
};

/** The `data:` events of an SSE body, parsed (without `[DONE]`). */
async function sseChoices(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  return text.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) =>
    JSON.parse(e.slice("data: ".length)).choices[0]
  );
}

Deno.test("A trimmed stop that starts with a multi-byte character takes all its tokens' logprobs with it: completions and chat, full and streamed", async () => {
  const full = await (await fullAnswer(scriptedHandle(HI_THEN_STOP()), COMPLETION_SHAPE, OPTIONS))
    .json();
  assertEquals(full.choices[0].text, "Hi");
  assertEquals(full.veriflow_stop, "。");
  assertEquals(full.choices[0].logprobs.tokens, ["H", "i"]);
  assertEquals(full.choices[0].logprobs.token_logprobs, [-0.1, -0.2]);

  const chat = await (await fullAnswer(scriptedHandle(HI_THEN_STOP()), CHAT_SHAPE, OPTIONS))
    .json();
  assertEquals(chat.choices[0].message.content, "Hi");
  assertEquals(
    chat.choices[0].logprobs.content.map((c: { token: string }) => c.token),
    ["H", "i"],
  );

  // Streamed: one chunk per character of "Hi", then the finish; no empty chunk carrying the
  // stop's first bytes.
  const completion = await sseChoices(
    sseAnswer(scriptedHandle(HI_THEN_STOP()), COMPLETION_SHAPE, OPTIONS),
  );
  assertEquals(
    completion.map((c) => [c.text, (c.logprobs as { tokens: string[] } | null)?.tokens]),
    [["H", ["H"]], ["i", ["i"]], ["", undefined]],
  );
  assertEquals(completion.at(-1)!.finish_reason, "stop");

  const deltas = await sseChoices(sseAnswer(scriptedHandle(HI_THEN_STOP()), CHAT_SHAPE, OPTIONS));
  const streamedTokens = deltas.flatMap((c) =>
    (c.logprobs as { content: { token: string }[] } | null)?.content.map((e) => e.token) ?? []
  );
  assertEquals(streamedTokens, ["H", "i"]);
  assertEquals(
    deltas.map((c) => (c.delta as { content?: string }).content ?? "").join(""),
    "Hi",
  );
});

Deno.test("A stop sequence that ends inside a multi-character token is trimmed with what followed it; veriflow_stop is the rest of the signed output", async () => {
  // Two-letter tokens, as a BPE tokenizer makes: "km" is inside "bk" + "mj", and the model
  // stopped after "mj" because its output then contained "km".
  const tokens = (): StreamedToken[] => [
    { index: 0, tokenId: 1, text: "bk", logprob: -0.1 },
    { index: 1, tokenId: 2, text: "mj", logprob: -0.2, finishReason: "stop" },
  ];
  const options = { ...OPTIONS, stops: ["xx", "km"] };
  const full = await (await fullAnswer(scriptedHandle(tokens()), COMPLETION_SHAPE, options)).json();
  assertEquals(full.choices[0].text, "b");
  assertEquals(full.veriflow_stop, "kmj");
  assertEquals(full.choices[0].text + full.veriflow_stop, "bkmj", "the whole output, as signed");
  assertEquals(full.choices[0].logprobs.tokens, ["bk"]);

  const streamed = await sseChoices(sseAnswer(scriptedHandle(tokens()), COMPLETION_SHAPE, options));
  assertEquals(streamed.map((c) => c.text).join(""), "b");
  assertEquals(streamed.at(-1)!.finish_reason, "stop");

  // Several stops in the last token: the earliest one stopped the model.
  const both = await (await fullAnswer(
    scriptedHandle([{ index: 0, tokenId: 3, text: "a.\n\nb", finishReason: "stop" }]),
    COMPLETION_SHAPE,
    { ...options, stops: ["b", "\n\n"] },
  )).json();
  assertEquals([both.choices[0].text, both.veriflow_stop], ["a.", "\n\nb"]);
});

/**
 * Sampled at temperature: "9" was not among the two most likely; "x" was, with integer-like
 * texts below it; "é" completed a character, so its text on its own (in the top list) is "\uFFFD".
 */
const SAMPLED_WITH_TOP = (): StreamedToken[] => [
  {
    index: 0,
    tokenId: 57,
    text: "9",
    logprob: -2.5,
    topLogprobs: [{ tokenId: 32, text: " ", logprob: -0.5 }, {
      tokenId: 10,
      text: "\n",
      logprob: -1.5,
    }],
  },
  {
    index: 1,
    tokenId: 120,
    text: "x",
    logprob: -0.25,
    topLogprobs: [
      { tokenId: 120, text: "x", logprob: -0.25 },
      { tokenId: 700, text: "12", logprob: -1 },
      { tokenId: 51, text: "3", logprob: -2 },
    ],
  },
  {
    index: 2,
    tokenId: 0xa9,
    text: "é",
    logprob: -0.75,
    topLogprobs: [{ tokenId: 0xa9, text: "\uFFFD", logprob: -0.75 }, {
      tokenId: 65,
      text: "A",
      logprob: -1,
    }],
    finishReason: "length",
  },
];

/** Each position's `top_logprobs` object as written on the wire: most likely first. */
const SAMPLED_WITH_TOP_WIRE = [
  String.raw`{" ":-0.5,"\n":-1.5,"9":-2.5}`,
  `{"x":-0.25,"12":-1,"3":-2}`,
  `{"é":-0.75,"A":-1}`,
];

/** The `top_logprobs` arrays' members in a body or an SSE stream, as written. */
function topLogprobsTexts(text: string): string[] {
  return [...text.matchAll(/"top_logprobs":\[([^\]]*)\]/g)].flatMap((match) =>
    match[1] === "" ? [] : match[1].split(/(?<=\}),(?=\{)/)
  );
}

Deno.test("completions top_logprobs always hold the sampled token, under its text in tokens, most likely first on the wire even for integer-like texts; logprobs: 0 lists the sampled token alone", async () => {
  const options = { ...OPTIONS, stops: [] };
  const fullText = await (await fullAnswer(
    scriptedHandle(SAMPLED_WITH_TOP()),
    COMPLETION_SHAPE,
    options,
  )).text();
  assertEquals(topLogprobsTexts(fullText), SAMPLED_WITH_TOP_WIRE);
  const { logprobs } = JSON.parse(fullText).choices[0];
  logprobs.tokens.forEach((token: string, i: number) =>
    assertEquals(logprobs.top_logprobs[i][token], logprobs.token_logprobs[i], `position ${i}`)
  );
  const streamed = await (await sseAnswer(
    scriptedHandle(SAMPLED_WITH_TOP()),
    COMPLETION_SHAPE,
    options,
  )).text();
  assertEquals(topLogprobsTexts(streamed), SAMPLED_WITH_TOP_WIRE);

  // logprobs: 0 submits no top list: each position still gets its object, the sampled token.
  const plain = await (await fullAnswer(scriptedHandle(HI_THEN_STOP()), COMPLETION_SHAPE, options))
    .json();
  assertEquals(plain.choices[0].logprobs.top_logprobs, [
    { H: -0.1 },
    { i: -0.2 },
    { "": -0.3 },
    { "": -0.4 },
    { "。": -0.5 },
  ]);
  const plainStreamed = await sseChoices(
    sseAnswer(scriptedHandle(HI_THEN_STOP()), COMPLETION_SHAPE, options),
  );
  assertEquals(
    plainStreamed.flatMap((c) =>
      (c.logprobs as { top_logprobs: unknown[] } | null)?.top_logprobs ?? []
    ),
    [{ H: -0.1 }, { i: -0.2 }, { "": -0.3 }, { "": -0.4 }, { "。": -0.5 }],
  );
});

Deno.test("An SSE client is cut off only when it reads nothing for idleTimeoutMs: one that reads each event in time never is, however long the stream", async () => {
  const tokens = (): StreamedToken[] =>
    Array.from({ length: 10 }, (_, i) => ({
      index: i,
      tokenId: 0x61 + i,
      text: String.fromCharCode(0x61 + i),
      ...(i === 9 ? { finishReason: "stop" as const } : {}),
    }));
  const counting = () => {
    const handle = scriptedHandle(tokens());
    const cancelled = { count: 0 };
    handle.cancel = () => void cancelled.count++;
    return { handle, cancelled };
  };

  // Reads every event 80 ms after the last: far past the 100 ms limit in all, never in one wait.
  const timers = new ManualTimers();
  const stats = new EdgeStats();
  const options = { ...OPTIONS, stops: [], idleTimeoutMs: 100, stats, timers };
  const steady = counting();
  const reader = (await sseAnswer(steady.handle, COMPLETION_SHAPE, options)).body!.getReader();
  let events = 0;
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
    events++;
    await timers.advance(80);
  }
  assertEquals(events > 10, true);
  assertEquals(stats.idleTimeouts, 0);
  assertEquals(steady.cancelled.count, 0);
  assertEquals(timers.pending, 0); // nothing left armed once the stream ended

  // Stops reading after two events: cut off exactly idleTimeoutMs after the last read.
  const stalled = counting();
  const idle = (await sseAnswer(stalled.handle, COMPLETION_SHAPE, options)).body!.getReader();
  await idle.read();
  await timers.advance(80);
  await idle.read();
  await timers.advance(99);
  assertEquals(stats.idleTimeouts, 0);
  await timers.advance(1);
  assertEquals(stats.idleTimeouts, 1);
  assertEquals(stalled.cancelled.count, 1);
  // Ended by a `client_idle` error event, not an errored body (review s77 vclient, F6).
  const cut = new TextDecoder().decode((await idle.read()).value);
  assert(cut.includes('"code":"client_idle"'), cut);
  assertEquals(timers.pending, 0);
});

Deno.test("An answer is one of the server's drains: it lasts until the answer has ended, and a job that ended by itself keeps its own end when the deadline passes before the client has read it", async () => {
  for (const stream of [true, false]) {
    const handle = scriptedHandle(HI_THEN_STOP());
    let cancels = 0;
    handle.cancel = () => void cancels++;
    let drain: Drain | undefined;
    let withdrawn = 0;
    const options = {
      ...OPTIONS,
      drainBeforeShutdown: (registered: Drain) => {
        drain = registered;
        return () => void withdrawn++;
      },
    };
    // One body is answered once the job has ended: a promise of the response.
    const response = stream
      ? Promise.resolve(sseAnswer(handle, COMPLETION_SHAPE, options))
      : fullAnswer(handle, COMPLETION_SHAPE, options);
    let drained = false;
    // The deadline has already passed when the drain begins.
    const draining = drain!(AbortSignal.abort()).then(() => drained = true);
    await Promise.resolve();
    assertEquals([drained, cancels], [false, 1], "the job is cancelled, the drain waits");
    const text = await (await response).text();
    await draining;
    assertEquals([drained, withdrawn], [true, 1]);
    assertEquals(text.includes("shutting_down"), false, text);
    assertEquals(text.includes('"finish_reason":"stop"'), true, text);
  }
});

// The OpenAI-style streamed chunks, Veriflow's extension fields included, have exported types
// (`CompletionChunk`, `ChatCompletionChunk`, `VeriflowChunkFields`) from `mod.ts` and
// `client/mod.ts`, and they are what a real node writes: every chunk of its streams is checked
// against the types' keys, which `deno check` ties to the interfaces (a key set is a `Record<keyof
// T, true>`: a key added to or removed from a type and not here fails the check), so neither can
// drift from the other unnoticed. The openai package reads the Veriflow fields as the docs show.

// The package's main entry point names the same types (a type-only import loads nothing).
import type * as Main from "../../mod.ts";

const _sameTypes: [
  Main.CompletionChunk,
  Main.ChatCompletionChunk,
  Main.VeriflowChunkFields,
] extends [CompletionChunk, ChatCompletionChunk, VeriflowChunkFields] ? true : never = true;

const VERIFLOW_KEYS: Record<keyof VeriflowChunkFields, true> = {
  veriflow_job_id: true,
  veriflow_stop: true,
  veriflow_receipt: true,
  veriflow_receipt_error: true,
};
const COMPLETION_CHUNK_KEYS: Record<keyof CompletionChunk, true> = {
  id: true,
  object: true,
  created: true,
  model: true,
  choices: true,
  usage: true,
  ...VERIFLOW_KEYS,
};
const CHAT_CHUNK_KEYS: Record<keyof ChatCompletionChunk, true> = { ...COMPLETION_CHUNK_KEYS };
const COMPLETION_CHOICE_KEYS: Record<keyof CompletionChunkChoice, true> = {
  index: true,
  text: true,
  logprobs: true,
  finish_reason: true,
};
const CHAT_CHOICE_KEYS: Record<keyof ChatCompletionChunkChoice, true> = {
  index: true,
  delta: true,
  logprobs: true,
  finish_reason: true,
};
const DELTA_KEYS: Record<keyof ChatCompletionChunkChoice["delta"], true> = {
  role: true,
  content: true,
};
const COMPLETION_LOGPROBS_KEYS: Record<keyof CompletionLogprobs, true> = {
  tokens: true,
  token_logprobs: true,
  top_logprobs: true,
  text_offset: true,
};
const CHAT_LOGPROBS_KEYS: Record<keyof NonNullable<ChatCompletionChunkChoice["logprobs"]>, true> = {
  content: true,
  refusal: true,
};
const CHAT_TOKEN_KEYS: Record<keyof ChatTokenLogprob, true> = {
  token: true,
  logprob: true,
  bytes: true,
  top_logprobs: true,
};
const RECEIPT_ERROR_KEYS: Record<
  keyof NonNullable<VeriflowChunkFields["veriflow_receipt_error"]>,
  true
> = { code: true, message: true };

/** Every key of `value` is one of `keys`' (what the type declares). */
function keysWithin(value: unknown, keys: Record<string, true>, what: string): void {
  assert(typeof value === "object" && value !== null, `${what}: ${JSON.stringify(value)}`);
  const extra = Object.keys(value).filter((key) => !(key in keys));
  assertEquals(extra, [], `${what} has keys its type lacks: ${JSON.stringify(value)}`);
}

function checkCompletionChunk(chunk: Record<string, unknown>): void {
  keysWithin(chunk, COMPLETION_CHUNK_KEYS, "completion chunk");
  assertEquals(chunk.object, "text_completion" satisfies CompletionChunk["object"]);
  for (const choice of chunk.choices as Record<string, unknown>[]) {
    keysWithin(choice, COMPLETION_CHOICE_KEYS, "completion choice");
    if (choice.logprobs !== null) {
      keysWithin(choice.logprobs, COMPLETION_LOGPROBS_KEYS, "completion logprobs");
    }
  }
  checkVeriflow(chunk);
}

function checkChatChunk(chunk: Record<string, unknown>): void {
  keysWithin(chunk, CHAT_CHUNK_KEYS, "chat chunk");
  assertEquals(chunk.object, "chat.completion.chunk" satisfies ChatCompletionChunk["object"]);
  for (const choice of chunk.choices as Record<string, unknown>[]) {
    keysWithin(choice, CHAT_CHOICE_KEYS, "chat choice");
    keysWithin(choice.delta, DELTA_KEYS, "chat delta");
    const logprobs = choice.logprobs as { content: unknown[] } | null;
    if (logprobs !== null) {
      keysWithin(logprobs, CHAT_LOGPROBS_KEYS, "chat logprobs");
      for (const token of logprobs.content) keysWithin(token, CHAT_TOKEN_KEYS, "chat token");
    }
  }
  checkVeriflow(chunk);
}

function checkVeriflow(chunk: Record<string, unknown>): void {
  if (chunk.veriflow_receipt_error !== undefined) {
    keysWithin(chunk.veriflow_receipt_error, RECEIPT_ERROR_KEYS, "veriflow_receipt_error");
  }
}

/** A test node whose prover writes its proof data under `dir`. */
async function nodeWithProver(dir: string) {
  const provers = new ActorSystem({ name: "review-s61-chunks", maxRestarts: 0 });
  const prover = await provers.spawn<ProverMessage>({
    name: "node/prover",
    factory: () => new ProverActor({ identity: Identity.generate(), dir, sweepEveryMs: 0 }),
  });
  const node = await startTestNode({ prover: proverHook(prover) });
  node.gated.release(1_000_000); // these tests are about shapes, not timing
  return {
    node,
    close: async () => {
      await node.close();
      await provers.shutdown();
    },
  };
}

Deno.test("every chunk a node streams on /v1/completions and /v1/chat/completions has only the keys of CompletionChunk / ChatCompletionChunk, and the last carries the Veriflow fields", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const { node, close } = await nodeWithProver(dir);
  try {
    const completion = await sseEvents(
      await post(node, "/v1/completions", {
        model: "gated",
        prompt: "x",
        max_tokens: 8,
        stop: "de",
        logprobs: 2,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    completion.forEach(checkCompletionChunk);
    const last = completion.findLast((c) => c.veriflow_job_id !== undefined) as unknown as
      | CompletionChunk
      | undefined;
    assert(last !== undefined, JSON.stringify(completion));
    assertEquals(last.veriflow_stop, "de");
    assert(last.veriflow_receipt !== undefined, JSON.stringify(last));
    const text = completion.flatMap((c) => (c as unknown as CompletionChunk).choices)
      .map((choice) => choice.text).join("");
    assertEquals(text, "abc");
    const check = verifyReceipt(last.veriflow_receipt, { output: text + last.veriflow_stop });
    assert(check.ok, JSON.stringify(check));
    assert(completion.at(-1)!.usage !== null, "include_usage: the last chunk has the usage");

    const chat = await sseEvents(
      await post(node, "/v1/chat/completions", {
        model: "gated",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 4,
        logprobs: true,
        top_logprobs: 2,
        stream: true,
      }),
    );
    chat.forEach(checkChatChunk);
    const end = chat.at(-1) as unknown as ChatCompletionChunk;
    assertEquals(typeof end.veriflow_job_id, "string");
    assert(end.veriflow_receipt !== undefined, JSON.stringify(end));
  } finally {
    await close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a chunk whose job has no receipt carries veriflow_receipt_error as its type says", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const dir = `${root}/proofs`;
  const { node, close } = await nodeWithProver(dir);
  try {
    // Once the prover is up: every write of proof data fails from now on.
    await Deno.writeTextFile(dir, "not a directory");
    const events = await sseEvents(
      await post(node, "/v1/completions", {
        model: "gated",
        prompt: "x",
        max_tokens: 3,
        stream: true,
      }),
    );
    events.forEach(checkCompletionChunk);
    const last = events.at(-1) as unknown as CompletionChunk;
    assertEquals(last.veriflow_receipt, undefined);
    assertEquals(last.veriflow_receipt_error?.code, "proof_store_failed");
  } finally {
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the openai package's chunks carry the Veriflow fields, read as VeriflowChunkFields (the docs' example)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const { node, close } = await nodeWithProver(dir);
  try {
    // As docs/API.md shows it.
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 6,
      stop: "cd",
      stream: true,
    });
    let text = "";
    let end: VeriflowChunkFields = {};
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      const fields = chunk as typeof chunk & VeriflowChunkFields;
      if (fields.veriflow_job_id !== undefined) end = fields;
    }
    const output = text + (end.veriflow_stop ?? ""); // the text the receipt commits to
    const check = verifyReceipt(end.veriflow_receipt, { output });
    assertEquals([text, end.veriflow_stop, check.ok], ["ab", "cd", true]);
  } finally {
    await close();
    await Deno.remove(dir, { recursive: true });
  }
});

// A non-streamed answer commits its status when the job has ended, as OpenAI's API does: a job
// that fails after some tokens answers with its error's status and OpenAI error body (a 504
// `worker_stalled` here), so an OpenAI client raises an `APIError` instead of reading a 200
// whose body is not a completion. A streamed one keeps its 200 and ends with the error event.

const MODEL: ServedModelInfo = { cid: "bafkfailing", name: "failing", kind: "text" };
const FAILING_JOB_ID = "cd".repeat(32);
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
    jobId: FAILING_JOB_ID,
    model: MODEL,
    promptTokens: 1,
    tokens: new ReadableStream<StreamedToken>({
      start(controller) {
        for (const token of tokens) controller.enqueue(token);
        controller.error(new VeriflowError(STALLED.code, STALLED.message));
      },
    }),
    done: Promise.resolve({
      jobId: FAILING_JOB_ID,
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
          // Each route refuses the other's field (an unknown field is a 400).
          ...(path.includes("chat")
            ? { messages: [{ role: "user", content: "x" }] }
            : { prompt: "x" }),
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
      jobId: FAILING_JOB_ID,
      finishReason: "cancelled" as const,
      usage: { promptTokens: 1, completionTokens: 0 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    })),
    cancel() {
      cancelled++;
      try {
        tokens.close();
      } catch {
        // The answer cancelled its reader first, with the count its client holds: closed.
      }
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

// The error a `/v1` stream ends with when its job fails after the 200 went out: its `type` must be
// the one the same failure gets as a non-streamed answer (OpenAI's `invalid_request_error` for the
// request's own fault, `rate_limit_error` for a 429, `server_error` for the node's), since it is
// all a streaming client has to decide whether sending the request again can help; before, every
// such event said `server_error`.

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** The error of a failed job, as one body (with its status) and as the stream's last event. */
async function bothAnswers(code: string, path: "/v1/chat/completions" | "/v1/completions") {
  const app = createApp({
    inference: failingPort({ code, message: `the job failed (${code})` }, 1),
  });
  const request = path === "/v1/completions"
    ? { prompt: "Hi" }
    : { messages: [{ role: "user", content: "Hi" }] };
  const post = (stream: boolean) =>
    app.fetch(
      new Request(`http://127.0.0.1${path}`, {
        method: "POST",
        body: JSON.stringify({ ...request, stream }),
      }),
      { remoteAddr: LOOPBACK },
    );
  const full = await post(false);
  const fullError = (await full.json()).error;
  const streamed = await post(true);
  assertEquals(streamed.status, 200);
  const events = (await streamed.text()).split("\n\n").filter((e) => e.startsWith("data: "));
  assertEquals(events.at(-1), "data: [DONE]");
  const streamError = JSON.parse(events.at(-2)!.slice("data: ".length)).error;
  return { status: full.status, fullError, streamError };
}

Deno.test("a stream whose job fails with the request's own fault (400 invalid_generation_params) ends with an error event of type invalid_request_error, as the non-streamed answer says", async () => {
  for (const path of ["/v1/chat/completions", "/v1/completions"] as const) {
    const { status, fullError, streamError } = await bothAnswers("invalid_generation_params", path);
    assertEquals(status, 400);
    assertEquals(fullError.type, "invalid_request_error");
    assertEquals(streamError, fullError, path);
  }
});

Deno.test("a stream whose job is refused by a full queue after it started (too_many_jobs, a worker taking it over) says rate_limit_error, as the 429 does", async () => {
  const { status, fullError, streamError } = await bothAnswers(
    "too_many_jobs",
    "/v1/chat/completions",
  );
  assertEquals(status, 429);
  assertEquals(streamError, fullError);
  assertEquals(streamError.type, "rate_limit_error");
});

Deno.test("a stream whose job fails on the node's side (worker_stalled, shutting_down) still says server_error, with the same body as the non-streamed answer", async () => {
  for (const code of ["worker_stalled", "shutting_down"]) {
    const { status, fullError, streamError } = await bothAnswers(code, "/v1/chat/completions");
    assertEquals(status >= 500, true, `${code}: ${status}`);
    assertEquals(streamError, fullError);
    assertEquals(
      [streamError.type, streamError.code, streamError.param],
      ["server_error", code, null],
    );
  }
});

// What a streaming client receives — the numbers and text of each token an OpenAI or WebSocket
// client is handed, against what the model, the proof and the docs say it is.

Deno.test("top logprobs of a row with a NaN (masked) logit are the fingerprint's log-softmax, not NaN (null on the wire)", () => {
  // The sampler and the fingerprint count NaN as −∞ (probability 0); the top list promised the
  // chosen token's entry equal to its `logprob` bit for bit, and gave NaN for every entry.
  const row = new Float32Array([1, NaN, 3, 2, -Infinity]);
  const top = topLogprobsOf(row, 3);
  assertEquals(top.map((t) => t.tokenId), [2, 3, 0]);
  for (const { tokenId, logprob } of top) {
    assert(Number.isFinite(logprob), `token ${tokenId}: ${logprob}`);
    assertEquals(logprob, fingerprintOf(row, tokenId).logProb);
  }
  // A +∞ logit takes all the mass, shared among the +∞ ones, as the fingerprint says.
  const infinite = new Float32Array([1, Infinity, 3, Infinity]);
  const shared = topLogprobsOf(infinite, 3);
  assertEquals(shared.map((t) => t.tokenId), [1, 3, 2]);
  for (const { tokenId, logprob } of shared) {
    assertEquals(logprob, fingerprintOf(infinite, tokenId).logProb);
  }
});
