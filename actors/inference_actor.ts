/**
 * The InferenceActor: the node's job queue for inference, and its protocol.
 *
 * It owns, per model, a concurrency limit and a bounded FIFO of waiting jobs. A submission is
 * answered at once with a {@link JobHandle} (the actor never holds its mailbox for the length of
 * a job); the job starts when its model has a free slot, each running job in its own temporary
 * child actor ({@link JobRunner}) that drives `TextModel.generate`. Stopping that child (its
 * `ctx.signal`) or cancelling the requester's stream stops the computation within one step.
 *
 * The token stream is tee'd by the runner: the requester's branch is pull-driven (the model
 * computes the next token only when the requester asks for it, so a slow client slows only its
 * own job), and every chunk produced is also handed to the optional prover hook without waiting
 * for it. The prover branch therefore never slows the requester; its queue is bounded by the
 * job itself: at most `params.maxTokens` chunks, each one logits row (`vocabSize × 4` bytes —
 * about 1 KiB per token for the built-in byte-level model). The prover's result (a signed
 * receipt) is delivered with the job's end in {@link JobSummary.receipt}.
 *
 * Submissions that find the queue full are answered with a typed {@link TooManyJobsError}
 * (HTTP 429 at the edge) instead of crashing the actor: a refused job is a normal outcome.
 *
 * @module
 */
import type { Actor, ActorContext } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { GenerationParams, Job, TensorData, TensorJob, TextJob } from "../protocols/job.ts";
import { jobId as computeJobId } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  UnknownModelError,
  WrongModelKindError,
} from "../inference/errors.ts";
import { validateSamplingParams } from "../inference/sampler.ts";
import type { TokenChunk } from "../inference/text_model.ts";

// ---------------------------------------------------------------------------------------------
// Models as the actor sees them
// ---------------------------------------------------------------------------------------------

/**
 * What the actor and the client APIs need to know about a served model; the engine's
 * `ModelInfo` has these fields (and more).
 */
export interface ServedModelInfo {
  /** CID of the model file: the model's identity. */
  readonly cid: string;
  /** Human-readable name (also accepted where a model is named in a request). */
  readonly name: string;
  /** Text generation or one-shot tensor model. */
  readonly kind: "text" | "tensor";
  /** Context window in tokens (text models). */
  readonly contextLength?: number;
  /** The execution provider sessions run on (`cpu`, `cuda`); unset until a model loads. */
  readonly executionProvider?: string;
}

/**
 * The part of `TextModel` (inference/text_model.ts) the actor uses. Declared structurally so
 * tests can drive the actor with a scripted model and so any model with this shape can serve.
 */
export interface GenerativeModel {
  /** Identity and shape of the model (`cid`, `name`, `contextLength`, `executionProvider`). */
  readonly info: ServedModelInfo;
  /** Text ↔ token ids. */
  readonly tokenizer: { encode(text: string): number[] };
  /** Pull-based token stream; stops within one step when `signal` aborts or it is cancelled. */
  generate(
    promptIds: number[],
    params: GenerationParams,
    options?: { signal?: AbortSignal },
  ): ReadableStream<TokenChunk>;
}

/** The part of a one-shot `TensorModel` the actor uses: named tensors in, named tensors out. */
export interface OneShotModel {
  /** Identity of the model. */
  readonly info: ServedModelInfo;
  /** Run the model once. */
  run(inputs: Record<string, TensorData>): Promise<Record<string, TensorData>>;
}

/** Where the actor finds a model by CID. `ModelRegistry` (inference/model_registry.ts) is one. */
export interface ModelSource {
  /**
   * The loaded model with this CID; `undefined` or a rejection with `UnknownModelError` when
   * the node does not serve it (any typed rejection refuses the job with that error).
   */
  get(cid: string): Promise<GenerativeModel | OneShotModel | undefined>;
}

/**
 * The prover hook: receives the job, its id and the prover's branch of the token stream (the
 * chunks carry `logits`), and resolves to the job's receipt when the stream ends.
 */
export type ProverHook = (
  job: TextJob,
  jobId: string,
  chunks: ReadableStream<TokenChunk>,
) => Promise<unknown>;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The model's queue is full: the job was refused (HTTP 429). */
export class TooManyJobsError extends VeriflowError {
  /**
   * Create it.
   *
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("too_many_jobs", message);
  }
}

/** The same job (same job id) is already queued or running on this actor. */
export class DuplicateJobError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   *
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super("duplicate_job", `job ${jobId} is already queued or running`);
    this.jobId = jobId;
  }
}

