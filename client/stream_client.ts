/**
 * A small client for the WebSocket streaming API (`/v1/stream`, see docs/API.md): one socket,
 * any number of concurrent jobs, each a stream of tokens and a promise of its end.
 *
 * @example
 * ```ts ignore
 * using client = await StreamClient.connect("ws://127.0.0.1:8080"); // or call client.close()
 * const job = client.infer({ prompt: "Hello", max_tokens: 16 });
 * for await (const token of job.tokens) Deno.stdout.write(new TextEncoder().encode(token.text));
 * console.log(await job.done); // { finish_reason, usage, timings, receipt? }
 * ```
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { bearerAuthorization } from "./_bearer.ts";
import { redactedUrl } from "./redacted_url.ts";
import { frameProblem } from "./_frame_shape.ts";
import { doneProblem } from "./_done_problem.ts";
import { DEFAULT_MAX_TOKENS, MAX_JOB_TOKENS } from "../protocols/job_token_bounds.ts";
import { QUEUED_EVENT_REPEAT_MS } from "../protocols/queued_repeat.ts";
import { MAX_REQUEST_ID_CHARS } from "../protocols/stream_request_id.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import type {
  WsDoneMessage,
  WsInferMessage,
  WsServerMessage,
  WsStartMessage,
  WsTokenMessage,
} from "../server/stream_protocol.ts";

/** Options of {@link StreamRequestError}: the standard `cause`, and the server's wait. */
export interface StreamRequestErrorOptions extends ErrorOptions {
  /** The server's `retry_after_s`, where it sent one. */
  retryAfterS?: number;
}

/** The server refused or failed a request (`code` is the server's error code). */
export class StreamRequestError extends VeriflowError {
  /**
   * How many seconds the server asked the caller to wait before trying again (its
   * `retry_after_s`, sent with refusals such as `too_many_jobs` and `rate_limited`); absent when
   * it asked for no wait.
   */
  readonly retryAfterS?: number;

  /**
   * Create it.
   *
   * @param code The server's error code.
   * @param message The server's message.
   * @param options `retryAfterS` from the server's `retry_after_s`, and a `cause`.
   */
  constructor(code: string, message: string, options?: StreamRequestErrorOptions) {
    super(code, message, options);
    if (options?.retryAfterS !== undefined) this.retryAfterS = options.retryAfterS;
  }
}

/** What a {@link StreamClosedError} knows beyond its message. */
export interface StreamClosedDetails {
  /** The HTTP status the server refused the upgrade with (401 no API key, 404, 503 starting). */
  httpStatus?: number;
  /** The WebSocket close code the server sent (1009 a message too big, 1008 a policy, …). */
  closeCode?: number;
  /** The close reason the server sent with it. */
  closeReason?: string;
  /**
   * Which wait ran out: the connection (`connect`), or a running job's next message of its own
   * (`idle`, {@link StreamClientOptions.idleTimeoutMs}).
   */
  timeout?: "connect" | "idle";
  /**
   * What was wrong with the frame the client closed the socket over, when it did
   * ({@link StreamProtocolError}): `"a done that counts 10 tokens after 3"`, `"usage is
   * missing"`. It names fields and counts, never the frame's own text.
   */
  protocolError?: string;
  /** The type of that frame (`done`, `error`, …), when it had a known one. */
  frameType?: string;
}

/**
 * The socket closed or failed before the job ended, or the job heard nothing of its own for the
 * idle timeout (`details.timeout: "idle"`; the socket may then stay open for its other jobs).
 */
export class StreamClosedError extends VeriflowError {
  /** What is known beyond the message (see {@link StreamClosedDetails}). */
  readonly details: StreamClosedDetails;

  /**
   * Create it.
   *
   * @param message What happened.
   * @param details The HTTP status, close code and reason, or the timeout, where known.
   */
  constructor(message: string, details: StreamClosedDetails = {}) {
    super("stream_closed", message);
    this.details = details;
  }
}

/** The code of a {@link StreamProtocolError}. */
export const STREAM_PROTOCOL_ERROR = "stream_protocol_error";

/**
 * The server sent what this API never sends (a frame that is not JSON or not a message, one of
 * the wrong shape or over {@link MAX_FRAME_CHARS}, tokens out of order or past the job's bound, a
 * `done` whose count is not the tokens sent): a faulty server, or something that is not a
 * Veriflow node. The client closed the socket, so it is a {@link StreamClosedError} too, but its
 * code, `stream_protocol_error`, tells it from a dropped connection (retry elsewhere) or a close
 * of the caller's own: do not retry the same server blindly. `details.protocolError` says what
 * was wrong, and `details.frameType` the frame's type.
 */
export class StreamProtocolError extends StreamClosedError {
  /** Always {@link STREAM_PROTOCOL_ERROR}. */
  override readonly code: typeof STREAM_PROTOCOL_ERROR = STREAM_PROTOCOL_ERROR;

  /**
   * Create it.
   *
   * @param message What happened, naming the server's URL.
   * @param details What was wrong (`protocolError`) and the frame's type, where known.
   */
  constructor(message: string, details: StreamClosedDetails) {
    super(message, details);
  }
}

/**
 * The URL given to {@link StreamClient.connect} (or {@link streamUrl}) cannot name the API: it
 * does not parse as a URL, or its scheme is not `ws:`, `wss:`, `http:` or `https:`.
 */
