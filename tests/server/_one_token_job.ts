/**
 * A job handle that streams one token of `text` and ends (`length`), as a port's `submit` answers
 * another client's job, for the tests that check no page of another origin or machine reads that
 * text (`cross_origin_this_machine_test.ts`, `dashboard_access_test.ts`).
 *
 * @module
 */
import type { InferenceHandle, JobSummary } from "../../inference/inference_port.ts";

/** A handle whose one token is `text`; its summary resolves once the token stream is drained. */
export function oneTokenJob(text: string): Promise<InferenceHandle> {
  const ended = Promise.withResolvers<JobSummary>();
  const summary = {
    jobId: "j",
    finishReason: "length",
    usage: { promptTokens: 1, completionTokens: 1 },
    timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
  } as JobSummary;
  const tokens = ReadableStream.from([{ index: 0, tokenId: 0, text }])
    .pipeThrough(new TransformStream({ flush: () => ended.resolve(summary) }));
  return Promise.resolve({
    jobId: "j",
    model: { cid: "m", name: "m", kind: "text" },
    promptTokens: 1,
    tokens,
    done: ended.promise,
    cancel: () => {},
  } as unknown as InferenceHandle);
}
