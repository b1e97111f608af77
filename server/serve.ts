/**
 * Serve a Hono app (or any fetch handler) with `Deno.serve`, loopback by default: exposing the
 * API beyond this machine is an explicit choice of the operator.
 *
 * A graceful {@link RunningServer.shutdown} drains in two steps. `Deno.serve`'s own shutdown
 * lets open HTTP requests (an SSE stream included) finish but closes every WebSocket at once
 * (1001), which would cancel the jobs running on them. So first the work that routes registered
 * with {@link drainBeforeShutdown} (a `/v1/stream` socket's jobs) finishes, while open HTTP
 * requests go on and new requests are refused (503 `shutting_down`); then `Deno.serve` stops
 * accepting connections and waits for the HTTP requests still open.
 *
 * @module
 */

/** Anything with a fetch handler (a Hono app). */
export interface FetchApp {
  /** Handle one request. */
  fetch(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response | Promise<Response>;
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
   * Aborting it stops the server without the drain: open HTTP requests finish, WebSockets are
   * closed at once (`Deno.serve`'s own shutdown). Use {@link RunningServer.shutdown} to drain.
   */
  signal?: AbortSignal;
}

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080` (use `ws:` for `/v1/stream`). */
  url: string;
  /** Resolves when the server has shut down. */
  finished: Promise<void>;
  /**
   * Stop gracefully: new requests are refused (503 `shutting_down`) while the work registered
   * with {@link drainBeforeShutdown} finishes, then the server stops accepting connections and
   * resolves once open HTTP requests finish. WebSockets still open then are closed (1001).
   * Idempotent.
   */
  shutdown(): Promise<void>;
}

/** The default interface: loopback only. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/** What the server awaits before `Deno.serve`'s shutdown; one set per server. */
class Drains {
  #hooks = new Set<() => Promise<void>>();
  /** Drains under way, once the shutdown has begun. */
  #running: Promise<void>[] | undefined;

  get draining(): boolean {
    return this.#running !== undefined;
  }

  add(drain: () => Promise<void>): () => void {
    // A connection registered after the drain began (its request was already being handled)
    // drains too.
    if (this.#running !== undefined) {
      this.#running.push(settled(drain));
      return () => {};
    }
    this.#hooks.add(drain);
    return () => this.#hooks.delete(drain);
  }

  async run(): Promise<void> {
    this.#running = [...this.#hooks].map(settled);
    this.#hooks.clear();
    // Drains added while these ran are in the list too.
    for (let done = 0; done < this.#running.length; done = this.#running.length) {
      await Promise.all(this.#running.slice(done));
    }
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
 * @param drain Finish the connection's work, then close it.
 * @returns Withdraw `drain` (the connection closed by itself).
 */
export function drainBeforeShutdown(request: Request, drain: () => Promise<void>): () => void {
  return drainsOf.get(request)?.add(drain) ?? (() => {});
}

/**
 * Start serving `app`.
 *
 * @example
 * ```ts ignore
 * const server = serve({ app, port: 0 });
 * console.log(`listening on ${server.url}`);
 * await server.shutdown(); // open requests and WebSocket jobs finish first
 * ```
 */
export function serve(options: ServeOptions): RunningServer {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const drains = new Drains();
  const server = Deno.serve({
    port: options.port ?? 0,
    hostname,
    signal: options.signal,
    onListen: () => {},
  }, (request, info) => {
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
        await drains.run();
        await server.shutdown();
      })();
      return stopping;
    },
  };
}

function settled(drain: () => Promise<void>): Promise<void> {
  return drain().catch(() => {});
}

/** A request that came during the drain: this server takes nothing new. */
function shuttingDown(): Response {
  const error = {
    message: "the server is shutting down; open requests finish, new ones go elsewhere",
    type: "server_error",
    param: null,
    code: "shutting_down",
  };
  // `connection: close`: a keep-alive client opens its next request somewhere else.
  return Response.json({ error }, { status: 503, headers: { connection: "close" } });
}
