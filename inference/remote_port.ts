/**
 * The inference port over the wire: {@link RemoteInferencePort} submits jobs to a peer over a
 * `Connection`, and {@link serveInference} answers a peer's submissions from a local port.
 *
 * A job is one flow-controlled stream (`inference.submit` ⇒ `inference.event`…): a `start`
 * event, one `token` event per token, and an `end` event carrying the summary and the worker's
 * signed receipt. The stream's credit window bounds what is in flight, and the worker's model
 * computes a token only when the stream pulls one, so a slow client slows its own job on the
 * worker, end to end. Cancelling the requester's token stream sends the connection's `cancel`,
 * which aborts the worker's handler and with it the job; a worker that cancels (or dies) fails
 * the requester's stream with a typed error (`job_cancelled`, `connection_closed`,
 * `peer_timeout`) and `done` resolves with `finishReason: "error"` or `"cancelled"`.
 *
 * A submission may resume a job after k tokens the requester already has (`resume`, from a
 * worker it lost): the worker confirms it in its start event (`resumedFrom: k`) and its token
 * events start at position k. A worker that does not confirm it is refused here
 * ({@link ResumeUnsupportedError}) before it streams anything.
 *
 * Two timers cover a worker whose connection stays alive while it says nothing: one for its
 * `start` ({@link StartTimeoutError}), one for each later event this side waits for
 * ({@link WorkerStalledError}); either cancels the job on the worker. A worker sends `start`
 * when it accepts a job, queued or not, so before its first token a job may be waiting for
 * one of the worker's slots: its stall clock then runs only while the worker is silent on
 * every job of the model this port sent it (see {@link RemoteInferencePortOptions}). A
 * worker's refusal comes back as the typed error the local port throws for it
 * (`UnknownModelError`, ...), by its code.
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { jobId, type TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { toHex } from "../protocols/hash.ts";
import { ConnectionClosedError, RemoteError } from "../protocols/protocol_errors.ts";
import type { Receipt } from "../protocols/receipt.ts";
import {
  DuplicateJobError,
  JobCancelledError,
  TooManyJobsError,
} from "../actors/inference_errors.ts";
import {
  type InferenceEvent,
  ListModelsMessage,
  MAX_TOKENS_PER_EVENT,
  QUEUED_EVENT_REPEAT_MS,
  type StartEvent,
  type SubmitBody,
  SubmitMessage,
  type TokenEvent,
  type WireJobSummary,
} from "../protocols/inference_messages.ts";
import { ReadAhead } from "./_token_read_ahead.ts";
import { QueuePosition, readOrQueued } from "./queue_position.ts";
import {
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTensorInputError,
  InvalidTokenError,
  ModelDisposedError,
  ModelLoadError,
  ModelWorkerError,
  UnknownModelError,
  WrongModelKindError,
} from "./errors.ts";
import { InvalidResumeError, ResumeMismatchError } from "./resumed_generation.ts";
import { MAX_TOP_LOGPROBS } from "./top_logprobs.ts";
import {
  checkTextJob,
  emptyInferenceStats,
  type FinishReason,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
  type SubmitOptions,
} from "./inference_port.ts";

/** The peer's stream broke the protocol (no `start` first, events out of order). */
export class InferenceStreamError extends VeriflowError {
  /**
   * Create it.
   * @param message What was wrong.
   */
  constructor(message: string) {
    super("inference_stream_invalid", message);
  }
}

/**
 * The worker did not take the submission's `resume` (it predates resuming): its stream would
 * start over from position 0, which the requester already has.
 */
export class ResumeUnsupportedError extends VeriflowError {
  /**
   * Create it.
   * @param message What the worker answered.
   */
  constructor(message: string) {
    super("resume_unsupported", message);
  }
}

/**
 * The worker's `start` did not come within the start timeout (it accepted the job and went
 * silent). Its code, `request_timeout`, is a refusal of the worker's own, so a router moves the
 * job on to the next worker (`network/failover.ts`).
 */
export class StartTimeoutError extends VeriflowError {
  /**
   * Create it.
   * @param ms The start timeout that passed.
   */
  constructor(ms: number) {
    super("request_timeout", `the worker did not start the job within ${ms} ms`);
  }
}

/**
 * The worker started the job and then sent nothing (no token, no end) for the stall timeout
 * while this side waited for its next event; its connection may well be alive (it answers
 * pings). The job is cancelled on the worker. A router treats it as a lost worker and resumes
 * the job on another (`network/failover.ts`).
 */
export class WorkerStalledError extends VeriflowError {
  /**
   * The job never got its first token from a busy worker: it waited past the first-token
   * timeout while the worker kept sending the model's other jobs on the same connection (or
   * this side held one of them up by not reading it), so it was most likely queued behind
   * them. Such a worker is working, not stuck: a router moves the job on but does not keep the
   * worker off the model. False for a worker silent on all of the model's jobs, and for a job
   * that stopped after its first token (a running job is owed every step).
   */
  readonly busy: boolean;
  /** Tokens the worker had sent in this job when it was cut. */
  readonly tokens: number;

  /**
   * Create it.
   * @param worker The worker's key (hex, or a prefix of it).
   * @param ms The timeout that passed: the stall timeout, or the first-token timeout for a
   *   busy worker.
   * @param tokens Tokens the worker had sent in this job.
   * @param busy See {@link WorkerStalledError.busy} (default false).
   */
  constructor(worker: string, ms: number, tokens: number, busy = false) {
    super(
      "worker_stalled",
      busy
        ? `the worker ${worker} did not start the job within ${ms} ms, busy with other jobs ` +
          `of the model; the job was cancelled there`
        : `the worker ${worker} sent nothing for ${ms} ms after ${tokens} tokens of the job; ` +
          `the job was cancelled there`,
    );
    this.busy = busy;
    this.tokens = tokens;
  }
}

