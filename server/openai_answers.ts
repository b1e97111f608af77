/**
 * The two ways a `/v1` route answers an accepted job: server-sent events (`stream: true`:
 * `data: {chunk}` lines ending with `data: [DONE]`) or one JSON body once the job has ended.
 * Both run the tokens through a {@link StopTrimmer} (a matched stop sequence, and any text its
 * last token carried after it, is not returned; it comes in `veriflow_stop`, so
 * `text + veriflow_stop` is the output the receipt commits to), and both end with `veriflow_job_id` and, when the node runs a prover,
 * `veriflow_receipt` (byte strings as hex).
 *
 * A client that disconnects cancels its job, which stops the model: a stream through its body's
 * `cancel` (the client went away); one body through the request's signal (`clientGone`) while its
 * status waits, and, once its job has run past {@link NON_STREAM_HEARTBEAT_AFTER_MS}, through the
 * `cancel` of a body that commits the 200 and writes a space a second until the JSON (Deno
 * notices a closed connection only when it writes to it). A streaming client that stops reading
 * is cut off after `http.clientIdleTimeoutMs` and its job cancelled.
 *
 * When the node stops, each answer is one of the server's drains (`serve.ts`): a job that ends
 * within `http.drainTimeoutMs` is answered as always; past it the job is cancelled and the answer
 * ends with a `shutting_down` error (an SSE stream: the error event, then `data: [DONE]`), so an
 * OpenAI client can tell a node that stopped from a network fault.
 *
 * @module
 */
import type {
  FinishReason,
  InferenceHandle,
  JobSummary,
  StreamedToken,
} from "../inference/inference_port.ts";
import { type QueuePosition, readOrQueued } from "../inference/queue_position.ts";
import type { VeriflowError } from "../protocols/errors.ts";
import { yieldToEventLoop } from "./_event_loop.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { jobFailureForClient, openAiErrorBody, receiptErrorForClient } from "./http_errors.ts";
import { toJsonValue } from "./json_value.ts";
import {
  type OpenAiFinishReason,
  type OpenAiStreamChunk,
  type ResponseShape,
  stringifyAnswer,
  type VeriflowChunkFields,
} from "./openai_shapes.ts";
import type { WireUsage } from "./stream_protocol.ts";
import { StopTrimmer, type TextPiece } from "./stop_trimmer.ts";
import { wireUsage } from "./stream_protocol.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { type Drain, shutdownError } from "./serve.ts";
import { ClientIdleError } from "./read_slot_body.ts";
import { undeliveredTokensFailure } from "./_undelivered_tokens.ts";
import { HeldCancelError } from "../protocols/held_cancel.ts";

/** How an answer is given. */
export interface AnswerOptions {
  /** The request's stop sequences, trimmed from the text. */
  stops: readonly string[];
  /**
   * Write the chosen tokens' logprobs, with the most likely tokens per position the job was
   * submitted to list.
   */
  logprobs: boolean;
  /** Streams: send `usage: null` on every chunk and a last chunk with the usage. */
  includeUsage: boolean;
  /** Streams: how long the client may read nothing (`http.clientIdleTimeoutMs`). */
  idleTimeoutMs: number;
  /** The clock and timers of that deadline; default the system's. */
  timers?: ConnectionTimers;
  /** Where an idle cut-off is counted. */
  stats: EdgeStats;
  /**
   * The node's log, where a stream's idle cut-off is told (one line naming the job); default
   * none.
   */
  log?: (line: string) => void;
  /** Whether the model computes on this thread (yield a turn after each event). */
  computesOnEventLoop: boolean;
  /**
   * Streams: the job's place in the queue, sent as an SSE comment (`: queued 2`) until its
   * first token; absent: none.
   */
  queue?: QueuePosition;
  /**
   * Make the answer one of the server's drains (`drainBeforeShutdown` for the request); returns
   * the withdrawal. Absent: none (the answer is cut like any response at the deadline).
   */
  drainBeforeShutdown?: (drain: Drain) => () => void;
  /**
   * One JSON body: aborted when the client goes away before the answer (the request's
   * `signal`), which cancels the job. Absent: never.
   */
  clientGone?: AbortSignal;
}