/** The job was cancelled before it finished (by its requester or by the node stopping). */
export class JobCancelledError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   *
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super("job_cancelled", `job ${jobId} was cancelled`);
    this.jobId = jobId;
  }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/** Why a text job ended. */
export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** Token counts of a finished text job. */
export interface JobUsage {
  /** Tokens in the prompt. */
  promptTokens: number;
  /** Tokens generated. */
  completionTokens: number;
}

/** Timings of a finished job, in milliseconds from its submission. */
export interface JobTimings {
  /** Time spent waiting for a slot. */
  queueMs: number;
  /** Submission to first token (`NaN` when no token came). */
  ttftMs: number;
  /** Submission to the end of the stream. */
  totalMs: number;
  /** Generated tokens per second, measured from the job's start (after the queue). */
  tokensPerS: number;
}

/** How a text job ended; `done` of a {@link TextJobHandle} resolves to this, never rejects. */
export interface JobSummary {
  /** The job id. */
  jobId: string;
  /** Why it ended. */
  finishReason: FinishReason;
  /** Token counts. */
  usage: JobUsage;
  /** Timings. */
  timings: JobTimings;
  /** The prover's result (a signed receipt) when a prover is configured and succeeded. */
  receipt?: unknown;
  /** The error that ended the job (`finishReason: "error"`) or the prover's failure. */
  error?: { code: string; message: string };
}

/** What a requester gets back for an accepted text job. */
export interface TextJobHandle {
  /** Kind of the job. */
  kind: "text";
  /** The job id (`jobId(job)`). */
  jobId: string;
  /** Information about the model that runs it. */
  model: ServedModelInfo;
  /** Tokens in the prompt. */
  promptTokens: number;
  /**
   * The requester's branch of the token stream. Cancelling it cancels the job; it starts
   * producing when the job gets a slot.
   */
  tokens: ReadableStream<TokenChunk>;
  /** Resolves when the job has ended and the prover (if any) has answered. */
  done: Promise<JobSummary>;
  /** Cancel the job whether queued or running (same as cancelling `tokens`). */
  cancel(): void;
}

/** What a requester gets back for an accepted one-shot tensor job. */
export interface TensorJobHandle {
  /** Kind of the job. */
  kind: "tensor";
  /** The job id. */
  jobId: string;
  /** Information about the model that runs it. */
  model: ServedModelInfo;
  /** The output tensors; rejects with the model's error or {@link JobCancelledError}. */
  outputs: Promise<Record<string, TensorData>>;
  /** Cancel the job if it has not started yet (a running one-shot pass is not interruptible). */
  cancel(): void;
}

/** Answer to a {@link SubmitJob}: the job was accepted, or refused with a typed error. */
export type SubmitReply =
  | { accepted: true; handle: TextJobHandle | TensorJobHandle }
  | { accepted: false; error: VeriflowError };

