/**
 * One text job of the InferenceActor: its state ({@link TextJobRun}) and the temporary child
 * actor that runs it ({@link JobRunner}).
 *
 * The run tees the model's stream. The requester's branch is pull-driven (the model computes
 * the next token only when the requester asks for it, so a slow client slows only its own job)
 * and carries plain {@link StreamedToken}s: whatever evidence the model's chunks hold stays
 * next to the model. Every chunk is also handed, whole, to the optional prover hook without
 * waiting for it, so the prover branch never slows the requester; its queue is bounded by the
 * job itself: at most `params.maxTokens` chunks. The prover's result (a signed receipt) comes
 * with the job's end in {@link JobSummary.receipt}.
 *
 * A job resumed after k tokens another worker delivered (`resume`) runs
 * `inference/resumed_generation.ts` instead of `generate`: its first k chunks are replayed to the
 * prover only, so the receipt covers the whole output while the requester's stream starts at k.
 *
 * @module
 */
import type { Actor, ActorContext } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import { JobCancelledError } from "./inference_errors.ts";
import type { GenerativeModel, ProverHook } from "./inference_models.ts";
import type {
  FinishReason,
  InferenceHandle,
  JobSummary,
  ServedModelInfo,
  StreamedToken,
} from "../inference/inference_port.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import {
  InvalidResumeError,
  isResumable,
  resumeGeneration,
} from "../inference/resumed_generation.ts";
import type { TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** What a requester gets back for an accepted text job: an {@link InferenceHandle}. */
export interface TextJobHandle extends InferenceHandle {
  /** Kind of the job. */
  readonly kind: "text";
}

/** How a job ended, as its runner reports it to the actor. */
export type JobOutcome = "finished" | "cancelled" | "failed";

/** Messages a job's runner child accepts: cancel the job, or (internal) the job has ended. */
export type JobRunnerMessage = { type: "cancel" } | { type: "ended" };

/** Options of {@link TextJobRun}. */
export interface TextJobRunOptions {
  /** The job. */
  job: TextJob;
  /** Its id. */
  jobId: string;
  /** The model that runs it. */
  model: GenerativeModel;
  /** The tokenized prompt. */
  promptIds: number[];
  /** Top tokens per position the requester asked for (an output option, not the job's). */
  topLogprobs?: number;
  /**
   * Resume after these tokens, which the requester already has (from a worker it lost): they
   * are replayed to the prover only, and the requester's stream starts at position
   * `resume.length` (`inference/resumed_generation.ts`). The model must be resumable and the
   * prefix checked (`checkResumePrefix`) before the run is created.
   */
  resume?: readonly number[];
  /** The prover hook, if the node runs a prover. */
  prover?: ProverHook;
  /** The bytes of the job's `input`, for the prover (`protocols/job_input.ts`). */
  input?: Uint8Array;
  /** When the job was submitted (`now()` clock). */
  submittedAt: number;
  /** Clock in milliseconds. */
  now: () => number;
  /** Called once when the job ends, to free its slot (through the actor's mailbox). */
  onEnd: (outcome: JobOutcome, tokens: number) => void;
}

/**
 * The state of one text job: the requester's stream (created at submission, producing once the
 * job starts), the prover's branch, and the summary. Driven by its {@link JobRunner}.
 */
export class TextJobRun {
  #o: TextJobRunOptions;
  #abort = new AbortController();
  #started = Promise.withResolvers<ReadableStreamDefaultReader<TokenChunk> | undefined>();
  #done = Promise.withResolvers<JobSummary>();
  #proverController?: ReadableStreamDefaultController<TokenChunk>;
  #proverResult?: Promise<unknown>;
  #tokens = 0;
  #startedAt = NaN;
  #firstTokenAt = NaN;
  #ended = false;
  #startError?: unknown;
  #runner?: ActorRef<JobRunnerMessage>;

  /** @param options See {@link TextJobRunOptions}. */
  constructor(options: TextJobRunOptions) {
    this.#o = options;
  }

  /**
   * Whether the job has ended (finished, failed or cancelled): set at once, while the actor
   * hears of it through its mailbox (`job_ended`).
   */
  get ended(): boolean {
    return this.#ended;
  }

  /** The first position the requester's stream delivers: 0, or the resumed prefix's length. */
  get #resumeFrom(): number {
    return this.#o.resume?.length ?? 0;
  }

  /** The requester's view of this job. */
  handle(model: ServedModelInfo, promptTokens: number): TextJobHandle {
    let reader: ReadableStreamDefaultReader<TokenChunk> | undefined;
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        reader ??= await this.#started.promise;
        if (!reader) { // failed to start, or cancelled before it started
          controller.error(this.#startError ?? new JobCancelledError(this.#o.jobId));
          return;
        }
        let result: ReadableStreamReadResult<TokenChunk>;
        try {
          result = await reader.read();
          // Replayed positions of a resumed job: evidence for the prover, not news to the
          // requester, who has these tokens already.
          while (!result.done && result.value.index < this.#resumeFrom) {
            this.#proverController?.enqueue(result.value);
            result = await reader.read();
          }
        } catch (error) {
          this.#finish(this.#abort.signal.aborted ? "cancelled" : "error", error);
          controller.error(error);
          return;
        }
        if (this.#abort.signal.aborted) {
          // Cancelled while the step ran (by handle.cancel, the runner stopping, or this stream's
          // own cancel, where erroring is a no-op): drop the step's token.
          controller.error(new JobCancelledError(this.#o.jobId));
          return;
        }
        if (result.done) {
          // Reached only when the model ended without marking a last chunk (maxTokens 0).
          this.#finish("length");
          controller.close();
          return;
        }
        this.#onChunk(result.value);
        controller.enqueue(streamedToken(result.value));
        if (result.value.finishReason !== undefined) {
          // The last chunk: end now rather than on the next pull, so `done` does not wait for
          // a requester that stops reading once it has seen the final token.
          this.#finish(result.value.finishReason);
          controller.close();
        }
      },
      cancel: (reason) => {
        this.cancel(reason);
      },
      // Zero: the model computes the next token only when the requester asks for it.
    }, { highWaterMark: 0 });
    return {
      kind: "text",
      jobId: this.#o.jobId,
      model,
      promptTokens,
      tokens,
      done: this.#done.promise,
      cancel: () => this.cancel(),
    };
  }

  /** Start computing; called by the runner child, which is told `ended` when the job ends. */
  start(signal: AbortSignal, runner: ActorRef<JobRunnerMessage>): void {
    this.#runner = runner;
    if (this.#ended) {
      this.#tellRunnerEnded();
      return;
    }
    this.#startedAt = this.#o.now();
    signal.addEventListener("abort", () => this.cancel(signal.reason), { once: true });
    if (this.#o.prover) {
      const branch = new ReadableStream<TokenChunk>({
        start: (controller) => {
          this.#proverController = controller;
        },
        // The prover never pushes back on generation (see the module comment for the bound).
      }, { highWaterMark: Infinity });
      this.#proverResult = this.#o.prover(this.#o.job, this.#o.jobId, branch, this.#o.input);
      this.#proverResult.catch(() => {}); // awaited in #finish; avoid an unhandled rejection
    }
    let source: ReadableStream<TokenChunk>;
    const options = { signal: this.#abort.signal, topLogprobs: this.#o.topLogprobs };
    const { model, promptIds, job, resume } = this.#o;
    try {
      if (!resume?.length) source = model.generate(promptIds, job.params, options);
      else if (isResumable(model)) {
        source = resumeGeneration(model, promptIds, resume, job.params, options);
      } else throw new InvalidResumeError(`model ${model.info.name} cannot resume a job here`);
    } catch (error) {
      // Refused synchronously (bad params the edge let through): the job fails, not the runner,
      // and ends now: its slot is not held until a requester next reads the stream.
      this.#startError = error;
      this.#started.resolve(undefined);
      this.#finish("error", error);
      return;
    }
    this.#started.resolve(source.getReader());
  }

  /** Cancel the job (queued or running). Idempotent. */
  cancel(reason?: unknown): void {
    if (this.#ended) return;
    this.#abort.abort(reason ?? new JobCancelledError(this.#o.jobId));
    this.#started.promise.then((reader) => reader?.cancel(reason).catch(() => {}));
    this.#started.resolve(undefined);
    this.#finish("cancelled");
  }

  #tellRunnerEnded(): void {
    // The runner may already be gone (its stop is what cancelled us); nothing then to end.
    this.#runner?.tell({ type: "ended" }).catch(() => {});
  }

  #onChunk(chunk: TokenChunk): void {
    if (this.#tokens === 0) this.#firstTokenAt = this.#o.now();
    this.#tokens++;
    this.#proverController?.enqueue(chunk);
  }

  #finish(reason: FinishReason, error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const end = this.#o.now();
    if (this.#proverController) {
      if (reason === "stop" || reason === "length") this.#proverController.close();
      else this.#proverController.error(error ?? new JobCancelledError(this.#o.jobId));
    }
    this.#o.onEnd(
      reason === "cancelled" ? "cancelled" : reason === "error" ? "failed" : "finished",
      this.#tokens,
    );
    this.#tellRunnerEnded();
    const { submittedAt } = this.#o;
    const started = Number.isNaN(this.#startedAt) ? end : this.#startedAt;
    const genSeconds = (end - started) / MS_PER_S;
    const summary: JobSummary = {
      jobId: this.#o.jobId,
      finishReason: reason,
      usage: { promptTokens: this.#o.promptIds.length, completionTokens: this.#tokens },
      timings: {
        queueMs: started - submittedAt,
        ttftMs: this.#firstTokenAt - submittedAt,
        totalMs: end - submittedAt,
        tokensPerS: genSeconds > 0 ? this.#tokens / genSeconds : 0,
      },
    };
    if (error !== undefined) summary.error = errorInfo(error);
    if (!this.#proverResult || reason === "cancelled") {
      this.#done.resolve(summary);
      return;
    }
    this.#proverResult.then(
      (receipt) => this.#done.resolve({ ...summary, receipt }),
      (proverError) =>
        this.#done.resolve({ ...summary, error: summary.error ?? errorInfo(proverError) }),
    );
  }
}

