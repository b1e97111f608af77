/**
 * One text job of the InferenceActor: its state ({@link TextJobRun}) and the temporary child
 * actor that runs it ({@link JobRunner}).
 *
 * The run tees the model's stream. The requester's branch is pull-driven (the model computes
 * the next token only when the requester asks for it) and carries plain {@link StreamedToken}s:
 * whatever evidence the model's chunks hold stays next to the model. A slow requester slows only
 * its own job: while other jobs wait for its model's seats (the actor says so,
 * `setContended`), a requester that has taken nothing for `SLOW_READER_GRACE_MS` no longer holds
 * the job, which reads ahead into memory at the model's pace and frees its seat when it ends;
 * those tokens are counted against the node's `UnreadTokenBudget`. A job that finds it full
 * evicts the job holding the most unread bytes (its tokens dropped, its stream cut with
 * `slow_reader`), or, when that is itself, waits for its requester again and is cut with
 * `slow_reader` after a second grace (`actors/_unread_token_budget.ts`). Every chunk is also
 * handed, whole, to the optional prover hook without waiting for it, so the prover branch never
 * slows the requester; its queue is bounded by the job itself: at most `params.maxTokens` chunks.
 * The prover's result (a signed receipt) comes with the job's end in {@link JobSummary.receipt}.
 *
 * A job a peer's requester cancels explicitly (its `cancel` message, which reaches the stream's
 * `cancel` as a `StreamCancelledError`, `protocols/_connection_responder.ts`) after it was handed
 * k ≥ 1 tokens ends in a receipt too, over those k tokens, signed `end: "cancelled"`
 * (`proof/prover.ts`, `CancelledEnd`), for a job that names its requester: validators re-run
 * positions 0 … k−1 as for any receipt, and a ledger that gets it with the requester's assignment
 * credits the worker k tokens. Nothing is debited from the requester (no ledger holds its funds):
 * the record names it, and that is all. The prover's branch carries that end (`EndingChunks`), so
 * any hook that hands it on to `proveJob` signs it. Tokens the prover saw beyond k (a step that
 * ran while the cancel came, tokens read ahead of a slow reader) are left out. Every other end
 * signs nothing, and leaves the job free to be run again here (review s77 F3: a signed job is
 * refused as `duplicate_job` for good): a cancel before the first token, a lost connection, a
 * stall cut, the actor stopping, a by-id `cancel` message, an error, and any cancel of the node's
 * own client (`handle.cancel()`, a cancel with another reason), which carries no assignment and so
 * could earn nothing.
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
import type {
  CancelledEnd,
  EndingChunks,
  PromptCountedChunks,
  ResumedChunks,
} from "../proof/prover.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { heldOf } from "../protocols/held_cancel.ts";
import { StreamCancelledError } from "../protocols/protocol_errors.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import {
  reservedTokenBytes,
  SLOW_READER_CANCEL_GRACE_MS,
  SLOW_READER_GRACE_MS,
  SlowReaderError,
  tokenBytes,
  type UnreadTokenBudget,
  type UnreadTokenHolder,
} from "./_unread_token_budget.ts";

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
  /**
   * Called once when the job ends, to free its slot (through the actor's mailbox); `signed`:
   * whether its prover signs a receipt for it (it finished, or a peer's requester cancelled it
   * after a token, see the module comment), so the node takes the job no second time (a second
   * receipt would be equivocation); a job that signed nothing may be retried here.
   */
  onEnd: (outcome: JobOutcome, tokens: number, signed: boolean) => void;
  /**
   * The node's budget of unread token bytes, where the job's tokens are counted while they wait
   * in memory for a slow reader (`actors/_unread_token_budget.ts`). Absent: the job always waits
   * for its reader.
   */
  unreadBudget?: UnreadTokenBudget;
  /** Timers of the slow-reader graces; default the system's. Injected by tests. */
  timers?: ConnectionTimers;
}

/** What the requester's stream delivers next: a token (the last one closes it), or its end. */
type Delivery =
  | { token: StreamedToken; last: boolean; bytes: number }
  | { end: "close" }
  | { end: "error"; error: unknown };

/**
 * The state of one text job: the requester's stream (created at submission, producing once the
 * job starts), the prover's branch, and the summary. Driven by its {@link JobRunner}.
 */
