/**
 * Scripted workers' inference ports that stream a job from the position they are asked to resume
 * at: what the router tests over a real NetworkActor (`worker_choice_test.ts`,
 * `sybil_routing_test.ts`) share. Every job has {@link TOKENS} tokens; {@link Honest} runs it to
 * its end, {@link Dropper} sends one token and drops its connection.
 *
 * @module
 */
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
  type SubmitOptions,
} from "../../inference/inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { params } from "../server/_fixtures.ts";
import { INFO, MODEL } from "./_router_fixture.ts";

/** Tokens of each job: more than one, so a worker can fail a job part way through it. */
export const TOKENS = 8;
/** The indices a client gets of a job that ran to its end. */
export const WHOLE: number[] = Array.from({ length: TOKENS }, (_, i) => i);

/** Position `i` of every job's output. */
export function token(i: number): StreamedToken {
  return {
    index: i,
    tokenId: 97 + i,
    text: String.fromCharCode(97 + i),
    ...(i === TOKENS - 1 ? { finishReason: "length" as const } : {}),
  };
}

/** A job's summary that ended as `finishReason` (with `error` where the worker failed it). */
export function summaryOf(
  finishReason: JobSummary["finishReason"],
  error?: JobSummary["error"],
): JobSummary {
  return {
    jobId: "",
    finishReason,
    usage: { promptTokens: 1, completionTokens: 0 },
    timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    ...(error ? { error } : {}),
  };
}

/** A port whose jobs stream `tokens(from)` and end as `end` says. */
export abstract class ScriptedPort implements InferencePort {
  /** Jobs submitted to it. */
  submits = 0;
  /** Lists the router fixture's one model. */
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([INFO]);
  }
  /** Nothing counted. */
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  /** The job's tokens from position `from`; `done` ends the job with its summary. */
  abstract tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken>;
  /** Starts the job at the position its `resume` asks for. */
  submit(j: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    const done = Promise.withResolvers<JobSummary>();
    const end = (summary: JobSummary) => done.resolve({ ...summary, jobId: jobId(j) });
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens: this.tokens(options?.resume?.length ?? 0, end),
      done: done.promise,
      cancel: () => end(summaryOf("cancelled")),
    });
  }
}

/** An honest worker: runs the job from where it is asked to resume, to its end. */
export class Honest extends ScriptedPort {
  /** Jobs it ran. */
  ran = 0;
  /** Every token from `from` to the job's end, one per pull. */
  tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken> {
    this.ran++;
    let i = from;
    return new ReadableStream({
      pull: (c) => {
        c.enqueue(token(i));
        if (++i === TOKENS) {
          c.close();
          done(summaryOf("length"));
        }
      },
    }, { highWaterMark: 0 });
  }
}

/** Streams one token of a job, then drops its connection (review F1's `Dropper`). */
export class Dropper extends ScriptedPort {
  /** The worker's side of its connection to the router: closed after the first token. */
  connection?: Connection;
  /** One token, then the connection closed and nothing more. */
  tokens(from: number): ReadableStream<StreamedToken> {
    let sent = false;
    return new ReadableStream({
      pull: async (c) => {
        if (!sent) {
          sent = true;
          return c.enqueue(token(from));
        }
        await this.connection?.close(new Error("dropped"));
        return new Promise<void>(() => {}); // gone
      },
    }, { highWaterMark: 0 });
  }
}

/** The job of every router test here, told apart by `nonce`. */
export function jobOf(nonce: string): TextJob {
  return { kind: "text", model: MODEL, prompt: "hi", params: params({ maxTokens: TOKENS }), nonce };
}
