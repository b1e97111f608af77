/**
 * One WebSocket connection of the streaming API (`/v1/stream`) and the jobs it started.
 *
 * One socket carries any number of concurrent jobs, each under the client's own `id`. A
 * `cancel` or the socket closing cancels the socket's jobs, which stops their computation
 * within one step. Tokens are sent as they are produced; when the client reads slower than the
 * model writes, the socket's send buffer is allowed to hold {@link WS_HIGH_WATER_BYTES} before
 * the job stops pulling tokens, so a slow client slows its own jobs instead of growing the
 * node's memory; while other jobs wait for a seat, its jobs do not hold theirs: they run on into
 * the node's bounded memory for unread tokens (`actors/_unread_token_budget.ts`). Every message the session sends, replies to bad frames included, goes through
 * the same watch: a client whose buffer stays over that mark while it reads nothing for
 * `clientIdleTimeoutMs` is cut off (close 1008) and its jobs are cancelled, so it cannot hold
 * job slots forever; one that lets the buffer reach {@link WS_MAX_BUFFERED_BYTES} (it sends
 * frames faster than it reads their answers) is cut off at once, so it cannot grow the node's
 * memory either.
 *
 * A socket that runs no job for {@link STREAM_SOCKET_IDLE_MS} is closed (1000), so idle clients do
 * not keep the node's few socket places (`stream_sockets.ts`). Only an accepted `infer` and a job's
 * end restart that countdown: refused frames and cancels of nothing do not, or a client sending
 * junk every few minutes would keep its place forever (review s75 vhandshake F1).
 *
 * An `error` whose frame names a job still running carries that id as `refused_id`, not `id`:
 * the job's own `done` or `error` is still to come, and each `infer` ends exactly once.
 *
 * A message over `maxRequestBytes` closes the socket with 1009 and a reason naming the limit:
 * the client learns why, where a dropped connection would tell it nothing. The check runs once the
 * message has arrived whole: Deno 2.9 takes no message limit and reads a fragmented message of any
 * size (its 64 MiB limit is per frame) before the session sees it; what bounds that memory is the
 * node's memory guard (`websocket_memory_guard.ts`) and, once the session has closed the socket,
 * the drop after the close's grace.
 *
 * Every close the session sends goes through `closeThenDrop` (`websocket_drop.ts`): a client that
 * does not answer it within `WS_CLOSE_GRACE_MS` is dropped, its `onclose` fires and its place is
 * given back, where before it kept the connection, and its place, for as long as it liked.
 *
 * When the node stops, {@link StreamSession.drain} lets the socket's jobs, running or queued,
 * finish and send their end (summary and receipt) while a new `infer` is refused
 * (`shutting_down`); then it closes the socket with 1001. A client that stops reading meanwhile
 * is cut off by the idle watch as always, so the drain ends when the jobs do. Jobs still running
 * at the drain deadline are cancelled, and each ends with an `error`, `shutting_down`.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { QUEUED_EVENT_REPEAT_MS } from "../protocols/inference_messages.ts";
import type { InferenceHandle, StreamedToken } from "../inference/inference_port.ts";
import { QueuePosition, readOrQueued } from "../inference/queue_position.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import type { ClientIdentity } from "./client_identity.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { yieldToEventLoop } from "./_event_loop.ts";
import {
  INTERNAL_ERROR_MESSAGE,
  isInternalError,
  jobFailureForClient,
  RequestValidationError,
  retryAfterOf,
} from "./http_errors.ts";
import { shutdownError } from "./serve.ts";
import { undeliveredTokensFailure } from "./_undelivered_tokens.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { closeThenDrop } from "./websocket_drop.ts";
import { repeatedJsonKey, repeatedKeyError } from "./repeated_json_key.ts";
import {
  MAX_REQUEST_ID_CHARS,
  parseJsonText,
  parseRequest,
  toGenerationParams,
  WsClientMessageSchema,
} from "./request_schemas.ts";
import {
  doneMessage,
  startMessage,
  tokenMessage,
  type WsClientMessage,
  type WsErrorMessage,
  type WsInferMessage,
  type WsServerMessage,
} from "./stream_protocol.ts";

/**
 * Bytes a socket may have queued for sending before its jobs pause. 1 MiB holds thousands of
 * token messages: never reached by a client that keeps up, small enough that hundreds of stuck
 * clients cost little.
 */