/** Counters and gauges of the actor (served on `/metrics`). */
export interface InferenceStats {
  /** Jobs that got a slot and started. */
  jobsStarted: number;
  /** Jobs that ended normally (stop or length, or a tensor job that returned). */
  jobsFinished: number;
  /** Jobs cancelled (queued or running). */
  jobsCancelled: number;
  /** Jobs that ended with an error. */
  jobsFailed: number;
  /** Jobs refused because the queue was full. */
  jobsRejected: number;
  /** Tokens generated over all jobs. */
  tokensGenerated: number;
  /** Jobs running now. */
  activeJobs: number;
  /** Jobs waiting for a slot now. */
  queuedJobs: number;
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** Submit a job; answered with a {@link SubmitReply}. */
export interface SubmitJob {
  /** Message tag. */
  type: "submit";
  /** The job. */
  job: Job;
  /** Aborting it cancels the job (same as `handle.cancel()`). */
  signal?: AbortSignal;
}

/** Ask for the actor's {@link InferenceStats}. */
export interface GetInferenceStats {
  /** Message tag. */
  type: "stats";
}

/** Cancel a queued or running job by id; answered with `true` when such a job existed. */
export interface CancelJob {
  /** Message tag. */
  type: "cancel";
  /** The job id. */
  jobId: string;
}

/** Internal: a job's runner has finished; frees its slot. */
export interface JobEnded {
  /** Message tag. */
  type: "job_ended";
  /** The job id. */
  jobId: string;
  /** How it ended. */
  outcome: "finished" | "cancelled" | "failed";
  /** Tokens it produced. */
  tokens: number;
}

/** Messages the InferenceActor accepts. */
export type InferenceMessage = SubmitJob | GetInferenceStats | CancelJob | JobEnded;

/** Messages a job's runner child accepts: cancel the job, or (internal) the job has ended. */
export type JobRunnerMessage = { type: "cancel" } | { type: "ended" };

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** Options of {@link InferenceActor}. */
export interface InferenceActorOptions {
  /** Where models are found by CID. */
  models: ModelSource;
  /**
   * Jobs computed at once per model. Default 4: on a few CPU cores more concurrent decodes only
   * split the same compute further; the node config overrides it.
   */
  concurrency?: number;
  /**
   * Jobs allowed to wait per model beyond the running ones; more are refused with
   * {@link TooManyJobsError}. Default 64, enough to absorb a burst without letting the queue's
   * latency grow unbounded.
   */
  queueLimit?: number;
  /** The prover hook, called once per text job with the prover's branch of the stream. */
  prover?: ProverHook;
  /** Clock in milliseconds; default `performance.now`. Injected by tests. */
  now?: () => number;
}

/** Default jobs per model computed at once. */
export const DEFAULT_CONCURRENCY = 4;
/** Default jobs per model allowed to wait. */
export const DEFAULT_QUEUE_LIMIT = 64;

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/** A job known to the actor, from submission to the end. */
interface JobEntry {
  jobId: string;
  modelCid: string;
  /** Starts the job in a child runner; called once when a slot frees. */
  start: (ctx: ActorContext<InferenceMessage>) => Promise<void>;
  /** Cancels the job wherever it is. */
  cancel: () => void;
  state: "queued" | "running";
}

/** Per-model slots and queue. */
interface ModelLane {
  running: number;
  queue: JobEntry[];
}

/**
 * Queues, starts and tracks inference jobs. Spawn it under the node supervisor:
 *
 * @example
 * ```ts ignore
 * const inference = await system.spawn({
 *   name: "node/inference",
 *   factory: () => new InferenceActor({ models: registry, concurrency: 4, queueLimit: 64 }),
 * });
 * const handle = await submitJob(inference, job);
 * for await (const chunk of handle.tokens) console.log(chunk.text);
 * console.log(await handle.done);
 * ```
 */
export class InferenceActor implements Actor<InferenceMessage> {
  #models: ModelSource;
  #concurrency: number;
  #queueLimit: number;
  #prover?: ProverHook;
  #now: () => number;
  #lanes = new Map<string, ModelLane>();
  #jobs = new Map<string, JobEntry>();
  #runnerSeq = 0;
  #stats: InferenceStats = {
    jobsStarted: 0,
    jobsFinished: 0,
    jobsCancelled: 0,
    jobsFailed: 0,
    jobsRejected: 0,
    tokensGenerated: 0,
    activeJobs: 0,
    queuedJobs: 0,
  };

