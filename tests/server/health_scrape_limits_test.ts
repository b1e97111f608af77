/**
 * `/metrics` and `/healthz` under a flood (review s71, finding 4): they need no key, and each
 * request asked every actor afresh, so 2000 concurrent scrapes from one client slowed a job 20×
 * and made 487 scrapes drop the storage series. Requests under way at once now share one round of
 * asks and get the same answer, and each client address has an allowance per endpoint (429 with
 * `Retry-After` past it), sized so that Prometheus and a load balancer's health checks never meet
 * it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  DEFAULT_HEALTH_CHECKS_PER_MINUTE,
  DEFAULT_METRICS_SCRAPES_PER_MINUTE,
  healthRoutes,
} from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { REFUSING_PORT_MODEL } from "./_refusing_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { TrustedProxies } from "../../server/trusted_proxies.ts";
import { startTestNode } from "./_fixtures.ts";

/** A client at `hostname`, as `Deno.serve` names it. */
const from = (hostname: string): EdgeEnv["Bindings"] => ({
  remoteAddr: { transport: "tcp", hostname, port: 40_000 },
});

/** A port whose stats are asked for through a gate, counted. */
function gatedPort() {
  let asks = 0;
  let open = Promise.withResolvers<void>();
  const port: InferencePort = {
    submit: () => Promise.reject(new Error("no jobs here")),
    models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
    stats: async () => {
      asks++;
      await open.promise;
      return { ...emptyInferenceStats(), jobsFinished: asks };
    },
  };
  return {
    port,
    asks: () => asks,
    /** Let the asks waiting now through, once at least one is. */
    release: async () => {
      await eventually(() => asks > 0, "an ask of the port's stats");
      open.resolve();
      open = Promise.withResolvers<void>();
    },
  };
}

/** The routes over `port`, with a hand-driven clock for the allowances. */
function routes(port: InferencePort, clock: { ms: number }) {
  const gateway = new InferenceGateway({ inference: port });
  const metrics = new MetricsRegistry();
  let collected = 0;
  metrics.register(async () => {
    collected++;
    const stats = await gateway.stats();
    return [{ name: "app_jobs_total", help: "Jobs.", type: "counter", value: stats.jobsFinished }];
  }, "inference");
  const app = new Hono<EdgeEnv>().route(
    "/",
    healthRoutes(gateway, metrics, undefined, undefined, undefined, { now: () => clock.ms }),
  );
  return { app, collected: () => collected };
}

Deno.test("concurrent /metrics scrapes share one collection and get the same text; a later scrape collects afresh", async () => {
  const gate = gatedPort();
  const { app, collected } = routes(gate.port, { ms: 0 });
  const scrapes = Array.from({ length: 50 }, () => app.request("/metrics", {}, from("192.0.2.1")));
  await gate.release();
  const texts = await Promise.all(scrapes.map(async (r) => {
    const response = await r;
    assert.equal(response.status, 200);
    return await response.text();
  }));
  // Failed before the fix: 50 collections, 50 asks of the port.
  assert.equal(collected(), 1);
  assert.equal(gate.asks(), 1);
  assert.equal(new Set(texts).size, 1);
  assert.match(texts[0], /^app_jobs_total 1$/m);
  // Not a cache: the next scrape, after that round ended, asks again.
  const next = app.request("/metrics", {}, from("192.0.2.1"));
  await eventually(() => gate.asks() === 2, "the next scrape's ask");
  await gate.release();
  assert.match(await (await next).text(), /^app_jobs_total 2$/m);
  assert.equal(collected(), 2);
});

Deno.test("concurrent /healthz checks share one round of asks and get the same answer", async () => {
  const gate = gatedPort();
  const { app } = routes(gate.port, { ms: 0 });
  const checks = Array.from({ length: 50 }, () => app.request("/healthz", {}, from("192.0.2.1")));
  await gate.release();
  const bodies = await Promise.all(checks.map(async (r) => {
    const response = await r;
    assert.equal(response.status, 200);
    return await response.text();
  }));
  // Failed before the fix: 50 asks of the port.
  assert.equal(gate.asks(), 1);
  assert.equal(new Set(bodies).size, 1);
  assert.equal(JSON.parse(bodies[0]).status, "ok");
});

