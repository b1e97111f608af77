/**
 * A finished job whose unread tokens were evicted (`slow_reader`) tells its client how many of
 * its tokens reached it: those whose text was sent, not those the edge read and held back as a
 * possible stop's start (review s80 bill, F4), in a stream and in one body alike.
 */
import assert from "node:assert/strict";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { fullAnswer, sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

/** A finished job of 9 tokens whose stream ends evicted after "abcST" ("ST" starts "STOP"). */
function evictedJob(): InferenceHandle {
  const texts = ["a", "b", "c", "S", "T"];
  let i = 0;
  const tokens = new ReadableStream<StreamedToken>({
    pull(controller) {
      if (i < texts.length) {
        controller.enqueue({ index: i, tokenId: 100 + i, text: texts[i] });
        i++;
      } else controller.error(new VeriflowError("slow_reader", "evicted"));
    },
  }, { highWaterMark: 0 });
  const summary = {
    jobId: "job-slow",
    finishReason: "length" as const,
    usage: { promptTokens: 1, completionTokens: 9 },
    timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
  };
  return {
    jobId: "job-slow",
    model: { cid: "bafkslow", name: "slow", kind: "text" },
    promptTokens: 1,
    tokens,
    done: Promise.resolve(summary),
    cancel: () => {},
  };
}

const options = () => ({
  stops: ["STOP"],
  logprobs: false,
  includeUsage: false,
  idleTimeoutMs: 60_000,
  timers: new ManualTimers(),
  stats: new EdgeStats(),
  computesOnEventLoop: false,
});

Deno.test("a streamed slow reader is told it got the tokens whose text was sent, not those held back", async () => {
  const raw = await sseAnswer(evictedJob(), COMPLETION_SHAPE, options()).text();
  let text = "";
  let message = "";
  for (const line of raw.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const event = JSON.parse(line.slice(6));
    if (event.error) message = event.error.message;
    for (const choice of event.choices ?? []) text += choice.text ?? "";
  }
  assert.equal(text, "abc");
  assert.match(message, /3 of its 9 tokens reached this answer/);
});

Deno.test("a one-body slow reader's failure counts the tokens whose text was released", async () => {
  const failure = await fullAnswer(evictedJob(), COMPLETION_SHAPE, options()).catch((e) => e);
  assert.ok(failure instanceof VeriflowError, String(failure));
  assert.match(failure.message, /3 of its 9 tokens reached this answer/);
});