const MS_PER_S = 1000;

/**
 * The requester's copy of a chunk: plain fields, the token's logprob and the top tokens it asked
 * for, no logits.
 */
function streamedToken(chunk: TokenChunk): StreamedToken {
  const token: StreamedToken = { index: chunk.index, tokenId: chunk.tokenId, text: chunk.text };
  if (chunk.fingerprint !== undefined) token.logprob = chunk.fingerprint.logProb;
  if (chunk.topLogprobs !== undefined) token.topLogprobs = chunk.topLogprobs;
  if (chunk.finishReason !== undefined) token.finishReason = chunk.finishReason;
  return token;
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof VeriflowError) return { code: error.code, message: error.message };
  return {
    code: "internal_error",
    message: error instanceof Error ? error.message : String(error),
  };
}

/**
 * The temporary child that runs one text job. Its lifetime is the job's: it starts the model on
 * `preStart`, and its `ctx.signal` (aborted when it stops or its parent stops) cancels the
 * computation, so a job never outlives the actor that owns it.
 */
export class JobRunner implements Actor<JobRunnerMessage> {
  #run: TextJobRun;

  /** @param run The job to run. */
  constructor(run: TextJobRun) {
    this.#run = run;
  }

  /** Start the job. */
  preStart(ctx: ActorContext<JobRunnerMessage>): void {
    this.#run.start(ctx.signal, ctx.self);
  }

  /** `cancel` stops the job; `ended` (from the job itself) ends this runner. */
  receive(message: JobRunnerMessage, ctx: ActorContext<JobRunnerMessage>): void {
    if (message.type === "cancel") this.#run.cancel();
    else ctx.stop();
  }
}