/**
 * Default of `startTimeoutMs`: a worker answers a submission at once, or after loading the
 * model the first time (seconds); one silent for this long holds the client for nothing, and
 * its connection's pings do not show it, so only this timer moves the job on.
 */
export const DEFAULT_START_TIMEOUT_MS = 30_000;

/**
 * Default of `stallTimeoutMs`. After its `start` a worker has its model loaded (the start
 * timeout covered the first load) and owes one prefill, then one decoding step per token:
 * tens of milliseconds on the models a node builds (135–200 tokens/s, `docs/MODELS.md`), a
 * second for a large model on a loaded CPU. A minute is far beyond any honest step, the same
 * minute a worker gives a requester that stops reading before it drops the job
 * (`DEFAULT_READER_STALL_MS`), and twice the start timeout. A job queued behind others on the
 * worker waits longer than any step, and honestly: that wait counts only while the worker is
 * silent on all of the model's jobs (`stallTimeoutMs`).
 */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/**
 * Default of `firstTokenTimeoutMs`: ten minutes, the default timeout of OpenAI's client
 * libraries, past which the client has given up on the answer anyway. It bounds the wait of a
 * job queued on a worker that keeps sending the model's other jobs (so is not stalled) and
 * never gets to this one: an honest queue that deep is better left for a worker that can run
 * the job now.
 */
export const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 600_000;

/** Options of {@link RemoteInferencePort}. */
export interface RemoteInferencePortOptions {
  /** Clock in ms for the locally measured timings (default `timers.now`). */
  now?: () => number;
  /**
   * The clock of the start, stall and end timeouts (default the real one; tests pass a fake
   * clock and advance it).
   */
  timers?: ConnectionTimers;
  /**
   * Most tokens the worker may send in one event when they are ready before this side takes
   * them (default {@link DEFAULT_TOKENS_PER_EVENT}; 1: one event per token).
   */
  tokensPerEvent?: number;
  /**
   * How long `submit` waits for the worker's `start` before it cancels the job and rejects
   * with {@link StartTimeoutError} (default {@link DEFAULT_START_TIMEOUT_MS}).
   */
  startTimeoutMs?: number;
  /**
   * How long a started job's token stream waits for the worker's next event (a token, or its
   * end) before it cancels the job on the worker and fails with {@link WorkerStalledError}
   * (default {@link DEFAULT_STALL_TIMEOUT_MS}). Counted only while this side is reading: a
   * requester that does not pull holds its own job up, not the worker. Before the job's first
   * token it counts only while the worker is also silent on every other job of the model sent
   * over this connection and this side reads all of them: the job may be queued for a slot
   * that those jobs hold, and a worker that streams them is working, not stalled.
   */
  stallTimeoutMs?: number;
  /**
   * The longest a job's token stream waits for its first token while the worker keeps sending
   * the model's other jobs (default {@link DEFAULT_FIRST_TOKEN_TIMEOUT_MS}, at least
   * `stallTimeoutMs`): past it the job is cancelled there and fails with a
   * {@link WorkerStalledError} marked `busy`. Counted only while this side is reading.
   */
  firstTokenTimeoutMs?: number;
}

/**
 * How long the end event (summary and receipt) may take after the last token: the worker only
 * has to finish signing, so a long wait means it will never come.
 */
const END_EVENT_TIMEOUT_MS = 30_000;

/**
 * How long after a worker's last `queued` event the job is taken to have left its queue: the
 * worker repeats the place every `QUEUED_EVENT_REPEAT_MS`, so two and a half of those without
 * one means it stopped repeating.
 */
const LEFT_QUEUE_AFTER_MS = 2.5 * QUEUED_EVENT_REPEAT_MS;

/** The requester stopped reading; what `done` reports for a job cancelled this side. */
const CANCELLED = "job_cancelled";

/**
 * A worker's refusal as the typed error the local port throws for it (the codes are the
 * same on both sides, `docs/PROTOCOL.md`), so a caller catches one class whichever port ran
 * the job. The worker's message is kept; an unknown code stays a {@link RemoteError}.
 */
const TYPED_REFUSALS: Readonly<Record<string, (job: TextJob) => VeriflowError>> = {
  too_many_jobs: () => new TooManyJobsError(""),
  duplicate_job: (job) => new DuplicateJobError(jobId(job)),
  job_cancelled: (job) => new JobCancelledError(jobId(job)),
  unknown_model: (job) => new UnknownModelError(job.model),
  model_load_failed: () => new ModelLoadError(""),
  model_worker_failed: () => new ModelWorkerError(""),
  model_disposed: () => new ModelDisposedError(),
  context_length_exceeded: () => new ContextLengthError(NaN, NaN),
  empty_prompt: () => new EmptyPromptError(),
  invalid_generation_params: () => new InvalidGenerationParamsError(""),
  invalid_token: () => new InvalidTokenError(NaN, NaN),
  invalid_tensor_input: () => new InvalidTensorInputError(""),
  wrong_model_kind: (job) => new WrongModelKindError(job.model, "text", "tensor"),
  invalid_resume: () => new InvalidResumeError(""),
  resume_mismatch: () => new ResumeMismatchError(""),
};