/**
 * An answer's part in the server's drain: the drain lasts until the answer has ended; when its
 * deadline passes, the job is cancelled and the answer says why ({@link AnswerDrain.failure}).
 */
class AnswerDrain {
  #ended = Promise.withResolvers<void>();
  #timeUp: AbortSignal | undefined;
  #withdraw: () => void;
  #cancel: () => void;

  constructor(handle: InferenceHandle, register: AnswerOptions["drainBeforeShutdown"]) {
    this.#cancel = () => handle.cancel();
    this.#withdraw = register?.((timeUp) => {
      this.#timeUp = timeUp;
      if (timeUp.aborted) this.#cancel();
      else timeUp.addEventListener("abort", this.#cancel, { once: true });
      return this.#ended.promise;
    }) ?? (() => {});
  }

  /**
   * Why a job that did not run to its end failed: `shutting_down` when the drain deadline
   * cancelled it, else what its summary says, an internal failure's (a 500's) message withheld;
   * undefined for a job that ran to its end.
   */
  failure(summary: JobSummary): VeriflowError | undefined {
    if (summary.finishReason !== "error" && summary.finishReason !== "cancelled") return undefined;
    if (summary.finishReason === "cancelled" && this.#timeUp?.aborted) {
      return shutdownError();
    }
    // An internal failure's text may name files, internals or peers: the client gets its code,
    // and the gateway's log line of the job has the text (`jobFailureForClient`).
    return jobFailureForClient(
      summary.error?.code ?? "job_cancelled",
      summary.error?.message ?? "the job was cancelled",
    );
  }

  /** The answer has ended (sent, failed or cancelled): the drain is over. Idempotent. */
  ended(): void {
    this.#timeUp?.removeEventListener("abort", this.#cancel);
    this.#withdraw();
    this.#ended.resolve();
  }
}

/**
 * How long a non-streamed answer's job runs before the answer commits its 200 and begins its
 * heartbeat (see {@link fullAnswer}): a job that ends sooner is answered as one plain body, its
 * failure with its own status; most non-streamed answers (a few dozen tokens) end within it.
 */
export const NON_STREAM_HEARTBEAT_AFTER_MS = 2000;

/**
 * Between two spaces of a non-streamed answer's heartbeat: each write is how the node learns that
 * the client has gone (Deno notices a closed HTTP/1.1 connection only when it writes to it), so a
 * job outlives its client by about this long; one byte a second costs nothing.
 */
export const NON_STREAM_HEARTBEAT_EVERY_MS = 1000;

/** Hex characters of the job id used in OpenAI-style response ids. */
const RESPONSE_ID_CHARS = 24;
const MS_PER_S = 1000;

/** OpenAI has only `stop` and `length` for a job that ran to its end. */
function openAiFinishReason(reason: FinishReason): OpenAiFinishReason {
  return reason === "stop" || reason === "length" ? reason : null;
}

/** The Veriflow fields of a finished job's last chunk or body. */
function veriflowFields(summary: JobSummary, stop: string | undefined): VeriflowChunkFields {
  const fields: VeriflowChunkFields = { veriflow_job_id: summary.jobId };
  if (stop !== undefined) fields.veriflow_stop = stop;
  if (summary.receipt !== undefined) fields.veriflow_receipt = toJsonValue(summary.receipt);
  // Why it has none, an internal failure's text withheld (`receiptErrorForClient`).
  else if (summary.error !== undefined) {
    fields.veriflow_receipt_error = receiptErrorForClient(summary.error);
  }
  return fields;
}

/** A non-streamed answer's job once it has ended: its text pieces, matched stop and summary. */
interface CollectedJob {
  pieces: TextPiece[];
  stop: string | undefined;
  summary: JobSummary;
  /** Why not all of a job that ran to its end was read (`undeliveredTokensFailure`). */
  undelivered: VeriflowError | undefined;
}

