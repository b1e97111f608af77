/**
 * The requester's side of one job relayed by `RemoteInferencePort` (`remote_port.ts`):
 * {@link RemoteJob} turns the worker's events into the handle's token stream and its summary,
 * and runs the job's stall and end timers; {@link ModelProgress} is what the port's jobs of one
 * model share of the worker's progress, so a job queued behind the model's other jobs is not
 * taken for a stalled one while the worker streams them.
 *
 * @module
 */
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import type { TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  ConnectionClosedError,
  PEER_FRAMING_FAULT_CODES,
  ProtocolError,
  RemoteError,
  RequestCancelledError,
  StreamCancelledError,
} from "../protocols/protocol_errors.ts";
import {
  type InferenceEvent,
  QUEUED_EVENT_REPEAT_MS,
  type StartEvent,
  type TokensEvent,
} from "../protocols/inference_messages.ts";
import type { StreamVerifier } from "../protocols/stream_commitment.ts";
import { HeldCancelError } from "../protocols/held_cancel.ts";
import {
  cancelOnAbort,
  type FinishReason,
  type InferenceHandle,
  type JobSummary,
  type StreamedToken,
} from "./inference_port.ts";
import { UnreadTime } from "./_unread_time.ts";
import {
  CANCELLED,
  errorInfo,
  InferenceStreamError,
  typedRefusal,
  WorkerStalledError,
  WorkerTooSlowError,
} from "./remote_errors.ts";

/**
 * How long the end event (summary and receipt) may take after the last token: the worker only
 * has to finish signing, so a long wait means it will never come.
 */
export const END_EVENT_TIMEOUT_MS = 30_000;

/**
 * How long a worker has to close a job's event stream after its end event. An honest worker's
 * stream ends right behind its end (the exchange's end frame follows the end event, at most a
 * credit grant's round trip later); one left open holds one of this side's request slots on the
 * connection, and up to a credit window of buffered events, until it is cancelled.
 */
export const END_CLOSE_GRACE_MS = 5_000;

/**
 * How long this side must have waited in a read of a job, granting the worker all its credit,
 * for the worker's word that it stopped reading (`reader_stalled`) to be a false one: a worker
 * that had no credit sees the credit granted at the read's start within a round trip, and one
 * that did pulls its job's events at once.
 */
export const READER_STALL_GRACE_MS = 10_000;

/**
 * The least time this side must have left a job's events unread, over its last reads
 * (`_unread_time.ts`), for a worker's word that it stopped reading (`reader_stalled`) to be
 * believed: an honest worker says so after its reader stall timeout without credit (60 s by
 * default, `DEFAULT_READER_STALL_MS`), so a sixth of that leaves room for a worker configured
 * shorter, and far more than the milliseconds a router that reads each event as it comes leaves
 * between its reads. A worker that says so sooner (or with no such wait at all) is not believed:
 * its stream is broken.
 */
export const MIN_READER_STALL_MS = 10_000;

/**
 * A worker's words that this side did not read its job's events: it stopped reading
 * (`reader_stalled`), or a finished job's unread tokens were evicted (`slow_reader`). Each ends
 * the client's job without blame only when this side had left the events unread
 * ({@link MIN_READER_STALL_MS}, {@link MIN_SLOW_READER_UNREAD_MS}); said otherwise, the worker's
 * stream is broken.
 */
const READER_CLAIMS: ReadonlySet<string> = new Set(["reader_stalled", "slow_reader"]);

/**
 * The least time this side must have left a job's events unread for a worker's word that it
 * evicted a finished job's unread tokens (`slow_reader`) to be believed: a worker lets a job run
 * on into memory only after its reader read nothing for a second while other jobs wait
 * (`SLOW_READER_GRACE_MS`, `actors/_unread_token_budget.ts`), far sooner than it says
 * `reader_stalled`, and far longer than the milliseconds a router that reads each event as it
 * comes leaves between its reads.
 */
export const MIN_SLOW_READER_UNREAD_MS = 1_000;

