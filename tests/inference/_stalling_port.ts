/**
 * A worker's port that starts every job and then streams only what its script and its
 * permits allow: past the script's end (a script whose last token has no finish reason) it
 * goes silent for good, its connection alive, until its requester cancels the job. For the
 * stall timeout's tests, where the worker must stay silent for as long as the test's clock
 * says and no real time is waited on.
 */
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  ServedModelInfo,
  StreamedToken,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";

/** Options of {@link StallingPort}. */
export interface StallingPortOptions {
  /** Tokens it may send before {@link StallingPort.release} lets more out (default: all). */
  permits?: number;
}

/** See the module. */
export class StallingPort implements InferencePort {
  /** Submissions it took. */
  submits = 0;
  /** Jobs its requester cancelled (the connection's `cancel` reached it). */
  cancelled = 0;
  #permits: number;
  #waiters: (() => void)[] = [];

  /**
   * @param served The model it claims to run.
   * @param script The tokens of each job, in order, from position 0; or the tokens of a given
   *   job.
   */
  constructor(
    readonly served: ServedModelInfo,
    readonly script: readonly StreamedToken[] | ((job: TextJob) => readonly StreamedToken[]),
    options: StallingPortOptions = {},
  ) {
    this.#permits = options.permits ?? Infinity;
  }

  /** Let `n` more tokens out. */
  release(n = 1): void {
    this.#permits += n;
    while (this.#permits > 0 && this.#waiters.length > 0) {
      this.#permits--;
      this.#waiters.shift()!();
    }
  }

  submit(job: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    const id = jobId(job);
    const script = typeof this.script === "function" ? this.script(job) : this.script;
    const done = Promise.withResolvers<JobSummary>();
    const stopped = Promise.withResolvers<void>();
    let sent = 0;
    let ended = false;
    const end = (finishReason: JobSummary["finishReason"]) => {
      if (ended) return;
      ended = true;
      stopped.resolve();
      done.resolve({
        jobId: id,
        finishReason,
        usage: { promptTokens: 1, completionTokens: sent },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      });
    };
    const cancel = () => {
      if (ended) return;
      this.cancelled++;
      end("cancelled");
    };
    options?.signal?.addEventListener("abort", cancel, { once: true });
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        // Past the script: silent until cancelled.
        if (sent >= script.length) return await stopped.promise;
        await Promise.race([this.#permit(), stopped.promise]);
        if (ended) return;
        const token = script[sent++];
        controller.enqueue(token);
        if (token.finishReason !== undefined) {
          controller.close();
          end(token.finishReason);
        }
      },
      cancel,
    }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: id,
      model: this.served,
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel,
    });
  }

  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([this.served]);
  }

  stats(): Promise<InferenceStats> {
    return Promise.reject(new Error("not asked"));
  }

  #permit(): Promise<void> {
    if (this.#permits > 0) {
      this.#permits--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
