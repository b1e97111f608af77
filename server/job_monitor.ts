/**
 * Watches every job that goes through an inference port, without slowing it: the dashboard
 * shows jobs streaming now with their tokens as they come, and `/metrics` gets the latency
 * histograms (time to first token, inter-token latency, tokens per second).
 *
 * {@link JobMonitor.wrap} returns a port that submits through the real one and observes each token
 * as the requester takes it (read from the job's stream on the requester's pull, not a tee: the
 * requester's reading pace still drives the job, and nothing is buffered for the monitor). A
 * finished job's `job_ended` comes once its requester has also read its last token (or cancelled,
 * through the stream or the handle), after every `job_token`; a job that did not finish (cancelled,
 * failed) is over when its `done` says so. Listeners are called synchronously and must not block;
 * the text kept per job is bounded.
 *
 * @module
 */
import type {
  InferenceHandle,
  InferencePort,
  JobSummary,
  StreamedToken,
} from "../inference/inference_port.ts";
import type { TextJob } from "../protocols/job.ts";
import { Histogram, type MetricSample, type MetricsCollector } from "./metrics_registry.ts";

/** A job as the monitor sees it. */
export interface WatchedJob {
  /** The job id. */
  jobId: string;
  /** The model's name. */
  model: string;
  /** Tokens in the prompt. */
  promptTokens: number;
  /** Generated tokens so far. */
  tokens: number;
  /** Output so far (the last {@link MAX_KEPT_TEXT} characters). */
  text: string;
  /** Unix ms of submission. */
  submittedAt: number;
  /** ms from submission to the first token, once it came. */
  ttftMs?: number;
  /** Tokens per second since the first token. */
  tokensPerS?: number;
  /** `queued` until the first token, `streaming`, then how it ended. */
  state: "queued" | "streaming" | "stop" | "length" | "cancelled" | "error";
}

/** What a listener hears. */
export type JobEvent =
  | { type: "job_started"; job: WatchedJob }
  | { type: "job_token"; jobId: string; index: number; text: string; tokensPerS?: number }
  | { type: "job_ended"; job: WatchedJob; summary: JobSummary };

/** How many jobs {@link JobMonitor.snapshot} lists at most; all of them where left out. */
export interface JobSnapshotBounds {
  /** Live jobs listed, the first submitted first. */
  live?: number;
  /** Finished jobs listed, newest first. */
  recent?: number;
}

/** What {@link JobMonitor.snapshot} answers. */
export interface JobSnapshot {
  /** Jobs queued or streaming, the first submitted first. */
  live: WatchedJob[];
  /** Finished jobs, newest first. */
  recent: WatchedJob[];
  /** How many of each the bounds left out. */
  leftOut: { live: number; recent: number };
}

/** Output kept per job for the dashboard: enough to read, bounded whatever the job's length. */
export const MAX_KEPT_TEXT = 4_096;
/** Finished jobs kept for a page that opens late. */
const RECENT_JOBS = 20;

/**
 * Bucket bounds in seconds. Time to first token spans a warm tiny model (milliseconds) to a
 * queued job on a large one (tens of seconds); the gap between tokens is 1 ms–1 s on CPU.
 */
const TTFT_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const ITL_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const RATE_BOUNDS = [1, 5, 10, 25, 50, 100, 250, 500, 1000];

/** Options of {@link JobMonitor}. */
export interface JobMonitorOptions {
  /** Milliseconds clock (tests move it by hand); default `performance.now`. */
  now?: () => number;
  /** Wall clock for `submittedAt`; default `Date.now`. */
  wallClock?: () => number;
}

/** See the module doc. */
export class JobMonitor {
  readonly #now: () => number;
  readonly #wall: () => number;
  readonly #live = new Map<string, WatchedJob>();
  readonly #recent: WatchedJob[] = [];
  #listeners: ((event: JobEvent) => void)[] = [];
  readonly #ttft = new Histogram(TTFT_BOUNDS);
  readonly #itl = new Histogram(ITL_BOUNDS);
  readonly #rate = new Histogram(RATE_BOUNDS);

  /** A monitor watching nothing yet. */
  constructor(options: JobMonitorOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#wall = options.wallClock ?? (() => Date.now());
  }

  /** A port that submits through `port` and reports each job here. */
  wrap(port: InferencePort): InferencePort {
    return {
      submit: async (job: TextJob, options) => this.#watch(await port.submit(job, options)),
      models: () => port.models(),
      stats: () => port.stats(),
    };
  }

