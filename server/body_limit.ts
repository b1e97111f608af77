/**
 * Reading a request body within a byte limit (`streams/bounded_body.ts`), so a client cannot
 * make the node buffer more than the limit per request whatever it sends, and within a time
 * limit, so a client that trickles its body (or stops after the headers) cannot hold the
 * request, and the bytes it sent, for longer than that either. The bytes all bodies being read
 * hold at once have a budget too ({@link BodyBudget}): a deadline per body bounds how long each
 * is held, not how many are, and 150 stalled 1 MiB bodies held 200 MiB. Each client holds at most
 * a share of it and reads at most {@link MAX_CLIENT_BODIES} bodies at once, the bodies of clients
 * that already read one hold at most {@link BUSY_BODIES_SHARE} of it together (the rest is kept
 * for a client reading none), and a body that slows below a minimum rate is cut
 * (`body_min_rate.ts`), so stalled bodies refuse their own clients, not every other, and not for
 * the whole deadline.
 *
 * @module
 */
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { type HttpMessage, readBoundedBody } from "../streams/bounded_body.ts";
import type { DrainTimers } from "./serve.ts";
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { minRateBody, UPLOAD_MIN_RATE } from "./body_min_rate.ts";

/** A request body or WebSocket message over `http.maxRequestBytes` (HTTP 413). */
export class RequestTooLargeError extends EdgeError {
  /**
   * Create it.
   *
   * @param what `request body` or `WebSocket message`.
   * @param limit The limit in bytes.
   */
  constructor(what: string, limit: number) {
    super(
      "request_too_large",
      `${what} is larger than ${limit} bytes (the node's http.maxRequestBytes); send less, or ` +
        `ask the operator to raise it`,
    );
  }
}

/**
 * A request body not received whole within `http.requestBodyTimeoutMs`, or (an upload, which
 * may be large) one that sent nothing for that long (HTTP 408).
 */
export class RequestTimeoutError extends EdgeError {
  /**
   * Create it.
   *
   * @param timeoutMs The time limit in milliseconds.
   * @param idle Whether the limit is on a silence (an upload's) rather than the whole body.
   */
  constructor(timeoutMs: number, idle = false) {
    super(
      "request_timeout",
      idle
        ? `no bytes of the request body arrived for ${timeoutMs} ms (the node's ` +
          `http.requestBodyTimeoutMs); keep sending, or ask the operator to raise it`
        : `the request body did not arrive whole within ${timeoutMs} ms (the node's ` +
          `http.requestBodyTimeoutMs); send it at once, or ask the operator to raise it`,
    );
  }
}

/**
 * A request body that broke off before its end: the client closed or reset its connection (or
 * sent a malformed chunk) while the node was reading it (HTTP 400). The client's doing, not the
 * node's: no internal error is logged for it.
 */
export class IncompleteBodyError extends EdgeError {
  /**
   * Create it.
   *
   * @param cause The read's failure, as the HTTP server reported it.
   */
  constructor(cause: unknown) {
    super(
      "incomplete_body",
      "the request body broke off before its end (the connection closed or failed while it " +
        "was being sent); send the request again, whole",
      { cause },
    );
  }
}

/**
 * A request body that does not fit in what the node's bodies being read may hold at once
 * (`http.maxBufferedBodyBytes`), or in its client's share of it ({@link CLIENT_BODY_SHARE}; HTTP
 * 429 with `Retry-After`): other bodies hold it, and it comes back as they are read or fail.
 */
export class TooManyRequestBodiesError extends EdgeError {
  /**
   * Create it.
   *
   * @param maxBytes The budget in bytes.
   * @param clientMaxBytes When it is the client's own share that is full: the share in bytes.
   * @param clientBodies When it is the client's count of bodies at once that is full: the count.
   */
  constructor(maxBytes: number, clientMaxBytes?: number, clientBodies?: number) {
    super(
      "too_many_request_bodies",
      clientBodies !== undefined
        ? `you are sending ${clientBodies} request bodies this node is still reading, as many as ` +
          `one client may send at once; finish sending them, or retry after the Retry-After seconds`
        : clientMaxBytes === undefined
        ? `the request bodies this node is reading hold its ${maxBytes} bytes for them ` +
          `(http.maxBufferedBodyBytes); retry after the Retry-After seconds`
        : `your request bodies this node is reading hold your share of its bytes for them ` +
          `(${clientMaxBytes} of http.maxBufferedBodyBytes ${maxBytes}); finish sending them, ` +
          `or retry after the Retry-After seconds`,
      { retryAfterS: BODY_BUDGET_RETRY_AFTER_S },
    );
  }
}

