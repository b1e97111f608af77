/**
 * What the `withFailover` unit tests share: a six-token job, its summary, and a worker's
 * scripted run of it from any position, lost after a chosen one.
 */
import type { WorkerAttempt } from "../../network/failover.ts";
import type { JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";

/** The job's length. */
export const TOKENS = 6;

/** Token `i` of the job; the last ends it by length. */
export const token = (i: number): StreamedToken => ({
  index: i,
  tokenId: 100 + i,
  text: String.fromCharCode(97 + i),
  ...(i === TOKENS - 1 ? { finishReason: "length" as const } : {}),
});

/** The job's summary, as every worker reports it. */
export const summary: JobSummary = {
  jobId: "j",
  finishReason: "length",
  usage: { promptTokens: 1, completionTokens: TOKENS },
  timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
};

/** A worker's run of the job from position `from`; it is lost after `until` when given. */
export function attempt(worker: number, from: number, until?: number): WorkerAttempt {
  let next = from;
  const tokens = new ReadableStream<StreamedToken>({
    pull(controller) {
      if (next === until) return controller.error(new ConnectionClosedError("worker gone"));
      controller.enqueue(token(next));
      if (++next === TOKENS) controller.close();
    },
  }, { highWaterMark: 0 });
  return {
    worker: new Uint8Array([worker]),
    handle: {
      jobId: "j",
      model: { cid: "m", name: "m", kind: "text" },
      promptTokens: 1,
      tokens,
      done: Promise.resolve(summary),
      cancel: () => {},
    },
    assignedAt: 0,
  };
}

/**
 * {@link attempt}`(worker, from)` that holds the job (started, no token) until `release()`: a
 * first worker a hedge is asked beside.
 */
export function heldAttempt(worker: number, from: number): {
  attempt: WorkerAttempt;
  release: () => void;
} {
  const release = Promise.withResolvers<void>();
  const held = attempt(worker, from);
  const inner = held.handle.tokens.getReader();
  held.handle.tokens = new ReadableStream<StreamedToken>({
    async pull(controller) {
      await release.promise;
      const r = await inner.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
  }, { highWaterMark: 0 });
  return { attempt: held, release: () => release.resolve() };
}
