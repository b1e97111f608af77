/**
 * The per-address allowances of `/metrics` and `/healthz` (`server/health_routes.ts`) are refusals
 * at the edge like `/v1`'s and the dashboard's: each 429 they answer is counted in
 * `veriflow_http_refused_total{code="rate_limited"}`, so an operator sees a client that floods the
 * node's monitoring endpoints in the same series as any other refused client.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createApp } from "../../server/app.ts";
import {
  DEFAULT_HEALTH_CHECKS_PER_MINUTE,
  DEFAULT_METRICS_SCRAPES_PER_MINUTE,
} from "../../server/health_routes.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { parsePrometheusText, valueOf } from "./_prometheus_text.ts";
import { REFUSING_PORT_MODEL } from "./_refusing_port.ts";

/** A client at `hostname`, as `Deno.serve` names it. */
const from = (hostname: string): EdgeEnv["Bindings"] => ({
  remoteAddr: { transport: "tcp", hostname, port: 40_000 },
});

/** A port that runs no job and answers its stats and models at once. */
const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs here")),
  models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
  stats: () => Promise.resolve(emptyInferenceStats()),
};

Deno.test("a 429 of /healthz's or /metrics' per-address allowance is counted in veriflow_http_refused_total{code=rate_limited}", async () => {
  const app = createApp({ inference: PORT });
  const refusedCount = async () => {
    // Read from an address of its own: the flooding one is refused.
    const response = await app.request("/metrics", {}, from("203.0.113.50"));
    assert.equal(response.status, 200);
    const series = parsePrometheusText(await response.text());
    return valueOf(series, "veriflow_http_refused_total", { code: "rate_limited" });
  };
  assert.equal(await refusedCount(), 0);
  let expected = 0;
  for (
    const [path, perMinute, host] of [
      ["/healthz", DEFAULT_HEALTH_CHECKS_PER_MINUTE, "198.51.100.7"],
      ["/metrics", DEFAULT_METRICS_SCRAPES_PER_MINUTE, "198.51.100.8"],
    ] as const
  ) {
    // Ask until the first refusal rather than exactly the allowance: the real clock refills the
    // bucket while the loop runs, so how many are served first is not fixed. Bounded: a loop of
    // in-process requests outruns the refill (a tenth of the allowance a second) long before.
    let refused: Response | undefined;
    for (let i = 0; i < perMinute * 4 && refused === undefined; i++) {
      const response = await app.request(path, {}, from(host));
      if (response.status === 429) refused = response;
      else await response.body?.cancel();
    }
    assert.ok(refused !== undefined, `${path} never refused ${host}`);
    assert.equal((await refused.json()).error.code, "rate_limited");
    expected++;
    // Failed before the fix: 0, whatever was refused.
    assert.equal(await refusedCount(), expected, `after ${path}'s refusal`);
  }
});
