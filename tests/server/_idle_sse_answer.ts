/**
 * A streamed completion whose client stops reading: the setup the SSE idle cut-off tests share
 * (`sse_idle_cut_log_test.ts`, `sse_idle_cut_json_log_test.ts`). The job has more tokens queued
 * than the client reads and never finishes, so only the idle cut-off can end the stream; the
 * timers are manual, so the test decides when the idle time has passed.
 *
 * @module
 */
import { sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

/** How long the client may pause before the cut-off: any value works, the timers are manual. */
export const IDLE_MS = 100;

/** More tokens than the client reads (one event), so the stream still has some to send. */
const QUEUED_TOKENS = 5;

/** The open answer, its manual timers and its edge counters. */
export interface IdleSseAnswer {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  timers: ManualTimers;
  stats: EdgeStats;
}

/**
 * Answer job `jobId` as SSE with an idle cut-off of {@link IDLE_MS}; `cancel` is the job's cancel
 * (the test counts it), `log` the node's log when the test reads it.
 */
export function openIdleSseAnswer(
  jobId: string,
  cancel: () => void,
  log?: (line: string) => void,
): IdleSseAnswer {
  const handle: InferenceHandle = {
    jobId,
    model: { cid: "bafkidle", name: "idle", kind: "text" },
    promptTokens: 1,
    tokens: ReadableStream.from(
      Array.from({ length: QUEUED_TOKENS }, (_, i) => ({ index: i, tokenId: 0x61, text: "a" })),
    ),
    done: new Promise(() => {}),
    cancel,
  };
  const timers = new ManualTimers();
  const stats = new EdgeStats();
  const reader = sseAnswer(handle, COMPLETION_SHAPE, {
    stops: [],
    logprobs: false,
    includeUsage: false,
    idleTimeoutMs: IDLE_MS,
    timers,
    stats,
    computesOnEventLoop: false,
    ...(log ? { log } : {}),
  }).body!.getReader();
  return { reader, timers, stats };
}