  /** Hear every job's start, tokens and end; returns the unsubscribe function. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /**
   * Jobs streaming or queued now (the first submitted first), and the last finished ones (newest
   * first): at most `bounds.live` and `bounds.recent` of them (all by default), with how many
   * of each were left out. Only the jobs listed are copied.
   */
  snapshot(bounds: JobSnapshotBounds = {}): JobSnapshot {
    const live: WatchedJob[] = [];
    const maxLive = bounds.live ?? Infinity;
    for (const job of this.#live.values()) {
      if (live.length >= maxLive) break;
      live.push({ ...job, text: job.text.slice(-MAX_KEPT_TEXT) });
    }
    const recent = this.#recent.slice(0, bounds.recent ?? Infinity).map((j) => ({ ...j }));
    return {
      live,
      recent,
      leftOut: { live: this.#live.size - live.length, recent: this.#recent.length - recent.length },
    };
  }

  /** The latency histograms for `/metrics`. */
  collector(): MetricsCollector {
    const jobs: MetricsCollector = (): MetricSample[] => [
      this.#ttft.sample(
        "veriflow_ttft_seconds",
        "Time from a job's submission to its first token.",
      ),
      this.#itl.sample(
        "veriflow_inter_token_seconds",
        "Time between consecutive tokens of a job.",
      ),
      this.#rate.sample(
        "veriflow_job_tokens_per_second",
        "Tokens per second of each finished job, from its first token.",
      ),
    ];
    return jobs;
  }

  #emit(event: JobEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // One broken listener (a closed dashboard) must not stop the job or the others.
      }
    }
  }

  #watch(handle: InferenceHandle): InferenceHandle {
    const submitted = this.#now();
    const job: WatchedJob = {
      jobId: handle.jobId,
      model: handle.model.name,
      promptTokens: handle.promptTokens,
      tokens: 0,
      text: "",
      submittedAt: this.#wall(),
      state: "queued",
    };
    this.#live.set(job.jobId, job);
    this.#emit({ type: "job_started", job: { ...job } });
    let first: number | undefined;
    let last: number | undefined;
    const observe = (token: StreamedToken) => {
      const at = this.#now();
      if (first === undefined) {
        first = at;
        job.ttftMs = at - submitted;
        job.state = "streaming";
        this.#ttft.observe(job.ttftMs / 1000);
      } else if (last !== undefined) {
        this.#itl.observe((at - last) / 1000);
      }
      last = at;
      job.tokens++;
      // Trimmed once it is twice the bound, not on every token (a slice copies the text).
      job.text += token.text;
      if (job.text.length > 2 * MAX_KEPT_TEXT) job.text = job.text.slice(-MAX_KEPT_TEXT);
      const seconds = (at - first) / 1000;
      job.tokensPerS = seconds > 0 ? (job.tokens - 1) / seconds : undefined;
      if (this.#listeners.length === 0) return; // nobody watching: no event to build
      this.#emit({
        type: "job_token",
        jobId: job.jobId,
        index: token.index,
        text: token.text,
        tokensPerS: job.tokensPerS,
      });
    };
    // Each token is seen as the requester takes it: one read of the job's stream per pull, so
    // nothing is read ahead of the requester (a pipe through a transform read the next token,
    // the job's last one among them, before the requester asked, and the job then ended here
    // with that token not yet seen).
    const streamEnded = Promise.withResolvers<void>();
    const reader = handle.tokens.getReader();
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        let result: ReadableStreamReadResult<StreamedToken>;
        try {
          result = await reader.read();
        } catch (error) {
          streamEnded.resolve();
          throw error;
        }
        if (result.done) {
          controller.close();
          streamEnded.resolve();
          return;
        }
        observe(result.value);
        controller.enqueue(result.value);
      },
      cancel: (reason) => {
        streamEnded.resolve();
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
    const done = handle.done.then((summary) => {
      // The job's end is reported once the requester has its last token too (or stopped
      // reading): after every `job_token`, and counting them all. A job that did not finish
      // (cancelled, failed) has no last token to wait for: a requester that cancelled through
      // the handle, or dropped the stream, would hold it live for good.
      const finished = summary.finishReason === "stop" || summary.finishReason === "length";
      if (!finished) streamEnded.resolve();
      void streamEnded.promise.then(() => this.#ended(job, summary));
      return summary;
    });
    const cancel = () => {
      streamEnded.resolve();
      reader.cancel().catch(() => {});
      handle.cancel();
    };
    return { ...handle, tokens, done, cancel };
  }

  /** `job` ended with `summary`, and its requester has every token it will read. */
  #ended(job: WatchedJob, summary: JobSummary): void {
    job.text = job.text.slice(-MAX_KEPT_TEXT);
    job.state = summary.finishReason;
    if (job.tokensPerS !== undefined) this.#rate.observe(job.tokensPerS);
    this.#live.delete(job.jobId);
    this.#recent.unshift(job);
    this.#recent.length = Math.min(this.#recent.length, RECENT_JOBS);
    if (this.#listeners.length > 0) this.#emit({ type: "job_ended", job: { ...job }, summary });
  }
}