export class InvalidStreamUrlError extends VeriflowError {
  /**
   * Create it.
   *
   * @param message What is wrong with the URL.
   * @param options The parser's error as `cause`, where there is one.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_url", message, options);
  }
}

/** An `infer` request; `id` is chosen by the client when absent. */
export type InferRequest = Omit<WsInferMessage, "type" | "id"> & { id?: string };

/** Options of {@link StreamClient.infer}: how the job's progress is reported, not what it is. */
export interface InferOptions {
  /**
   * Called while the job waits for a slot (on the node or on the worker it forwarded the job
   * to), with its place in the queue (1: next): when it is queued, when the place changes, and
   * every 10 s while it does not (the server's `queued` message). An exception it throws is
   * reported as an event listener's is (`reportError`: the global `error` event, which ends a
   * Deno process unless a listener calls `preventDefault()`), and the job goes on.
   */
  onQueued?: (position: number) => void;
  /**
   * Aborting it sends the node `cancel` and fails the job at once with the signal's reason (as
   * `fetch` does), without waiting for the node's `done`, which a wedged node never sends: so
   * `AbortSignal.timeout(ms)` bounds a job. The socket and its other jobs go on; the node's late
   * tokens and `done` for the job are dropped, and its id stays taken until they come (a job
   * started under it meanwhile fails with `duplicate_id`, as the node would refuse it). Already
   * aborted, the job is not sent: it fails at once with the signal's reason.
   */
  signal?: AbortSignal;
}

/** One job started on the socket. */
export interface StreamJob {
  /** The request id on this socket. */
  id: string;
  /** Resolves with the server's `start` (job id, model, execution provider). */
  start: Promise<WsStartMessage>;
  /**
   * Tokens as they arrive. If the job fails ({@link StreamRequestError}) or its socket closes
   * ({@link StreamClosedError}), the tokens that arrived before still come first; then the
   * stream errors with the error `done` rejects with.
   */
  tokens: ReadableStream<WsTokenMessage>;
  /**
   * Resolves with `done` (also after a cancel: `finish_reason: "cancelled"`). Its `job_id` is the
   * one `start` gave, and its `usage.completion_tokens` the number of tokens that came (after the
   * client sent `cancel`, it may count a few more the node computed and never sent, never more
   * than the job's `max_tokens`): a `done` that counts otherwise (an answer cut short on its way),
   * names another job, or contradicts its `start`'s `prompt_tokens`, rejects with a
   * {@link StreamProtocolError}, as a second `start` for the job does.
   */
  done: Promise<WsDoneMessage>;
  /** Ask the server to cancel the job; nothing once it has ended (its id may run another job). */
  cancel(): void;
}

/** Options of {@link StreamClient.connect}. */
export interface StreamClientOptions {
  /**
   * Aborting it closes the socket (and so cancels its jobs on the server); while connecting, the
   * connection is given up and `connect` rejects with the signal's reason (at once if it is
   * already aborted).
   */
  signal?: AbortSignal;
  /**
   * The node's API key, sent as `Authorization: Bearer` in the handshake (not from browsers). A
   * key a header cannot carry (a space, a line break, a letter past ASCII) rejects `connect` with
   * a `TypeError` that does not show it.
   */
  apiKey?: string;
  /**
   * How long the handshake may take before `connect` gives up (default
   * {@link DEFAULT_STREAM_CONNECT_TIMEOUT_MS}; 0 or `Infinity`: no limit; more than
   * {@link MAX_STREAM_TIMEOUT_MS} counts as that): something that accepts connections but never
   * answers (a stopped or wedged node) would otherwise hold it forever. `connect` rejects a
   * negative or NaN value with a `RangeError`.
   */
  connectTimeoutMs?: number;
  /**
   * How long a running job may hear nothing of its own (no `start`, `queued` or `token` for it;
   * another job's frames do not count) before it fails with {@link StreamClosedError}
   * (`details.timeout: "idle"`) and the client sends the node `cancel` for it; the socket and its
   * other jobs go on. When every running job has been silent that long, the node itself is taken
   * for gone: they all fail so, and the socket is closed (default
   * {@link DEFAULT_STREAM_IDLE_TIMEOUT_MS}; 0 or `Infinity`: wait forever; more than
   * {@link MAX_STREAM_TIMEOUT_MS} counts as that). The server sends a job's tokens as they come,
   * and a queued job's place every 10 s (`queued`), so a long silence means a stopped, wedged
   * or overloaded node or worker, not a long queue. While a job's last frame was `queued`, its
   * silence is measured against {@link QUEUED_IDLE_FLOOR_MS} (15 s) at least, so a shorter value
   * does not cancel an honest queued job before the node's next repeat. `connect` rejects a
   * negative or NaN value with a `RangeError`.
   */
  idleTimeoutMs?: number;
  /**
   * How long `closed` waits, after the client closed the socket ({@link StreamClient.close}, the
   * idle timeout, a protocol error), for the node to answer the close before it resolves anyway
   * (default {@link DEFAULT_STREAM_CLOSE_TIMEOUT_MS}; 0 or `Infinity`: until the node answers;
   * more than {@link MAX_STREAM_TIMEOUT_MS} counts as that). It cannot end the connection: see
   * {@link StreamClient.close}. `connect` rejects a negative or NaN value with a `RangeError`.
   */
  closeTimeoutMs?: number;
  /**
   * The clock and timers the connect, idle and close timeouts run on (default: `performance.now`
   * and the global `setTimeout`): a test or a simulation passes its own and moves time itself
   * instead of waiting for it.
   */
  timers?: StreamClientTimers;
}

/**
 * A monotonic clock in milliseconds and one-shot timers on it: what
 * {@link StreamClientOptions.timers} takes.
 */
export type StreamClientTimers = ConnectionTimers;

/** Default of {@link StreamClientOptions.connectTimeoutMs}. */
export const DEFAULT_STREAM_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Default of {@link StreamClientOptions.idleTimeoutMs}: two minutes. A job waiting in its
 * model's queue is not silence (the server repeats `queued` every 10 s), so this is long enough
 * for a slow step of a busy node and short enough that a wedged one does not hold a client for
 * good.
 */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 120_000;
/**
 * Default of {@link StreamClientOptions.closeTimeoutMs}: a live node answers a close within a
 * round trip, and a busy one within a second or two; past this it is not coming.
 *
 * @example
 * ```ts ignore
 * const client = await StreamClient.connect(url, { closeTimeoutMs: 2 * DEFAULT_STREAM_CLOSE_TIMEOUT_MS });
 * ```
 */
export const DEFAULT_STREAM_CLOSE_TIMEOUT_MS = 5_000;
/**
 * The longest frame the client takes, in characters (64 Ki): a longer one is a protocol error,
 * refused before it is parsed. The longest frame a node sends is a `token` with 20
 * `top_logprobs`: 21 texts of 256 bytes, each byte escaped to six characters, still fit. A
 * `done` with its receipt is a few KiB (4 stop sequences of 64 characters at most), an `error`'s
 * message at most a few KiB (a worker's, relayed, is cut to 1,024 characters). Without a bound,
 * unread tokens would hold up to `max_tokens` frames of up to 64 MiB each (Deno's message
 * limit): GiBs; and one `error` would carry a 64 MiB message to the caller's logs.
 *
 * @example
 * ```ts ignore
 * // A job's unread tokens hold at most this many characters.
 * const most = maxTokens * MAX_FRAME_CHARS;
 * ```
 */
export const MAX_FRAME_CHARS = 64 * 1024;
/**
 * The longest `token` frame the client takes: {@link MAX_FRAME_CHARS}, which now bounds every
 * frame.
 *
 * @deprecated Use {@link MAX_FRAME_CHARS}.
 */
export const MAX_TOKEN_FRAME_CHARS: number = MAX_FRAME_CHARS;
/**
 * The longest finite {@link StreamClientOptions.connectTimeoutMs},
 * {@link StreamClientOptions.idleTimeoutMs} and {@link StreamClientOptions.closeTimeoutMs}:
 * 2^31−1 ms (about 24.8 days), the longest delay `setTimeout` keeps. A longer one overflows and
 * fires after 1 ms, so it is cut to this.
 */
export const MAX_STREAM_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The shortest silence after which a job whose last frame was `queued` is taken for stalled,
 * whatever {@link StreamClientOptions.idleTimeoutMs} says: the node is silent by design until it
 * repeats the place ({@link QUEUED_EVENT_REPEAT_MS}), and half a repeat more lets a busy node's
 * event loop or a slow link deliver the repeat late without an honest queued job being cancelled
 * (review s77 vclient, F5). A longer idle timeout applies as it is.
 */
export const QUEUED_IDLE_FLOOR_MS: number = QUEUED_EVENT_REPEAT_MS * 3 / 2;

interface PendingJob {
  start: PromiseWithResolvers<WsStartMessage>;
  done: PromiseWithResolvers<WsDoneMessage>;
  tokens: ReadableStreamDefaultController<WsTokenMessage>;
  /** How the job failed while tokens it received were unread: the stream errors after them. */
  failure?: Error;
  /** Whether its `start` has come: a `token` or `done` before it is not this API's. */
  started?: boolean;
  /** Its `start`'s `job_id`: its `done` must name the same. */
  jobId?: string;
  /** Whether the client sent `cancel` for it: only then may a `cancelled` done count more. */
  cancelSent?: boolean;
  /** When it last heard a frame of its own (its clock's time): its silence is measured from it. */
  heardAt: number;
  onQueued?: (position: number) => void;
  /**
   * The most tokens the node sends for the job, and what says so ({@link jobTokenBound}): a
   * server that sends more is faulty.
   */
  maxTokens: TokenBound;
  /** Tokens received so far: the index the next must carry. */
  received: number;
  /**
   * Its place in the queue when its last frame was `queued` (undefined once a token came): its
   * silence is then measured against {@link QUEUED_IDLE_FLOOR_MS} at least, and named in the error.
   */
  queuedPlace?: number;
  /** The prompt's tokens as its `start` counted them: the `done` must bill the same. */
  promptTokens?: number;
}

/** The API's path, appended to a URL given without one. */
export const STREAM_PATH = "/v1/stream";

/**
 * Paths that mean the API's: none, and the forms an OpenAI user writes, whose `baseURL` ends in
 * `/v1` (README), or a trailing slash the node's router does not take (review s77, F6). Any
 * other path is the caller's (a proxy's prefix) and is kept.
 */
const STREAM_PATH_FORMS: ReadonlySet<string> = new Set(["", "/", "/v1", "/v1/", `${STREAM_PATH}/`]);

/**
 * What to give instead of a URL the node answers 404: the one place this advice is written (the
 * CLI prints the client's message as it is).
 */
const BASE_URL_HINT = `give the node's base address, like ws://HOST:PORT: ${STREAM_PATH} is added`;

/**
 * The WebSocket URL of the API for a base URL: `http(s)` becomes `ws(s)`, and a URL without a
 * path, or with `/v1` or `/v1/` (OpenAI's base URL) or `/v1/stream/`, gets {@link STREAM_PATH}.
 *
 * @throws {InvalidStreamUrlError} `url` is not a URL, or not a `ws`, `wss`, `http` or `https` one.
 */
export function streamUrl(url: string | URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new InvalidStreamUrlError(
      `${
        JSON.stringify(redactedUrl(String(url)))
      } is not a URL (give the node's address, like ws://HOST:PORT)`,
      { cause: redactedCause(error) },
    );
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  else if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new InvalidStreamUrlError(
      `${
        redactedUrl(parsed)
      } is not a ws, wss, http or https URL (the streaming API is a WebSocket)`,
    );
  }
  if (STREAM_PATH_FORMS.has(parsed.pathname)) parsed.pathname = STREAM_PATH;
  return parsed;
}

