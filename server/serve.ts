/**
 * Serve a Hono app (or any fetch handler) with `Deno.serve`, loopback by default: exposing the
 * API beyond this machine is an explicit choice of the operator.
 *
 * A graceful {@link RunningServer.shutdown} drains in two steps. `Deno.serve`'s own shutdown
 * lets open HTTP requests (an SSE stream included) finish but closes every WebSocket at once
 * (1001), which would cancel the jobs running on them. So first the work that routes registered
 * with {@link drainBeforeShutdown} (a `/v1/stream` socket's jobs) and the open HTTP requests
 * finish, while new requests are refused (503 `shutting_down`); then `Deno.serve` stops
 * accepting connections. The drain has a deadline ({@link ServeOptions.drainTimeoutMs}): a job
 * that runs for an hour, or a client that never reads, must not keep a stopping node up. Past it,
 * what is still open is cut the way aborting {@link ServeOptions.signal} cuts it (requests
 * aborted, WebSockets closed), and the log says so once. The same deadline bounds `Deno.serve`'s
 * own shutdown, which waits for connections whose answer was sent early (a 413 or 503 before the
 * body was read, to a client that sends the rest slowly or never): that shutdown cannot be cut
 * once begun, so past the deadline it is left to finish by itself (or with the process), and the
 * log says so once.
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
   * accepting connections; WebSockets still open then are closed (1001). Work still open after
   * {@link ServeOptions.drainTimeoutMs} is cut instead (requests aborted, WebSockets closed), with
   * one log line saying how much. Resolves once the server has stopped, and never later than
   * `drainTimeoutMs` + {@link TIME_UP_GRACE_MS}: connections still open past the deadline after
   * every request was answered (a client that neither sends the rest of its body nor reads its
   * answer) are left to close by themselves, with one log line, and
   * {@link RunningServer.finished} waits for them. Idempotent.
   */
  shutdown(): Promise<void>;
}

/**
 * How long, once the drain deadline has passed, the WebSockets get to end their jobs and close
 * cleanly ({@link Drain}'s `timeUp`) before the server cuts them: their jobs' ends and close
 * frames are a round trip.
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
 * A connection's drain: finish its work and close it. `timeUp` aborts when the drain deadline
 * has passed: end the work now, as cleanly as can be done at once (a WebSocket's jobs cancelled,
 * each client told, the socket closed with 1001), before the server cuts what is left.
 */
export type Drain = (timeUp: AbortSignal) => Promise<void>;

/** What the server awaits before `Deno.serve`'s shutdown; one set per server. */
class Drains {
  #hooks = new Set<Drain>();
  /** Drains under way, once the shutdown has begun. */
  #running: PendingWork | undefined;
  readonly #timeUp = new AbortController();

  get draining(): boolean {
    return this.#running !== undefined;
  }

  /** Drains begun and not finished. */
  get pending(): number {
    return this.#running?.size ?? 0;
  }

  add(drain: Drain): () => void {
    // A connection registered after the drain began (its request was already being handled)
    // drains too.
    if (this.#running !== undefined) {
      this.#running.add(begin(drain, this.#timeUp.signal));
      return () => {};
    }
    this.#hooks.add(drain);
    return () => this.#hooks.delete(drain);
  }

  /** Begin every drain; resolves once all have finished, those added meanwhile included. */
  run(): Promise<void> {
    this.#running = new PendingWork();
    for (const drain of this.#hooks) this.#running.add(begin(drain, this.#timeUp.signal));
    this.#hooks.clear();
    return this.#running.idle();
  }

  /** The deadline has passed: every drain is asked to end its work at once. */
  timeUp(): void {
    this.#timeUp.abort();
  }
}

/** The drains of the server each request came to. */
const drainsOf = new WeakMap<Request, Drains>();

/**
 * Have a graceful shutdown of the server that received `request` wait for `drain` before it
 * closes connections: for a connection `Deno.serve` does not drain itself (an upgraded
 * WebSocket). `drain` is called when the shutdown begins and resolves once the connection's
 * work is done and it is closed. A request that came another way (`app.fetch` in a test)
 * registers nothing.
 *
 * @param request The request, as `serve` passed it to the app (Hono's `c.req.raw`).
 * @param drain Finish the connection's work, then close it; at once when its `timeUp` aborts.
 * @returns Withdraw `drain` (the connection closed by itself).
 */
export function drainBeforeShutdown(request: Request, drain: Drain): () => void {
  return drainsOf.get(request)?.add(drain) ?? (() => {});
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
    return options.app.fetch(request, info);
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
            `ending ${count(requests.size, "open HTTP request")} and ` +
            `${count(drains.pending, "WebSocket")} with jobs still running`,
        );
        // The WebSockets first end their jobs themselves (each client told, the socket closed
        // with 1001), for a moment; what is still open then is cut.
        drains.timeUp();
        await within(drainsDone, TIME_UP_GRACE_MS, timers);
        cut.abort(new DOMException("the drain outran http.drainTimeoutMs", "TimeoutError"));
        await server.finished;
      })();
      return stopping;
    },
  };
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

function begin(drain: Drain, timeUp: AbortSignal): Promise<void> {
  // A drain that throws has ended all the same.
  return drain(timeUp).catch(() => {});
}

/** A request that came during the drain: this server takes nothing new. */
function shuttingDown(): Response {
  const response = errorResponse(
    new EdgeError(
      "shutting_down",
      "the server is shutting down; open requests finish, new ones go elsewhere",
    ),
  );
  // `connection: close`: a keep-alive client opens its next request somewhere else.
  response.headers.set("connection", "close");
  return response;
}