  /**
   * Create it (the system calls this through the child spec's factory).
   *
   * @param options See {@link InferenceActorOptions}.
   */
  constructor(options: InferenceActorOptions) {
    this.#models = options.models;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.#prover = options.prover;
    this.#now = options.now ?? (() => performance.now());
    if (!(this.#concurrency >= 1)) throw new RangeError("concurrency must be at least 1");
    if (!(this.#queueLimit >= 0)) throw new RangeError("queueLimit must not be negative");
  }

  /** Handle one message; see {@link InferenceMessage}. */
  receive(
    message: InferenceMessage,
    ctx: ActorContext<InferenceMessage>,
  ): Promise<SubmitReply> | Promise<void> | InferenceStats | boolean {
    switch (message.type) {
      case "submit":
        return this.#submit(message, ctx);
      case "stats":
        return { ...this.#stats };
      case "cancel": {
        const entry = this.#jobs.get(message.jobId);
        entry?.cancel();
        return entry !== undefined;
      }
      case "job_ended":
        return this.#ended(message, ctx);
    }
  }

  /** Cancel every job when the actor stops, so no computation outlives it. */
  postStop(): void {
    for (const entry of [...this.#jobs.values()]) entry.cancel();
  }

  async #submit(message: SubmitJob, ctx: ActorContext<InferenceMessage>): Promise<SubmitReply> {
    const { job } = message;
    const submittedAt = this.#now();
    const id = computeJobId(job);
    if (this.#jobs.has(id)) return { accepted: false, error: new DuplicateJobError(id) };
    // Models are loaded lazily by the source; awaiting here is the only wait in the actor and
    // is bounded by a model load (sessions are cached after the first).
    let model: GenerativeModel | OneShotModel | undefined;
    try {
      model = await this.#models.get(job.model);
    } catch (error) {
      // An unknown or unloadable model refuses this job; it does not crash the actor.
      if (error instanceof VeriflowError) return { accepted: false, error };
      throw error;
    }
    if (model === undefined) return { accepted: false, error: new UnknownModelError(job.model) };
    const lane = this.#lane(job.model);
    if (lane.running >= this.#concurrency && lane.queue.length >= this.#queueLimit) {
      this.#stats.jobsRejected++;
      return {
        accepted: false,
        error: new TooManyJobsError(
          `model ${model.info.name} has ${lane.running} running and ${lane.queue.length} queued jobs`,
        ),
      };
    }
    let prepared: PreparedJob;
    try {
      prepared = job.kind === "text"
        ? this.#prepareText(job, id, model, submittedAt)
        : this.#prepareTensor(job, id, model);
    } catch (error) {
      if (error instanceof VeriflowError) return { accepted: false, error };
      throw error;
    }
    const { entry, handle } = prepared;
    this.#jobs.set(id, entry);
    if (message.signal) {
      if (message.signal.aborted) entry.cancel();
      else message.signal.addEventListener("abort", () => entry.cancel(), { once: true });
    }
    if (lane.running < this.#concurrency) await this.#startEntry(entry, lane, ctx);
    else {
      lane.queue.push(entry);
      this.#stats.queuedJobs++;
    }
    return { accepted: true, handle };
  }

  #prepareText(
    job: TextJob,
    id: string,
    model: GenerativeModel | OneShotModel,
    submittedAt: number,
  ): PreparedJob {
    if (!("generate" in model)) {
      throw new WrongModelKindError(model.info.cid, "text", model.info.kind);
    }
    // Parameters are checked here, not when the job starts, so a bad request is refused with a
    // typed error before it takes a queue slot.
    validateSamplingParams(job.params);
    if (!Number.isSafeInteger(job.params.maxTokens) || job.params.maxTokens < 1) {
      throw new InvalidGenerationParamsError(`maxTokens must be an integer ≥ 1`);
    }
    const promptIds = model.tokenizer.encode(job.prompt);
    const contextLength = model.info.contextLength ?? Infinity;
    if (promptIds.length === 0) throw new EmptyPromptError();
    // Refused up front (not by the model mid-stream) so the edge can answer 400 before any
    // byte of a stream is sent. A prompt that fits but leaves less room than maxTokens simply
    // ends with finish reason "length".
    if (promptIds.length >= contextLength) {
      throw new ContextLengthError(promptIds.length, contextLength);
    }
    const run = new TextJobRun({
      job,
      jobId: id,
      model,
      promptIds,
      prover: this.#prover,
      submittedAt,
      now: this.#now,
    });
    const entry: JobEntry = {
      jobId: id,
      modelCid: job.model,
      state: "queued",
      // The run reports its end (job_ended) through the mailbox, where the entry leaves the
      // queue or frees its slot: lanes are only ever touched inside receive().
      cancel: () => run.cancel(),
      start: async (ctx) => {
        await this.#spawnRunner(ctx, id, run);
      },
    };
    run.onEnd = (outcome, tokens) => {
      // The runner reports to the actor through its mailbox: the actor's state is only ever
      // touched from receive().
      tellQuietly(this.#selfRef, { type: "job_ended", jobId: id, outcome, tokens });
    };
    return { entry, handle: run.handle(model.info, promptIds.length) };
  }

  #prepareTensor(
    job: TensorJob,
    id: string,
    model: GenerativeModel | OneShotModel,
  ): PreparedJob {
    if (!("run" in model)) {
      throw new WrongModelKindError(model.info.cid, "tensor", model.info.kind);
    }
    const outputs = Promise.withResolvers<Record<string, TensorData>>();
    // A rejection the requester never awaits must not become an unhandled rejection.
    outputs.promise.catch(() => {});
    let settled = false;
    const entry: JobEntry = {
      jobId: id,
      modelCid: job.model,
      state: "queued",
      cancel: () => {
        // A running one-shot pass cannot be interrupted; only a queued job is cancelled.
        if (entry.state !== "queued" || settled) return;
        settled = true;
        outputs.reject(new JobCancelledError(id));
        tellQuietly(this.#selfRef, {
          type: "job_ended",
          jobId: id,
          outcome: "cancelled",
          tokens: 0,
        });
      },
      start: (ctx) => {
        if (settled) return Promise.resolve(); // cancelled while queued; job_ended is on its way
        const self = ctx.self;
        model.run(job.inputs).then(
          (result) => {
            settled = true;
            outputs.resolve(result);
            tellQuietly(self, { type: "job_ended", jobId: id, outcome: "finished", tokens: 0 });
          },
          (error) => {
            settled = true;
            outputs.reject(error);
            tellQuietly(self, { type: "job_ended", jobId: id, outcome: "failed", tokens: 0 });
          },
        );
        return Promise.resolve();
      },
    };
    return {
      entry,
      handle: {
        kind: "tensor",
        jobId: id,
        model: model.info,
        outputs: outputs.promise,
        cancel: () => entry.cancel(),
      },
    };
  }

  // The actor's own ref, captured on the first message so runners can report back.
  #selfRef?: ActorRef<InferenceMessage>;

  /** @internal Called by the system before the first message. */
  preStart(ctx: ActorContext<InferenceMessage>): void {
    this.#selfRef = ctx.self;
  }

  async #spawnRunner(
    ctx: ActorContext<InferenceMessage>,
    id: string,
    run: TextJobRun,
  ): Promise<ActorRef<JobRunnerMessage>> {
    const name = `${ctx.name}/job-${id.slice(0, RUNNER_ID_CHARS)}-${++this.#runnerSeq}`;
    return await ctx.spawn<JobRunnerMessage>({
      name,
      factory: () => new JobRunner(run),
      // A job is not restarted after a crash: its requester has seen part of the stream, and a
      // silent rerun would duplicate it. The runner reports the failure instead.
      restart: "temporary",
    });
  }

  async #startEntry(
    entry: JobEntry,
    lane: ModelLane,
    ctx: ActorContext<InferenceMessage>,
  ): Promise<void> {
    entry.state = "running";
    lane.running++;
    this.#stats.activeJobs++;
    this.#stats.jobsStarted++;
    await entry.start(ctx);
  }

  #dropQueued(entry: JobEntry, lane: ModelLane): void {
    const index = lane.queue.indexOf(entry);
    if (index >= 0) {
      lane.queue.splice(index, 1);
      this.#stats.queuedJobs--;
    }
  }

  async #ended(message: JobEnded, ctx: ActorContext<InferenceMessage>): Promise<void> {
    const entry = this.#jobs.get(message.jobId);
    if (!entry) return;
    this.#jobs.delete(message.jobId);
    this.#stats.tokensGenerated += message.tokens;
    if (message.outcome === "finished") this.#stats.jobsFinished++;
    else if (message.outcome === "cancelled") this.#stats.jobsCancelled++;
    else this.#stats.jobsFailed++;
    const lane = this.#lane(entry.modelCid);
    if (entry.state !== "running") { // cancelled while queued: it never held a slot
      this.#dropQueued(entry, lane);
      return;
    }
    lane.running--;
    this.#stats.activeJobs--;
    const next = lane.queue.shift();
    if (next) {
      this.#stats.queuedJobs--;
      await this.#startEntry(next, lane, ctx);
    }
  }

  #lane(cid: string): ModelLane {
    let lane = this.#lanes.get(cid);
    if (!lane) {
      lane = { running: 0, queue: [] };
      this.#lanes.set(cid, lane);
    }
    return lane;
  }
}

/** Hex characters of the job id used in a runner's name: unique enough to read in a tree. */
const RUNNER_ID_CHARS = 12;

interface PreparedJob {
  entry: JobEntry;
  handle: TextJobHandle | TensorJobHandle;
}

function tellQuietly(ref: ActorRef<InferenceMessage> | undefined, message: InferenceMessage): void {
  // The actor may already be stopping; a lost "ended" note then has nobody left to inform.
  ref?.tell(message).catch(() => {});
}

/** Options of {@link submitJob}. */
export interface SubmitOptions {
  /** Aborting it cancels the job (queued or running). */
  signal?: AbortSignal;
  /** How long to wait for the actor's answer; default two minutes (covers a model load). */
  timeoutMs?: number;
}

/**
 * Submit a text job and unwrap the reply: resolves to the handle, or rejects with the typed
 * refusal ({@link TooManyJobsError}, `UnknownModelError`, `ContextLengthError`, ...).
 *
 * @example
 * ```ts ignore
 * const handle = await submitJob(inference, { kind: "text", model, prompt, params, nonce });
 * ```
 */
export function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: TextJob,
  options?: SubmitOptions,
): Promise<TextJobHandle>;
/** Submit a one-shot tensor job; resolves to its handle (outputs arrive on `handle.outputs`). */
export function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: TensorJob,
  options?: SubmitOptions,
): Promise<TensorJobHandle>;
/** Submit any job. */
export async function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: Job,
  options?: SubmitOptions,
): Promise<TextJobHandle | TensorJobHandle> {
  const reply = await ref.ask<SubmitReply>(
    { type: "submit", job, signal: options?.signal },
    { timeoutMs: options?.timeoutMs ?? SUBMIT_TIMEOUT_MS, signal: options?.signal },
  );
  if (!reply.accepted) throw reply.error;
  return reply.handle;
}

