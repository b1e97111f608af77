/**
 * Who may read `/metrics` (`http.metricsAccess`). The exposition carries the peer table (peer
 * addresses and keys), the ledger's balances and stake, storage use and the traffic counts:
 * facts `/dashboard/state` serves only to this machine or a key holder (review s78 dash, F6).
 *
 * | Value | Who reads `/metrics` |
 * | --- | --- |
 * | `any` (default) | anyone who can reach the port, as before the setting existed |
 * | `local` | this machine's own clients (`fromThisMachine`), or an API key or the operator token |
 * | `key` | an API key or the operator token only (`Authorization: Bearer …`), from anywhere |
 *
 * `any` stays the default: Prometheus scrapes without credentials unless told otherwise, and the
 * README said "`/metrics` needs no key", so every scraper set up so (and every dashboard fed by
 * one) would go blank on upgrade. The node names the value in its start line (`API access …`), and a node that
 * serves the internet sets `local` or `key`. `/healthz` is never closed: probes (a kubelet, a load
 * balancer) send no credentials, and it says no more than whether the node is up.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { ApiKeys } from "./api_keys.ts";
import { type EdgeEnv, fromThisMachine } from "./client_access.ts";
import { bearerToken, grantOf } from "./credentials.ts";
import { EdgeError } from "./http_errors.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";

/** The values of `http.metricsAccess`, most open first. */
export const METRICS_ACCESS = ["any", "local", "key"] as const;

/** Who may read `/metrics`: see the module doc. */
export type MetricsAccess = typeof METRICS_ACCESS[number];

/** What {@link metricsAccess} checks a credential and this machine against. */
export interface MetricsAccessOptions {
  /** The node's API keys (`http.apiKeys`, `http.apiKeysFile`). */
  keys: ApiKeys;
  /** The operator token (`<dataDir>/operator.token`), when the node has one. */
  operatorToken?: string;
  /** Reverse proxies, whose clients are never this machine's (`http.trustedProxies`). */
  trustedProxies?: TrustedProxies;
}

/**
 * The middleware for `/metrics` (mount it there, before the route): lets a request through as
 * `access` says, else throws `api_key_required` (403: `local`, a client elsewhere without a
 * credential), `missing_api_key` (401: `key`, no credential) or `invalid_api_key` (401: a bearer
 * token that is neither an API key nor the operator token).
 *
 * @example
 * ```ts ignore
 * app.use("/metrics", metricsAccess("local", { keys }));
 * ```
 */
export function metricsAccess(
  access: MetricsAccess,
  options: MetricsAccessOptions,
): MiddlewareHandler<EdgeEnv> {
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;
  return async (c, next) => {
    if (access === "any") return await next();
    const token = bearerToken(c.req.header("authorization"));
    if (token !== undefined) {
      if (grantOf(token, options.keys, options.operatorToken) !== undefined) return await next();
      throw new EdgeError(
        "invalid_api_key",
        `/metrics takes an API key or the operator token (http.metricsAccess: ${access}); ` +
          "that token is neither",
      );
    }
    if (access === "local" && fromThisMachine(c.env?.remoteAddr, c.req.raw, trusted)) {
      return await next();
    }
    if (access === "local") {
      throw new EdgeError(
        "api_key_required",
        "this node serves /metrics to its own machine only (http.metricsAccess: local), or " +
          "with an API key or the operator token as 'Authorization: Bearer …' (Prometheus: " +
          "authorization: { credentials: KEY })",
      );
    }
    throw new EdgeError(
      "missing_api_key",
      "/metrics needs an API key or the operator token (http.metricsAccess: key) as " +
        "'Authorization: Bearer …' (Prometheus: authorization: { credentials: KEY })",
    );
  };
}