/** A connection to `/v1/stream`. */
export class StreamClient {
  #socket: WebSocket;
  /** The URL as messages name it: without the username and password it may carry. */
  #url: string;
  #jobs = new Map<string, PendingJob>();
  /**
   * Ids of jobs the caller aborted whose end (`done` or `error`) the node has not sent yet: their
   * late frames are dropped, and the node would still refuse a new job under the id.
   */
  #abandoned = new Set<string>();
  #nextId = 0;
  /**
   * Why the client itself closed the socket (`close()`, the idle timeout, a protocol error), once
   * it has: what the jobs it fails, and any started later, are told.
   */
  #closedBy: { message: string; details?: StreamClosedDetails } | undefined;
  /** The idle watch's delay; undefined: no watch. */
  #idleTimeoutMs: number | undefined;
  #idleTimer: unknown;
  /** How long `closed` waits for the node to answer the client's close; undefined: for good. */
  #closeTimeoutMs: number | undefined;
  #closeTimer: unknown;
  /** The clock the idle and close timeouts run on. */
  #timers: StreamClientTimers;
  #detach: () => void = () => {};
  /** How the server closed the socket, for jobs started after (their error says it too). */
  #closeDetails: StreamClosedDetails | undefined;
  #closeMessage = "the socket is closed";
  /**
   * Resolved once the close event has been handled: its jobs failed with its code and reason.
   * Deno's socket reads CLOSED a step before that event (it answers the server's close frame
   * first), and nothing tells the code and reason meanwhile.
   */
  #closeHandled = Promise.withResolvers<void>();