/**
 * How long a submission may take to be answered. It covers a first-time model load (seconds
 * for a large ONNX file); after that, answers take microseconds.
 */
const SUBMIT_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// One text job: the tee and its bookkeeping
// ---------------------------------------------------------------------------------------------

interface TextJobRunOptions {
  job: TextJob;
  jobId: string;
  model: GenerativeModel;
  promptIds: number[];
  prover?: ProverHook;
  submittedAt: number;
  now: () => number;
}

/**
 * The state of one text job: the requester's stream (created at submission, producing once the
 * job starts), the prover's branch, and the summary. Driven by its {@link JobRunner}.
 */
class TextJobRun {
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
  /** Set by the actor: called once when the job ends, to free its slot. */
  onEnd?: (outcome: "finished" | "cancelled" | "failed", tokens: number) => void;

  constructor(options: TextJobRunOptions) {
    this.#o = options;
  }

  /** The requester's view of this job. */
  handle(model: ServedModelInfo, promptTokens: number): TextJobHandle {
    let reader: ReadableStreamDefaultReader<TokenChunk> | undefined;
    const tokens = new ReadableStream<TokenChunk>({
      pull: async (controller) => {
        reader ??= await this.#started.promise;
        if (!reader) { // failed to start, or cancelled before it started
          const error = this.#startError ?? new JobCancelledError(this.#o.jobId);
          if (this.#startError !== undefined) this.#finish("error", error);
          controller.error(error);
          return;
        }
        let result: ReadableStreamReadResult<TokenChunk>;
        try {
          result = await reader.read();
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
        controller.enqueue(result.value);
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
      this.#proverResult = this.#o.prover(this.#o.job, this.#o.jobId, branch);
      this.#proverResult.catch(() => {}); // awaited in #finish; avoid an unhandled rejection
    }
    let source: ReadableStream<TokenChunk>;
    try {
      source = this.#o.model.generate(this.#o.promptIds, this.#o.job.params, {
        signal: this.#abort.signal,
      });
    } catch (error) {
      // Refused synchronously (bad params the edge let through): the job fails, not the runner.
      this.#startError = error;
      this.#started.resolve(undefined);
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
    this.onEnd?.(
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

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof VeriflowError) return { code: error.code, message: error.message };
  return {
    code: "internal_error",
    message: error instanceof Error ? error.message : String(error),
  };
}

// ---------------------------------------------------------------------------------------------
// The per-job child actor
// ---------------------------------------------------------------------------------------------

/**
 * The temporary child that runs one text job. Its lifetime is the job's: it starts the model on
 * `preStart`, and its `ctx.signal` (aborted when it stops or its parent stops) cancels the
 * computation, so a job never outlives the actor that owns it.
 */
class JobRunner implements Actor<JobRunnerMessage> {
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
