/**
 * Serve a Hono app (or any fetch handler) with `Deno.serve`, loopback by default: exposing the
 * API beyond this machine is an explicit choice of the operator.
 *
 * A graceful {@link RunningServer.shutdown} drains in two steps. `Deno.serve`'s own shutdown
 * lets open HTTP requests (an SSE stream included) finish but closes every WebSocket at once
 * (1001), which would cancel the jobs running on them. So first the work that routes registered
 * with {@link drainBeforeShutdown} (a `/v1/stream` socket's jobs, an SSE stream's or a JSON
 * answer's job) and the open HTTP requests finish, while new requests are refused (503
 * `shutting_down`); then `Deno.serve` stops accepting connections. The drain has a deadline
 * ({@link ServeOptions.drainTimeoutMs}): a job that runs for an hour, or a client that never
 * reads, must not keep a stopping node up. Past it, the log says so once and each registered
 * drain ends its work at once, telling its client why (a WebSocket's `done` and close 1001, an
 * SSE stream's `shutting_down` error event and `data: [DONE]`); a request whose handler has not
 * answered yet gets 503 `shutting_down`. What is still open {@link TIME_UP_GRACE_MS} later is cut
 * the way aborting {@link ServeOptions.signal} cuts it (requests aborted, WebSockets closed): a
 * connection drop is all a client then sees, so it is the last resort, for a client that does
 * not read. The same deadline bounds `Deno.serve`'s
 * own shutdown, which waits for connections whose answer was sent early (a 413 or 503 before the
 * body was read, to a client that sends the rest slowly or never): that shutdown cannot be cut
 * once begun, so past the deadline it is left to finish by itself (or with the process), and the
 * log says so once.
 *
 * A `HEAD`'s answer that names no `Content-Length` goes without one, never with the runtime's
 * `Content-Length: 0` for its missing body (`headWithoutLength`).
 *
 * @module
 */
