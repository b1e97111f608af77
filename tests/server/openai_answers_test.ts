/**
 * `fullAnswer` and `sseAnswer` on a scripted token stream: what text and logprobs reach the
 * client when the output ends on a stop sequence the edge trims.
 */
import { assertEquals } from "./_assert.ts";
import { fullAnswer, sseAnswer } from "../../server/openai_answers.ts";
import { CHAT_SHAPE, COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";

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
  topLogprobs: 0,
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