  private constructor(
    socket: WebSocket,
    url: URL,
    timeouts: { idleTimeoutMs: number | undefined; closeTimeoutMs: number | undefined },
    timers: StreamClientTimers,
  ) {
    this.#socket = socket;
    this.#timers = timers;
    this.#url = redactedUrl(url);
    this.#idleTimeoutMs = timeouts.idleTimeoutMs;
    this.#closeTimeoutMs = timeouts.closeTimeoutMs;
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = (event) => {
      this.#stopIdleTimer();
      this.#timers.clearTimeout(this.#closeTimer);
      this.#detach();
      // Jobs started from now on never reached the node: their error says so, not "ended".
      this.#closeMessage = closedMessage(event, "not_sent");
      this.#closeDetails = { closeCode: event.code, closeReason: event.reason };
      this.#failAll(closedMessage(event, "running"), this.#closeDetails);
      this.#closeHandled.resolve();
    };
  }

  /**
   * Open a connection; resolves once the socket is open.
   *
   * Every failure is a rejection, never a synchronous throw.
   *
   * @throws {InvalidStreamUrlError} `url` is not a URL, or not a `ws`, `wss`, `http` or `https`
   * one (code `invalid_url`).
   * @throws {StreamClosedError} the node refused the upgrade (`details.httpStatus`: 401 without
   * the API key, 404 not the API's path, 503 starting), nothing listens there, or nothing
   * answered within the connect timeout (`details.timeout: "connect"`).
   * @throws {RangeError} `connectTimeoutMs`, `idleTimeoutMs` or `closeTimeoutMs` is negative or
   * NaN.
   */
  static connect(url: string | URL, options?: StreamClientOptions): Promise<StreamClient> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let target: URL;
    let socket: WebSocket;
    let connectTimeoutMs: number | undefined;
    let idleTimeoutMs: number | undefined;
    let closeTimeoutMs: number | undefined;
    try {
      connectTimeoutMs = timerDelay(
        "connectTimeoutMs",
        options?.connectTimeoutMs ?? DEFAULT_STREAM_CONNECT_TIMEOUT_MS,
      );
      idleTimeoutMs = timerDelay(
        "idleTimeoutMs",
        options?.idleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS,
      );
      closeTimeoutMs = timerDelay(
        "closeTimeoutMs",
        options?.closeTimeoutMs ?? DEFAULT_STREAM_CLOSE_TIMEOUT_MS,
      );
      target = streamUrl(url);
      socket = options?.apiKey === undefined ? new WebSocket(target) : new WebSocket(
        target,
        // Deno's WebSocket takes handshake headers; the DOM typings do not know the option.
        { headers: { authorization: bearerAuthorization(options.apiKey) } } as unknown as string[],
      );
    } catch (error) {
      // A promise API rejects, so one `.catch` sees every failure. The constructor throws a
      // SyntaxError DOMException for a URL streamUrl let through (one with a fragment, say).
      const badUrl = error instanceof DOMException && error.name === "SyntaxError";
      return Promise.reject(
        badUrl
          ? new InvalidStreamUrlError(
            `cannot open a WebSocket to ${redactedUrl(String(url))}: ${redactedUrl(error.message)}`,
            { cause: redactedCause(error) },
          )
          : error,
      );
    }
    const timers = options?.timers ?? SYSTEM_TIMERS;
    const client = new StreamClient(socket, target, { idleTimeoutMs, closeTimeoutMs }, timers);
    const shown = client.#url;
    const { promise, resolve, reject } = Promise.withResolvers<StreamClient>();
    const limit = connectTimeoutMs;
    const timer = limit === undefined ? undefined : timers.setTimeout(() => {
      reject(
        new StreamClosedError(
          `no answer from ${shown} within ${seconds(limit)}: something accepts ` +
            `connections there but does not answer (a stopped, wedged or overloaded node, or ` +
            `another program); check the address and the node's log`,
          { timeout: "connect" },
        ),
      );
      socket.close();
    }, limit);
    const onAbort = () => {
      reject(signal!.reason);
      client.close();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    client.#detach = () => signal?.removeEventListener("abort", onAbort);
    // Settled: the timer is moot; a connection that failed needs no abort listener either.
    promise.then(() => timers.clearTimeout(timer), () => {
      timers.clearTimeout(timer);
      client.#detach();
    });
    socket.onopen = () => resolve(client);
    socket.onerror = (event) => {
      // Deno's text names no URL today; redacted in case a version does.
      const detail = redactedUrl(errorEventMessage(event));
      const status = /invalid status code:?\s*(\d{3})/i.exec(detail)?.[1];
      // Not the API's path: the one mistake the caller can fix from the message alone.
      const hint = status === "404" ? ` (${BASE_URL_HINT})` : "";
      reject(
        new StreamClosedError(
          `cannot connect to ${shown}${detail === "" ? "" : `: ${detail}`}${hint}`,
          status === undefined ? {} : { httpStatus: Number(status) },
        ),
      );
    };
    return promise;
  }