/**
 * How long after a worker's last `queued` event the job is taken to have left its queue: the
 * worker repeats the place every `QUEUED_EVENT_REPEAT_MS`, so two and a half of those without
 * one means it stopped repeating.
 */
const LEFT_QUEUE_AFTER_MS = 2.5 * QUEUED_EVENT_REPEAT_MS;

/**
 * What one connection sees of its worker's progress on one model. The worker runs a few of
 * the model's jobs at once and queues the rest (and sends each its `start` when it accepts
 * it), so a job that waits for its first token may wait for the jobs ahead of it: the worker
 * is working as long as the model's jobs deliver something, or as long as this side holds one
 * of them up by not reading it (it may be the job ahead).
 */
export class ModelProgress {
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
export interface RemoteJobContext {
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
  /**
   * The delivery floor after the first token: most ms per later token, on average, of the time
   * this side waits on the worker, beyond a head start of `stallTimeoutMs` (Infinity: none).
   */
  tokenBudgetMs: number;
  /** The worker's progress on the job's model, shared by the port's jobs of that model. */
  progress: ModelProgress;
  /**
   * The job stream's credit window, in events (`submitWindow`): how many of this side's last
   * reads can hold a worker's wait for credit (`_unread_time.ts`).
   */
  creditWindow: number;
  /**
   * The most tokens in one event this side asked for (`SubmitBody.tokensPerEvent`, 1 when it
   * asked none). An honest worker never sends more (`serve_inference.ts` reads at most that many
   * ahead); an event with more breaks the stream: its extra tokens would be taken, and paid for
   * at a cancel, past the events of the size asked for (review s82 vdrain, F2).
   */
  tokensPerEvent: number;
  /**
   * Checks each token event's signature of the job's stream (undefined: the connection has no
   * proven key to check against); a token event without a valid one breaks the stream.
   */
  stream?: StreamVerifier;
  /** The submission's `onQueued`: given each `queued` event's place. */
  onQueued?: (position: number) => void;
  /** Called once, with the job's summary, when it ends. */
  onEnd: (summary: JobSummary) => void;
  /**
   * The submission's signal: aborting it cancels the job as the handle's `cancel` does. The
   * event stream sees it too, but its end is read only when the client pulls: a client that
   * aborted and stopped reading waited for `done` for ever.
   */
  signal?: AbortSignal;
}

/** The requester's side of one relayed job. */
export class RemoteJob {
  readonly #start: StartEvent;
  /** Position of the first token event (the resumed prefix's length, else 0). */
  readonly #from: number;
  readonly #reader: ReadableStreamDefaultReader<InferenceEvent>;
  readonly #o: RemoteJobContext;
  readonly #done = Promise.withResolvers<JobSummary>();
  #tokens = 0;
  /**
   * How long this side has waited on the worker for the job's events after its first token:
   * reads only, so a requester that does not read costs the worker nothing (see the floor,
   * {@link RemoteJobContext.tokenBudgetMs}).
   */
  #waited = 0;
  #firstTokenAt = NaN;
  #ended = false;
  /** The finish reason the job's last token carried, once it came (what the job ended with). */
  #lastTokenSeen: "stop" | "length" | undefined;
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
  /**
   * The job's one stall timer (not one per read: a relayed token would pay for arming and
   * clearing a timer). Armed for when the read in progress may have stalled; a read that
   * ends before it leaves it armed, and when it fires it checks the read then in progress
   * (`#readDue`), re-arming for that read's due time, or lapses if none is waiting.
   */
  #stallTimer: unknown;
  /** When the armed {@link #stallTimer} fires (Infinity: none armed). */
  #stallTimerDue = Infinity;
  /** When the read in progress has waited too long (NaN: no read waits). */
  #readDue = NaN;
  /** When the read in progress began (what `#checkStall` counts from). */
  #readSince = NaN;
  /**
   * Set when the job failed under a read (the connection closed, the worker stalled): what
   * the token stream fails with, read in progress or not.
   */
  #failedWith: VeriflowError | undefined;
  /** How long this side left the job's events unread, over its last reads. */
  readonly #unread: UnreadTime;

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
    // A worker without credit waits through fewer than half a window of this side's reads, and
    // its error comes behind at most a window of buffered events (`_unread_time.ts`).
    this.#unread = new UnreadTime(2 * context.creditWindow + 1, context.timers.now());
    this.#hold(true); // started, and not read yet
    cancelOnAbort(context.signal, () => this.#cancel(), this.#done.promise);
  }