export class TextJobRun implements UnreadTokenHolder {
  /**
   * Drops the backlog of a job whose requester's stream was garbage-collected unread (a library
   * caller that forgot a finished job without cancelling it): nobody can read those tokens any
   * more, and without this their bytes would count against the node's budget for good (review
   * s72 F2). Not the guarantee (collection may never come): the budget's eviction is.
   */
  static #abandoned = new FinalizationRegistry<TextJobRun>((run) => run.#abandon());
  #o: TextJobRunOptions;
  #abort = new AbortController();
  #started = Promise.withResolvers<ReadableStreamDefaultReader<TokenChunk> | undefined>();
  #done = Promise.withResolvers<JobSummary>();
  #proverController?: ReadableStreamDefaultController<TokenChunk>;
  #proverResult?: Promise<unknown>;
  /** Set by the requester's cancel after it held a token of this run: what the prover signs. */
  #proverEnd?: CancelledEnd;
  /** Output positions the requester holds: the resumed prefix, then each token handed to it. */
  #held: number;
  /**
   * Set by a requester's cancel that stated what it holds, or over which the prover signs:
   * output positions `0 … n−1` the requester holds. A cancelled job's usage reports these (less
   * the resumed prefix), as its receipt does, not the tokens computed (review s80 vbil, F2).
   */
  #heldAtCancel?: number;
  #tokens = 0;
  #startedAt = NaN;
  #firstTokenAt = NaN;
  #ended = false;
  #startError?: unknown;
  #runner?: ActorRef<JobRunnerMessage>;
  #timers: ConnectionTimers;
  // The slow-reader state (see the module comment of `_unread_token_budget.ts`).
  /** Tokens read from the model ahead of a slow reader, oldest first, with their stream's end. */
  #unread: Delivery[] = [];
  /** Why the unread tokens were dropped (the job was cancelled): what the stream errors with. */
  #dropped?: unknown;
  /** Whether other jobs wait for this job's model's seats (told by the actor). */
  #contended = false;
  /** Whether the requester's stream has asked for a token and not had it yet. */
  #asking = false;
  /** Whether tokens are being read ahead of the reader, into {@link #unread}. */
  #spilling = false;
  /** The model read in flight ahead of the reader, if any: a pull waits for it. */
  #ahead?: Promise<void>;
  /** Whether the model's stream has ended (its end is the last of {@link #unread}, or was read). */
  #sourceEnded = false;
  #graceTimer?: unknown;
  #budgetTimer?: unknown;