export const WS_HIGH_WATER_BYTES = 1 << 20;
/**
 * Bytes a socket may have queued before the session sends nothing more and cuts the client off
 * (close 1008). Jobs pause at {@link WS_HIGH_WATER_BYTES}, so above it only replies to the
 * client's own frames pile up: a `start` and an end per job, a refusal per bad frame. Another
 * MiB of those is thousands of frames sent without reading one answer, which no reading client
 * does; a client that never reads costs the node this much and no more in the session, plus the
 * kernel's send buffer of its connection, which stays open after the cut-off until the client
 * answers the close or goes: the queued writes hold it, so even the drop after a close's grace
 * could not end it (measured, `tmp/s76/wsdrop/report.md`), and `closeThenDrop` leaves such a socket
 * alone (`STUCK_WRITE_BYTES`). It keeps counting against its client's and the node's sockets
 * (`stream_sockets.ts`) until its `onclose`, which bounds them. Leaving the close out would not
 * free it either: Deno's ping to a client that reads nothing waits behind the unread bytes, and its
 * `onclose` never fired (`tmp/s75/fix_ws2_wim/probe_cutoff.out`), while an honest client would lose
 * the close's reason.
 */
export const WS_MAX_BUFFERED_BYTES = 2 * WS_HIGH_WATER_BYTES;
/** Event-loop turns a job waits for its last message to be written (about 20 µs each). */
const MAX_FLUSH_TURNS = 8;
/** How often a paused job looks at the send buffer again. */
const DRAIN_POLL_MS = 5;
/**
 * How long a drained socket waits for the client's close frame. A client that reads answers in
 * one round trip; one that does not answer within a second is not waited for (the server's own
 * shutdown then drops the connection), so it cannot hold up the node's stop.
 */
const CLOSE_HANDSHAKE_MS = 1_000;

/**
 * How long a socket may run no job (frames that start none do not count) before the node closes it
 * ({@link WS_CLOSE}.normal). Each socket holds one of a few dozen places (`stream_sockets.ts`), and
 * four clients idling on theirs kept every other client out for as long as they liked (review s75
 * verify F1). Two minutes covers a person reading one answer and typing the next prompt on a socket
 * kept open between jobs; a tool that waits longer reconnects, which costs one handshake.
 */
export const STREAM_SOCKET_IDLE_MS = 120_000;

/** WebSocket close codes the session uses (RFC 6455, 7.4.1). */
export const WS_CLOSE = {
  /** The socket's purpose is over: here, it ran no job and sent nothing for a while. */
  normal: 1000,
  /** The client broke a rule of the API: here, it stopped reading its replies. */
  policyViolation: 1008,
  /** A message too big to process. */
  messageTooBig: 1009,
  /** The server is going away: its drain ended the socket's jobs and closed it. */
  goingAway: 1001,
  /** The server failed on one of this socket's messages: that socket ends, never the node. */
  internalError: 1011,
} as const;

/** Why {@link StreamSession.drain} closes a socket (with {@link WS_CLOSE}.goingAway). */
export const SHUTTING_DOWN_REASON = "server shutting down";

/** What the session needs of a socket (a `WebSocket`; tests pass a stand-in). */
export interface SessionSocket {
  /** `WebSocket.OPEN` while messages may be sent. */
  readonly readyState: number;
  /** Bytes queued for sending. */
  readonly bufferedAmount: number;
  /** Send a text frame. */
  send(data: string): void;
  /** Close with a code and reason. */
  close(code?: number, reason?: string): void;
  /** Set by the session: a message arrived. */
  onmessage: ((event: MessageEvent) => void) | null;
  /** Set by the session: the socket closed. */
  onclose: ((event: CloseEvent) => void) | null;
  /** Set by the session: the socket failed. */
  onerror: ((event: Event) => void) | null;
}

/** Options of {@link StreamSession}. */
export interface StreamSessionOptions {
  /** Largest message in bytes (`http.maxRequestBytes`). */
  maxMessageBytes: number;
  /** How long the client may read nothing while a job waits to send (`http.clientIdleTimeoutMs`). */
  idleTimeoutMs: number;
  /** Who is on the other end (for per-key limits and logs). */
  client: ClientIdentity;
  /** Where refusals and idle cut-offs are counted. */
  stats: EdgeStats;
  /** The clock and timers of the idle cut-off; default the system's. */
  timers?: ConnectionTimers;
  /**
   * How long the socket may run no job and send no frame before it is closed; default
   * {@link STREAM_SOCKET_IDLE_MS}.
   */
  socketIdleMs?: number;
  /**
   * Where an untyped error a frame ran into (a bug, answered `internal_error` without its
   * message) is logged, with its stack; nowhere by default.
   */
  log?: (line: string) => void;
}