for (
  const [path, perMinute] of [
    ["/metrics", DEFAULT_METRICS_SCRAPES_PER_MINUTE],
    ["/healthz", DEFAULT_HEALTH_CHECKS_PER_MINUTE],
  ] as const
) {
  Deno.test(`${path}: one address past its allowance gets 429 with Retry-After; other addresses and the other endpoint are served, and it is served again once the minute refills`, async () => {
    const clock = { ms: 0 };
    const { app } = routes(
      {
        submit: () => Promise.reject(new Error("no jobs here")),
        models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
        stats: () => Promise.resolve(emptyInferenceStats()),
      },
      clock,
    );
    const get = (p: string, host: string) => app.request(p, {}, from(host));
    for (let i = 0; i < perMinute; i++) {
      const response = await get(path, "198.51.100.7");
      assert.equal(response.status, 200, `request ${i + 1} of ${perMinute}`);
      await response.body?.cancel();
    }
    // Failed before the fix: 200, without end.
    const refused = await get(path, "198.51.100.7");
    assert.equal(refused.status, 429);
    assert.equal((await refused.json()).error.code, "rate_limited");
    const retryAfter = Number(refused.headers.get("retry-after"));
    assert.ok(retryAfter >= 1, `Retry-After ${refused.headers.get("retry-after")}`);
    // Another address is another client.
    const other = await get(path, "203.0.113.9");
    assert.equal(other.status, 200);
    await other.body?.cancel();
    // Each endpoint has its own allowance: a scraper's flood does not fail the health check.
    const otherPath = await get(path === "/metrics" ? "/healthz" : "/metrics", "198.51.100.7");
    assert.equal(otherPath.status, 200);
    await otherPath.body?.cancel();
    clock.ms += retryAfter * 1000;
    const again = await get(path, "198.51.100.7");
    assert.equal(again.status, 200);
    await again.body?.cancel();
  });
}

Deno.test("Prometheus scraping every 5 s (two of them behind one address) and health checks every second (three probes, as a kubelet's) never meet the allowances", async () => {
  const clock = { ms: 0 };
  const { app } = routes(
    {
      submit: () => Promise.reject(new Error("no jobs here")),
      models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
      stats: () => Promise.resolve(emptyInferenceStats()),
    },
    clock,
  );
  const SCRAPE_EVERY_MS = 5_000;
  const CHECK_EVERY_MS = 1_000;
  const HOUR_MS = 3_600_000;
  for (; clock.ms < HOUR_MS; clock.ms += CHECK_EVERY_MS) {
    const batch: (Response | Promise<Response>)[] = [];
    if (clock.ms % SCRAPE_EVERY_MS === 0) {
      for (let i = 0; i < 2; i++) batch.push(app.request("/metrics", {}, from("10.0.0.5")));
    }
    for (let i = 0; i < 3; i++) batch.push(app.request("/healthz", {}, from("10.0.0.5")));
    for (const response of await Promise.all(batch)) {
      assert.equal(response.status, 200, `at ${clock.ms} ms`);
      await response.body?.cancel();
    }
  }
});

// Since bdd1497 `/v1` and the dashboard count a client behind a trusted reverse proxy by the
// address it names; `/metrics` and `/healthz` still counted the proxy, so one client's scrapes
// used up every client's allowance behind it.
Deno.test("/metrics behind a trusted reverse proxy: each client it names has its own allowance", async () => {
  // The test's fetches come from 127.0.0.1: the proxy, as nginx on the node's machine would be.
  const node = await startTestNode({ edge: { trustedProxies: ["127.0.0.1", "::1"] } });
  try {
    const scrape = async (client: string) => {
      const response = await fetch(`${node.url}/metrics`, {
        headers: { "x-forwarded-for": `203.0.113.1, ${client}` },
      });
      await response.body?.cancel();
      return response.status;
    };
    for (let i = 0; i < DEFAULT_METRICS_SCRAPES_PER_MINUTE; i++) {
      assert.equal(await scrape("198.51.100.7"), 200, `scrape ${i + 1}`);
    }
    assert.equal(await scrape("198.51.100.7"), 429, "that client is past its allowance");
    // Failed before the fix: 429, the proxy's allowance spent by the other client.
    assert.equal(await scrape("198.51.100.8"), 200, "another client behind the same proxy");
  } finally {
    await node.close();
  }
});

Deno.test("/healthz behind a trusted proxy counts the client it names; an untrusted peer's header is ignored", async () => {
  const clock = { ms: 0 };
  const gateway = new InferenceGateway({
    inference: {
      submit: () => Promise.reject(new Error("no jobs here")),
      models: () => Promise.resolve([REFUSING_PORT_MODEL] as never),
      stats: () => Promise.resolve(emptyInferenceStats()),
    },
  });
  const app = new Hono<EdgeEnv>().route(
    "/",
    healthRoutes(gateway, new MetricsRegistry(), undefined, undefined, undefined, {
      now: () => clock.ms,
      healthChecksPerMinute: 2,
      trustedProxies: TrustedProxies.from(["10.0.0.1"]),
    }),
  );
  const check = async (peer: string, client: string) => {
    const response = await app.request("/healthz", {
      headers: { "x-forwarded-for": client },
    }, from(peer));
    await response.body?.cancel();
    return response.status;
  };
  assert.equal(await check("10.0.0.1", "198.51.100.7"), 200);
  assert.equal(await check("10.0.0.1", "198.51.100.7"), 200);
  assert.equal(await check("10.0.0.1", "198.51.100.7"), 429);
  assert.equal(await check("10.0.0.1", "198.51.100.8"), 200, "its own allowance");
  // Not a trusted proxy: counted by its own address whatever it names.
  assert.equal(await check("192.0.2.5", "198.51.100.20"), 200);
  assert.equal(await check("192.0.2.5", "198.51.100.21"), 200);
  assert.equal(await check("192.0.2.5", "198.51.100.22"), 429);
});