/**
 * `Retry-After` of a body refused for the budget: a body arrives in milliseconds unless its
 * client stalls, and a stalled one is let go at `http.requestBodyTimeoutMs`; one second, as for
 * uploads (`too_many_uploads`), lets a crowd of ordinary bodies through without a client giving up.
 */
const BODY_BUDGET_RETRY_AFTER_S = 1;

/**
 * Share of the budget one client's bodies may hold at once: one client (an API key, an address
 * without a key, this machine's tools: `queueClient`, as the queue counts it) that stalls its
 * bodies then refuses only itself, and three more doing the same still leave room for everyone
 * else (review s74 openai, F1: one client's 32 stalled bodies refused every other client for
 * 60 s). Never less than one largest body ({@link BodyBudgetOptions.minClientBytes}), so a lone
 * client can always send its largest request.
 */
export const CLIENT_BODY_SHARE = 1 / 4;

/**
 * Share of the budget the bodies of clients already reading another may hold together; the rest
 * is kept for a client that reads none (one body each), so an honest newcomer's body fits however
 * many busy clients stall theirs (review verify4, F1: four API keys, each holding its quarter at
 * exactly the minimum rate, refused every other client for the whole 60 s deadline).
 */
export const BUSY_BODIES_SHARE = 3 / 4;

/**
 * Most bodies one client may have being read at once: a body arrives in milliseconds unless its
 * link stalls, so even a backend that multiplexes its users' requests rarely has more than a few
 * being read; a client's share is then held by a few connections, not 51 (review verify4, F1).
 */
export const MAX_CLIENT_BODIES = 8;

/** Options of {@link BodyBudget}. */
export interface BodyBudgetOptions {
  /**
   * Fewest bytes one client may hold whatever {@link CLIENT_BODY_SHARE} gives: one largest body
   * (`http.maxRequestBytes`); never more than the budget. Default 0.
   */
  minClientBytes?: number;
}

/**
 * The bytes of request bodies being read, every request of the node together, held to one
 * budget (`http.maxBufferedBodyBytes`), and each client's to {@link CLIENT_BODY_SHARE} of it.
 * {@link readBodyText} takes each chunk from it as the chunk arrives, and gives all back once the
 * body is read (its caller parses it at once) or fails.
 *
 * @example
 * ```ts
 * import { BodyBudget } from "./body_limit.ts";
 * const budget = new BodyBudget(4096, { minClientBytes: 1024 });
 * budget.clientMaxBytes; // 1024
 * budget.take(1000, "key a");
 * budget.held; // 1000
 * budget.heldBy("key a"); // 1000
 * budget.release(1000, "key a");
 * ```
 */
export class BodyBudget {
  /** The budget in bytes. */
  readonly maxBytes: number;
  /** Most bytes one client's bodies may hold at once. */
  readonly clientMaxBytes: number;
  /** Most bytes the bodies of clients already reading another ({@link BUSY_BODIES_SHARE}). */
  readonly busyMaxBytes: number;
  #held = 0;
  #busyHeld = 0;
  #byClient = new Map<string, number>();
  #bodiesByClient = new Map<string, number>();

  /**
   * Create it.
   *
   * @param maxBytes The budget in bytes.
   * @param options The clients' share's floor.
   */
  constructor(maxBytes: number, options?: BodyBudgetOptions) {
    this.maxBytes = maxBytes;
    this.clientMaxBytes = Math.min(
      maxBytes,
      Math.max(Math.floor(maxBytes * CLIENT_BODY_SHARE), options?.minClientBytes ?? 0),
    );
    this.busyMaxBytes = Math.floor(maxBytes * BUSY_BODIES_SHARE);
  }

  /** Bytes taken by the bodies of clients that were reading another when they began. */
  get busyHeld(): number {
    return this.#busyHeld;
  }

  /** Bodies of `client` being read. */
  bodiesOf(client: string): number {
    return this.#bodiesByClient.get(client) ?? 0;
  }

  /**
   * Begin a body of `client`: whether it is busy (the client was reading another), so its bytes
   * count against {@link busyMaxBytes} too. Every body begun is ended ({@link endBody}).
   *
   * @throws {TooManyRequestBodiesError} when the client reads {@link MAX_CLIENT_BODIES} already.
   */
  beginBody(client: string): { busy: boolean } {
    const bodies = this.bodiesOf(client);
    if (bodies >= MAX_CLIENT_BODIES) {
      throw new TooManyRequestBodiesError(this.maxBytes, this.clientMaxBytes, bodies);
    }
    this.#bodiesByClient.set(client, bodies + 1);
    return { busy: bodies > 0 };
  }

