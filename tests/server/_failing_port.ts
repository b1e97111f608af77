/**
 * A stand-in inference port whose every job fails at once with a given error, for tests of what
 * a failed job tells its client (`review_s53b_*_failure_text_test.ts`).
 *
 * @module
 */
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  StreamedToken,
} from "../../inference/inference_port.ts";

/** A port whose every job ends at once with `error` (no tokens). */
export function failingPort(error: { code: string; message: string }): InferencePort {
  const model = { cid: "bafkfailing", name: "failing", kind: "text" } as const;
  let jobs = 0;
  return {
    submit: () => {
      const jobId = String(++jobs).padStart(64, "0");
      const summary: JobSummary = {
        jobId,
        finishReason: "error",
        usage: { promptTokens: 1, completionTokens: 0 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
        error,
      };
      const handle: InferenceHandle = {
        jobId,
        model,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>({ start: (c) => c.close() }),
        done: Promise.resolve(summary),
        cancel: () => {},
      };
      return Promise.resolve(handle);
    },
    models: () => Promise.resolve([model]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}
