/**
 * The dashboard's routes alone on a free port, for the server tests of its limits: fake timers
 * (the `auth` deadline), an `EdgeStats` (what `/metrics` counts), and a settable peer address
 * every request comes from.
 *
 * @module
 */
import { Hono } from "hono";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { ApiKeys } from "../../server/api_keys.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { type DashboardLimits, dashboardRoutes } from "../../server/dashboard_routes.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { quietSources } from "./_dashboard_sources.ts";

/** The API key the node accepts. */
export const KEY = "a-real-api-key-0123456789";
/** The node's operator token. */
export const OPERATOR = "op-token-0123456789abcdef";
/** A port that runs no jobs. */
export const NO_JOBS_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** A TCP peer address at `hostname`. */
export const addr = (hostname: string): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port: 4242,
});
/** A client on another machine. */
export const REMOTE: Deno.NetAddr = addr("198.51.100.9");
/** A client on this machine. */
export const LOOPBACK: Deno.NetAddr = addr("127.0.0.1");

/** Options of {@link dashboardNode}. */
export interface DashboardNodeOptions {
  /** `http.allowUnauthenticatedRemote`; default false. */
  allowUnauthenticatedRemote?: boolean;
  /** The limits; the per-minute clock is stuck at 0. */
  limits?: Partial<DashboardLimits>;
}

/**
 * The dashboard's routes alone on a free port; each request comes from `peer.now` (the test
 * changes it between connections). `upgrade()` asks for a socket through the app directly, for
 * the status of a refused upgrade.
 */
export function dashboardNode(options: DashboardNodeOptions = {}) {
  const timers = new FakeTimers();
  const stats = new EdgeStats();
  const peer = { now: REMOTE };
  const jobs = new JobMonitor();
  const app = new Hono<EdgeEnv>();
  app.route(
    "/",
    dashboardRoutes({
      sources: quietSources(),
      inference: jobs.wrap(NO_JOBS_PORT),
      jobs,
      operatorToken: OPERATOR,
      keys: new ApiKeys([KEY]),
      allowUnauthenticatedRemote: options.allowUnauthenticatedRemote ?? false,
      allowedOrigins: [],
      tickMs: 60_000,
      limits: { ...options.limits, now: () => 0 },
      timers,
      stats,
    }),
  );
  const fetchFrom = (req: Request) => app.fetch(req, { remoteAddr: peer.now });
  const server = serve({ app: { fetch: fetchFrom }, hostname: "127.0.0.1", port: 0 });
  const upgrade = () => fetchFrom(upgradeRequest(`${server.url}/dashboard/live`));
  return { server, fetchFrom, upgrade, timers, stats, peer };
}

/** A WebSocket upgrade request for `url`, as a client sends it. */
export function upgradeRequest(url: string): Request {
  return new Request(url, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
}