  /**
   * Start a job. It never throws: each failure is a job whose `start` and `done` reject and
   * whose `tokens` error with it.
   *
   * On a socket that is closed or closing, the job fails at once with
   * {@link StreamClosedError}: nothing would ever answer it (while the server's close is still on
   * its way, as soon as it arrives, so that the error carries its code and reason). A `request.id` of a job still
   * running on this socket fails the new job at once with a {@link StreamRequestError} of code
   * `duplicate_id` naming the id (the code the server refuses such a frame with); nothing is
   * sent, the running job goes on, and the failed job's `cancel` does nothing to it. A request
   * that cannot go on the wire (an `id` that is not a string, or one over 128 characters,
   * `MAX_REQUEST_ID_CHARS`, either of which the server could not name in its answer; a value JSON
   * cannot encode, such as a BigInt) fails the job at once with a
   * {@link StreamRequestError} of code `invalid_request`; nothing is sent. So does an
   * `options.signal` already aborted, with the signal's reason; aborted later, it cancels the job.
   *
   * The client reads the socket as fast as the server sends, so a job's tokens that the caller
   * has not read yet wait in memory, up to the job's `max_tokens` (the node's default, 64, when
   * the request gives none or `null`; at most 4,096, the node's most), each frame at most
   * {@link MAX_FRAME_CHARS}: the WebSocket API has no way to stop reading, and so the node's flow
   * control, which pauses a job whose client reads slowly, never sees this client slow down. A
   * server that sends more tokens than that fails the job with a {@link StreamProtocolError}.
   * Bound what a slow reader holds with `max_tokens`, or `cancel` a job it has fallen behind on.
   */
  infer(request: InferRequest, options: InferOptions = {}): StreamJob {
    // A generated id skips those the caller chose for jobs still running.
    let id = request.id;
    if (id !== undefined && typeof id !== "string") {
      // A JavaScript caller's: the server's refusal could not name it, so the job would wait
      // for the idle timeout and then blame the node.
      return failedJob(
        String(id),
        new StreamRequestError(
          "invalid_request",
          `request id ${String(id)} is not a string: give each job a string id, or leave id ` +
            `out and the client picks one`,
        ),
      );
    }
    if (id !== undefined && id.length > MAX_REQUEST_ID_CHARS) {
      // The node refuses it without naming it (it is no request's), so the job would wait for
      // the idle timeout and then blame the node (review s79 F3).
      return failedJob(
        id,
        new StreamRequestError(
          "invalid_request",
          `request id of ${id.length} characters is over the node's limit of ` +
            `${MAX_REQUEST_ID_CHARS}: give a shorter id, or leave id out and the client picks one`,
        ),
      );
    }
    while (id === undefined || (request.id === undefined && this.#taken(id))) {
      id = `r${++this.#nextId}`;
    }
    if (this.#taken(id)) {
      return failedJob(
        id,
        new StreamRequestError(
          "duplicate_id",
          `request id ${JSON.stringify(id)} is already running on this socket: give each ` +
            `running job its own id, or leave id out and the client picks one`,
        ),
      );
    }
    const signal = options.signal;
    if (signal?.aborted) return failedJob(id, signal.reason);
    if (this.#socket.readyState !== WebSocket.OPEN) {
      const failure = () => this.#closedError(this.#closeMessage, this.#closeDetails);
      // The server's close is on its way: the job fails with its code and reason (a 1001 says
      // the node is stopping: go to another), as soon as they are known.
      if (this.#closedBy === undefined && this.#closeDetails === undefined) {
        return failingJob(id, this.#closeHandled.promise.then(failure));
      }
      return failedJob(id, failure());
    }
    // Encoded before the job is registered: a request that cannot be sent is no running job
    // (it would hold its id and keep the idle watch armed until that closed the socket).
    let frame: string;
    try {
      frame = JSON.stringify({ ...request, type: "infer", id });
    } catch (error) {
      return failedJob(
        id,
        new StreamRequestError(
          "invalid_request",
          `the request cannot be sent as JSON: ${(error as Error).message} (give numbers as ` +
            `numbers, text as strings)`,
          { cause: error },
        ),
      );
    }
    let tokens!: ReadableStreamDefaultController<WsTokenMessage>;
    const stream = new ReadableStream<WsTokenMessage>({
      start: (controller) => {
        tokens = controller;
      },
      // With a high-water mark of 0, a pull means a read found no token left: the tokens that
      // came before the job's failure have all been read, and the failure is next.
      pull: (controller) => {
        if (job.failure !== undefined) controller.error(job.failure);
      },
      cancel: () => cancel(),
    }, { highWaterMark: 0 });
    const job: PendingJob = {
      start: Promise.withResolvers(),
      done: Promise.withResolvers(),
      tokens,
      onQueued: options.onQueued,
      maxTokens: jobTokenBound(request.max_tokens),
      received: 0,
      heardAt: this.#timers.now(),
    };
    // Only while this job runs: once it has ended, its id may name a later job of the caller's,
    // which a cancel meant for this one must not reach.
    const cancel = () => {
      if (this.#jobs.get(id) !== job) return;
      job.cancelSent = true;
      this.#send({ type: "cancel", id });
    };
    // The job ends here and now, as `fetch` ends on abort: a wedged node would never send the
    // `done` that `cancel` asks for.
    const abort = () => {
      if (this.#jobs.get(id) === job) this.#abandon(id, job, signal!.reason);
    };
    // Callers that only read tokens must not see unhandled rejections from the promises.
    job.start.promise.catch(() => {});
    job.done.promise.catch(() => {});
    if (signal !== undefined) {
      // Held only while the job runs: a long-lived signal must not keep every ended job alive.
      signal.addEventListener("abort", abort, { once: true });
      const release = () => signal.removeEventListener("abort", abort);
      job.done.promise.then(release, release);
    }
    this.#jobs.set(id, job);
    this.#startIdleTimer();
    this.#socket.send(frame); // open: checked above, and nothing has run since
    return {
      id,
      start: job.start.promise,
      tokens: stream,
      done: job.done.promise,
      cancel,
    };
  }

  /**
   * Close the socket; the server cancels any job still running. Those jobs fail at once with
   * {@link StreamClosedError} (`the client closed the socket`): they do not wait for the server
   * to answer the close, which a stopped or wedged node never does.
   *
   * Limit: Deno's `WebSocket` (2.9) waits for the node's answer with no time limit and has no
   * way to drop the connection (no `unref`; `WebSocketStream` waits the same), so a node that
   * never answers keeps the connection, and with it the process, alive until the node answers,
   * its TCP connection ends or the program calls `Deno.exit`. `closed` resolves after
   * {@link StreamClientOptions.closeTimeoutMs} anyway, so a program can tell that case and exit.
   *
   * @example
   * ```ts ignore
   * const client = await StreamClient.connect("ws://127.0.0.1:8080");
   * client.close();
   * await client.closed; // the node answered, or closeTimeoutMs (5 s) passed without it
   * ```
   */
  close(): void {
    this.#closeSocket({ message: "the client closed the socket" });
  }

  /**
   * {@link StreamClient.close}, for `using`: a client held with
   * `using client = await StreamClient.connect(url)` closes when its block ends, however it
   * ends (a `throw`, a `return`, a `break` out of a job's tokens), so no socket is left open to
   * keep the process alive, except one whose node never answers the close (see `close`: Deno
   * cannot drop that connection; `closed` resolves after `closeTimeoutMs` all the same).
   * Synchronous, as `close` is: it does not wait for the node's answer.
   *
   * @example
   * ```ts ignore
   * {
   *   using client = await StreamClient.connect("ws://127.0.0.1:8080");
   *   console.log(await client.infer({ prompt: "Hi", max_tokens: 4 }).done);
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Resolves when the socket has closed and its jobs have failed with why (a job started after
   * then fails at once, with the server's close code and reason when it closed the socket); or,
   * after the client closed it, once {@link StreamClientOptions.closeTimeoutMs} has passed
   * without the node's answer (the connection may then still be open: see `close`).
   *
   * @example
   * ```ts ignore
   * const client = await StreamClient.connect("ws://127.0.0.1:8080");
   * client.closed.then(() => console.log("closed"));
   * ```
   */
  get closed(): Promise<void> {
    return this.#closeHandled.promise;
  }

  /** Whether job id `id` is in use on the socket: running, or aborted and not yet ended there. */
  #taken(id: string): boolean {
    return this.#jobs.has(id) || this.#abandoned.has(id);
  }

  #send(message: unknown): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #onMessage(data: unknown): void {
    if (typeof data !== "string") return;
    // Before parsing: a 30 MB frame costs nothing more than its refusal.
    if (data.length > MAX_FRAME_CHARS) {
      return this.#protocolError(
        `a frame of ${data.length} characters, over the client's limit of ${MAX_FRAME_CHARS} ` +
          `characters (MAX_FRAME_CHARS)`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return this.#protocolError("a frame that is not JSON");
    }
    // `null`, a number or an array is JSON too, and reading `id` off `null` would throw here.
    if (!isMessage(parsed)) return this.#protocolError("a frame that is not a message object");
    const message = parsed;
    // Checked whichever job it names, an ended one's too: a server that sends malformed frames
    // is not to be believed further.
    const problem = frameProblem(message);
    if (problem !== undefined) {
      const article = message.type === "error" ? "an" : "a";
      return this.#protocolError(`${article} ${message.type} frame whose ${problem}`, message.type);
    }
    // An `error` without `id` ends no job: a frame the server could not attribute, or one it
    // refused while the job it named runs on (`refused_id`); this client sends neither.
    const job = message.id === undefined ? undefined : this.#jobs.get(message.id);
    if (!job) {
      // An aborted job's end: the node has let its id go.
      if ((message.type === "done" || message.type === "error") && message.id !== undefined) {
        this.#abandoned.delete(message.id);
      }
      return;
    }
    // Every `token` and `done` of a job follows its `start`: a server that ends a job it never
    // started would leave `start` waiting for good.
    if ((message.type === "token" || message.type === "done") && !job.started) {
      return this.#protocolError(`a ${message.type} frame before its job's start`, message.type);
    }
    // The job's own frame: its silence, which the idle watch measures, ends here.
    job.heardAt = this.#timers.now();
    switch (message.type) {
      case "start":
        // The node sends one per job: a second would replace what the caller was told (job id,
        // prompt count) with what its `done` is then checked against.
        if (job.started) return this.#protocolError("a second start for its job", "start");
        // Its count is the model's tokenizer's, taken as it is: one whose normalizer lengthens
        // text (NFKC) honestly counts more tokens than the prompt has bytes, and the client knows
        // neither the tokenizer nor the model's window to hold it to (review s79 F1). What it
        // holds is that the `done` bills the same count (`doneProblem`).
        job.started = true;
        job.jobId = message.job_id;
        job.promptTokens = message.prompt_tokens;
        job.start.resolve(message);
        break;
      case "queued":
        job.queuedPlace = message.position;
        // The caller's code, outside `settle`: its exception is the caller's to see.
        if (job.onQueued !== undefined) callCaller(job.onQueued, message.position);
        break;
      case "token":
        // The caller's memory is bounded by the job's token bound (see `infer`) times the frame
        // limit, and its text by the order of the tokens: a server that breaks any is not to be
        // believed further.
        if (message.index !== job.received) {
          return this.#protocolError(
            `token ${message.index} out of order (expected ${job.received})`,
            "token",
          );
        }
        if (job.received >= job.maxTokens.most) {
          return this.#protocolError(`more tokens than ${job.maxTokens.what}`, "token");
        }
        job.received++;
        job.queuedPlace = undefined;
        settle(() => job.tokens.enqueue(message));
        break;
      case "done": {
        const problem = doneProblem(message, {
          received: job.received,
          maxTokens: job.maxTokens,
          jobId: job.jobId,
          promptTokens: job.promptTokens,
          cancelSent: job.cancelSent === true,
        });
        if (problem !== undefined) return this.#protocolError(problem, "done");
        this.#jobs.delete(message.id);
        if (this.#jobs.size === 0) this.#stopIdleTimer();
        settle(() => job.tokens.close());
        job.done.resolve(message);
        break;
      }
      case "error": {
        this.#jobs.delete(message.id!);
        if (this.#jobs.size === 0) this.#stopIdleTimer();
        const error = new StreamRequestError(message.code, message.message, {
          retryAfterS: message.retry_after_s,
        });
        failJob(job, error);
        break;
      }
    }
  }

  /**
   * A frame that is not this API's (a proxy's page, a faulty server): every job fails with a
   * {@link StreamProtocolError}, and the socket closes as a protocol error, never an uncaught
   * exception in the caller's process. `what` says what was wrong (never the frame's text, which
   * may hold anything), `frameType` the frame's type where it is known.
   */
  #protocolError(what: string, frameType?: string): void {
    const details: StreamClosedDetails = { protocolError: what };
    if (frameType !== undefined) details.frameType = frameType;
    // 1002 (protocol error) is the server's to send; a client closes with a private code.
    this.#closeSocket(
      { message: `${this.#url} sent ${what}: not a Veriflow /v1/stream`, details },
      { code: 4002, reason: closeReason(`protocol error: ${what}`) },
    );
  }

  /**
   * Watch each running job for silence: one timer for the socket, armed for the soonest job's
   * deadline and re-armed when it fires (no timer churn per token).
   */
  #startIdleTimer(): void {
    const idleTimeoutMs = this.#idleTimeoutMs;
    if (idleTimeoutMs === undefined || this.#idleTimer !== undefined) return;
    this.#idleTimer = this.#timers.setTimeout(() => this.#checkIdle(idleTimeoutMs), idleTimeoutMs);
  }

  /**
   * Fail the jobs that heard nothing of their own for `idleTimeoutMs`: one job's traffic must not
   * hide another's wedged worker (review s77, F3). When every running job is that silent, the
   * node itself is taken for gone: the socket is closed, and the node cancels them all.
   */
  #checkIdle(idleTimeoutMs: number): void {
    this.#idleTimer = undefined;
    const now = this.#timers.now();
    const silent: [string, PendingJob][] = [];
    let soonest = Infinity;
    for (const [id, job] of this.#jobs) {
      const left = job.heardAt + jobIdleLimit(job, idleTimeoutMs) - now;
      if (left <= 0) silent.push([id, job]);
      else soonest = Math.min(soonest, left);
    }
    if (silent.length > 0 && silent.length === this.#jobs.size) {
      const longest = Math.max(...silent.map(([, job]) => jobIdleLimit(job, idleTimeoutMs)));
      this.#closeSocket({
        message: `no message from ${this.#url} for ${seconds(longest)} while a job ran` +
          `${queuedNote(silent)}: the node or its worker may be stopped, wedged or overloaded; ` +
          `check the node (cli.ts status) and its log`,
        details: { timeout: "idle" },
      });
      return;
    }
    for (const [id, job] of silent) {
      this.#abandon(
        id,
        job,
        new StreamClosedError(
          `no message for job ${JSON.stringify(id)} from ${this.#url} for ` +
            `${seconds(jobIdleLimit(job, idleTimeoutMs))}${queuedNote([[id, job]])} while ` +
            `other jobs on the socket went on: its worker may be stopped, wedged or ` +
            `overloaded; the client cancelled it on the node (check the node with cli.ts ` +
            `status, and its log)`,
          { timeout: "idle" },
        ),
      );
    }
    if (this.#jobs.size > 0) {
      this.#idleTimer = this.#timers.setTimeout(() => this.#checkIdle(idleTimeoutMs), soonest);
    }
  }

  /**
   * End a running job here and now with `error`, before the node has ended it (an abort, its
   * silence): the node is sent `cancel`, its late frames for the job are dropped, and its id
   * stays taken until they end (`#abandoned`).
   */
  #abandon(id: string, job: PendingJob, error: unknown): void {
    this.#send({ type: "cancel", id });
    this.#jobs.delete(id);
    this.#abandoned.add(id);
    if (this.#jobs.size === 0) this.#stopIdleTimer();
    failJob(job, error as Error);
  }

  #stopIdleTimer(): void {
    this.#timers.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /**
   * Close the socket from this side, `why` being what its jobs, and any started later, are
   * told (the first reason stays: a `close()` after the idle timeout's does not hide it), with
   * `frame`'s close code and reason when given.
   */
  #closeSocket(
    why: { message: string; details?: StreamClosedDetails },
    frame?: { code: number; reason: string },
  ): void {
    this.#closedBy ??= why;
    this.#stopIdleTimer();
    const closing = this.#socket.readyState !== WebSocket.CLOSED && this.#closeTimer === undefined;
    if (frame === undefined) this.#socket.close();
    else this.#socket.close(frame.code, frame.reason);
    this.#failAll(why.message, why.details);
    // Deno's WebSocket waits for the node's answer with no limit and cannot drop the connection
    // (see `close`): `closed` does not wait past the close timeout with it.
    const limit = this.#closeTimeoutMs;
    if (closing && limit !== undefined) {
      this.#closeTimer = this.#timers.setTimeout(() => this.#closeHandled.resolve(), limit);
    }
  }

  #closedError(reason: string, details?: StreamClosedDetails): StreamClosedError {
    const why = this.#closedBy;
    return why === undefined ? closedError(reason, details) : closedError(why.message, why.details);
  }

  #failAll(reason: string, details?: StreamClosedDetails): void {
    const error = this.#closedError(reason, details);
    for (const job of this.#jobs.values()) failJob(job, error);
    this.#jobs.clear();
  }
}