/** The abort reason of the jobs the drain's deadline cancels (they end with `shutting_down`). */
const DRAIN_DEADLINE = new Error("the drain deadline passed");

/** One WebSocket connection and the jobs it started. */
export class StreamSession {
  #socket: SessionSocket;
  #gateway: InferenceGateway;
  #options: StreamSessionOptions;
  /** Running jobs by client id; aborting one cancels it. */
  #jobs = new Map<string, AbortController>();
  /**
   * The ids of {@link #jobs} that hold a slot: accepted and not waiting in the queue. Only these
   * count for the memory guard: a queued job costs its client nothing to hold.
   */
  #holdingSlot = new Set<string>();
  #encoder = new TextEncoder();
  /** The watch over a send buffer above the high-water mark, while there is one. */
  #overHighWater?: Promise<void>;
  /** Set by {@link drain}: new jobs are refused and the socket closes after the last one. */
  #draining = false;
  /** Resolved when the drain has closed the socket (its last job ended). */
  #drainClosed = Promise.withResolvers<void>();
  #closed = Promise.withResolvers<void>();
  /** The timer that closes the socket once idle, while it has no job. */
  #idleTimer: unknown;

  /**
   * Serve `socket`.
   *
   * @param socket The upgraded socket.
   * @param gateway Where jobs go.
   * @param options Limits and the client's identity.
   */
  constructor(socket: SessionSocket, gateway: InferenceGateway, options: StreamSessionOptions) {
    this.#socket = socket;
    this.#gateway = gateway;
    this.#options = options;
    // A throw in a WebSocket event handler is uncaught, and ends the process: one frame the
    // session fails on ends that session's socket and jobs instead (review s82 dash F0).
    socket.onmessage = (event) => {
      try {
        this.#onMessage(event.data);
      } catch {
        this.#cancelAll();
        this.#close(WS_CLOSE.internalError, "the node could not handle that frame");
      }
    };
    socket.onclose = () => this.#ended();
    socket.onerror = () => this.#ended();
    this.#armIdle();
  }

