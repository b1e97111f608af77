/**
 * The inference port over the wire, the requester's side: {@link RemoteInferencePort} submits
 * jobs to a peer over a `Connection`; the peer answers them with `serveInference`
 * (`serve_inference.ts`).
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
 * (`WorkerStalledError`); either cancels the job on the worker. A worker that says something
 * just often enough is held to a delivery floor after its first token (`tokenBudgetMs`,
 * `WorkerTooSlowError`), which bounds a job by its `maxTokens`. A worker sends `start`
 * when it accepts a job, queued or not, so before its first token a job may be waiting for
 * one of the worker's slots: its stall clock then runs only while the worker is silent on
 * every job of the model this port sent it (see {@link RemoteInferencePortOptions}; each job's
 * own side of it is `_remote_job.ts`). A worker's refusal comes back as the typed error the
 * local port throws for it (`UnknownModelError`, ...), by its code (`remote_errors.ts`).
 *
 * @module
 */
import { jobInputRoom } from "../protocols/job_input.ts";
import { promptTokenBound } from "../protocols/prompt_token_bound.ts";
import type { Connection } from "../protocols/connection.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { jobId, type TextJob, textJobSchema } from "../protocols/job.ts";
import { toHex } from "../protocols/hash.ts";
import { RemoteError } from "../protocols/protocol_errors.ts";
import { unknownFieldOf } from "../protocols/message_registry.ts";
import {
  type InferenceEvent,
  ListModelsMessage,
  MAX_GATHER_MS,
  MAX_TOKENS_PER_EVENT,
  type StartEvent,
  type SubmitBody,
  SubmitMessage,
} from "../protocols/inference_messages.ts";
import { InvalidGenerationParamsError, JobVersionMismatchError } from "./errors.ts";
import { MAX_TOP_LOGPROBS } from "./top_logprobs.ts";
import {
  checkTextJob,
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ServedModelInfo,
  type SubmitOptions,
} from "./inference_port.ts";
import {
  bodyRefusal,
  InferenceStreamError,
  ResumeUnsupportedError,
  StartTimeoutError,
  typedRefusal,
} from "./remote_errors.ts";
import { ModelProgress, RemoteJob } from "./_remote_job.ts";
import { StreamVerifier } from "../protocols/stream_commitment.ts";

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

/**
 * Default of `tokenBudgetMs`: after a job's first token a worker may take, on average, two
 * seconds per token of the time this side waits on it, beyond a head start of one stall
 * timeout. A second a step is the slowest honest one this project expects (a large model on a
 * loaded CPU, see `DEFAULT_STALL_TIMEOUT_MS`); twice that leaves a busy batch room. It bounds a
 * job's streaming by its `maxTokens`: a 256-token job by 60 s + 255 × 2 s ≈ 9.5 min, where a
 * worker that sent one token just inside each stall timeout held it for 256 minutes.
 */
export const DEFAULT_TOKEN_BUDGET_MS = 2_000;

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
   * With `tokensPerEvent` above 1, how long after an event the worker gathers the tokens that
   * come before it sends the next (default {@link DEFAULT_GATHER_MS}; 0: each token as soon as
   * it is ready). See `inference.submit`'s `gatherMs`.
   */
  gatherMs?: number;
  /**
   * How long `submit` waits for the worker's `start` before it cancels the job and rejects
   * with {@link StartTimeoutError} (default {@link DEFAULT_START_TIMEOUT_MS}).
   */
  startTimeoutMs?: number;
  /**
   * How long a started job's token stream waits for the worker's next event (a token, or its
   * end) before it cancels the job on the worker and fails with `WorkerStalledError`
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
   * `WorkerStalledError` marked `busy`. Counted only while this side is reading.
   */
  firstTokenTimeoutMs?: number;
  /**
   * The delivery floor of a started job (default {@link DEFAULT_TOKEN_BUDGET_MS}): after its
   * first token, the time this side waits on the worker may not pass `stallTimeoutMs` plus this
   * per later token, so a job's streaming is bounded by `stallTimeoutMs + (maxTokens − 1) ×
   * tokenBudgetMs`. Past it the job is cancelled there and fails with a `WorkerTooSlowError`
   * (code `worker_stalled`, marked `slow`). Counted only while this side is reading, so a
   * requester that reads slowly spends none of it. Infinity: no floor, only the stall timeout.
   */
  tokenBudgetMs?: number;
}