  /** @param options See {@link TextJobRunOptions}. */
  constructor(options: TextJobRunOptions) {
    this.#o = options;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#held = this.#resumeFrom;
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

  /**
   * Tell the job whether other jobs wait for its model's seats (the actor does, from `receive`,
   * whenever that changes). While they do, a reader that reads nothing for
   * {@link SLOW_READER_GRACE_MS} no longer holds the job: it runs on into memory, counted against
   * the node's unread budget. While none do, the job waits for its reader and uses no memory.
   */
  setContended(contended: boolean): void {
    if (this.#contended === contended) return;
    this.#contended = contended;
    if (contended) this.#armGrace();
    else this.#stopSpilling();
  }

  /** The requester's view of this job. */
  handle(model: ServedModelInfo, promptTokens: number): TextJobHandle {
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        this.#asking = true;
        this.#stopSpilling();
        try {
          const next = await this.#next();
          if ("end" in next) {
            TextJobRun.#abandoned.unregister(this);
            if (next.end === "close") controller.close();
            else controller.error(next.error);
            return;
          }
          controller.enqueue(next.token);
          this.#held = next.token.index + 1;
          // The last chunk: end now rather than on the next pull, so `done` does not wait for
          // a requester that stops reading once it has seen the final token.
          if (next.last) {
            TextJobRun.#abandoned.unregister(this);
            controller.close();
          }
        } finally {
          this.#asking = false;
          this.#armGrace();
        }
      },
      cancel: (reason) => {
        TextJobRun.#abandoned.unregister(this);
        this.#drop(new JobCancelledError(this.#o.jobId));
        this.#cancelByRequester(reason);
      },
      // Zero: the model computes the next token only when the requester asks for it (or when a
      // slow reader's job runs on into memory, see `setContended`).
    }, { highWaterMark: 0 });
    TextJobRun.#abandoned.register(tokens, this, this);
    const resumedText = this.#resumedText();
    return {
      kind: "text",
      jobId: this.#o.jobId,
      model,
      promptTokens,
      ...(resumedText === undefined ? {} : { resumedText }),
      tokens,
      done: this.#done.promise,
      cancel: () => {
        TextJobRun.#abandoned.unregister(this);
        this.#drop(new JobCancelledError(this.#o.jobId));
        this.#cancelByRequester();
      },
    };
  }

  /**
   * The text of the resumed prefix as generation decodes it (`resumeGeneration` primes its
   * stream decoder with the same ids, unflushed), which the receipt signs ahead of the tokens
   * streamed; undefined for a job from the start or a model that cannot resume.
   */
  #resumedText(): string | undefined {
    const { model, resume } = this.#o;
    if (!resume?.length || !isResumable(model)) return undefined;
    const decoder = model.tokenizer.streamDecoder();
    return resume.map((id) => decoder.push(id)).join("");
  }

  /**
   * Called by the node's {@link UnreadTokenBudget} when it is full and this job holds the most of
   * it: drop every unread token, ending the requester's stream with {@link SlowReaderError}. A job
   * still running is cut as {@link #overBudget} cuts it (counted cancelled, no receipt); one that
   * has finished keeps its receipt and loses only its undelivered tokens.
   */
  evict(): void {
    const error = new SlowReaderError(this.#o.jobId);
    if (this.#ended) {
      this.#drop(error);
      return;
    }
    this.#end(error, error);
    this.#finish("error", error, "cancelled");
  }

  /** The requester's stream was garbage-collected unread: nobody can read the job any more. */
  #abandon(): void {
    this.#drop(new JobCancelledError(this.#o.jobId));
    this.cancel();
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
      const stream = new ReadableStream<TokenChunk>({
        start: (controller) => {
          this.#proverController = controller;
        },
        // The prover never pushes back on generation (see the module comment for the bound).
      }, { highWaterMark: Infinity });
      // Carries its own end, for `proveJob` to ask when it closes: a hook need not know of cancels.
      const ending: EndingChunks = { cancelledEnd: () => this.#proverEnd };
      // And the prompt tokens the model prefills for it, which the receipt signs and is paid by.
      const counted: PromptCountedChunks = { promptTokens: this.#o.promptIds.length };
      // And the positions it replays of another worker's prefix: none of them is this run's to cut
      // a receipt over (`cutProvedJob`, `actors/prover_actor.ts`).
      const resumed: ResumedChunks = { resumedFrom: this.#resumeFrom };
      const branch = Object.assign(stream, ending, counted, resumed);
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
    this.#armGrace();
  }

  /** Cancel the job (queued or running). Idempotent. */
  cancel(reason?: unknown): void {
    if (this.#ended) return;
    const cancelled = new JobCancelledError(this.#o.jobId);
    this.#end(reason ?? cancelled, cancelled);
    this.#finish("cancelled");
  }

  /**
   * The requester's own cancel: as {@link cancel}, and when it is a peer's explicit cancel of a
   * job that names its requester, and the requester holds at least one token this run delivered
   * (a resumed prefix alone is another worker's), the prover signs a receipt over the tokens it
   * holds, `end: "cancelled"` (see the module comment).
   */
  #cancelByRequester(reason?: unknown): void {
    if (this.#ended) return;
    // A forwarding node's (or this node's HTTP edge's) cancel names the positions its own
    // client got (`held_cancel.ts`): tokens handed on here and still in the credit window were
    // never read there. Never more than were handed on here, whatever the requester says.
    const told = heldOf(reason);
    const held = told === undefined ? this.#held : Math.min(told, this.#held);
    if (told !== undefined) this.#heldAtCancel = held;
    // Only an assignable job's explicit cancel signs: any other end leaves the job free to be
    // retried here (a receipt makes it `duplicate_job` for good), and its receipt could earn
    // nothing. `serveInference` passes a peer's cancel on only for a job whose requester is
    // another node; a lost connection reaches here as a `ConnectionClosedError`.
    if (!(reason instanceof StreamCancelledError) || this.#o.job.requester === undefined) {
      this.cancel(reason);
      return;
    }
    if (held > this.#resumeFrom) {
      this.#proverEnd = { reason: "cancelled", tokens: held };
      this.#heldAtCancel = held;
    }
    this.cancel(reason);
  }

  /**
   * Stop the computation with `reason`, dropping what was read ahead of the reader, whose
   * stream fails with `streamError`.
   */
  #end(reason: unknown, streamError: unknown): void {
    this.#abort.abort(reason);
    this.#drop(streamError);
    this.#started.promise.then((reader) => reader?.cancel(reason).catch(() => {}));
    this.#started.resolve(undefined);
  }

  /** The next delivery: one read ahead of the reader, else one read now. */
  async #next(): Promise<Delivery> {
    while (this.#ahead) await this.#ahead;
    if (this.#dropped !== undefined) return { end: "error", error: this.#dropped };
    const unread = this.#unread.shift();
    if (unread) {
      if ("token" in unread) this.#o.unreadBudget?.release(unread.bytes, this);
      return unread;
    }
    const reader = await this.#started.promise;
    if (!reader) { // failed to start, or cancelled before it started
      return { end: "error", error: this.#startError ?? new JobCancelledError(this.#o.jobId) };
    }
    return await this.#read(reader);
  }

  /** Read the model's next chunk for the requester, ending the job on its last. */
  async #read(reader: ReadableStreamDefaultReader<TokenChunk>): Promise<Delivery> {
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
      this.#sourceEnded = true;
      this.#finish(this.#abort.signal.aborted ? "cancelled" : "error", error);
      return { end: "error", error };
    }
    if (this.#abort.signal.aborted) {
      // Cancelled while the step ran (by handle.cancel, the runner stopping, or this stream's
      // own cancel, where erroring is a no-op): drop the step's token.
      return { end: "error", error: this.#dropped ?? new JobCancelledError(this.#o.jobId) };
    }
    if (result.done) {
      // Reached only when the model ended without marking a last chunk (maxTokens 0).
      this.#sourceEnded = true;
      this.#finish("length");
      return { end: "close" };
    }
    this.#onChunk(result.value);
    const last = result.value.finishReason !== undefined;
    if (last) {
      this.#sourceEnded = true;
      this.#finish(result.value.finishReason!);
    }
    return { token: streamedToken(result.value), last, bytes: 0 };
  }

  /**
   * Start the grace of a reader that reads nothing while others wait for a seat; when it runs
   * out, the job reads ahead into memory ({@link #spill}). A timer, not a clock reading: any
   * read by the requester clears it and the next idle stretch starts a fresh one.
   */
  #armGrace(): void {
    if (
      !this.#contended || this.#asking || this.#spilling || this.#sourceEnded || this.#ended ||
      this.#graceTimer !== undefined || this.#budgetTimer !== undefined ||
      this.#o.unreadBudget === undefined || Number.isNaN(this.#startedAt)
    ) return;
    this.#graceTimer = this.#timers.setTimeout(() => {
      this.#graceTimer = undefined;
      void this.#spill();
    }, SLOW_READER_GRACE_MS);
  }

  /** Stop reading ahead (the reader asks again, or nobody waits any more) and every grace. */
  #stopSpilling(): void {
    this.#spilling = false;
    if (this.#graceTimer !== undefined) this.#timers.clearTimeout(this.#graceTimer);
    if (this.#budgetTimer !== undefined) this.#timers.clearTimeout(this.#budgetTimer);
    this.#graceTimer = this.#budgetTimer = undefined;
  }

  /**
   * Read ahead of a slow reader into {@link #unread} at the model's pace, each token counted
   * against the node's budget, until the stream ends (the job ends and frees its seat), the
   * reader asks again, nobody waits any more, or the budget is full: then the job waits for its
   * reader as before, holding its seat, and is cancelled with {@link SlowReaderError} if that
   * lasts {@link SLOW_READER_CANCEL_GRACE_MS} while others still wait. A full budget first
   * evicts the job holding the most unread bytes, if that is another job ({@link evict}): the
   * reader that let the most pile up pays, not the one that pauses next.
   */
  async #spill(): Promise<void> {
    const budget = this.#o.unreadBudget;
    if (!budget || !this.#contended || this.#asking || this.#ended || this.#spilling) return;
    const reader = await this.#started.promise;
    // Asked again (or ended) meanwhile: that pull reads the model itself, never beside a read ahead.
    if (!reader || !this.#contended || this.#asking || this.#ended || this.#spilling) return;
    this.#spilling = true;
    const reserve = reservedTokenBytes(this.#o.topLogprobs ?? 0);
    while (this.#spilling && !this.#sourceEnded && this.#dropped === undefined) {
      if (!budget.reserve(reserve, this)) {
        this.#spilling = false;
        this.#budgetTimer = this.#timers.setTimeout(() => {
          this.#budgetTimer = undefined;
          this.#overBudget();
        }, SLOW_READER_CANCEL_GRACE_MS);
        return;
      }
      const ahead = Promise.withResolvers<void>();
      this.#ahead = ahead.promise;
      let delivery: Delivery;
      try {
        delivery = await this.#read(reader);
      } finally {
        this.#ahead = undefined;
        ahead.resolve();
      }
      const bytes = "token" in delivery ? tokenBytes(delivery.token) : 0;
      if (this.#dropped !== undefined) { // cancelled meanwhile: nobody will read it
        budget.release(reserve, this);
        return;
      }
      budget.settle(reserve, bytes, this);
      if ("token" in delivery) delivery.bytes = bytes;
      this.#unread.push(delivery);
      if ("end" in delivery) this.#sourceEnded = true;
    }
    this.#spilling = false;
  }

  /** The budget was full a whole grace: read ahead if it has room now, else give the seat up. */
  #overBudget(): void {
    if (!this.#contended || this.#asking || this.#ended) return;
    const budget = this.#o.unreadBudget!;
    const reserve = reservedTokenBytes(this.#o.topLogprobs ?? 0);
    if (budget.reserve(reserve, this)) {
      budget.release(reserve, this);
      void this.#spill();
      return;
    }
    const error = new SlowReaderError(this.#o.jobId);
    this.#end(error, error);
    this.#finish("error", error, "cancelled");
  }

  /** Drop the tokens read ahead (nobody will read them), giving their bytes back. */
  #drop(reason: unknown): void {
    this.#stopSpilling();
    this.#dropped ??= reason;
    for (const unread of this.#unread.splice(0)) {
      if ("token" in unread) this.#o.unreadBudget?.release(unread.bytes, this);
    }
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

  /**
   * End the job: close or fail the prover's branch, free the slot, settle `done`. `outcome`
   * overrides the one the reason implies: a job cut for a slow reader ends with its error for
   * the requester and is counted cancelled (the node stopped it; the model did not fail).
   */
  #finish(reason: FinishReason, error?: unknown, outcome?: JobOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopSpilling();
    const end = this.#o.now();
    // A requester's cancel after a token closes the branch too: the prover signs what it held.
    const proved = reason === "stop" || reason === "length" ||
      (reason === "cancelled" && this.#proverEnd !== undefined);
    if (this.#proverController) {
      if (proved) this.#proverController.close();
      else this.#proverController.error(error ?? new JobCancelledError(this.#o.jobId));
    }
    const ended: JobOutcome = outcome ??
      (reason === "cancelled" ? "cancelled" : reason === "error" ? "failed" : "finished");
    this.#o.onEnd(ended, this.#tokens, proved && this.#proverController !== undefined);
    this.#tellRunnerEnded();
    const { submittedAt } = this.#o;
    const started = Number.isNaN(this.#startedAt) ? end : this.#startedAt;
    const genSeconds = (end - started) / MS_PER_S;
    // A cancelled job is used for what its requester holds (what its receipt is signed over),
    // not for tokens computed past that and never read.
    const completionTokens = reason === "cancelled" && this.#heldAtCancel !== undefined
      ? Math.min(this.#tokens, Math.max(0, this.#heldAtCancel - this.#resumeFrom))
      : this.#tokens;
    const summary: JobSummary = {
      jobId: this.#o.jobId,
      finishReason: reason,
      usage: { promptTokens: this.#o.promptIds.length, completionTokens },
      timings: {
        queueMs: started - submittedAt,
        ttftMs: this.#firstTokenAt - submittedAt,
        totalMs: end - submittedAt,
        tokensPerS: genSeconds > 0 ? this.#tokens / genSeconds : 0,
      },
    };
    if (error !== undefined) summary.error = errorInfo(error);
    if (!this.#proverResult || (ended === "cancelled" && !proved)) {
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