/**
 * The longest close reason a close frame carries, in UTF-8 bytes: its payload is at most 125
 * bytes, 2 of them the code (RFC 6455, 5.5). `WebSocket.close` throws on a longer one.
 */
const MAX_CLOSE_REASON_BYTES = 123;

/** `text` cut to fit a close frame ({@link MAX_CLOSE_REASON_BYTES}), on a character boundary. */
function closeReason(text: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= MAX_CLOSE_REASON_BYTES) return text;
  const ellipsis = "…";
  let cut = "";
  for (const character of text) {
    const next = cut + character;
    if (encoder.encode(next + ellipsis).length > MAX_CLOSE_REASON_BYTES) break;
    cut = next;
  }
  return cut + ellipsis;
}

/** The error for a closed socket: a {@link StreamProtocolError} when a frame was why. */
function closedError(message: string, details?: StreamClosedDetails): StreamClosedError {
  return details?.protocolError === undefined
    ? new StreamClosedError(message, details)
    : new StreamProtocolError(message, details);
}

/** The most tokens a job may have, and what sets it, as a protocol error names it. */
interface TokenBound {
  most: number;
  what: string;
}

/**
 * How long `job` may hear nothing before it is taken for stalled: `idleTimeoutMs`, and at least
 * {@link QUEUED_IDLE_FLOOR_MS} while its last frame was `queued`.
 */
