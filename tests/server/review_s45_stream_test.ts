/**
 * Review s45: what a streaming client receives at a job's end when the job was relayed: a
 * router's summaries time only what they can see (`queueMs` and, for a cancelled job or one
 * resumed on another worker, `tokensPerS` are NaN), and NaN is `null` in JSON — a `done` whose
 * `tokens_per_s` is `null` where the API promises a number breaks its clients
 * (`done.timings.tokens_per_s.toFixed(1)`, as `veriflow infer` prints it).
 */
import { assert, assertEquals } from "./_assert.ts";
import { doneMessage, type WsDoneMessage } from "../../server/stream_protocol.ts";
import type { JobSummary } from "../../inference/inference_port.ts";

/** The `done` a client parses for `summary`. */
function onTheWire(summary: JobSummary): WsDoneMessage {
  return JSON.parse(JSON.stringify(doneMessage("a", summary)));
}

Deno.test("review s45: a relayed job's done carries numbers (or the documented null) in its timings, never a NaN turned null", () => {
  // As `_remote_job.ts` ends a cancelled job, and `failover.ts` one resumed on another worker.
  const relayed: JobSummary[] = [
    {
      jobId: "ab".repeat(32),
      finishReason: "cancelled",
      usage: { promptTokens: 3, completionTokens: 2 },
      timings: { queueMs: NaN, ttftMs: 12, totalMs: 40, tokensPerS: NaN },
    },
    {
      jobId: "ab".repeat(32),
      finishReason: "length",
      usage: { promptTokens: 3, completionTokens: 5 },
      timings: { queueMs: NaN, ttftMs: 12, totalMs: 40, tokensPerS: 125 },
    },
  ];
  for (const summary of relayed) {
    const { timings } = onTheWire(summary);
    assertEquals(typeof timings.tokens_per_s, "number", "tokens_per_s is a number");
    assert(Number.isFinite(timings.tokens_per_s));
    assertEquals(typeof timings.total_ms, "number");
    // Unknown on a node that relayed the job: said as such (null), as ttft_ms without a token.
    assert(timings.queue_ms === null || Number.isFinite(timings.queue_ms));
  }
  assertEquals(onTheWire(relayed[1]).timings.tokens_per_s, 125);
  assertEquals(onTheWire(relayed[0]).timings.tokens_per_s, 0);
});