/**
 * Default of `tokensPerEvent`: enough that a relay that fell behind catches up in a few frames,
 * few enough that the worker runs at most this many tokens ahead of what was sent.
 */
export const DEFAULT_TOKENS_PER_EVENT = 8;

/**
 * Default of `gatherMs`: a model faster than 200 tokens/s sends an event per 5 ms instead of one
 * per token, each token held back at most 5 ms (a third of a 60 Hz frame: nothing a reader of
 * the stream can see), and every process on the way wakes up for several tokens at a time.
 * Measured on the 2-core VM (`bench/swarm_bench.ts --only stream`, the default model at ~2,800
 * tokens/s, router ÷ direct over Hyperswarm, unpinned): 0.58–0.78 with none, 0.69–0.82 with
 * 2 ms, 0.86–0.95 with 5 ms; the router's CPU per token fell from ~430 to ~250 µs.
 */
export const DEFAULT_GATHER_MS = 5;

/**
 * Most tokens a job's events may carry in flight beyond what this side has read: the worker runs
 * at most this far (plus `tokensPerEvent` it reads ahead) in front of a requester that stops
 * reading. A fast model's events are full (`gatherMs`), so the stream's window in events is this
 * over `tokensPerEvent` ({@link submitWindow}): 8 events of 8 tokens by default, where a window
 * of 16 full events let the worker run a whole 128-token job for a requester that read nothing.
 * Measured beside 32 and 128 (`bench/swarm_bench.ts --only stream`, three invocations each, the
 * 2-core VM): router ÷ direct 0.825 / 0.906 / 0.849 unpinned, 0.876 / 0.903 / 0.930 pinned.
 */
export const MAX_TOKENS_IN_FLIGHT = 64;

/**
 * A job stream's credit window, in events: {@link MAX_TOKENS_IN_FLIGHT} tokens' worth, between
 * 4 events (credit comes back long before the worker runs dry) and 16 (the connection's default,
 * for one token per event).
 * @param tokensPerEvent Most tokens in one event.
 * @returns The window, in events.
 */
export function submitWindow(tokensPerEvent: number): number {
  return Math.min(16, Math.max(4, Math.ceil(MAX_TOKENS_IN_FLIGHT / tokensPerEvent)));
}