  get #timers(): ConnectionTimers {
    return this.#options.timers ?? SYSTEM_TIMERS;
  }

  /** (Re)start the idle close's countdown, unless a job runs (its end starts it again). */
  #armIdle(): void {
    this.#stopIdle();
    // Armed while the socket is still connecting too: the session starts before its `open`.
    if (this.#jobs.size > 0 || this.#socket.readyState > WebSocket.OPEN) return;
    const idleMs = this.#options.socketIdleMs ?? STREAM_SOCKET_IDLE_MS;
    this.#idleTimer = this.#timers.setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#jobs.size > 0 || this.#socket.readyState !== WebSocket.OPEN) return;
      this.#close(WS_CLOSE.normal, `no job for ${idleMs} ms (frames that start none do not count)`);
    }, idleMs);
  }

  /** Resolves once the socket has closed (or failed); its jobs are cancelled then. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /**
   * Jobs of the socket running now, each holding a slot; a job only queued is not counted (the
   * memory guard keeps a socket that runs one, at its first check over the limit).
   */
  get running(): number {
    return this.#holdingSlot.size;
  }

  /**
   * Drain the socket for a shutdown: refuse new jobs (`shutting_down`), let the running and
   * queued ones finish and send their end, then close with 1001. Idempotent.
   *
   * @param timeUp Aborted when the drain may last no longer: the jobs still running are
   * cancelled (each client gets an `error`, `shutting_down`: it did not cancel them, and may
   * send them to another node), then the socket closes with 1001 as after a drain.
   * @returns Resolves once the socket has closed, or a second after the session closed it if
   * the client never answers the close.
   */
  async drain(timeUp?: AbortSignal): Promise<void> {
    this.#draining = true;
    const giveUp = () => this.#cancelAll(DRAIN_DEADLINE);
    if (timeUp?.aborted) giveUp();
    else timeUp?.addEventListener("abort", giveUp, { once: true });
    this.#closeIfDrained();
    await Promise.race([this.#drainClosed.promise, this.#closed.promise]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#closed.promise,
      new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_HANDSHAKE_MS)),
    ]);
    clearTimeout(timer);
  }

  #onMessage(data: unknown): void {
    // Frames already received when the session closed the socket start nothing.
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    // No idle restart here: a refused frame or a cancel of nothing would let a client that sends
    // junk every few minutes hold its place forever. Only an accepted `infer` (which stops the
    // countdown while it runs) and a job's end (which starts it again) count.
    if (this.#tooLarge(data)) {
      this.#cancelAll();
      this.#close(
        WS_CLOSE.messageTooBig,
        `message over ${this.#options.maxMessageBytes} bytes (http.maxRequestBytes)`,
      );
      return;
    }
    let message: WsClientMessage;
    let raw: unknown;
    try {
      if (typeof data !== "string") {
        throw new RequestValidationError("invalid_request", "messages must be JSON text frames");
      }
      raw = parseJsonText(data);
      const repeated = repeatedJsonKey(data);
      if (repeated !== undefined) {
        // A repeated `id`: its last copy is not surely the request the client meant.
        if (repeated.length === 1 && repeated[0] === "id") raw = undefined;
        throw repeatedKeyError(repeated, "frame");
      }
      message = parseRequest(WsClientMessageSchema, raw);
    } catch (error) {
      // Attribute the refusal to its request when the frame has a readable id within the limit:
      // one over it is no request's, and echoed it sent back as much as the client put there
      // (70,000 characters outgrew the client's frame limit, review s79 F3).
      const id = (raw as { id?: unknown } | null | undefined)?.id;
      const named = typeof id === "string" && id.length <= MAX_REQUEST_ID_CHARS;
      this.#refuse(named ? id : undefined, error);
      return;
    }
    if (message.type === "cancel") {
      // Unknown or finished ids are ignored: a cancel may cross the job's `done` in flight.
      this.#jobs.get(message.id)?.abort();
      return;
    }
    if (this.#draining) {
      this.#refuse(
        message.id,
        new VeriflowError(
          "shutting_down",
          "the node is shutting down: jobs already running finish, new ones are refused",
        ),
      );
      return;
    }
    if (this.#jobs.has(message.id)) {
      this.#refuse(
        message.id,
        new VeriflowError("duplicate_id", `request id ${message.id} is already running`),
      );
      return;
    }
    const abort = new AbortController();
    this.#jobs.set(message.id, abort);
    // The countdown runs on until the gateway accepts the job (`#run` stops it then): an `infer`
    // it refuses (`unknown_model`, `too_many_jobs`, ...) started nothing, and restarting the
    // countdown for it let a client hold its place forever (review s79 F2). Only an accepted
    // job's end arms a fresh one; after a refusal, one is armed only where none runs (it ran out
    // while the submission was answered, or another job's end found this one pending).
    let accepted = false;
    this.#run(message, abort.signal).then((ran) => accepted = ran).finally(() => {
      this.#jobs.delete(message.id);
      this.#closeIfDrained();
      if (accepted || this.#idleTimer === undefined) this.#armIdle();
    });
  }

  /** Once draining and the last job has sent its end: close with 1001. */
  #closeIfDrained(): void {
    if (!this.#draining || this.#jobs.size > 0) return;
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#close(WS_CLOSE.goingAway, SHUTTING_DOWN_REASON);
    }
    this.#drainClosed.resolve();
  }

  /** Whether a message is over the limit: by its length first, UTF-8 size only when close. */
  #tooLarge(data: unknown): boolean {
    const limit = this.#options.maxMessageBytes;
    if (typeof data === "string") {
      // A UTF-16 code unit is 1 to 3 UTF-8 bytes: only in between is encoding needed.
      if (data.length > limit) return true;
      return data.length * 3 > limit && this.#encoder.encode(data).byteLength > limit;
    }
    if (data instanceof ArrayBuffer) return data.byteLength > limit;
    if (data instanceof Blob) return data.size > limit;
    return false;
  }

  /** Run one `infer`; resolves with whether the gateway accepted it (false: refused). */
  async #run(request: WsInferMessage, signal: AbortSignal): Promise<boolean> {
    const { id } = request;
    // Reported between the start and the first token, and again while unchanged: a client
    // waiting behind a deep queue hears within its idle timeout that the job is alive.
    const queue = new QueuePosition({ repeatMs: QUEUED_EVENT_REPEAT_MS });
    // Holding a slot once accepted and not queued (`onQueued` is never called for a job that
    // starts at once, and with 0 when a queued one gets its slot).
    let accepted = false;
    let waiting = false;
    let ended = false;
    const holdsSlot = () => {
      if (accepted && !waiting && !ended) this.#holdingSlot.add(id);
      else this.#holdingSlot.delete(id);
    };
    const onQueued = (position: number) => {
      queue.update(position);
      waiting = position > 0;
      holdsSlot();
    };
    let handle;
    try {
      // No signal here: a cancel that arrives while the submission is answered cancels the
      // accepted job below, so it ends like any cancelled job (`done`, `cancelled`), not with
      // the submission's abort.
      handle = await this.#gateway.startText({
        model: request.model,
        prompt: request.prompt,
        // `null` is absent (`WsInferMessage`).
        input: request.input ?? undefined,
        params: toGenerationParams(request),
        nonce: request.nonce ?? undefined,
        topLogprobs: request.logprobs ?? undefined,
      }, { client: this.#options.client, via: "ws", onQueued });
    } catch (error) {
      queue.close();
      this.#sendError({ id }, error);
      return false;
    }
    accepted = true;
    this.#stopIdle(); // a job runs now: no idle countdown until it ends
    holdsSlot();
    try {
      await this.#stream(request, handle, queue, signal);
    } finally {
      ended = true;
      holdsSlot();
    }
    return true;
  }

  /** Stream an accepted job's tokens and its end to the client. */
  async #stream(
    request: WsInferMessage,
    handle: InferenceHandle,
    queue: QueuePosition | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const { id } = request;
    const reader = handle.tokens.getReader();
    const onAbort = () => reader.cancel().catch(() => {});
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    this.#send(startMessage(id, handle));
    if (this.#gateway.computesOnEventLoop) await this.#flushed();
    /** The job's tokens read (a job whose tokens were lost says how many reached the client). */
    let read = 0;
    let readError: unknown;
    try {
      let pending: Promise<ReadableStreamReadResult<StreamedToken>> | undefined;
      while (true) {
        let result: ReadableStreamReadResult<StreamedToken>;
        if (queue === undefined) result = await reader.read();
        else {
          pending ??= reader.read();
          const next = await readOrQueued(pending, queue);
          if ("position" in next) {
            this.#send({ type: "queued", id, position: next.position });
            if (this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES) await this.#drained();
            continue;
          }
          pending = undefined;
          queue.close();
          queue = undefined;
          result = next.read;
        }
        const { done, value } = result;
        if (done) break;
        read++;
        this.#send(tokenMessage(id, value, request.logprobs ?? undefined));
        if (this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES) await this.#drained();
        else if (this.#gateway.computesOnEventLoop) await this.#flushed();
      }
    } catch (error) {
      // The stream failed or was cancelled; the summary below says which, unless the job ran to
      // its end and only its tokens were lost (`undeliveredTokensFailure`).
      readError = error;
    } finally {
      queue?.close();
      signal.removeEventListener("abort", onAbort);
    }
    const summary = await handle.done;
    // A job that ran to its end whose tokens did not all come (a slow reader's, evicted) ends
    // with why, not with `done` (review s77 sse, F1).
    const undelivered = undeliveredTokensFailure(readError, summary, read);
    if (undelivered !== undefined) {
      this.#send({ type: "error", id, code: undelivered.code, message: undelivered.message });
    } else if (summary.finishReason === "cancelled" && signal.reason === DRAIN_DEADLINE) {
      // Cut by the drain deadline, not by its client (whose cancel, if it came first, is the
      // abort's reason: that job ends `done`, `cancelled`): told so, as an SSE stream is (not
      // a refusal: the job ran).
      const { code, message } = shutdownError();
      this.#send({ type: "error", id, code, message });
    } else if (summary.finishReason === "error") {
      // As over HTTP: an internal failure's text stays in the node's log (`jobFailureForClient`).
      const { code, message } = jobFailureForClient(
        summary.error?.code ?? "internal_error",
        summary.error?.message ?? "generation failed",
      );
      this.#send({ type: "error", id, code, message });
    } else {
      this.#send(doneMessage(id, summary));
    }
  }

  /**
   * Give the socket a few turns of the event loop to write what was just sent, before the next
   * (blocking) compute step: otherwise a token reaches the client one step late. Bounded, so a
   * client with a full TCP window costs little here; the high-water mark deals with those.
   */
  async #flushed(): Promise<void> {
    // At least one turn: `bufferedAmount` may read 0 before the write has been attempted.
    await yieldToEventLoop();
    for (let i = 1; i < MAX_FLUSH_TURNS && this.#socket.bufferedAmount > 0; i++) {
      await yieldToEventLoop();
    }
  }

  /**
   * Resolves once the send buffer is back under the high-water mark. One watch per socket,
   * started by whichever send left the buffer over the mark, whether a job waits on it or not: a
   * client that reads nothing for the idle timeout is cut off, which cancels every job of the
   * socket.
   */
  #drained(): Promise<void> {
    this.#overHighWater ??= this.#watchBuffer().finally(() => {
      this.#overHighWater = undefined;
    });
    return this.#overHighWater;
  }

  async #watchBuffer(): Promise<void> {
    const timers = this.#timers;
    let buffered = this.#socket.bufferedAmount;
    let idleSince = timers.now();
    while (
      this.#socket.readyState === WebSocket.OPEN &&
      this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES
    ) {
      if (this.#socket.bufferedAmount < buffered) {
        buffered = this.#socket.bufferedAmount;
        idleSince = timers.now();
      } else if (timers.now() - idleSince >= this.#options.idleTimeoutMs) {
        this.#options.stats.idleTimeouts++;
        this.#cutOff(
          `read nothing for ${this.#options.idleTimeoutMs} ms (http.clientIdleTimeoutMs)`,
        );
        return;
      }
      await new Promise<void>((resolve) => timers.setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  /**
   * Send a message, unless the client has left {@link WS_MAX_BUFFERED_BYTES} unread: then it is
   * cut off instead. A send that leaves the buffer over the high-water mark starts the idle watch.
   */
  #send(message: WsServerMessage): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    if (this.#socket.bufferedAmount > WS_MAX_BUFFERED_BYTES) {
      this.#cutOff(`left ${WS_MAX_BUFFERED_BYTES} bytes of replies unread`);
      return;
    }
    this.#socket.send(JSON.stringify(message));
    if (this.#socket.bufferedAmount > WS_HIGH_WATER_BYTES) this.#drained();
  }

  /**
   * Refuse a frame. The refusal carries the frame's `id` when it ends that request; when the id
   * is a running job's, it goes in `refused_id` instead, for that job's own `done` or `error` is
   * still to come and the client must not take the refusal for it.
   */
  #refuse(frameId: string | undefined, error: unknown): void {
    if (frameId === undefined) this.#sendError({}, error);
    else if (this.#jobs.has(frameId)) this.#sendError({ refused_id: frameId }, error);
    else this.#sendError({ id: frameId }, error);
  }

  #sendError(about: Pick<WsErrorMessage, "id" | "refused_id">, error: unknown): void {
    this.#options.stats.countRefusal(error);
    const code = error instanceof VeriflowError ? error.code : "internal_error";
    // An internal error (any 500: untyped, or typed as `model_load_failed` and `actor_crashed`
    // at submission are) keeps its text, which may name files or internals, for the operator's
    // log, as over HTTP (`app.ts`); the client gets the code.
    const internal = isInternalError(error);
    const message = internal ? INTERNAL_ERROR_MESSAGE : (error as Error).message;
    if (internal) {
      const typed = error instanceof VeriflowError ? ` (${error.code})` : "";
      this.#options.log?.(
        `error: internal error${typed} answering a /v1/stream frame: ${
          error instanceof Error ? error.stack ?? `${error.name}: ${error.message}` : String(error)
        }`,
      );
    }
    const retryAfterS = retryAfterOf(error);
    this.#send({
      type: "error",
      ...about,
      code,
      message,
      ...(retryAfterS === undefined ? {} : { retry_after_s: retryAfterS }),
    });
  }

  /**
   * Cancel the socket's jobs and close it for breaking the API's rules (1008, `reason`). The
   * socket is not over until its `onclose` ({@link closed}), which a client that never answers the
   * close does not bring: it is dropped after the close's grace (`websocket_drop.ts`).
   */
  #cutOff(reason: string): void {
    this.#cancelAll();
    this.#close(WS_CLOSE.policyViolation, reason);
  }

  /**
   * Close the socket from this side (nothing is left to count down to an idle close), and drop it
   * if its client has not answered within the grace.
   */
  #close(code: number, reason: string): void {
    this.#stopIdle();
    closeThenDrop(this.#socket, code, reason, this.#timers, { log: this.#options.log });
  }

  #stopIdle(): void {
    this.#timers.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /** Cancel every job of the socket; `reason` is each one's abort reason, unless it had one. */
  #cancelAll(reason?: unknown): void {
    for (const abort of this.#jobs.values()) abort.abort(reason);
  }

  /** The socket closed or failed: its jobs are cancelled; a drain waits for no handshake. */
  #ended(): void {
    this.#stopIdle();
    this.#cancelAll();
    this.#closed.resolve();
  }
}