/** `ContextLengthError`'s message, whose numbers are the error's fields. */
const CONTEXT_LENGTH_MESSAGE = /^(\d+) tokens do not fit the model's context window of (\d+)$/;

/** `error` as the local port's typed class when it is a worker's refusal of a known code. */
function typedRefusal(error: unknown, job: TextJob): unknown {
  if (!(error instanceof RemoteError)) return error;
  const make = TYPED_REFUSALS[error.code];
  if (make === undefined) return error;
  const typed = make(job);
  typed.message = error.message;
  if (typed instanceof ContextLengthError) {
    const numbers = CONTEXT_LENGTH_MESSAGE.exec(error.message);
    // Read-only for callers; set once here, as the worker's constructor set them.
    const fields = typed as { -readonly [K in "tokens" | "contextLength"]: number };
    fields.tokens = Number(numbers?.[1] ?? NaN);
    fields.contextLength = Number(numbers?.[2] ?? NaN);
  }
  return typed;
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof VeriflowError) return { code: error.code, message: error.message };
  return {
    code: "internal_error",
    message: error instanceof Error ? error.message : String(error),
  };
}

/**
 * Default of `tokensPerEvent`: enough that a relay that fell behind catches up in a few frames,
 * few enough that the worker runs at most this many tokens ahead of what was sent.
 */
export const DEFAULT_TOKENS_PER_EVENT = 8;

/** An {@link InferencePort} whose jobs run on the peer at the other end of a connection. */
export class RemoteInferencePort implements InferencePort {
  readonly #connection: Connection;
  readonly #now: () => number;
  readonly #timers: ConnectionTimers;
  readonly #tokensPerEvent: number;
  readonly #startTimeoutMs: number;
  readonly #stallTimeoutMs: number;
  readonly #firstTokenTimeoutMs: number;
  readonly #stats = emptyInferenceStats();
  /** Jobs not yet ended: a closed connection ends them (see the constructor). */
  readonly #live = new Set<RemoteJob>();
  /** The worker's progress on each model that has live jobs here, by model CID. */
  readonly #progress = new Map<string, ModelProgress>();