import { EdgeError, errorResponse } from "./http_errors.ts";
import { EDGE_DEFAULTS } from "./edge_config.ts";
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/** Anything with a fetch handler (a Hono app). */
export interface FetchApp {
  /** Handle one request. */
  fetch(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response | Promise<Response>;
}

/** The timers the drain's deadline runs on (tests pass a fake one and fire it). */
export interface DrainTimers {
  /** Call `callback` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancel a timer (one already fired or cleared is ignored). */
  clearTimeout(handle: unknown): void;
}

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The app. */
  app: FetchApp;
  /** Port; 0 (the default) picks a free one, which `url` then reports. */
  port?: number;
  /** Interface to bind; default `127.0.0.1`. */
  hostname?: string;
  /**
   * Aborting it stops the server without the drain: open HTTP requests are aborted and
   * WebSockets closed at once. Use {@link RunningServer.shutdown} to drain.
   */
  signal?: AbortSignal;
  /**
   * Longest a graceful {@link RunningServer.shutdown} waits for open work (HTTP requests, and
   * what was registered with {@link drainBeforeShutdown}) before it cuts it; default
   * `EDGE_DEFAULTS.drainTimeoutMs` (30 s, `http.drainTimeoutMs`).
   */
  drainTimeoutMs?: number;
  /**
   * Where the one line saying what a shutdown past its deadline cut (or left open) goes; default
   * nowhere.
   */
  log?: (line: string) => void;
  /** The drain deadline's timer; default the global timers. */
  timers?: DrainTimers;
}

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080` (use `ws:` for `/v1/stream`). */
  url: string;
  /** Resolves when the server has shut down. */
  finished: Promise<void>;
  /**
   * Stop gracefully: new requests are refused (503 `shutting_down`) while open HTTP requests
   * and the work registered with {@link drainBeforeShutdown} finish, then the server stops
   * accepting connections; WebSockets still open then are closed (1001). After
   * {@link ServeOptions.drainTimeoutMs} one log line says how much is still open, the registered
   * drains end their work at once (their jobs cancelled, each client told), requests not answered
   * yet get 503 `shutting_down`, and what is still open {@link TIME_UP_GRACE_MS} later is cut
   * (requests aborted, WebSockets closed). Resolves once the server has stopped, and never later
   * than `drainTimeoutMs` + 2 × {@link TIME_UP_GRACE_MS}: connections still open after every
   * request was answered (a client that neither sends the rest of its body nor reads its answer)
   * are left to close by themselves, and {@link RunningServer.finished} waits for them.
   * Idempotent.
   */
  shutdown(): Promise<void>;
}

/**
 * How long, once the drain deadline has passed, the drains get to end their jobs and their
 * clients to receive the end ({@link Drain}'s `timeUp`: a WebSocket's `done` and close, an SSE
 * stream's error event and `[DONE]`) before the server cuts what is still open: their ends and
 * close frames are a round trip.
 */
export const TIME_UP_GRACE_MS = 2_000;

/** The default interface: loopback only. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/** Work under way that a graceful shutdown waits for, each piece a promise that settles. */
class PendingWork {
  #pending = new Set<Promise<void>>();
  #idle: PromiseWithResolvers<void> | undefined;

  /** Pieces not settled yet. */
  get size(): number {
    return this.#pending.size;
  }

  add(work: Promise<unknown>): void {
    const piece: Promise<void> = work.then(() => {}, () => {}).then(() => {
      this.#pending.delete(piece);
      if (this.#pending.size > 0) return;
      this.#idle?.resolve();
      this.#idle = undefined;
    });
    this.#pending.add(piece);
  }

  /** Resolves once nothing is pending, pieces added meanwhile included. */
  idle(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    this.#idle ??= Promise.withResolvers();
    return this.#idle.promise;
  }
}

/**
 * A connection's or a response's drain: finish its work and close it. `timeUp` aborts when the
 * drain deadline has passed: end the work now, as cleanly as can be done at once (a WebSocket's
 * jobs cancelled, each client told, the socket closed with 1001; an SSE stream's job cancelled,
 * the stream ended with a `shutting_down` error event and `data: [DONE]`), before the server cuts
 * what is left.
 */
export type Drain = (timeUp: AbortSignal) => Promise<void>;

/**
 * What a drain ends, as the log line past the deadline counts it: a WebSocket (`/v1/stream`),
 * an SSE stream, or a JSON answer (a non-streamed completion) waiting on its job.
 */
export type DrainKind = "websocket" | "sse" | "json";

/** What a client whose job the drain deadline cancelled is told: the job did not fail, the node stopped. */
export const SHUTDOWN_MESSAGE: string =
  "the node is shutting down: its drain deadline (http.drainTimeoutMs) passed before the job " +
  "ended, so the job was cancelled; send the request to another node";

/** The error a job cut by the drain deadline ends with (every kind of answer: {@link DrainKind}). */
export function shutdownError(): EdgeError {
  return new EdgeError("shutting_down", SHUTDOWN_MESSAGE);
}

/** What the server awaits before `Deno.serve`'s shutdown; one set per server. */
class Drains {
  #hooks = new Map<Drain, DrainKind>();
  /** Drains under way, once the shutdown has begun. */
  #running: PendingWork | undefined;
  /** Drains begun and not finished, by kind. */
  #pending: Record<DrainKind, number> = { websocket: 0, sse: 0, json: 0 };
  readonly #timeUp = new AbortController();

  get draining(): boolean {
    return this.#running !== undefined;
  }

  /** Aborted once the deadline has passed. */
  get timeUpSignal(): AbortSignal {
    return this.#timeUp.signal;
  }

  /** Drains of `kind` begun and not finished. */
  pending(kind: DrainKind): number {
    return this.#pending[kind];
  }

  add(drain: Drain, kind: DrainKind): () => void {
    // A connection or response registered after the drain began (its request was already being
    // handled) drains too, at once if the deadline has passed.
    if (this.#running !== undefined) {
      this.#begin(drain, kind);
      return () => {};
    }
    this.#hooks.set(drain, kind);
    return () => this.#hooks.delete(drain);
  }

  /** Begin every drain; resolves once all have finished, those added meanwhile included. */
  run(): Promise<void> {
    this.#running = new PendingWork();
    for (const [drain, kind] of this.#hooks) this.#begin(drain, kind);
    this.#hooks.clear();
    return this.#running.idle();
  }

  /** The deadline has passed: every drain is asked to end its work at once. */
  timeUp(): void {
    this.#timeUp.abort();
  }

  #begin(drain: Drain, kind: DrainKind): void {
    this.#pending[kind]++;
    // A drain that throws has ended all the same.
    this.#running!.add(
      drain(this.#timeUp.signal).catch(() => {}).finally(() => this.#pending[kind]--),
    );
  }
}

/** The drains of the server each request came to. */
const drainsOf = new WeakMap<Request, Drains>();

/**
 * Have a graceful shutdown of the server that received `request` wait for `drain` before it
 * closes connections, and call on it to end its work cleanly when the deadline passes: for a
 * connection `Deno.serve` does not drain itself (an upgraded WebSocket), and for a response
 * whose client must be told why it ends rather than be cut (an SSE stream's job). `drain` is
 * called when the shutdown begins (at once if it has begun) and resolves once the work is done
 * and the connection or response closed. A request that came another way (`app.fetch` in a
 * test) registers nothing.
 *
 * @param request The request, as `serve` passed it to the app (Hono's `c.req.raw`).
 * @param drain Finish the work, then close; at once when its `timeUp` aborts.
 * @param kind What `drain` ends, for the log line past the deadline.
 * @returns Withdraw `drain` (the connection or response closed by itself).
 */
export function drainBeforeShutdown(request: Request, drain: Drain, kind: DrainKind): () => void {
  return drainsOf.get(request)?.add(drain, kind) ?? (() => {});
}

/**
 * Start serving `app`.
 *
 * @example
 * ```ts ignore
 * const server = serve({ app, port: 0 });
 * console.log(`listening on ${server.url}`);
 * await server.shutdown(); // open requests and WebSocket jobs finish first (30 s at most)
 * ```
 */
export function serve(options: ServeOptions): RunningServer {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const drainTimeoutMs = options.drainTimeoutMs ?? EDGE_DEFAULTS.drainTimeoutMs;
  const timers = options.timers ?? SYSTEM_TIMERS;
  const drains = new Drains();
  const requests = new PendingWork();
  // Cutting the drain short is `Deno.serve`'s abort: aborting after its own shutdown has begun
  // is a crash (BadResource), so the shutdown below calls that only once the drain has ended.
  const cut = new AbortController();
  const server = Deno.serve({
    port: options.port ?? 0,
    hostname,
    signal: options.signal === undefined
      ? cut.signal
      : AbortSignal.any([options.signal, cut.signal]),
    onListen: () => {},
  }, (request, info) => {
    // Settles once the response is sent (an upgrade's at once) or cannot be.
    requests.add(info.completed);
    if (drains.draining) return shuttingDown();
    drainsOf.set(request, drains);
    const answer = answeredBeforeTimeUp(options.app.fetch(request, info), drains.timeUpSignal);
    return request.method === "HEAD" ? Promise.resolve(answer).then(headWithoutLength) : answer;
  });
  const { port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    finished: server.finished,
    shutdown: () => {
      stopping ??= (async () => {
        const drainsDone = drains.run();
        // Set at once when the deadline passes first: `Deno.serve`'s own shutdown must then not
        // begin, for the cut below would crash it.
        let cutting = false;
        let denoStopping: Promise<void> | undefined;
        const stopped = (async () => {
          await drainsDone;
          await requests.idle();
          if (cutting) return;
          // The deadline holds here too: a response `Deno.serve` counts sent can still be
          // waiting on its client (one that sent part of a body and got an early 413, 401 or
          // 503 without it being read; one that does not read its answer).
          denoStopping = server.shutdown();
          await denoStopping;
        })();
        if (await within(stopped, drainTimeoutMs, timers)) return;
        if (denoStopping !== undefined) {
          // Once `Deno.serve`'s own shutdown has begun nothing can cut its connections (its
          // abort then throws BadResource), so the shutdown stops waiting for them: the port is
          // closed, every request has been answered, and the process's exit ends what is left.
          options.log?.(
            `shutdown: the HTTP connections did not close within ${drainTimeoutMs} ms ` +
              `(http.drainTimeoutMs); leaving those still open (clients that neither send the ` +
              `rest of their request nor read their answer) to close with the process`,
          );
          return;
        }
        cutting = true;
        options.log?.(
          `shutdown: the drain did not end within ${drainTimeoutMs} ms (http.drainTimeoutMs); ` +
            `ending ${count(requests.size, "open HTTP request")}${jobsOf(drains)} and ` +
            `${count(drains.pending("websocket"), "WebSocket")} with jobs still running`,
        );
        // The drains first end their jobs themselves (each client told: a WebSocket closed with
        // 1001, an SSE stream ended with an error event and `[DONE]`) and requests not answered
        // yet get 503, for a moment; what is still open then (a client that does not read) is cut.
        drains.timeUp();
        if (await within(drainsDone.then(() => requests.idle()), TIME_UP_GRACE_MS, timers)) {
          // Every drain has ended and every request is answered, but an answer's last bytes (an
          // SSE stream's `[DONE]`, a 503) may still be on their way, and an abort would drop
          // them: `Deno.serve`'s own shutdown lets them out. It too is bounded; past the grace,
          // what is left (a client that reads nothing) closes with the process.
          await within(server.shutdown(), TIME_UP_GRACE_MS, timers);
          return;
        }
        cut.abort(new DOMException("the drain outran http.drainTimeoutMs", "TimeoutError"));
        await server.finished;
      })();
      return stopping;
    },
  };
}

/** Statuses whose answer never has a body (the Fetch spec's null body statuses). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * A `HEAD`'s answer that names no length, with an empty body that is never sent, so that the
 * runtime sends no `Content-Length` either. Hono answers a `HEAD` with its `GET`'s headers and no
 * body, and for no body `Deno.serve` sends `Content-Length: 0`, which contradicts a `GET` that
 * streams its body, or whose length the runtime counts: RFC 9110 §8.6 allows a `HEAD` no length,
 * never a wrong one. An answer that names its length keeps it.
 */
function headWithoutLength(response: Response): Response {
  if (
    response.body !== null || response.headers.has("content-length") ||
    NULL_BODY_STATUSES.has(response.status)
  ) {
    return response;
  }
  const empty = new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
  return new Response(empty, response);
}

/** Whether `work` settles within `ms`. */
async function within(work: Promise<void>, ms: number, timers: DrainTimers): Promise<boolean> {
  let timer: unknown;
  const deadline = new Promise<false>((resolve) => {
    timer = timers.setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true), deadline]);
  } finally {
    timers.clearTimeout(timer);
  }
}

/** `1 WebSocket`, `2 WebSockets`. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** The open requests' jobs, when there are any: ` (1 SSE stream, 2 JSON answers)`. */
function jobsOf(drains: Drains): string {
  const jobs = [
    [drains.pending("sse"), "SSE stream"],
    [drains.pending("json"), "JSON answer"],
  ] as const;
  const named = jobs.filter(([n]) => n > 0).map(([n, noun]) => count(n, noun));
  return named.length === 0 ? "" : ` (${named.join(", ")})`;
}

/**
 * The app's response, or 503 `shutting_down` if the deadline passes before the app has one (a
 * request whose body is still coming, or whose job is still being submitted): its client is told
 * why rather than cut. A response the app makes after that is discarded, its body cancelled
 * (which cancels a job it streams).
 */
function answeredBeforeTimeUp(
  answer: Response | Promise<Response>,
  timeUp: AbortSignal,
): Response | Promise<Response> {
  if (answer instanceof Response) return answer;
  const { promise, resolve, reject } = Promise.withResolvers<Response>();
  let answered = false;
  const late = () => {
    if (answered) return;
    answered = true;
    resolve(shuttingDown(DEADLINE_PASSED));
  };
  if (timeUp.aborted) late();
  else timeUp.addEventListener("abort", late, { once: true });
  answer.then((response) => {
    timeUp.removeEventListener("abort", late);
    if (!answered) {
      answered = true;
      resolve(response);
    } else response.body?.cancel().catch(() => {});
  }, (error) => {
    timeUp.removeEventListener("abort", late);
    if (!answered) {
      answered = true;
      reject(error);
    }
  });
  return promise;
}

/** Why a request that came during the drain is refused. */
const NEW_REQUEST_REFUSED =
  "the server is shutting down; open requests finish, new ones go elsewhere";
/** Why a request whose answer was not ready at the drain deadline is refused. */
const DEADLINE_PASSED =
  "the server is shutting down and its drain deadline (http.drainTimeoutMs) passed before this " +
  "request was answered; send it elsewhere";

/** A request this server will not answer: it is shutting down. */
function shuttingDown(message = NEW_REQUEST_REFUSED): Response {
  const response = errorResponse(new EdgeError("shutting_down", message));
  // `connection: close`: a keep-alive client opens its next request somewhere else.
  response.headers.set("connection", "close");
  return response;
}
