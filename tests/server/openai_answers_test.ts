/**
 * `fullAnswer` and `sseAnswer` on a scripted token stream: what text and logprobs reach the
 * client when the output ends on a stop sequence the edge trims.
 */
import { assertEquals } from "./_assert.ts";
import { fullAnswer, sseAnswer } from "../../server/openai_answers.ts";
import type { Drain } from "../../server/serve.ts";
import { CHAT_SHAPE, COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

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
  let failed = false;
  await idle.read().catch(() => failed = true);
  assertEquals(failed, true);
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