  /**
   * Create a port over `connection`.
   * @param connection A connection to a peer that serves the inference protocol.
   * @param options Clocks, batching, the start and stall timeouts
   *   ({@link RemoteInferencePortOptions}).
   */
  constructor(connection: Connection, options: RemoteInferencePortOptions = {}) {
    this.#connection = connection;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.#firstTokenTimeoutMs = Math.max(
      this.#stallTimeoutMs,
      options.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
    );
    const timers = options.timers ?? SYSTEM_TIMERS;
    this.#timers = timers;
    this.#now = options.now ?? (() => timers.now());
    this.#tokensPerEvent = Math.min(
      MAX_TOKENS_PER_EVENT,
      Math.max(1, options.tokensPerEvent ?? DEFAULT_TOKENS_PER_EVENT),
    );
    // A closed connection ends its jobs: `done` must say so even when nobody reads `tokens`
    // (a job's event stream fails only when pulled, so `done` would wait for a read forever).
    // One listener for the port, not one per job: a relay's connection outlives many jobs.
    connection.closed.then(() => {
      for (const job of [...this.#live]) job.connectionClosed(connection.closeReason);
    });
  }

  /** The connection jobs go over. */
  get connection(): Connection {
    return this.#connection;
  }

  /** The models the peer runs. */
  async models(): Promise<readonly ServedModelInfo[]> {
    const reply = await this.#connection.request(ListModelsMessage, {});
    return reply.models;
  }

  /** Jobs relayed through this port (counted here, not on the peer). */
  stats(): Promise<InferenceStats> {
    return Promise.resolve({ ...this.#stats });
  }

  /** Submit `job` to the peer; resolves once the peer has accepted it (its `start` event). */
  async submit(job: TextJob, options: SubmitOptions = {}): Promise<InferenceHandle> {
    const submittedAt = this.#now();
    // Refused here with the code LocalInferencePort gives (the worker would answer a body it
    // cannot parse with the connection's generic `invalid_body`).
    const checked = checkTextJob(job);
    const topLogprobs = options.topLogprobs ?? 0;
    if (!Number.isSafeInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new InvalidGenerationParamsError(
        `topLogprobs: must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topLogprobs}`,
      );
    }
    // Sent only when asked, so a submission without it is what it always was on the wire.
    const body: SubmitBody = { job: checked };
    if (options.topLogprobs) body.topLogprobs = options.topLogprobs;
    const from = options.resume?.length ?? 0;
    if (from > 0) body.resume = [...options.resume!];
    if (this.#tokensPerEvent > 1) body.tokensPerEvent = this.#tokensPerEvent;
    // Always asked: a queued job then tells this side it is alive (and where it stands), and
    // is not taken for a stalled one however long the jobs ahead of it run.
    body.queued = true;
    const events = this.#connection.openStream(SubmitMessage, body, { signal: options.signal });
    const reader = events.getReader();
    let first: ReadableStreamReadResult<InferenceEvent>;
    // A worker that accepts the job and never starts it would hold the client for ever (its
    // connection stays alive): past the start timeout the job is cancelled there and refused.
    let timer: unknown;
    const timedOut = new Promise<never>((_, reject) => {
      timer = this.#timers.setTimeout(
        () => reject(new StartTimeoutError(this.#startTimeoutMs)),
        this.#startTimeoutMs,
      );
    });
    const read = reader.read();
    read.catch(() => {}); // lost the race: the cancel below settles it, nobody waits for it
    try {
      first = await Promise.race([read, timedOut]);
    } catch (error) {
      if (error instanceof StartTimeoutError) reader.cancel(error).catch(() => {});
      // Refused before it started (too_many_jobs, unknown_model, ...): the peer's typed code.
      this.#stats.jobsRejected++;
      // A body the worker's schema refused (its limits stricter than ours, or a job over the
      // network's byte bound) is a bad job: the code a local port gives for one, not the
      // connection's generic one.
      if (error instanceof RemoteError && error.code === "invalid_body") {
        throw new InvalidGenerationParamsError(`the worker refused the job: ${error.message}`);
      }
      throw typedRefusal(error, checked);
    } finally {
      this.#timers.clearTimeout(timer);
    }
    if (first.done || first.value.kind !== "start") {
      reader.cancel().catch(() => {});
      throw new InferenceStreamError("the worker's stream did not begin with a start event");
    }
    if ((first.value.resumedFrom ?? 0) !== from) {
      reader.cancel().catch(() => {});
      this.#stats.jobsRejected++;
      if (from > 0 && first.value.resumedFrom === undefined) {
        throw new ResumeUnsupportedError(`the worker cannot resume a job (asked from ${from})`);
      }
      throw new InferenceStreamError(
        `the worker resumed from ${first.value.resumedFrom ?? 0}, not from ${from}`,
      );
    }
    this.#stats.jobsStarted++;
    this.#stats.activeJobs++;
    let progress = this.#progress.get(checked.model);
    if (progress === undefined) {
      progress = new ModelProgress(this.#timers.now());
      this.#progress.set(checked.model, progress);
    }
    progress.jobs++;
    const relayed = new RemoteJob(first.value, from, reader, {
      job: checked,
      worker: workerName(this.#connection),
      submittedAt,
      now: this.#now,
      timers: this.#timers,
      stallTimeoutMs: this.#stallTimeoutMs,
      firstTokenTimeoutMs: this.#firstTokenTimeoutMs,
      progress,
      onQueued: options.onQueued,
      onEnd: (summary) => {
        if (--progress.jobs === 0) this.#progress.delete(checked.model);
        this.#live.delete(relayed);
        this.#stats.activeJobs--;
        this.#stats.tokensGenerated += summary.usage.completionTokens;
        if (summary.finishReason === "cancelled") this.#stats.jobsCancelled++;
        else if (summary.finishReason === "error") this.#stats.jobsFailed++;
        else this.#stats.jobsFinished++;
      },
    });
    this.#live.add(relayed);
    const handle = relayed.handle();
    // Closing already (the constructor's listener may have run): end it just the same.
    if (this.#connection.isClosed) {
      this.#connection.closed.then(() => relayed.connectionClosed(this.#connection.closeReason));
    }
    return handle;
  }
}

/** Hex characters of a worker's key in messages. */
const WORKER_KEY_CHARS = 16;

/** The worker at the other end of `connection`, as messages name it. */
function workerName(connection: Connection): string {
  const key = connection.peerKey;
  return key === undefined ? "(unauthenticated peer)" : toHex(key).slice(0, WORKER_KEY_CHARS);
}

/**
 * What one connection sees of its worker's progress on one model. The worker runs a few of
 * the model's jobs at once and queues the rest (and sends each its `start` when it accepts
 * it), so a job that waits for its first token may wait for the jobs ahead of it: the worker
 * is working as long as the model's jobs deliver something, or as long as this side holds one
 * of them up by not reading it (it may be the job ahead).
 */
class ModelProgress {
  /** Live jobs of the model on the connection (the port drops this record at 0). */
  jobs = 0;
  /** When the worker last delivered an event of the model's jobs, or a hold ended. */
  #lastAt: number;
  /** The model's started jobs that this side is not reading now. */
  #held = 0;

  constructor(now: number) {
    this.#lastAt = now;
  }

  /** The worker delivered an event (or an error) of one of the model's jobs. */
  delivered(now: number): void {
    this.#lastAt = now;
  }

  /** A job of the model stops (true) or starts (false) being held up by this side. */
  hold(held: boolean, now: number): void {
    this.#held += held ? 1 : -1;
    if (this.#held === 0) this.#lastAt = now;
  }

  /** Since when the worker has been silent on every job of the model that this side reads. */
  silentSince(now: number): number {
    return this.#held > 0 ? now : this.#lastAt;
  }

  /**
   * The model's jobs waiting for their first token (their `stalled` is called when the worker
   * stalls another job of the model): a worker may keep repeating their places in its queue
   * while its model is wedged, and the stall of a job it runs is what shows it.
   */
  readonly waiting = new Set<() => void>();

  /** The worker stalled a job of the model (not busy): the jobs waiting behind it fail too. */
  stalled(): void {
    for (const fail of [...this.waiting]) fail();
  }
}

/** What a {@link RemoteJob} needs besides its stream. */
interface RemoteJobContext {
  /** The job as submitted (what a worker's typed error is rebuilt from). */
  job: TextJob;
  /** The worker, as messages name it. */
  worker: string;
  /** When the job was submitted, on `now`. */
  submittedAt: number;
  now: () => number;
  timers: ConnectionTimers;
  stallTimeoutMs: number;
  firstTokenTimeoutMs: number;
  /** The worker's progress on the job's model, shared by the port's jobs of that model. */
  progress: ModelProgress;
  /** The submission's `onQueued`: given each `queued` event's place. */
  onQueued?: (position: number) => void;
  /** Called once, with the job's summary, when it ends. */
  onEnd: (summary: JobSummary) => void;
}

/** The requester's side of one relayed job. */
class RemoteJob {
  readonly #start: StartEvent;
  /** Position of the first token event (the resumed prefix's length, else 0). */
  readonly #from: number;
  readonly #reader: ReadableStreamDefaultReader<InferenceEvent>;
  readonly #o: RemoteJobContext;
  readonly #done = Promise.withResolvers<JobSummary>();
  #tokens = 0;
  #firstTokenAt = NaN;
  #ended = false;
  #lastTokenSeen = false;
  /** The job's last place in the worker's queue (0: none reported). */
  #place = 0;
  /** When the last `queued` event of the job came. */
  #queuedAt = -Infinity;
  /** The last place told to `onQueued` (0: none, or it left the queue). */
  #told = 0;
  /** Fires when the worker's repeats of the job's place stop (see `#placed`). */
  #leftQueueTimer: unknown;
  /** Counted as held up by this side in the model's progress: started and not being read. */
  #held = false;
  /** The stall timer of the read in progress. */
  #stallTimer: unknown;
  /**
   * Set when the job failed under a read (the connection closed, the worker stalled): what
   * the token stream fails with, read in progress or not.
   */
  #failedWith: VeriflowError | undefined;

  constructor(
    start: StartEvent,
    from: number,
    reader: ReadableStreamDefaultReader<InferenceEvent>,
    context: RemoteJobContext,
  ) {
    this.#start = start;
    this.#from = from;
    this.#reader = reader;
    this.#o = context;
    this.#hold(true); // started, and not read yet
  }

  handle(): InferenceHandle {
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        let result: ReadableStreamReadResult<InferenceEvent> | undefined;
        let failure: unknown;
        if (this.#failedWith === undefined) {
          // A worker that started the job and went silent would hold this read for ever (its
          // connection stays alive): only this timer ends it. One per read, so a worker that
          // is slow but sends something within each timeout is never cut.
          const { timers, stallTimeoutMs, firstTokenTimeoutMs } = this.#o;
          this.#hold(false);
          const since = timers.now();
          if (this.#tokens === 0) this.#o.progress.waiting.add(this.#behindStall);
          // Re-armed after each `queued` event, never past the first-token deadline.
          const wait = () =>
            Math.max(0, Math.min(stallTimeoutMs, since + firstTokenTimeoutMs - timers.now()));
          try {
            // A `queued` event (before the first token) is the worker saying the job waits
            // for a slot: passed on, and the read goes on, its silence counted afresh (the
            // first-token timeout still counts from `since`).
            for (;;) {
              this.#stallTimer = timers.setTimeout(() => this.#checkStall(since), wait());
              result = undefined;
              try {
                result = await this.#reader.read();
              } finally {
                timers.clearTimeout(this.#stallTimer);
                // The worker answered (an event, or its error), unless the job ended this side.
                // A `queued` event speaks for this job alone: the worker repeats it on a timer,
                // which runs as well with a wedged model, so it says nothing of the model's
                // other jobs (a job holding a slot with no token yet is still cut when silent).
                const queued = result?.done === false && result.value.kind === "queued";
                if (queued) this.#queuedAt = timers.now();
                else if (!this.#ended) this.#o.progress.delivered(timers.now());
              }
              if (result.done || result.value.kind !== "queued" || this.#tokens > 0) break;
              this.#placed(result.value.position);
            }
          } catch (error) {
            failure = typedRefusal(error, this.#o.job);
            result = undefined; // what was read (a place further back) is what failed
          } finally {
            this.#o.progress.waiting.delete(this.#behindStall);
            this.#hold(true);
          }
        }
        // A closed connection or a stall fails the stream with its own error, read or not.
        if (this.#failedWith !== undefined || result === undefined) {
          const error = this.#failedWith ?? failure;
          this.#end("error", error);
          controller.error(error);
          return;
        }
        if (result.done) {
          const error = new InferenceStreamError("the worker's stream ended without an end event");
          this.#end("error", error);
          controller.error(error);
          return;
        }
        const event = result.value;
        if (event.kind === "end") {
          // Reached only when the last token carried no finish reason (an early end).
          this.#resolve(event.summary as JobSummary);
          controller.close();
          return;
        }
        // One token, or several that were ready together: each in order, once.
        const items = event.kind === "token"
          ? [event]
          : event.kind === "tokens"
          ? event.tokens
          : undefined;
        const inOrder = items?.every((t, i) => t.index === this.#from + this.#tokens + i) &&
          items.slice(0, -1).every((t) => t.finishReason === undefined);
        if (items === undefined || !inOrder) {
          const error = new InferenceStreamError(`unexpected ${event.kind} event`);
          this.#reader.cancel(error).catch(() => {});
          this.#end("error", error);
          controller.error(error);
          return;
        }
        for (const item of items) {
          if (this.#tokens === 0) {
            this.#firstTokenAt = this.#o.now();
            this.#leftQueue();
          }
          this.#tokens++;
          const token: StreamedToken = {
            index: item.index,
            tokenId: item.tokenId,
            text: item.text,
          };
          if (item.logprob !== undefined) token.logprob = item.logprob;
          if (item.top !== undefined) token.topLogprobs = item.top;
          if (item.finishReason !== undefined) token.finishReason = item.finishReason;
          controller.enqueue(token);
        }
        if (items[items.length - 1].finishReason !== undefined) {
          // The last token: close now, and take the end event (summary, receipt) behind it.
          this.#lastTokenSeen = true;
          controller.close();
          this.#awaitEnd();
        }
      },
      cancel: (reason) => this.#cancel(reason),
    }, { highWaterMark: 0 });
    return {
      jobId: this.#start.jobId,
      model: this.#start.model,
      promptTokens: this.#start.promptTokens,
      tokens,
      done: this.#done.promise,
      cancel: () => {
        tokens.cancel().catch(() => {});
        this.#cancel();
      },
    };
  }

  /**
   * The connection closed: a job that has not ended ends here, with the connection's error
   * (`connection_closed`, or why it closed: `peer_timeout`, ...), whether or not anyone reads.
   */
  connectionClosed(reason: Error | null): void {
    if (this.#ended) return;
    const error = reason instanceof ConnectionClosedError ? reason : new ConnectionClosedError(
      reason ? `connection closed: ${reason.message}` : "connection closed",
      { cause: reason ?? undefined },
    );
    this.#failedWith = error;
    // Free the event stream too; the token stream then fails with the same error if read.
    this.#reader.cancel(error).catch(() => {});
    this.#end("error", error);
  }

  /**
   * The stall timer of a read that began at `since` fired. After the job's first token the
   * job holds one of the worker's slots and is owed its next step: it has stalled, whatever
   * the worker's other jobs do (an honest worker steps every running job). Before it, the job
   * may be queued behind the model's other jobs, so it has stalled only once the worker has
   * also been silent on all of them for the stall timeout, or, busy, has not started it within
   * the first-token timeout; until then the timer is armed again for when that could next be.
   */
  #checkStall(since: number): void {
    if (this.#ended) return;
    const { timers, stallTimeoutMs, firstTokenTimeoutMs, progress } = this.#o;
    if (this.#tokens > 0) {
      this.#stalled(stallTimeoutMs, false);
      return;
    }
    const now = timers.now();
    const silentSince = Math.max(since, progress.silentSince(now), this.#queuedAt);
    const deadline = since + firstTokenTimeoutMs;
    if (now - silentSince >= stallTimeoutMs) this.#stalled(stallTimeoutMs, false);
    else if (now >= deadline) this.#stalled(firstTokenTimeoutMs, true);
    else {
      this.#stallTimer = timers.setTimeout(
        () => this.#checkStall(since),
        Math.min(silentSince + stallTimeoutMs, deadline) - now,
      );
    }
  }

  /**
   * The worker sent nothing of this job for `ms` while a read waited: cancel the job there
   * (the event stream's cancel is the connection's `cancel`) and end it here.
   */
  #stalled(ms: number, busy: boolean): void {
    if (this.#ended) return;
    const error = new WorkerStalledError(this.#o.worker, ms, this.#tokens, busy);
    this.#failedWith = error;
    this.#reader.cancel(error).catch(() => {});
    this.#end("error", error);
    if (!busy) this.#o.progress.stalled();
  }

  /** Another job of the model stalled on the worker while this one waits for its first token. */
  readonly #behindStall = () => this.#stalled(this.#o.stallTimeoutMs, false);

  async #awaitEnd(): Promise<void> {
    // A worker that never sends its end would leave `done` pending forever.
    const { timers, progress } = this.#o;
    this.#hold(false);
    const timer = timers.setTimeout(() => {
      this.#reader.cancel(new InferenceStreamError("no end event after the last token"))
        .catch(() => {});
    }, END_EVENT_TIMEOUT_MS);
    try {
      const { done, value } = await this.#reader.read().finally(() => timers.clearTimeout(timer));
      if (done || value.kind !== "end") {
        throw new InferenceStreamError("expected the end event after the last token");
      }
      progress.delivered(timers.now());
      this.#resolve(value.summary as JobSummary);
    } catch (error) {
      this.#end("error", error);
    }
  }

  /**
   * A `queued` event: the job's place in the worker's queue. An honest queue only moves up, so a
   * place further back breaks the stream (a worker flooding its requester with places); a place
   * that moved up is passed on; an unchanged one (the worker's repeat) only keeps the job's
   * "left the queue" guess off.
   */
  #placed(position: number): void {
    if (this.#place > 0 && position > this.#place) {
      const error = new InferenceStreamError(
        `the worker moved the job back in its queue, from place ${this.#place} to ${position}`,
      );
      this.#reader.cancel(error).catch(() => {});
      throw error;
    }
    if (position !== this.#place) this.#tell(position);
    this.#place = position;
    // A worker repeats the place while the job waits; once the repeats stop the job has most
    // likely left the queue for a slot (its first token is a prefill away): say so, rather
    // than let the requester's own repeats go on naming a place the job no longer has.
    const { timers } = this.#o;
    timers.clearTimeout(this.#leftQueueTimer);
    this.#leftQueueTimer = timers.setTimeout(() => this.#leftQueue(), LEFT_QUEUE_AFTER_MS);
  }

  /** The job left the worker's queue (its first token came, it ended, the repeats stopped). */
  #leftQueue(): void {
    this.#o.timers.clearTimeout(this.#leftQueueTimer);
    this.#leftQueueTimer = undefined;
    if (this.#told > 0) this.#tell(0);
  }

  /** Tell the submitter the job's place (whose bug in `onQueued` stays its own). */
  #tell(position: number): void {
    this.#told = position;
    try {
      this.#o.onQueued?.(position);
    } catch {
      // A throwing callback must not fail the job.
    }
  }

  #cancel(reason?: unknown): void {
    // After the last token the job is done; only its end (the receipt) is still on its way.
    if (this.#ended || this.#lastTokenSeen) return;
    this.#reader.cancel(reason ?? new VeriflowError(CANCELLED, "cancelled by the requester"))
      .catch(() => {});
    this.#end("cancelled");
  }

  /**
   * Count this job as held up by this side, or no longer, in the model's progress. An ended
   * job is never held.
   */
  #hold(held: boolean): void {
    held &&= !this.#ended;
    if (held === this.#held) return;
    this.#held = held;
    this.#o.progress.hold(held, this.#o.timers.now());
  }

  #resolve(summary: JobSummary): void {
    if (this.#ended) return;
    this.#leftQueue();
    this.#ended = true;
    this.#hold(false);
    this.#reader.releaseLock();
    this.#o.onEnd(summary);
    this.#done.resolve(summary);
  }

  /** A summary measured on this side, for a job that ended without the worker's end event. */
  #end(reason: FinishReason, error?: unknown): void {
    if (this.#ended) return;
    this.#leftQueue(); // a failover's next worker reports its own queue
    const end = this.#o.now();
    const { submittedAt } = this.#o;
    const summary: JobSummary = {
      jobId: this.#start.jobId,
      finishReason: reason,
      usage: { promptTokens: this.#start.promptTokens, completionTokens: this.#tokens },
      timings: {
        queueMs: NaN,
        ttftMs: this.#firstTokenAt - submittedAt,
        totalMs: end - submittedAt,
        tokensPerS: NaN,
      },
    };
    if (error !== undefined) summary.error = errorInfo(error);
    this.#ended = true;
    this.#hold(false);
    this.#o.onEnd(summary);
    this.#done.resolve(summary);
  }
}

/** Options of {@link serveInference}. */
export interface ServeInferenceOptions {
  /** Called with each job this connection submitted, as it starts (for logs and metrics). */
  onJob?: (jobId: string) => void;
  /**
   * Jobs one connection may run at once (default {@link DEFAULT_MAX_JOBS_PER_PEER}); more are
   * refused with `too_many_jobs`, so one peer cannot take every slot of the model.
   */
  maxJobs?: number;
  /**
   * A job whose requester takes no event for this long (grants no credit: it stopped reading)
   * is cancelled, freeing its slot (default {@link DEFAULT_READER_STALL_MS}).
   */
  readerStallMs?: number;
  /**
   * How often an unchanged `queued` event is sent again to a requester that asked for them
   * (default `QUEUED_EVENT_REPEAT_MS`).
   */
  queuedRepeatMs?: number;
  /** Clock of the `queued` repeats (default the real one; tests pass a fake clock). */
  timers?: ConnectionTimers;
}

/**
 * Default jobs per peer connection: a relay multiplexes its clients' jobs over one
 * connection, so this is generous, but a single peer still cannot hold a model's whole queue.
 */
export const DEFAULT_MAX_JOBS_PER_PEER = 32;
/**
 * Default reader stall before a job is cancelled: a minute without reading one token is a
 * requester that has gone, not one that is slow.
 */
export const DEFAULT_READER_STALL_MS = 60_000;

/** Checks per stall period: a stalled reader is noticed within 1 + 1/4 of the stall time. */
const STALL_CHECKS = 4;

/** Refusal of a job beyond a peer's share. */
class PeerJobLimitError extends VeriflowError {
  constructor(limit: number) {
    super("too_many_jobs", `this connection already runs ${limit} jobs`);
  }
}

/**
 * Answer the peer's `inference.submit` and `inference.list_models` requests from `port`.
 * Register it right after the connection is opened.
 */
export function serveInference(
  connection: Connection,
  port: InferencePort,
  options: ServeInferenceOptions = {},
): void {
  const maxJobs = options.maxJobs ?? DEFAULT_MAX_JOBS_PER_PEER;
  const stallMs = options.readerStallMs ?? DEFAULT_READER_STALL_MS;
  let running = 0;
  connection.handle(ListModelsMessage, async () => ({ models: [...await port.models()] }));
  connection.handle(SubmitMessage, async (body, ctx) => {
    const { job, topLogprobs, resume, tokensPerEvent } = body;
    if (running >= maxJobs) throw new PeerJobLimitError(maxJobs);
    running++;
    // Only to a requester that asked: one that predates `queued` events fails on one.
    const queue = body.queued
      ? new QueuePosition({
        repeatMs: options.queuedRepeatMs ?? QUEUED_EVENT_REPEAT_MS,
        timers: options.timers,
      })
      : undefined;
    let handle: InferenceHandle;
    try {
      // A refusal (too_many_jobs, unknown_model, ...) rejects here and goes back as the
      // connection's `error` with its code, before any event.
      handle = await port.submit(job, {
        signal: ctx.signal,
        topLogprobs,
        resume,
        onQueued: queue?.update,
      });
    } catch (error) {
      running--;
      queue?.close();
      throw error;
    }
    options.onJob?.(handle.jobId);
    return jobEvents(handle, {
      resumedFrom: resume?.length ?? 0,
      stallMs,
      tokensPerEvent: tokensPerEvent ?? 1,
      queue,
      onFinished: () => running--,
    });
  });
}

/** How {@link jobEvents} streams one job. */
interface JobEventsOptions {
  /** Position of the first token (the resumed prefix's length). */
  resumedFrom: number;
  /** Reader stall before the job is cancelled, ms (0: never). */
  stallMs: number;
  /** Most tokens in one event. */
  tokensPerEvent: number;
  /** The job's place in the queue, reported until its first token; absent: not reported. */
  queue?: QueuePosition;
  /** Called once when the stream is done with the job. */
  onFinished: () => void;
}

/** A local job's handle as the stream of events the requester reads. */
function jobEvents(
  handle: InferenceHandle,
  { resumedFrom, stallMs, tokensPerEvent, queue, onFinished }: JobEventsOptions,
): ReadableStream<InferenceEvent> {
  const reader = handle.tokens.getReader();
  // Up to `tokensPerEvent` tokens in one event when they are ready together (requesters that
  // asked); one read per pull otherwise, so the worker computes only what is pulled.
  const ahead = tokensPerEvent > 1 ? new ReadAhead(reader, tokensPerEvent) : undefined;
  let started = false;
  let ended = false;
  let finished = false;
  // One check timer per job, not one per token: `waitingSince` is when the stream last
  // delivered an event and was not pulled again (NaN while a pull is in progress). A stream
  // never pulled waits from its creation: a requester that grants no credit at all has
  // stalled too, and would otherwise hold its slot forever.
  let waitingSince = performance.now();
  let check: ReturnType<typeof setInterval> | undefined;
  const finish = () => {
    clearInterval(check);
    queue?.close();
    if (finished) return;
    finished = true;
    onFinished();
  };
  handle.done.then(finish);
  let controllerRef: ReadableStreamDefaultController<InferenceEvent> | undefined;
  /** The read of the next ready tokens, in progress across a `queued` report. */
  let pending: Promise<StreamedToken[]> | undefined;
  async function readReady(): Promise<StreamedToken[]> {
    if (ahead !== undefined) return await ahead.take();
    try {
      const result = await reader.read();
      return result.done ? [] : [result.value];
    } catch {
      // The job failed or was cancelled here: the summary says which, then the stream ends.
      return [];
    }
  }

  if (stallMs > 0) {
    check = setInterval(() => {
      if (!(performance.now() - waitingSince >= stallMs)) return;
      // The requester stopped reading (no credit for stallMs): free the slot.
      clearInterval(check);
      reader.cancel().catch(() => {});
      handle.cancel();
      try {
        controllerRef?.error(new VeriflowError("reader_stalled", "the requester stopped reading"));
      } catch {
        // already closed
      }
    }, Math.max(1, stallMs / STALL_CHECKS));
  }
  return new ReadableStream<InferenceEvent>({
    start: (controller) => {
      controllerRef = controller;
    },
    pull: async (controller) => {
      waitingSince = NaN;
      try {
        await step(controller);
      } finally {
        waitingSince = performance.now();
      }
    },
    cancel: (reason) => {
      reader.cancel(reason).catch(() => {});
      handle.cancel();
      finish();
    },
  }, { highWaterMark: 0 });

  async function step(controller: ReadableStreamDefaultController<InferenceEvent>) {
    if (!started) {
      started = true;
      const { cid, name, kind, contextLength, executionProvider } = handle.model;
      const model: StartEvent["model"] = { cid, name, kind };
      if (contextLength !== undefined) model.contextLength = contextLength;
      if (executionProvider !== undefined) model.executionProvider = executionProvider;
      const start: StartEvent = {
        kind: "start",
        jobId: handle.jobId,
        model,
        promptTokens: handle.promptTokens,
      };
      // Only when resuming, so a start from the beginning is what it always was on the wire.
      if (resumedFrom > 0) start.resumedFrom = resumedFrom;
      controller.enqueue(start);
      return;
    }
    if (ended) {
      controller.close();
      return;
    }
    // Until the first token, whichever comes first: the token, or a place in the queue to
    // report (the read goes on behind the report, for the next pull).
    pending ??= readReady();
    let ready: StreamedToken[];
    if (queue !== undefined) {
      const next = await readOrQueued(pending, queue);
      if ("position" in next) {
        controller.enqueue({ kind: "queued", position: next.position });
        return;
      }
      queue.close();
      queue = undefined;
      ready = next.read;
    } else ready = await pending;
    pending = undefined;
    if (ready.length === 0) {
      ended = true;
      const summary = await handle.done;
      if (summary.finishReason === "cancelled" || summary.finishReason === "error") {
        controller.error(
          new VeriflowError(
            summary.error?.code ?? CANCELLED,
            summary.error?.message ?? "the job was cancelled by the worker",
          ),
        );
        return;
      }
      controller.enqueue({ kind: "end", summary: wireSummary(summary) });
      return;
    }
    const events = ready.map(wireToken);
    controller.enqueue(
      events.length === 1 ? events[0] : { kind: "tokens", tokens: events.map(withoutKind) },
    );
  }
}

/** One streamed token as its `token` event. */
function wireToken(token: StreamedToken): TokenEvent {
  const { index, tokenId, text, logprob, topLogprobs, finishReason } = token;
  const event: TokenEvent = { kind: "token", index, tokenId, text };
  if (logprob !== undefined) event.logprob = logprob;
  if (topLogprobs !== undefined) {
    event.top = topLogprobs.map((top) => ({
      tokenId: top.tokenId,
      text: top.text,
      logprob: top.logprob,
    }));
  }
  if (finishReason !== undefined) event.finishReason = finishReason;
  return event;
}

function withoutKind(event: TokenEvent): Omit<TokenEvent, "kind"> {
  const { kind: _kind, ...rest } = event;
  return rest;
}

/** The summary as it goes on the wire: only the fields the schema knows. */
function wireSummary(summary: JobSummary): WireJobSummary {
  const out: WireJobSummary = {
    jobId: summary.jobId,
    finishReason: summary.finishReason,
    usage: summary.usage,
    timings: summary.timings,
  };
  if (summary.receipt !== undefined) {
    out.receipt = summary.receipt as Receipt;
  }
  if (summary.error !== undefined) out.error = summary.error;
  return out;
}