function jobIdleLimit(job: PendingJob, idleTimeoutMs: number): number {
  return job.queuedPlace === undefined
    ? idleTimeoutMs
    : Math.max(idleTimeoutMs, QUEUED_IDLE_FLOOR_MS);
}

/** The last queue places of the `silent` jobs that were queued, for an idle error ("" if none). */
function queuedNote(silent: readonly [string, PendingJob][]): string {
  const queued = silent.filter(([, job]) => job.queuedPlace !== undefined);
  if (queued.length === 0) return "";
  const places = queued.map(([id, job]) => `job ${JSON.stringify(id)} at place ${job.queuedPlace}`);
  return ` (last told queued: ${places.join(", ")} in its model's queue)`;
}

/**
 * The most tokens the node sends for a job whose request gives `maxTokens`: what the node's edge
 * makes of it (`server/request_schemas.ts`), its default when absent or `null`, capped at its
 * most. A value the node refuses (not a number) starts no job; its default bounds it meanwhile.
 */
function jobTokenBound(maxTokens: unknown): TokenBound {
  if (typeof maxTokens !== "number") {
    return {
      most: DEFAULT_MAX_TOKENS,
      what: `the node's default max_tokens (${DEFAULT_MAX_TOKENS}; the job gave none)`,
    };
  }
  if (maxTokens > MAX_JOB_TOKENS) {
    return {
      most: MAX_JOB_TOKENS,
      what: `the node's most max_tokens (${MAX_JOB_TOKENS}; the job asked for ${maxTokens})`,
    };
  }
  return { most: maxTokens, what: `the job's max_tokens (${maxTokens})` };
}

