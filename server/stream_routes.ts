/**
 * The WebSocket streaming API's route, `GET /v1/stream` (messages in `stream_protocol.ts`, one
 * connection's life in `stream_session.ts`). Each open socket is registered with the server's
 * graceful shutdown (`serve.ts`), so a stopping node lets its jobs finish before closing it, and
 * holds a place among the node's and its client's sockets (`stream_sockets.ts`) until its `onclose`
 * fires: past either cap the upgrade is refused, 429 `too_many_sockets`. A socket the node closed
 * whose client does not answer is dropped after the close's grace (`websocket_drop.ts`), and each
 * socket is tracked by the node's memory guard (`websocket_memory_guard.ts`), which drops it while
 * it runs no job if the node's memory passes its limit.
 *
 * @module
 */
import { Hono } from "hono";
import { type EdgeEnv, fromThisMachine } from "./client_access.ts";
import type { EdgeConfig } from "./edge_config.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { EdgeError } from "./http_errors.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import { drainBeforeShutdown } from "./serve.ts";
import { StreamSession } from "./stream_session.ts";
import { StreamSockets } from "./stream_sockets.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";
import { checkWebSocketDrop } from "./websocket_drop.ts";
import { WebSocketMemoryGuard } from "./websocket_memory_guard.ts";
import { containWebSocketTextOverflow } from "./websocket_text_overflow.ts";

export { WS_HIGH_WATER_BYTES } from "./stream_session.ts";

/** Options of {@link streamRoutes}. */
export interface StreamRoutesOptions {
  /** Counts the open sockets; default the node's own, at `stream_sockets.ts`'s limits. */
  sockets?: StreamSockets;
  /**
   * The reverse proxies whose peers are never this machine's clients (`fromThisMachine`), for
   * this machine's own socket places; default none.
   */
  trustedProxies?: TrustedProxies;
  /**
   * The node's memory guard, shared with the dashboard's sockets; default one of this route's own
   * at its default limit, on `timers`.
   */
  memoryGuard?: WebSocketMemoryGuard;
}

/**
 * Routes of the WebSocket API; mount under `/v1`. `log` takes a line per untyped error a frame
 * ran into (answered `internal_error`); nowhere by default. `timers` (default the system's) is
 * the clock of a client's idle cut-offs.
 */
export function streamRoutes(
  gateway: InferenceGateway,
  edge: EdgeConfig,
  stats: EdgeStats,
  log?: (line: string) => void,
  timers?: ConnectionTimers,
  options: StreamRoutesOptions = {},
): Hono<EdgeEnv> {
  const sockets = options.sockets ?? new StreamSockets();
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;
  const guard = options.memoryGuard ?? new WebSocketMemoryGuard({ timers, log });
  // At the edge's start: one warning now if this Deno cannot drop a socket, not at the first close.
  checkWebSocketDrop(log);
  // Process-wide, once: a text message past V8's longest string no longer ends the node, whichever
  // socket (this route's or the dashboard's) it came on.
  containWebSocketTextOverflow(log);
  const routes = new Hono<EdgeEnv>();
  routes.get("/stream", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json({
        error: {
          message: "this endpoint speaks WebSocket; send an Upgrade request",
          type: "invalid_request_error",
          param: null,
          code: "upgrade_required",
        },
      }, 426);
    }
    const client = c.get("client");
    // Before the upgrade, so a client over its cap gets a 429 it can read, not a closed socket.
    const release = sockets.take(
      client,
      fromThisMachine(c.env?.remoteAddr, c.req.raw, trusted),
    );
    let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw);
    } catch (error) {
      release(); // not a WebSocket after all: no socket to hold the place
      // An Upgrade request whose handshake is not a WebSocket one (no Sec-WebSocket-Key, a
      // version other than 13, …): the client's mistake, said as such, not a 500.
      throw new EdgeError(
        "invalid_request",
        `not a valid WebSocket handshake: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const { socket, response } = upgraded;
    const session = new StreamSession(socket, gateway, {
      maxMessageBytes: edge.maxRequestBytes,
      idleTimeoutMs: edge.clientIdleTimeoutMs,
      client,
      stats,
      log,
      timers,
    });
    const guarded = guard.track(
      socket,
      client.keyId === undefined ? "keyless" : "keyed",
      () => session.running > 0,
    );
    const withdraw = drainBeforeShutdown(
      c.req.raw,
      (timeUp) => session.drain(timeUp),
      "websocket",
    );
    // `closed` settles at the socket's `onclose` (or `onerror`), not when the session calls
    // `close()`: a client that has not answered the close yet still holds its place, until the
    // grace's drop (`websocket_drop.ts`) brings its `onclose`.
    session.closed.then(() => {
      guarded.untrack();
      withdraw();
      release();
    });
    return response;
  });
  return routes;
}