  /** End a body {@link beginBody} began (its bytes are given back by {@link release}). */
  endBody(client: string): void {
    const left = this.bodiesOf(client) - 1;
    if (left <= 0) this.#bodiesByClient.delete(client);
    else this.#bodiesByClient.set(client, left);
  }

  /** Bytes taken and not given back. */
  get held(): number {
    return this.#held;
  }

  /** Bytes `client` has taken and not given back. */
  heldBy(client: string): number {
    return this.#byClient.get(client) ?? 0;
  }

  /**
   * Take `bytes` more, for `client` when named (held to its share too).
   *
   * @throws {TooManyRequestBodiesError} when they do not fit (nothing is taken).
   */
  take(bytes: number, client?: string, busy = false): void {
    if (client !== undefined && this.heldBy(client) + bytes > this.clientMaxBytes) {
      throw new TooManyRequestBodiesError(this.maxBytes, this.clientMaxBytes);
    }
    if (this.#held + bytes > this.maxBytes) throw new TooManyRequestBodiesError(this.maxBytes);
    // The busy clients' bodies together are refused as the whole budget is: the rest is kept.
    if (busy && this.#busyHeld + bytes > this.busyMaxBytes) {
      throw new TooManyRequestBodiesError(this.maxBytes);
    }
    this.#held += bytes;
    if (busy) this.#busyHeld += bytes;
    if (client !== undefined) this.#byClient.set(client, this.heldBy(client) + bytes);
  }

  /** Give back `bytes` taken before (for `client`, when it was named; `busy` as taken). */
  release(bytes: number, client?: string, busy = false): void {
    this.#held -= bytes;
    if (busy) this.#busyHeld -= bytes;
    if (client === undefined) return;
    const left = this.heldBy(client) - bytes;
    // A client's entry goes with its last byte: the map holds only clients reading a body now.
    if (left <= 0) this.#byClient.delete(client);
    else this.#byClient.set(client, left);
  }
}

/**
 * `body`, each chunk taken from `budget` as it is read (added to `taken.bytes`); a chunk that does
 * not fit errors the stream with the budget's {@link TooManyRequestBodiesError} and cancels
 * `body`. Pulls nothing ahead, so what it has taken is what its reader has read.
 */
function budgetedBody(
  body: ReadableStream<Uint8Array>,
  budget: BodyBudget,
  client: string | undefined,
  busy: boolean,
  taken: { bytes: number },
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await reader.read();
      if (next.done) return controller.close();
      try {
        budget.take(next.value.byteLength, client, busy);
      } catch (error) {
        reader.cancel(error).catch(() => {});
        throw error;
      }
      taken.bytes += next.value.byteLength;
      controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** How long {@link readBodyText} (or {@link idleDeadlineBody}) waits, and the timers it waits on. */
export interface BodyDeadline {
  /**
   * Longest the whole body may take to arrive, from when reading it begins; for
   * {@link idleDeadlineBody}, longest a read of it may wait for its next bytes.
   */
  timeoutMs: number;
  /** The deadline's timer; default the global timers. */
  timers?: DrainTimers;
}

/**
 * The body of `request` as text, or a {@link RequestTooLargeError} once it is known to exceed
 * `maxBytes` (UTF-8 bytes, as sent), or a {@link RequestTimeoutError} (the body cancelled) if it
 * has not arrived whole by `deadline`. Bytes that are not UTF-8 are refused (`invalid_json`: JSON
 * text is UTF-8, RFC 8259 8.1) rather than decoded to U+FFFD, which would run, and sign a
 * receipt for, a prompt the client never sent. With a `budget`, the bytes read are taken from it
 * as they arrive (past it: {@link TooManyRequestBodiesError}, the body cancelled) and given back
 * when this returns or throws: the caller parses the text at once, with nothing awaited between.
 * With a `client` too (`queueClient`), they count against that client's share of the budget, the
 * body counts against its {@link MAX_CLIENT_BODIES}, and, if the client is reading another, its
 * bytes count against the busy clients' {@link BUSY_BODIES_SHARE}. With
 * a `deadline`, a body that slows below the minimum rate (`body_min_rate.ts`) is cut before it:
 * a `RequestBodyTooSlowError`, the body cancelled.
 */
export async function readBodyText(
  request: Request,
  maxBytes: number,
  deadline?: BodyDeadline,
  budget?: BodyBudget,
  client?: string,
): Promise<string> {
  if (budget === undefined || request.body === null) {
    return await readText(request, maxBytes, deadline);
  }
  const { busy } = client === undefined ? { busy: false } : budget.beginBody(client);
  const taken = { bytes: 0 };
  try {
    const body = budgetedBody(request.body, budget, client, busy, taken);
    return await readText({ headers: request.headers, body }, maxBytes, deadline);
  } finally {
    budget.release(taken.bytes, client, busy);
    if (client !== undefined) budget.endBody(client);
  }
}

/** {@link readBodyText} of `message`, with no budget. */
async function readText(
  message: HttpMessage,
  maxBytes: number,
  deadline: BodyDeadline | undefined,
): Promise<string> {
  const timeUp = new AbortController();
  const timers = deadline?.timers ?? SYSTEM_TIMERS;
  const timer = deadline === undefined ? undefined : timers.setTimeout(
    () => timeUp.abort(new RequestTimeoutError(deadline.timeoutMs)),
    deadline.timeoutMs,
  );
  // A body under a deadline is held to the minimum rate too: the deadline alone let a stalled
  // body hold its bytes of the budget for all of it.
  const watched = deadline === undefined || message.body === null
    ? undefined
    : minRateBody(message.body, timers, (error) => timeUp.abort(error));
  let bytes: Uint8Array;
  try {
    bytes = await readBoundedBody(
      watched === undefined ? message : { headers: message.headers, body: watched.body },
      maxBytes,
      () => new RequestTooLargeError("request body", maxBytes),
      timeUp.signal,
    );
  } catch (error) {
    // Too large and too slow are the edge's own; any other failure is the read's.
    throw error instanceof EdgeError ? error : new IncompleteBodyError(error);
  } finally {
    if (timer !== undefined) timers.clearTimeout(timer);
    watched?.stop();
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RequestValidationError(
      "invalid_json",
      "the body is not valid UTF-8 (JSON text must be UTF-8); send the text UTF-8 encoded",
    );
  }
}

/**
 * `body` as a stream whose reader may wait at most `deadline.timeoutMs` for each next chunk, and
 * that must keep to {@link UPLOAD_MIN_RATE} (from its first byte): a body that may be large (an
 * upload) is limited by the sender's silence and pace, not by its length. The silence alone let
 * a client that sends a byte just within each deadline hold its upload, and one of the node's
 * upload slots, for ever; the rate cuts it within a minute (`body_min_rate.ts`).
 * Only a read that waits counts, for both (the stream pulls nothing ahead), so a consumer slow to
 * write what it read is never blamed on the sender. Past the deadline, or below the rate, `body`
 * is cancelled, the stream errors with a {@link RequestTimeoutError} (or a
 * `RequestBodyTooSlowError`) and `signal` aborts with it, so the consumer can stop its own work
 * (and tell why) even where it is not reading; a body that breaks off does the same with an
 * {@link IncompleteBodyError}. `stop` clears both timers once the consumer is done with the body,
 * however it ended (a store that failed may leave it unread).
 */
export function idleDeadlineBody(
  body: ReadableStream<Uint8Array>,
  deadline: BodyDeadline,
): { body: ReadableStream<Uint8Array>; signal: AbortSignal; stop: () => void } {
  const timeUp = new AbortController();
  const timers = deadline.timers ?? SYSTEM_TIMERS;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let timer: unknown;
  const disarm = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  const stop = () => {
    disarm();
    watched.stop();
  };
  const fail = (error: Error) => {
    stop();
    timeUp.abort(error);
    controller.error(error);
    reader.cancel(error).catch(() => {});
  };
  const watched = minRateBody(body, timers, fail, UPLOAD_MIN_RATE);
  const reader = watched.body.getReader();
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      timer = timers.setTimeout(() => {
        timer = undefined;
        fail(new RequestTimeoutError(deadline.timeoutMs, true));
      }, deadline.timeoutMs);
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        if (timeUp.signal.aborted) return; // errored by the deadline or the rate
        // The body broke off: the consumer is told why, as by the deadline.
        watched.stop();
        const broken = new IncompleteBodyError(error);
        timeUp.abort(broken);
        controller.error(broken);
        return;
      } finally {
        disarm();
      }
      if (timeUp.signal.aborted) return; // errored by the deadline or the rate
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { body: stream, signal: timeUp.signal, stop };
}