/**
 * The non-streamed answer: one JSON body once the job has ended. A job that ends within
 * {@link NON_STREAM_HEARTBEAT_AFTER_MS} is answered then, its status set then, so a job that
 * fails answers with its error's status (504 `worker_stalled`, 503 `shutting_down`, …), as
 * OpenAI's API does: the failure is thrown for the app's error handler. A job that runs longer
 * commits a 200 then and writes one space every {@link NON_STREAM_HEARTBEAT_EVERY_MS} until the
 * JSON (leading whitespace is valid JSON: the openai SDK's `response.json()` reads it): Deno
 * notices that a client has closed its HTTP/1.1 connection only when it writes to it, and the
 * write that fails cancels the body, which cancels the job, so a client that gave up (its
 * timeout, each of an SDK's retries) leaves no job running. A failure after the 200 is the body's
 * end: the OpenAI error body the same failure gets with its status, as a stream's last event
 * (`shutting_down` past the drain deadline included). A client that goes away before the 200
 * (`clientGone`, the request's signal) cancels the job too, where the runtime tells. (Deno also
 * aborts a served request's signal after each successful response under its legacy semantics,
 * and says so once in the log: the listener is gone by then, and the node's tasks run with
 * `--unstable-no-legacy-abort`.)
 *
 * @throws {VeriflowError} the job's failure, when it did not run to its end and ended before
 * the heartbeat began.
 */
export async function fullAnswer(
  handle: InferenceHandle,
  shape: ResponseShape,
  options: AnswerOptions,
): Promise<Response> {
  const drain = new AnswerDrain(handle, options.drainBeforeShutdown);
  const gone = options.clientGone;
  const reader = handle.tokens.getReader();
  // A client that goes away before its one body got none of the job's text: it holds no token.
  const cancel = () => cancelHolding(handle, reader, 0, "the client went away before its answer");
  if (gone?.aborted) cancel();
  else gone?.addEventListener("abort", cancel, { once: true });
  const collected = collectJob(handle, reader, options.stops).finally(() => {
    gone?.removeEventListener("abort", cancel);
    drain.ended();
  });
  const timers = options.timers ?? SYSTEM_TIMERS;
  const heartbeat = Promise.withResolvers<"heartbeat">();
  const timer = timers.setTimeout(
    () => heartbeat.resolve("heartbeat"),
    NON_STREAM_HEARTBEAT_AFTER_MS,
  );
  const first = await Promise.race([collected, heartbeat.promise])
    .finally(() => timers.clearTimeout(timer));
  if (first !== "heartbeat") {
    return new Response(answerBody(handle, shape, options, drain, first), {
      headers: { "content-type": "application/json" },
    });
  }
  // The status is committed: a failure from here on is the body's end.
  const text = collected
    .then((job) => answerBody(handle, shape, options, drain, job))
    .catch((failure) => JSON.stringify(openAiErrorBody(failure)));
  return new Response(heartbeatBody(cancel, text, timers), {
    headers: { "content-type": "application/json" },
  });
}

/**
 * Read `handle`'s tokens (through `reader`) to the job's end, through a {@link StopTrimmer} of
 * `stops`.
 */
async function collectJob(
  handle: InferenceHandle,
  reader: ReadableStreamDefaultReader<StreamedToken>,
  stops: readonly string[],
): Promise<CollectedJob> {
  const trimmer = new StopTrimmer(stops);
  const pieces: TextPiece[] = [];
  let readError: unknown;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      const piece = trimmer.push(next.value);
      if (piece !== undefined) pieces.push(piece);
    }
  } catch (error) {
    // Cancelled or failed: the summary says which, unless the job ran to its end and only its
    // tokens were lost (`undeliveredTokensFailure`).
    readError = error;
  }
  const summary = await handle.done;
  // Tokens a possible stop's start held back never reach the answer (review s80 bill, F4).
  const released = pieces.reduce((sum, piece) => sum + piece.tokens.length, 0);
  const end = trimmer.finish(summary.finishReason);
  pieces.push(end.piece);
  const undelivered = undeliveredTokensFailure(readError, summary, released);
  return { pieces, stop: end.stop, summary, undelivered };
}

/**
 * The JSON text of a non-streamed answer to the ended `job`.
 *
 * @throws {VeriflowError} the job's failure, when it did not run to its end.
 */