  handle(): InferenceHandle {
    const tokens = new ReadableStream<StreamedToken>({
      pull: async (controller) => {
        let result: ReadableStreamReadResult<InferenceEvent> | undefined;
        let failure: unknown;
        if (this.#failedWith === undefined) {
          // A worker that started the job and went silent would hold this read for ever (its
          // connection stays alive): only the stall timer ends it. Counted per read; a worker
          // that sends something just within each timeout is cut by the delivery floor
          // instead (`tokenBudgetMs`), which bounds the whole job by its `maxTokens`.
          const { timers, stallTimeoutMs, firstTokenTimeoutMs } = this.#o;
          this.#hold(false);
          const since = timers.now();
          // After the first token each read draws on the job's delivery floor as well.
          const streaming = this.#tokens > 0;
          if (!streaming) this.#o.progress.waiting.add(this.#behindStall);
          // Re-armed after each `queued` event, never past the first-token deadline.
          const wait = () =>
            streaming
              ? Math.max(0, Math.min(stallTimeoutMs, this.#floorLeft()))
              : Math.max(0, Math.min(stallTimeoutMs, since + firstTokenTimeoutMs - timers.now()));
          try {
            // A `queued` event (before the first token) is the worker saying the job waits
            // for a slot: passed on, and the read goes on, its silence counted afresh (the
            // first-token timeout still counts from `since`).
            for (;;) {
              this.#awaitRead(since, timers.now() + wait());
              result = undefined;
              this.#unread.reading(timers.now());
              try {
                result = await this.#reader.read();
              } finally {
                this.#unread.read(timers.now());
                this.#readDue = NaN;
                if (streaming) this.#waited += timers.now() - since;
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
            // A finished job's evicted backlog (`slow_reader`) is the same claim, that this
            // side did not read: believed on the same evidence (review s77 vclient, F2).
            if (failure instanceof VeriflowError && READER_CLAIMS.has(failure.code)) {
              failure = this.#judgeReaderStalled(failure, timers.now() - since);
            }
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
          // Reached only when no token carried a finish reason (an early end). A job that
          // finished marks its last token (every job asks for at least one), so an end that
          // says `stop` or `length` here claims an output the worker never streamed: a worker
          // resuming a job could end it at once with a receipt over the prefix it was handed,
          // the lost worker's tokens, and the client's would stop short without an error. A
          // broken stream.
          const { finishReason } = event.summary;
          if (finishReason === "stop" || finishReason === "length") {
            const error = new InferenceStreamError(
              `the worker ended the job (${finishReason}) after ${this.#tokens} of its tokens ` +
                `without a last token`,
            );
            this.#reader.cancel(error).catch(() => {});
            this.#end("error", error);
            controller.error(error);
            return;
          }
          // `cancelled` or `error`: the worker ended a job it started, as its failure. An honest
          // worker fails the stream with its code for that (`serve_inference.ts`); an end event
          // instead closed the client's stream as if the job were over, short, with no error to
          // fail it over on. Failed here with the worker's code, as its error frame would be.
          const info = event.summary.error;
          const error = typedRefusal(
            new RemoteError(
              info?.code ?? (finishReason === "cancelled" ? CANCELLED : "internal_error"),
              info?.message ?? `the worker ended the job (${finishReason}) after ${this.#tokens} ` +
                  `of its tokens`,
            ),
            this.#o.job,
          );
          this.#reader.cancel(error).catch(() => {});
          this.#end("error", error);
          controller.error(error);
          return;
        }
        // One token, or several that were ready together: each in order, once, and none past
        // the job's last position (`maxTokens − 1`, which ends the job): a token there without
        // a finish reason would lead the client past its `max_tokens`. Nor one that ends the job
        // for its length where it cannot: before that position, unless the prompt and the
        // output fill the context window the worker's start names: the client would be told its
        // answer was cut at its limit. A start that names none has no window to fill (an honest
        // worker's model without one runs unlimited, `actors/inference_actor.ts`), so leaving
        // the field out cannot excuse an early end.
        const items = event.kind === "token"
          ? [event]
          : event.kind === "tokens"
          ? event.tokens
          : undefined;
        const last = this.#o.job.params.maxTokens - 1;
        const { promptTokens, model: { contextLength } } = this.#start;
        const full = (index: number) =>
          index >= last ||
          (contextLength !== undefined && promptTokens + index + 1 >= contextLength);
        const oversized = items !== undefined && items.length > this.#o.tokensPerEvent;
        const inOrder = !oversized &&
          items?.every((t, i) => t.index === this.#from + this.#tokens + i) &&
          items.slice(0, -1).every((t) => t.finishReason === undefined) &&
          items.every((t) => t.index < last || t.finishReason !== undefined) &&
          items.every((t) => t.finishReason !== "length" || full(t.index));
        // Every token the client gets is covered by the worker's signature, or none is relayed:
        // the signed head is what holds a worker that drops after wrong tokens to them.
        const unsigned = items !== undefined && inOrder && this.#o.stream !== undefined &&
          !this.#o.stream.accept(
            items.map((t) => t.tokenId),
            (event as TokensEvent).sig,
            items[items.length - 1].finishReason !== undefined,
          );
        if (items === undefined || !inOrder || unsigned) {
          const sig = (event as TokensEvent).sig;
          const error = new InferenceStreamError(
            oversized
              ? `a ${event.kind} event of ${items.length} tokens, where ${this.#o.tokensPerEvent} ` +
                `at most were asked for (tokensPerEvent)`
              : !unsigned
              ? `unexpected ${event.kind} event`
              : sig === undefined
              // A worker that predates signed streams sends none: said so, for its operator.
              ? `a ${event.kind} event without the worker's signature of the job's stream (sig): ` +
                `a worker that predates signed streams, whose tokens are refused`
              : `a ${event.kind} event whose signature is not the worker's over the job's stream`,
          );
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
        const finishReason = items[items.length - 1].finishReason;
        if (finishReason !== undefined) {
          // The last token: close now, and take the end event (summary, receipt) behind it.
          this.#lastTokenSeen = finishReason;
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
      ...(this.#start.resumedText === undefined ? {} : { resumedText: this.#start.resumedText }),
      tokens,
      done: this.#done.promise,
      cancel: () => {
        tokens.cancel().catch(() => {});
        this.#cancel();
      },
      ...(this.#o.stream === undefined ? {} : { signedStream: this.#o.stream }),
      received: () => this.#tokens,
    };
  }

  /**
   * The connection closed: a job that has not ended ends here, with the connection's error
   * (`connection_closed`, or why it closed: `peer_timeout`, ...), whether or not anyone reads.
   * After the job's last token it ended as that token said (the client has every token): only
   * its end event, the receipt, was lost, and may be asked for later (`_lost_ends.ts`).
   */
  connectionClosed(reason: Error | null): void {
    if (this.#ended) return;
    // Closed for bytes the worker sent that no honest worker sends (a frame past this side's
    // limit, bytes that are not frames): its stream broke the protocol, as an event out of
    // order does, not a loss (it is kept off the model, and its end not asked for later).
    const fault = reason instanceof ProtocolError && PEER_FRAMING_FAULT_CODES.has(reason.code);
    const error = fault
      ? new InferenceStreamError(`the worker's connection broke the framing: ${reason.message}`)
      : reason instanceof ConnectionClosedError
      ? reason
      : new ConnectionClosedError(
        reason ? `connection closed: ${reason.message}` : "connection closed",
        { cause: reason ?? undefined },
      );
    this.#failedWith = error;
    // Free the event stream too; the token stream then fails with the same error if read.
    this.#reader.cancel(error).catch(() => {});
    this.#end(this.#lastTokenSeen ?? "error", error);
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
      // The timer was armed for the nearer of the stall and the delivery floor.
      if (timers.now() - since >= stallTimeoutMs) this.#stalled(stallTimeoutMs, false);
      else this.#tooSlow(timers.now() - since);
      return;
    }
    const now = timers.now();
    const silentSince = Math.max(since, progress.silentSince(now), this.#queuedAt);
    const deadline = since + firstTokenTimeoutMs;
    if (now - silentSince >= stallTimeoutMs) this.#stalled(stallTimeoutMs, false);
    else if (now >= deadline) this.#stalled(firstTokenTimeoutMs, true);
    else this.#awaitRead(since, Math.min(silentSince + stallTimeoutMs, deadline));
  }

  /**
   * A read that began at `since` waits for the worker until `due`: the stall timer must fire
   * by then. An armed timer that fires no later is kept (it re-arms for `due` when it fires).
   */
  #awaitRead(since: number, due: number): void {
    this.#readSince = since;
    this.#readDue = due;
    if (this.#stallTimerDue <= due) return;
    this.#o.timers.clearTimeout(this.#stallTimer);
    this.#armStallTimer(due);
  }

  #armStallTimer(due: number): void {
    const { timers } = this.#o;
    this.#stallTimerDue = due;
    this.#stallTimer = timers.setTimeout(() => {
      this.#stallTimerDue = Infinity;
      if (this.#ended || Number.isNaN(this.#readDue)) return; // no read waits: lapse
      if (timers.now() >= this.#readDue) this.#checkStall(this.#readSince);
      else this.#armStallTimer(this.#readDue);
    }, Math.max(0, due - timers.now()));
  }

  /** The job ended: its stall timer goes too. */
  #clearStallTimer(): void {
    this.#o.timers.clearTimeout(this.#stallTimer);
    this.#stallTimerDue = Infinity;
    this.#readDue = NaN;
  }

  /**
   * The worker sent nothing of this job for `ms` while a read waited: cancel the job there
   * (the event stream's cancel is the connection's `cancel`) and end it here.
   */
  #stalled(ms: number, busy: boolean): void {
    if (this.#ended) return;
    const error = new WorkerStalledError(this.#o.worker, ms, this.#tokens, busy);
    this.#failedWith = error;
    this.#reader.cancel(this.#unpaidCancel(error)).catch(() => {});
    this.#end("error", error);
    if (!busy) this.#o.progress.stalled();
  }

  /**
   * What is left of the delivery floor for the read in progress: the stall timeout plus
   * `tokenBudgetMs` for each token after the first, less what this side already waited.
   * Infinite with an infinite budget (no floor: the stall timeout alone bounds each read; the
   * product is not taken at the first token, where 0 × Infinity would be NaN and disarm it).
   */
  #floorLeft(): number {
    const { stallTimeoutMs, tokenBudgetMs } = this.#o;
    if (tokenBudgetMs === Infinity) return Infinity;
    return stallTimeoutMs + (this.#tokens - 1) * tokenBudgetMs - this.#waited;
  }

  /**
   * The worker fell below the delivery floor while a read waited `ms` on it: cancel the job
   * there and end it here, as a stall marked slow (its other jobs are not judged by it).
   */
  #tooSlow(ms: number): void {
    if (this.#ended) return;
    const { worker, tokenBudgetMs, stallTimeoutMs } = this.#o;
    const waited = this.#waited + ms;
    const error = new WorkerTooSlowError(
      worker,
      this.#tokens,
      waited,
      tokenBudgetMs,
      stallTimeoutMs,
    );
    this.#failedWith = error;
    this.#reader.cancel(this.#unpaidCancel(error)).catch(() => {});
    this.#end("error", error);
  }

  /**
   * The cancel of a worker that failed this side (`error`: it stalled, or fell below the delivery
   * floor): it says the client holds only the positions before this run (`held_cancel.ts`), so
   * the worker signs no `cancelled` receipt and may run the job again. A stalled worker is paid
   * nothing for the tokens it streamed (`docs/PROTOCOL.md`, "Who pays, by how a job ends"): a
   * takeover re-signs them and is paid for the whole job, and with none the job failed and its
   * client may retry it. A plain cancel read as the requester's own: the worker signed a receipt
   * nobody assigned, and refused the client's retry as `duplicate_job` for good (review s78).
   */
  #unpaidCancel(error: VeriflowError): HeldCancelError {
    return new HeldCancelError(this.#from, error.message, { cause: error });
  }

  /**
   * The worker said this side stopped reading (`reader_stalled`), in answer to a read that had
   * waited `waitedMs` on it. A worker says so only when it had no credit for its reader stall
   * timeout, and it can lack credit only while this side does not read: believed when this side
   * left the job's events unread for {@link MIN_READER_STALL_MS} over its last reads, and the
   * read that got the error did not wait on the worker for {@link READER_STALL_GRACE_MS} (it
   * granted all its credit then, which reaches the worker within a round trip). Otherwise the
   * worker said what this side knows to be false: its stream is broken (its code is a worker
   * fault: the job goes on elsewhere, and the worker is kept off the model). Believed whenever the
   * read in progress was young, one worker picked first ended every client's job it was given,
   * with nothing paid and no other worker asked, and stayed first.
   */
  #judgeReaderStalled(said: VeriflowError, waitedMs: number): VeriflowError {
    const unreadMs = this.#unread.unreadMs(this.#o.timers.now());
    const evicted = said.code === "slow_reader";
    const least = evicted ? MIN_SLOW_READER_UNREAD_MS : MIN_READER_STALL_MS;
    if (waitedMs < READER_STALL_GRACE_MS && unreadMs >= least) return said;
    return new InferenceStreamError(
      `the worker said the requester ${
        evicted ? "read too slowly (slow_reader)" : "stopped reading"
      }, while it had left the job's events ` +
        `unread for ${Math.round(unreadMs)} ms over its last reads and had been waiting on the ` +
        `worker for ${Math.round(waitedMs)} ms`,
    );
  }

  /** Another job of the model stalled on the worker while this one waits for its first token. */
  readonly #behindStall = () => this.#stalled(this.#o.stallTimeoutMs, false);

  async #awaitEnd(): Promise<void> {
    // A worker that never sends its end would leave `done` pending forever.
    const { timers, progress } = this.#o;
    this.#hold(false);
    let timedOut = false;
    const timer = timers.setTimeout(() => {
      timedOut = true;
      this.#reader.cancel(new InferenceStreamError("no end event after the last token"))
        .catch(() => {});
    }, END_EVENT_TIMEOUT_MS);
    try {
      const { done, value } = await this.#reader.read().finally(() => timers.clearTimeout(timer));
      if (done || value.kind !== "end") {
        throw new InferenceStreamError(
          timedOut
            ? `no end event within ${END_EVENT_TIMEOUT_MS} ms of the last token`
            : done
            ? "the worker's stream ended after the last token without its end event"
            : `a ${value.kind} event after the last token, where the end event was due`,
        );
      }
      progress.delivered(timers.now());
      // The job ended as its last token said, which the client was streamed: the end event's
      // word for it (and any error it names) is the worker's, and no receipt signs it.
      const { error: _theWorkers, ...summary } = value.summary as JobSummary;
      this.#resolve({ ...summary, finishReason: this.#lastTokenSeen! });
    } catch (error) {
      // The worker's own doing (what it sent, or failed to send, where its end was due) breaks
      // its stream. A lost connection does not undo the job either: the client has every token
      // and the job ended as its last token said, so the summary says that, with the loss as its
      // `error` and no receipt (the receipt may be asked for later: `_lost_ends.ts`, and pays the
      // worker then). Ended `error` instead, the client was told its whole answer failed while
      // its requester could still be charged for it once the receipt came. Only a lost
      // connection or this side's own cancel is that: any other protocol error is a frame of
      // the worker's this side refused (an end event the wire schema rejects: `invalid_body`),
      // the worker's own doing like any other break (review, stop 66).
      if (isWorkerBreak(error)) this.#brokeAfterLastToken(error);
      else this.#end(this.#lastTokenSeen!, error);
    }
  }

  /**
   * The worker broke its stream after the job's last token, where its end event (summary and
   * receipt) was due: another event came, one this side refused (`invalid_body`), its stream
   * closed or failed, or nothing came within {@link END_EVENT_TIMEOUT_MS}. The client has every
   * token and the job ended as the last token said, so its summary says that, with no receipt
   * (none was read: nothing of this job pays the worker, and nothing unsigned reaches the
   * validator) and the break as its `error` (`inference_stream_invalid`, a worker fault: the
   * router keeps the worker off the model as for any broken stream). Ended `error` instead, the
   * client was told its whole answer failed, and the worker went unjudged.
   */
  #brokeAfterLastToken(error: InferenceStreamError | ProtocolError): void {
    const broken = error instanceof InferenceStreamError ? error : new InferenceStreamError(
      `the worker failed the job after its last token, where its end event was due ` +
        `(${error.code}: ${error.message})`,
    );
    this.#reader.cancel(broken).catch(() => {});
    this.#end(this.#lastTokenSeen!, broken);
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
    // The id the start was checked for (`remote_port.ts`), whatever the end event says, the
    // start's count of the prompt's tokens, as bounded there, and the tokens the worker streamed
    // (an honest worker's own count; a claim of more went to the port's `tokensGenerated`).
    summary = {
      ...summary,
      jobId: this.#start.jobId,
      usage: {
        ...summary.usage,
        promptTokens: this.#start.promptTokens,
        completionTokens: this.#tokens,
      },
    };
    this.#leftQueue();
    this.#clearStallTimer();
    this.#ended = true;
    this.#hold(false);
    this.#closeAfterEnd();
    this.#o.onEnd(summary);
    this.#done.resolve(summary);
  }

  /**
   * The end event was read: the worker's stream must end behind it. Released only, a stream its
   * worker kept open (or went on sending on) held one of this side's request slots on the
   * connection, and a credit window of buffered events, for every job until the connection
   * closed: past the connection's `maxPendingRequests` every request to that peer waited. So it
   * is read once more: an event there is cancelled at once, and a stream still open after
   * {@link END_CLOSE_GRACE_MS} is cancelled then. An honest worker's stream ends by itself, and is
   * not cancelled: a cancel that raced its end would have it keep the job's receipt as unsent
   * (`UnsentReceipts`, `serve_inference.ts`), for a requester that has it.
   */
  #closeAfterEnd(): void {
    const { timers } = this.#o;
    const cancel = (why: string) =>
      this.#reader.cancel(new InferenceStreamError(why)).catch(() => {});
    const timer = timers.setTimeout(
      () => cancel(`the stream stayed open ${END_CLOSE_GRACE_MS} ms after the end event`),
      END_CLOSE_GRACE_MS,
    );
    this.#reader.read().then(
      ({ done, value }) => {
        if (!done) cancel(`a ${value.kind} event after the end event`);
      },
      () => {}, // the stream failed (its connection closed): nothing left to free
    ).finally(() => timers.clearTimeout(timer));
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
    this.#clearStallTimer();
    this.#ended = true;
    this.#hold(false);
    this.#o.onEnd(summary);
    this.#done.resolve(summary);
  }
}

/**
 * Whether an error that ended a job's stream after its last token is the worker's doing: a
 * broken stream, its own `error` frame, or a frame of its this side refused (any protocol error
 * but a lost connection, `ConnectionClosedError`, or a cancel, `StreamCancelledError` and this
 * side's `RequestCancelledError`).
 */
function isWorkerBreak(error: unknown): error is InferenceStreamError | ProtocolError {
  if (error instanceof InferenceStreamError) return true;
  return error instanceof ProtocolError && !(error instanceof ConnectionClosedError) &&
    !(error instanceof StreamCancelledError) && !(error instanceof RequestCancelledError);
}
