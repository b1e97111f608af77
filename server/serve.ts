/**
 * Serve a Hono app (or any fetch handler) with `Deno.serve`, loopback by default: exposing the
 * API beyond this machine is an explicit choice of the operator.
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
  /** Aborting it stops accepting and closes the server once open requests finish. */
  signal?: AbortSignal;
}

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080` (use `ws:` for `/v1/stream`). */
  url: string;
  /** Resolves when the server has shut down. */
  finished: Promise<void>;
  /** Stop the server now, closing open connections (WebSockets, streams) too. */
  shutdown(): Promise<void>;
}

/** The default interface: loopback only. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/**
 * Start serving `app`.
 *
 * @example
 * ```ts ignore
 * const server = serve({ app, port: 0 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export function serve(options: ServeOptions): RunningServer {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const server = Deno.serve({
    port: options.port ?? 0,
    hostname,
    signal: options.signal,
    onListen: () => {},
  }, (request, info) => options.app.fetch(request, info));
  const { port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `http://${host}:${port}`,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}