function answerBody(
  handle: InferenceHandle,
  shape: ResponseShape,
  options: AnswerOptions,
  drain: AnswerDrain,
  job: CollectedJob,
): string {
  const { pieces, stop, summary } = job;
  const failure = drain.failure(summary) ?? job.undelivered;
  if (failure !== undefined) throw failure;
  const text = pieces.map((piece) => piece.text).join("");
  const logprobs = options.logprobs
    ? shape.logprobs(pieces.flatMap((piece) => piece.tokens), 0)
    : null;
  const json = {
    id: `${shape.idPrefix}-${summary.jobId.slice(0, RESPONSE_ID_CHARS)}`,
    object: shape.object,
    created: Math.floor(Date.now() / MS_PER_S),
    model: handle.model.cid,
    choices: [shape.fullChoice(text, logprobs, openAiFinishReason(summary.finishReason))],
    usage: wireUsage(summary),
    ...veriflowFields(summary, stop),
  };
  return answerJson(options)(json);
}

/** What a heartbeat writes: one space, which JSON allows before its value. */
const HEARTBEAT_SPACE = new TextEncoder().encode(" ");

/**
 * The body of a non-streamed answer after its 200: a space now and every
 * {@link NON_STREAM_HEARTBEAT_EVERY_MS}, then `text` (the answer, or its failure's error body)
 * once the job has ended. Cancelled (a write to a connection the client closed fails), it
 * cancels the job (`cancel`).
 */
function heartbeatBody(
  cancelJob: () => void,
  text: Promise<string>,
  timers: ConnectionTimers,
): ReadableStream<Uint8Array> {
  let beat: unknown;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const pulse = () => {
        controller.enqueue(HEARTBEAT_SPACE);
        beat = timers.setTimeout(pulse, NON_STREAM_HEARTBEAT_EVERY_MS);
      };
      pulse();
      text.then((answer) => {
        timers.clearTimeout(beat);
        if (cancelled) return;
        controller.enqueue(new TextEncoder().encode(answer));
        controller.close();
      });
    },
    cancel() {
      cancelled = true;
      timers.clearTimeout(beat);
      cancelJob();
    },
  });
}

/**
 * How an answer becomes JSON: the runtime's `JSON.stringify`, or, when it carries logprobs (whose
 * `top_logprobs` members are written in order: {@link stringifyAnswer}), the hand-written writer
 * — kept off the path of every streamed token that has none.
 */
function answerJson(options: AnswerOptions): (value: unknown) => string {
  return options.logprobs ? stringifyAnswer : (value) => JSON.stringify(value);
}

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  // Reverse proxies (nginx) buffer responses unless told not to; tokens must flow as made.
  "x-accel-buffering": "no",
};

/**
 * A streamed chunk as `sseAnswer` builds it: an {@link OpenAiStreamChunk}, its `object` and its
 * choices those of the route's shape.
 */
type StreamChunkBody =
  & Omit<OpenAiStreamChunk, "object" | "choices">
  & { object: OpenAiStreamChunk["object"]; choices: OpenAiStreamChunk["choices"][number][] };

/**
 * Cancel `handle`'s job, read through `reader`, saying that the client holds output positions
 * `0 … held−1` (`HeldCancelError`): a router's handle tells its worker so, and the worker's
 * cancelled receipt, the client's usage and the ledger's charge cover those tokens, not the ones
 * read here whose text never reached the client (a possible stop's start held back, a one-body
 * answer not yet written: review s80 bill, F2, F3); a local job's prover is told the same.
 */
function cancelHolding(
  handle: InferenceHandle,
  reader: ReadableStreamDefaultReader<StreamedToken>,
  held: number,
  why: string,
): void {
  reader.cancel(new HeldCancelError(held, why)).catch(() => {});
  handle.cancel();
}