/**
 * Why the socket closed, with the server's close code and reason when it sent them.
 *
 * @param job `running`: the job was sent and the close cut it short. `not_sent`: `infer` came
 * after the socket had closed (the node closes one that runs no job for 2 minutes, for one), so
 * the job never started and the caller's remedy is a new connection, not a retry of a broken job.
 */
function closedMessage(event: CloseEvent, job: "running" | "not_sent"): string {
  const base = job === "running"
    ? "the socket closed before the job ended"
    : "the socket had closed before this job was sent, so it never started: connect again " +
      "(StreamClient.connect) and send it on the new socket";
  // 1006 (or 0, Deno's code for a connection it dropped itself): no close frame at all. Deno
  // drops one whose message is over its 64 MiB limit that way, with nothing else to tell.
  if (event.code === 0 || event.code === 1006) {
    return `${base}: the connection dropped (close code ${event.code}; a frame over Deno's ` +
      `64 MiB limit is one cause)${event.reason === "" ? "" : `: ${event.reason}`}`;
  }
  // 1005: the close frame carried no code.
  if (event.code === 1005) return event.reason === "" ? base : `${base}: ${event.reason}`;
  return `${base} (code ${event.code}${event.reason === "" ? "" : `: ${event.reason}`})`;
}

/**
 * A parser's error, as a cause that names the URL the way messages do: the URL parser's own
 * quotes the whole text (`Invalid URL: 'wss://me:PASSWORD@…'`), and a logged error prints its
 * cause.
 */
function redactedCause(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(redactedUrl(String(error)));
  const copy = new Error(redactedUrl(error.message));
  copy.name = error.name;
  return copy;
}

/** An error event's message (Deno's says why: "Invalid status code: 401", "tcp connect error"). */
function errorEventMessage(event: Event): string {
  const message = (event as ErrorEvent).message ?? "";
  return message.replace(/^NetworkError: failed to connect to WebSocket: /, "");
}

/**
 * The timer delay for the timeout option `name` set to `ms`: undefined (no timer) for 0 or
 * `Infinity`, at most {@link MAX_STREAM_TIMEOUT_MS} (setTimeout fires a longer one at once).
 *
 * @throws {RangeError} `ms` is negative or NaN.
 */
function timerDelay(name: string, ms: number): number | undefined {
  if (!(ms >= 0)) {
    throw new RangeError(
      `${name} must be 0 or more milliseconds (0 or Infinity: no limit), got ${ms}`,
    );
  }
  if (ms === 0 || ms === Infinity) return undefined;
  return Math.min(ms, MAX_STREAM_TIMEOUT_MS);
}

/** Whether a parsed frame has a message's shape: an object with a string `type`. */
function isMessage(frame: unknown): frame is WsServerMessage {
  return typeof frame === "object" && frame !== null &&
    typeof (frame as { type?: unknown }).type === "string";
}

/** `ms` as a person reads it: "10 s", "0.2 s". */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** A job that failed before it was sent: its promises reject and its tokens error with `error`. */
function failedJob(id: string, error: Error): StreamJob {
  const start = Promise.reject(error);
  const done = Promise.reject(error);
  // As for a sent job: callers that only read tokens must not see unhandled rejections.
  start.catch(() => {});
  done.catch(() => {});
  const tokens = new ReadableStream<WsTokenMessage>({
    start: (controller) => controller.error(error),
  });
  return { id, start, tokens, done, cancel: () => {} };
}

/**
 * A job that fails, unsent, once `failure` resolves with its error: as {@link failedJob}, for a
 * reason not known yet.
 */
function failingJob(id: string, failure: Promise<Error>): StreamJob {
  const reject = () => failure.then((error) => Promise.reject(error));
  const start = reject();
  const done = reject();
  start.catch(() => {});
  done.catch(() => {});
  const tokens = new ReadableStream<WsTokenMessage>({
    start: (controller) => void failure.then((error) => controller.error(error)),
  });
  return { id, start, tokens, done, cancel: () => {} };
}

/**
 * Fail a job with `error`: its promises reject, and its tokens error once those it received are
 * read (at once when none waits: the stream's high-water mark is 0, so a negative desired size
 * counts the unread tokens).
 */
function failJob(job: PendingJob, error: Error): void {
  job.start.reject(error);
  if ((job.tokens.desiredSize ?? 0) < 0) job.failure = error;
  else settle(() => job.tokens.error(error));
  job.done.reject(error);
}

/**
 * Call the caller's callback `callback` with `value`; an exception it throws is reported as an
 * event listener's is (`reportError`: the global `error` event, and by default the process's
 * uncaught-error handling), not lost, and the client goes on (review s77, F5).
 */
function callCaller<T>(callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (error) {
    reportError(error);
  }
}

/** Run a stream-controller call that throws once the reader has cancelled; then it is moot. */
function settle(action: () => void): void {
  try {
    action();
  } catch {
    // The reader cancelled the token stream; the job's promises still settle.
  }
}
