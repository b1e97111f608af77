/**
 * A stand-in inference port whose every job fails at once with a given error, for tests of what
 * a failed job tells its client (`job_failures_test.ts`).
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

/**
 * A port whose every job fails with `error`: at once (no tokens), or after `tokens` tokens ("a"
 * each), its token stream then erroring as a worker's does mid-generation.
 */
export function failingPort(
  error: { code: string; message: string },
  tokens = 0,
): InferencePort {
  const model = { cid: "bafkfailing", name: "failing", kind: "text" } as const;
  let jobs = 0;
  return {
    submit: () => {
      const jobId = String(++jobs).padStart(64, "0");
      const summary: JobSummary = {
        jobId,
        finishReason: "error",
        usage: { promptTokens: 1, completionTokens: tokens },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
        error,
      };
      let sent = 0;
      const handle: InferenceHandle = {
        jobId,
        model,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>({
          pull: (controller) => {
            if (sent === tokens) {
              return tokens === 0 ? controller.close() : controller.error(new Error(error.code));
            }
            controller.enqueue({ index: sent++, tokenId: 0x61, text: "a" });
          },
        }, { highWaterMark: 0 }),
        done: Promise.resolve(summary),
        cancel: () => {},
      };
      return Promise.resolve(handle);
    },
    models: () => Promise.resolve([model]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}
