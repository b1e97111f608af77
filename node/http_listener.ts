/**
 * The node's HTTP port, bound first thing at start-up: a port another process holds is refused
 * with one line naming it and `--port` before the node touches its data directory, and the
 * port is the node's from then on. Until the app is mounted (the node is up) every request is
 * answered `503 starting`, so a load balancer or a client polling `/healthz` sees a node that
 * is coming up rather than a refused connection. Closing drains it for `http.drainTimeoutMs` at
 * most (`serve.ts`).
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { type DrainTimers, type FetchApp, serve } from "../server/serve.ts";
import { EdgeError, errorResponse } from "../server/http_errors.ts";

/** Seconds a client is told to wait (`Retry-After`) while the node starts. */
const STARTING_RETRY_AFTER_S = 1;

/** The HTTP API's address cannot be bound (taken, not this machine's, or privileged). */
export class HttpListenError extends VeriflowError {
  /**
   * Create it.
   *
   * @param hostname The interface asked for.
   * @param port The port asked for.
   * @param cause The system's error.
   */
  constructor(hostname: string, port: number, cause: unknown) {
    const address = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
    // An address this machine does not have is the host's fault; only a taken port the port's.
    const what = cause instanceof Deno.errors.AddrNotAvailable
      ? `${hostname} is not an address of this machine (${(cause as Error).message}); give ` +
        `one of its own with --host ADDR (127.0.0.1: this machine only; 0.0.0.0: every ` +
        `interface) or http.hostname in the configuration`
      : cause instanceof Deno.errors.AddrInUse
      ? `port ${port} is already in use (another node, or another program?); choose another ` +
        `port with --port N (0 picks a free one) or http.port in the configuration`
      : `${(cause as Error).message}; check --host and --port (http.hostname and http.port in ` +
        `the configuration)`;
    super("http_listen_failed", `cannot serve the HTTP API on ${address}: ${what}`, { cause });
  }
}

/** Options of {@link HttpListener.open} (the node's `http` configuration holds the first three). */
export interface HttpListenerOptions {
  /** Interface to listen on. */
  hostname: string;
  /** Port; 0 picks a free one, which `url` reports. */
  port: number;
  /** How long {@link HttpListener.close} lets open work finish before it cuts it; default 30 s. */
  drainTimeoutMs?: number;
  /**
   * Where the line saying what a drain past its deadline cut goes; default stderr (a cut is
   * never silent).
   */
  log?: (line: string) => void;
  /** The drain deadline's timer; default the global timers (tests pass a fake one). */
  timers?: DrainTimers;
}

/** The node's HTTP port: bound by {@link HttpListener.open}, serving an app once mounted. */
export class HttpListener {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  #server: ReturnType<typeof serve>;
  #app: FetchApp | undefined;
  #closing: Promise<void> | undefined;

  private constructor(open: (app: FetchApp) => ReturnType<typeof serve>) {
    this.#server = open({
      fetch: (request, info) => this.#app?.fetch(request, info) ?? starting(),
    });
    this.url = this.#server.url;
  }

  /**
   * Bind `hostname:port` now; throws {@link HttpListenError} when that is not possible.
   *
   * @param options Where to listen (`port` 0 picks a free port, which `url` reports), and how
   * long to drain.
   */
  static open(options: HttpListenerOptions): HttpListener {
    const { hostname, port, drainTimeoutMs, timers } = options;
    const log = options.log ?? ((line: string) => console.error(line));
    try {
      return new HttpListener((app) => serve({ app, hostname, port, drainTimeoutMs, timers, log }));
    } catch (cause) {
      throw new HttpListenError(hostname, port, cause);
    }
  }

  /** Serve `app` from now on (requests so far got `503 starting`). */
  mount(app: FetchApp): void {
    this.#app = app;
  }

  /**
   * Stop serving once open requests finish: HTTP requests (SSE streams included) and the jobs
   * of open WebSockets, whose clients get their end before the socket closes (1001). New
   * requests are answered 503 `shutting_down` meanwhile, then new connections are refused
   * (`serve.ts`). Past `drainTimeoutMs` one log line says how much is still open and the jobs
   * left are cancelled, each client told (a WebSocket's `done`, an SSE stream's `shutting_down`
   * error event and `[DONE]`, a request not answered yet 503); what is still open a moment later
   * is cut, and the port closes all the same. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#server.shutdown();
    return this.#closing;
  }
}

function starting(): Response {
  return errorResponse(
    new EdgeError("starting", "the node is starting; retry in a moment", {
      retryAfterS: STARTING_RETRY_AFTER_S,
    }),
  );
}
