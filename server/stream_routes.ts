/**
 * The WebSocket streaming API's route, `GET /v1/stream` (messages in `stream_protocol.ts`, one
 * connection's life in `stream_session.ts`). Each open socket is registered with the server's
 * graceful shutdown (`serve.ts`), so a stopping node lets its jobs finish before closing it.
 *
 * @module
 */
import { Hono } from "hono";
import type { EdgeEnv } from "./client_access.ts";
import type { EdgeConfig } from "./edge_config.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { EdgeError } from "./http_errors.ts";
import type { InferenceGateway } from "./inference_gateway.ts";
import { drainBeforeShutdown } from "./serve.ts";
import { StreamSession } from "./stream_session.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";

export { WS_HIGH_WATER_BYTES } from "./stream_session.ts";

/**
 * Routes of the WebSocket API; mount under `/v1`. `log` takes a line per untyped error a frame
 * ran into (answered `internal_error`); nowhere by default. `timers` (default the system's) is
 * the clock of a client's idle cut-off.
 */
export function streamRoutes(
  gateway: InferenceGateway,
  edge: EdgeConfig,
  stats: EdgeStats,
  log?: (line: string) => void,
  timers?: ConnectionTimers,
): Hono<EdgeEnv> {
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
    let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw);
    } catch (error) {
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
      client: c.get("client"),
      stats,
      log,
      timers,
    });
    const withdraw = drainBeforeShutdown(
      c.req.raw,
      (timeUp) => session.drain(timeUp),
      "websocket",
    );
    session.closed.then(withdraw);
    return response;
  });
  return routes;
}