/** The SSE answer: one `data:` event per released piece of text. */
export function sseAnswer(
  handle: InferenceHandle,
  shape: ResponseShape,
  options: AnswerOptions,
): Response {
  const encoder = new TextEncoder();
  const drain = new AnswerDrain(handle, options.drainBeforeShutdown);
  const reader = handle.tokens.getReader();
  const trimmer = new StopTrimmer(options.stops);
  const id = `${shape.idPrefix}-${handle.jobId.slice(0, RESPONSE_ID_CHARS)}`;
  const created = Math.floor(Date.now() / MS_PER_S);
  // OpenAI's convention when usage is asked for: `usage: null` on every chunk but the last.
  const usageField = options.includeUsage ? { usage: null } : {};
  const write = answerJson(options);
  // Every chunk is an `OpenAiStreamChunk` (`CompletionChunk`, `ChatCompletionChunk`: the types
  // clients import), built here by that type so that the two cannot drift apart.
  const chunk = (
    choices: OpenAiStreamChunk["choices"][number][],
    extra?: VeriflowChunkFields & { usage?: WireUsage },
  ) => {
    const value: StreamChunkBody = {
      id,
      object: shape.chunkObject,
      created,
      model: handle.model.cid,
      choices,
      ...usageField,
      ...extra,
    };
    return encoder.encode(`data: ${write(value)}\n\n`);
  };
  let opened = shape.openingChoice === undefined;
  /** The stream has ended: closed after its last event, or cancelled by its reader. */
  let closed = false;
  let queue = options.queue;
  /** The read in progress across a `queued` comment. */
  let pending: Promise<ReadableStreamReadResult<StreamedToken>> | undefined;
  let sent = 0;
  /**
   * The job's tokens whose text was sent (a job whose tokens were lost says how many reached
   * it): tokens the trimmer holds back as a possible stop's start are read, not sent.
   */
  let released = 0;
  /**
   * Output positions `0 … held−1` whose text was sent: what a cancel says the client holds
   * (`cancelHolding`), so it is charged for those, not for tokens held back (review s80 bill, F2).
   */
  let held = 0;
  /**
   * `held` as of the last event the connection took: with `highWaterMark: 0` the body is pulled
   * again only once `Deno.serve` has handed the previous event to its send buffer (up to 64 KiB
   * ahead of the socket's writes). When that hand-off fails (the connection is gone), it cancels
   * without pulling again, and that event is not charged (review s80 vbil, F1). Events in its
   * buffer, or written to a socket the client had already closed, are: nothing here can tell.
   */
  let taken = 0;
  /** Characters of text sent so far (logprobs' text offsets). */
  let offset = 0;

  const piece = ({ text, tokens }: TextPiece) => {
    released += tokens.length;
    if (tokens.length > 0) held = tokens[tokens.length - 1].index + 1;
    const logprobs = options.logprobs ? shape.logprobs(tokens, offset) : null;
    offset += text.length;
    return chunk([shape.chunkChoice(text, logprobs, null)]);
  };

  const finish = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    summary: JobSummary,
    readError?: unknown,
  ) => {
    closed = true;
    queue?.close();
    // A job that ran to its end whose tokens did not all come (a slow reader's, evicted) ends
    // with why, not as if whole (review s77 sse, F1).
    const failure = drain.failure(summary) ??
      undeliveredTokensFailure(readError, summary, released);
    if (failure !== undefined) {
      // Mid-stream failures cannot change the status any more; OpenAI clients raise on an
      // `error` member in an event. Its body (its `type` above all: the request's fault, a
      // rate limit or the node's) is the one the same failure gets as a status, so a streaming
      // client can tell as well as any whether sending the request again can help.
      controller.enqueue(encoder.encode(`data: ${JSON.stringify(openAiErrorBody(failure))}\n\n`));
    } else {
      const end = trimmer.finish(summary.finishReason);
      // A job cut off inside a character (length) ends with tokens but no text.
      if (end.piece.text !== "" || (options.logprobs && end.piece.tokens.length > 0)) {
        controller.enqueue(piece(end.piece));
      }
      controller.enqueue(
        chunk(
          [shape.chunkChoice(null, null, openAiFinishReason(summary.finishReason))],
          veriflowFields(summary, end.stop),
        ),
      );
      if (options.includeUsage) controller.enqueue(chunk([], { usage: wireUsage(summary) }));
    }
    controller.enqueue(encoder.encode("data: [DONE]\n\n"));
    controller.close();
    drain.ended();
  };

  const next = async (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (!opened) {
      opened = true;
      controller.enqueue(chunk([shape.openingChoice!()]));
      return;
    }
    // onnxruntime-node computes on the JS thread: give the last event's write a turn of
    // the event loop before the next (blocking) step, or it would leave one step late.
    if (sent > 0 && options.computesOnEventLoop) await yieldToEventLoop();
    // Read until some text is released (the trimmer holds an incomplete character and a
    // possible stop sequence back, and releases nothing without text).
    while (true) {
      let result;
      try {
        // Until the first token, whichever comes first: the token, or the job's place in the
        // queue, sent as a comment (OpenAI clients skip comments; proxies see the stream live).
        if (queue === undefined) result = await reader.read();
        else {
          pending ??= reader.read();
          const next = await readOrQueued(pending, queue);
          if ("position" in next) {
            controller.enqueue(encoder.encode(`: queued ${next.position}\n\n`));
            return;
          }
          pending = undefined;
          queue.close();
          queue = undefined;
          result = next.read;
        }
      } catch (error) {
        finish(controller, await handle.done, error);
        return;
      }
      if (result.done) {
        finish(controller, await handle.done);
        return;
      }
      const text = trimmer.push(result.value);
      if (text === undefined) continue;
      controller.enqueue(piece(text));
      sent++;
      return;
    }
  };

  // While an event waits for the client to read it (the body is pulled only as the connection
  // takes bytes), the client has `idleTimeoutMs` to take it: one that stops reading would
  // otherwise hold its job's slot for as long as it keeps the connection open. Each pull only
  // notes when the wait began; one timer per stream checks the deadline and, when the client
  // read in the meantime, sleeps until the current wait's end (re-arming a timer per event cost
  // ~3 µs of the main thread per token).
  // The same rule, and error, as a stored file's read (`read_slot_body.ts`, `slotHeldBody`), not
  // the same code: a read hands over 16 KiB pieces, few enough to re-arm its timer per piece on
  // timers without a clock (`DrainTimers`), and ends by freeing a slot; here events come per
  // token, so one lazy timer on a clock, and a cut cancels a job. One helper would impose one of
  // the two.
  const timers = options.timers ?? SYSTEM_TIMERS;
  let waitingSince: number | undefined;
  let idleTimer: unknown;
  const stopTimer = () => {
    if (idleTimer !== undefined) timers.clearTimeout(idleTimer);
    idleTimer = undefined;
  };
  const checkIdle = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    idleTimer = undefined;
    if (waitingSince === undefined) return;
    const left = waitingSince + options.idleTimeoutMs - timers.now();
    if (left > 0) {
      idleTimer = timers.setTimeout(() => checkIdle(controller), left);
      return;
    }
    options.stats.idleTimeouts++;
    cancelHolding(handle, reader, held, "the client stopped reading");
    drain.ended();
    const cut = new ClientIdleError(
      `job ${handle.jobId}'s client read nothing of its stream for ${options.idleTimeoutMs} ms ` +
        "(http.clientIdleTimeoutMs): the stream was cut, the job cancelled",
    );
    // Told by the node's log, in its format, and the body closed, not errored: `Deno.serve`
    // prints an errored body's error itself, every reason (an AbortError, `undefined`) included,
    // as a line outside the node's log (not JSON under --log-format json: review s77 vclient,
    // F6, measured on Deno 2.9). The client back from its pause reads why, as a slow reader's
    // client does, and the stream's end; a client that never reads again holds its connection
    // as it would have with an errored body (measured: `Deno.serve` flushes either first).
    options.log?.(`http: ${cut.message}`);
    closed = true;
    controller.enqueue(encoder.encode(`data: ${JSON.stringify(openAiErrorBody(cut))}\n\n`));
    controller.enqueue(encoder.encode("data: [DONE]\n\n"));
    controller.close();
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      waitingSince = undefined;
      taken = held;
      try {
        await next(controller);
      } catch (error) {
        stopTimer();
        drain.ended();
        throw error;
      }
      if (closed) return stopTimer();
      waitingSince = timers.now();
      idleTimer ??= timers.setTimeout(() => checkIdle(controller), options.idleTimeoutMs);
    },
    cancel() {
      // A pull still finishing (its event read, its continuation not run yet) arms no timer.
      closed = true;
      stopTimer();
      queue?.close();
      cancelHolding(handle, reader, taken, "the client went away");
      drain.ended();
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: SSE_HEADERS });
}