/** An {@link InferencePort} whose jobs run on the peer at the other end of a connection. */
export class RemoteInferencePort implements InferencePort {
  readonly #connection: Connection;
  readonly #now: () => number;
  readonly #timers: ConnectionTimers;
  readonly #tokensPerEvent: number;
  readonly #gatherMs: number;
  readonly #startTimeoutMs: number;
  readonly #stallTimeoutMs: number;
  readonly #firstTokenTimeoutMs: number;
  readonly #tokenBudgetMs: number;
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
    this.#tokenBudgetMs = Math.max(0, options.tokenBudgetMs ?? DEFAULT_TOKEN_BUDGET_MS);
    const timers = options.timers ?? SYSTEM_TIMERS;
    this.#timers = timers;
    this.#now = options.now ?? (() => timers.now());
    this.#gatherMs = Math.min(MAX_GATHER_MS, Math.max(0, options.gatherMs ?? DEFAULT_GATHER_MS));
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
    if (this.#tokensPerEvent > 1 && this.#gatherMs > 0) body.gatherMs = this.#gatherMs;
    // Always asked: a queued job then tells this side it is alive (and where it stands), and
    // is not taken for a stalled one however long the jobs ahead of it run.
    body.queued = true;
    const creditWindow = submitWindow(this.#tokensPerEvent);
    const events = this.#connection.openStream(SubmitMessage, body, {
      signal: options.signal,
      window: creditWindow,
    });
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
        // A field of the job the worker's schema does not know (this side's strict schema read
        // it exactly: `checkTextJob`): an older worker, not a bad job (review s81 wire, F2).
        const field = versionSkewFieldOf(error.message, checked);
        if (field !== undefined) throw new JobVersionMismatchError(field, error.message);
        throw new InvalidGenerationParamsError(bodyRefusal(error.message));
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
    // The job this side asked for, not another (its id is what the client, the job monitor and
    // the summary go by).
    const id = jobId(checked);
    if (first.value.jobId !== id) {
      reader.cancel().catch(() => {});
      this.#stats.jobsRejected++;
      throw new InferenceStreamError(
        `the worker started job ${first.value.jobId.slice(0, 16)}…, not ${id.slice(0, 16)}…`,
      );
    }
    // On the job's model, not another: the client is told the model its answer came from.
    if (first.value.model.cid !== checked.model) {
      reader.cancel().catch(() => {});
      this.#stats.jobsRejected++;
      throw new InferenceStreamError(
        `the worker started the job on model ${first.value.model.cid.slice(0, 64)}, not ` +
          `${checked.model}`,
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
    // The worker's count of the prompt's tokens goes to the client's usage as its receipt signs
    // it, the count a ledger pays: a byte bound told the client 7 where an NFKC tokenizer's
    // receipt billed 24 (review s79 F1). The window it states, capped, and the bytes as NFKC can
    // grow them bound it here (review s79 vlate F4); the bytes alone only where it states none
    // (review s79 vmoney F3).
    const start = { ...first.value, promptTokens: boundPromptTokens(first.value, checked) };
    const workerKey = this.#connection.peerKey;
    const relayed = new RemoteJob(start, from, reader, {
      job: checked,
      worker: workerName(this.#connection),
      stream: workerKey === undefined
        ? undefined
        : new StreamVerifier(workerKey, start.jobId, options.resume ?? []),
      submittedAt,
      now: this.#now,
      timers: this.#timers,
      stallTimeoutMs: this.#stallTimeoutMs,
      firstTokenTimeoutMs: this.#firstTokenTimeoutMs,
      tokenBudgetMs: this.#tokenBudgetMs,
      progress,
      creditWindow,
      tokensPerEvent: this.#tokensPerEvent,
      onQueued: options.onQueued,
      signal: options.signal,
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

/**
 * The largest context window a router believes a worker states for a model, in tokens: 2^20,
 * past the longest windows of today's open decoder models (128K to 1M) and far past what a node
 * runs with onnxruntime on one machine. A stated window is the worker's word (the model's
 * `config.json` is not on a router without the model): uncapped, a worker that stated 10^9 had
 * any prompt count taken and told to its client (review s79 vmoney F3).
 */
export const MAX_STATED_CONTEXT_TOKENS = 1 << 20;

/**
 * The most UTF-8 bytes a tokenizer's Unicode normalizer makes of one byte of text: 11. NFKC
 * (and NFKD) turn U+FDFA "ﷺ", 3 bytes, into 18 characters, 33 bytes (15 two-byte Arabic letters
 * and 3 spaces); no other code point grows more per byte, NFC and NFD at most 3
 * (`tests/inference/nfkc_max_expansion_test.ts` computes it over every code point), and canonical
 * composition never lengthens what decomposition made, so no string grows more than its worst
 * character. A tokenizer counts at most one token a byte of its normalized text (a byte-level
 * vocabulary's, byte fallback's; other tokens cover more), so an honest count never passes this
 * many tokens a byte of the prompt, and a marker: the bound a router keeps beside a stated window
 * (review s79 vlate F4: without it, a worker that stated 2^20 was believed 1,048,575 prompt
 * tokens for the 1-byte prompt "a").
 */
export const NFKC_MAX_EXPANSION = 11;

/**
 * The window a router holds a worker's prompt count to: the window the worker `stated` in its
 * `start` where it stated one, else the one the router `known`s for the model (its workers'
 * listings, `worker_models`), at most {@link MAX_STATED_CONTEXT_TOKENS}. A stated window is the
 * worker's own word, so it answers for it (the validators holding the model re-count); a listing
 * is any key's claim, one per model picked by standing, and capping a stated window by it let
 * whoever listed the smallest window get every honest worker's receipt refused and keep them off
 * the model (review s79 vlate F1).
 *
 * @param stated The window the worker stated in its `start`, if it did.
 * @param known The model's window as the router knows it, if it does.
 */
export function boundedWindow(stated?: number, known?: number): number {
  return Math.min(stated ?? known ?? Infinity, MAX_STATED_CONTEXT_TOKENS);
}

/**
 * The most prompt tokens a router takes from a worker for `job`. Where a window is stated or
 * known: that window ({@link boundedWindow}) less one, since generation refuses a prompt that
 * fills it (255 on a 256-token model), and at most what a normalizer can honestly make of the
 * prompt's bytes ({@link NFKC_MAX_EXPANSION} tokens a byte of the prompt and of the input's room,
 * {@link jobInputRoom}, and of the marker's: a bound a little loose, never below an honest
 * count). Not the bytes alone then: a tokenizer whose normalizer lengthens text honestly counts
 * more (review s79 F1); nor the window alone: a worker stating 2^20 was believed 1,048,575 tokens
 * for a 1-byte prompt (review s79 vlate F4). Where no window is, the prompt's byte bound
 * ({@link promptTokenBound}, with the input's room when the job names an input). An honest
 * current worker always states its window (a text model does not load without one,
 * `_model_config.ts`, and `serve_inference.ts` puts it in every `start`), so the byte bound only
 * meets a worker from before the field or one that leaves it out: before this, such a worker's
 * count went to the client unbounded (9e15, review s79 vmoney F3).
 *
 * @param job The job sent.
 * @param stated The model's window as the worker stated it in its `start`, if it did.
 * @param known The model's window as the router knows it, if it does.
 */
export function maxPromptTokens(job: TextJob, stated?: number, known?: number): number {
  const bytes = promptTokenBound(job.prompt, job.input === undefined ? 0 : jobInputRoom(job));
  if (stated === undefined && known === undefined) {
    return Math.min(bytes, MAX_STATED_CONTEXT_TOKENS - 1);
  }
  const window = Math.max(0, boundedWindow(stated, known) - 1);
  return Math.min(window, NFKC_MAX_EXPANSION * bytes);
}

/**
 * The start's count of prompt tokens, at most {@link maxPromptTokens} by the window it states:
 * what the client is told, and what the worker's receipt must sign (the router refuses another
 * count, `network/_prompt_token_claim.ts`).
 */
function boundPromptTokens(start: StartEvent, job: TextJob): number {
  return Math.min(start.promptTokens, maxPromptTokens(job, start.model.contextLength));
}

/** Hex characters of a worker's key in messages. */
const WORKER_KEY_CHARS = 16;

/** The worker at the other end of `connection`, as messages name it. */
function workerName(connection: Connection): string {
  const key = connection.peerKey;
  return key === undefined ? "(unauthenticated peer)" : toHex(key).slice(0, WORKER_KEY_CHARS);
}

/**
 * The field a worker's `invalid_body` refusal names as one its version does not know, when a
 * worker of another version may truly lack it (review s81 vwire2, F3): the refusal is exactly
 * an unknown-field one ({@link unknownFieldOf}), its path is under `job.` and names a key `job`
 * (the job as sent) has, and `job` is still a job of this version without that key: an optional
 * field, which a later version may have added. A required field (the prompt, `params`) every
 * version that reads jobs knows, and a field not sent nobody refused: such a claim is a plain
 * refusal, undefined here. The worker wrote the words: nothing else it says is believed.
 */
function versionSkewFieldOf(message: string, job: TextJob): string | undefined {
  const field = unknownFieldOf(message);
  const [root, ...path] = field?.split(".") ?? [];
  if (root !== "job" || path.length === 0) return undefined;
  const without = withoutKey(job, path);
  return without !== undefined && textJobSchema.safeParse(without).success ? field : undefined;
}

/**
 * A copy of `value` without the key at `path` (plain objects all the way, the key's own and set),
 * or undefined when there is none.
 */
function withoutKey(value: unknown, path: readonly string[]): Record<string, unknown> | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const [key, ...rest] = path;
  const record = value as Record<string, unknown>;
  if (!Object.hasOwn(record, key) || record[key] === undefined) return undefined;
  const copy = { ...record };
  if (rest.length === 0) {
    delete copy[key];
    return copy;
  }
  const inner = withoutKey(record[key], rest);
  if (inner === undefined) return undefined;
  copy[key] = inner;
  return copy;
}
