/**
 * The inference port over the wire, the worker's side: {@link serveInference} answers a peer's
 * submissions (`RemoteInferencePort`, `remote_port.ts`) from a local port.
 *
 * Each job goes back as one flow-controlled stream of events: a `start` event, `token` events
 * (several tokens in one `tokens` event for a requester that asked: those ready together, and
 * with `gatherMs` those that came within it of the last event), and an `end` event with the
 * summary and the signed receipt. The local model computes a token only when the stream is
 * pulled, so a slow requester slows its own job here; a requester that stops reading for
 * `readerStallMs` loses its job, and one peer runs at most `maxJobs` jobs at once, over all its
 * connections ({@link ServeInferenceOptions}).
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { Receipt } from "../protocols/receipt.ts";
import {
  type InferenceEvent,
  ListModelsMessage,
  QUEUED_EVENT_REPEAT_MS,
  type StartEvent,
  SubmitMessage,
  type TokenEvent,
  type WireJobSummary,
} from "../protocols/inference_messages.ts";
import { ReadAhead } from "./_token_read_ahead.ts";
import { QueuePosition, readOrQueued } from "./queue_position.ts";
import type {
  InferenceHandle,
  InferencePort,
  JobSummary,
  StreamedToken,
} from "./inference_port.ts";
import { CANCELLED } from "./remote_errors.ts";

/** Options of {@link serveInference}. */
export interface ServeInferenceOptions {
  /** Called with each job this connection submitted, as it starts (for logs and metrics). */
  onJob?: (jobId: string) => void;
  /**
   * Jobs one peer may run at once (default {@link DEFAULT_MAX_JOBS_PER_PEER}); more are
   * refused with `too_many_jobs`, so one peer cannot take every slot of the model. Counted over
   * every connection of the peer when `shares` and `peer` are given, else per connection.
   */
  maxJobs?: number;
  /**
   * The peer's key (hex) the connection's handshake authenticated, and the counts shared by all
   * connections of the node: a peer key may hold several connections (`connection_limits.ts`),
   * and must not get a share on each.
   */
  peer?: string;
  /** See {@link peer}. */
  shares?: PeerJobShares;
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
    super("too_many_jobs", `this peer already runs ${limit} jobs`);
  }
}

/** Jobs each peer key runs here, over all its connections (one per node). */
export class PeerJobShares {
  readonly #running = new Map<string, number>();

  /** Take one of `peer`'s `limit` places; false when it holds them all. */
  take(peer: string, limit: number): boolean {
    const running = this.#running.get(peer) ?? 0;
    if (running >= limit) return false;
    this.#running.set(peer, running + 1);
    return true;
  }

  /** Give back one place {@link take} gave `peer`. */
  release(peer: string): void {
    const running = (this.#running.get(peer) ?? 0) - 1;
    if (running > 0) this.#running.set(peer, running);
    else this.#running.delete(peer);
  }

  /** Jobs `peer` runs here now. */
  running(peer: string): number {
    return this.#running.get(peer) ?? 0;
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
  // Without the peer's key, this connection is the peer.
  const shares = options.shares ?? new PeerJobShares();
  const peer = options.shares !== undefined && options.peer !== undefined ? options.peer : "";
  let taken = 0;
  const release = () => {
    if (taken === 0) return;
    taken--;
    shares.release(peer);
  };
  connection.handle(ListModelsMessage, async () => ({ models: [...await port.models()] }));
  connection.handle(SubmitMessage, async (body, ctx) => {
    const { job, topLogprobs, resume, tokensPerEvent, gatherMs } = body;
    if (!shares.take(peer, maxJobs)) throw new PeerJobLimitError(maxJobs);
    taken++;
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
      release();
      queue?.close();
      throw error;
    }
    options.onJob?.(handle.jobId);
    return jobEvents(handle, {
      resumedFrom: resume?.length ?? 0,
      stallMs,
      tokensPerEvent: tokensPerEvent ?? 1,
      gatherMs: gatherMs ?? 0,
      timers: options.timers,
      queue,
      onFinished: release,
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
  /** Gather the tokens that come within this long of the last event (`_token_read_ahead.ts`). */
  gatherMs: number;
  /** Clock of the gathering (default the real one). */
  timers?: ConnectionTimers;
  /** The job's place in the queue, reported until its first token; absent: not reported. */
  queue?: QueuePosition;
  /** Called once when the stream is done with the job. */
  onFinished: () => void;
}

/** A local job's handle as the stream of events the requester reads. */
function jobEvents(
  handle: InferenceHandle,
  { resumedFrom, stallMs, tokensPerEvent, gatherMs, timers, queue, onFinished }: JobEventsOptions,
): ReadableStream<InferenceEvent> {
  const reader = handle.tokens.getReader();
  // Up to `tokensPerEvent` tokens in one event when they are ready together, or came within
  // `gatherMs` of the last event (requesters that asked); one read per pull otherwise, so the
  // worker computes only what is pulled.
  const ahead = tokensPerEvent > 1
    ? new ReadAhead(reader, tokensPerEvent, { gatherMs, timers })
    : undefined;
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
