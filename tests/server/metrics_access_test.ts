/**
 * Who may read `/metrics` (`http.metricsAccess`, `server/metrics_access.ts`; review s78 dash, F6):
 * `any` (the default) anyone; `local` this machine, or an API key or the operator token; `key` a
 * credential only. `/healthz` stays open whatever the value. The setting is read from a flag, the
 * environment and the file like the other `http` settings, and said in the start line.
 */
import assert from "node:assert/strict";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { describeAccess } from "../../server/client_access.ts";
import { type EdgeConfig, edgeConfig } from "../../server/edge_config.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { quietSources } from "./_dashboard_sources.ts";

const KEY = "a-long-random-api-key-1234";
const OPERATOR = "op-token-0123456789abcdef";
/** A host on the node's network (TEST-NET-1), reading with nothing but the node's address. */
const LAN = "192.0.2.7";
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs in this test")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** The node's app under `edge`, with its dashboard (whose operator token reads too). */
function appWith(edge: Partial<EdgeConfig>) {
  return createApp({
    inference: IDLE_PORT,
    edge: edgeConfig(edge),
    dashboard: { sources: quietSources(), jobs: new JobMonitor(), operatorToken: OPERATOR },
  });
}

/** The status and error code of `path` asked from `hostname`, with `headers`. */
async function ask(
  app: ReturnType<typeof createApp>,
  hostname: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await app.fetch(new Request(`http://127.0.0.1:8080${path}`, { headers }), {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
  });
  const body = await response.text();
  if (response.ok) return String(response.status);
  return `${response.status} ${JSON.parse(body).error.code}`;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

Deno.test("http.metricsAccess any (the default) serves /metrics to a host on the network without a key, as scrapers set up without credentials need", async () => {
  for (const app of [appWith({}), appWith({ metricsAccess: "any", apiKeys: [KEY] })]) {
    assert.equal(await ask(app, LAN, "/metrics"), "200");
  }
});

Deno.test("http.metricsAccess local refuses a host on the network without a credential (403 api_key_required), and serves this machine, an API key and the operator token; /healthz stays open", async () => {
  const app = appWith({ metricsAccess: "local", apiKeys: [KEY] });
  assert.equal(await ask(app, LAN, "/metrics"), "403 api_key_required");
  assert.equal(
    await ask(app, LAN, "/metrics", bearer("not-a-key-of-this-node")),
    "401 invalid_api_key",
  );
  assert.equal(await ask(app, LAN, "/metrics", bearer(KEY)), "200");
  assert.equal(await ask(app, LAN, "/metrics", bearer(OPERATOR)), "200");
  assert.equal(await ask(app, "127.0.0.1", "/metrics"), "200");
  assert.equal(await ask(app, "::1", "/metrics"), "200");
  // A local reverse proxy relays another machine's scraper: not this machine.
  assert.equal(
    await ask(app, "127.0.0.1", "/metrics", { "x-forwarded-for": LAN }),
    "403 api_key_required",
  );
  assert.equal(await ask(app, LAN, "/healthz"), "200");
  // Without API keys at all, this machine still reads.
  const keyless = appWith({ metricsAccess: "local" });
  assert.equal(await ask(keyless, LAN, "/metrics"), "403 api_key_required");
  assert.equal(await ask(keyless, "127.0.0.1", "/metrics"), "200");
});

Deno.test("http.metricsAccess local: a page of another origin in the operator's browser is not this machine, even with --allow-origin '*'", async () => {
  const app = appWith({ metricsAccess: "local", allowedOrigins: ["*"] });
  const page = { origin: "https://evil.example" };
  assert.equal(await ask(app, "127.0.0.1", "/metrics", page), "403 api_key_required");
  assert.equal(await ask(app, "127.0.0.1", "/metrics", { origin: "null" }), "403 api_key_required");
  assert.equal(await ask(app, "127.0.0.1", "/metrics"), "200");
});

Deno.test("http.metricsAccess key wants a credential from everyone, this machine included (401 missing_api_key); an API key or the operator token reads", async () => {
  const app = appWith({ metricsAccess: "key", apiKeys: [KEY] });
  assert.equal(await ask(app, LAN, "/metrics"), "401 missing_api_key");
  assert.equal(await ask(app, "127.0.0.1", "/metrics"), "401 missing_api_key");
  assert.equal(await ask(app, LAN, "/metrics", bearer(KEY)), "200");
  assert.equal(await ask(app, "127.0.0.1", "/metrics", bearer(OPERATOR)), "200");
  assert.equal(
    await ask(app, LAN, "/metrics", bearer("wrong-token-0123456789")),
    "401 invalid_api_key",
  );
  assert.equal(await ask(app, LAN, "/healthz"), "200");
});

Deno.test("http.metricsAccess comes from --metrics-access, VERIFLOW_HTTP_METRICS_ACCESS or the file, is said in the start line, and a value it does not know is refused naming the key", async () => {
  assert.equal((await resolveStartConfig([])).config.http.metricsAccess, "any");
  const flag = await resolveStartConfig(["--metrics-access", "local"]);
  assert.equal(flag.config.http.metricsAccess, "local");
  const env = await resolveStartConfig([], { VERIFLOW_HTTP_METRICS_ACCESS: "key" });
  assert.equal(env.config.http.metricsAccess, "key");
  assert.equal(parseNodeConfig({ http: { metricsAccess: "local" } }).http.metricsAccess, "local");
  await assert.rejects(
    () => resolveStartConfig(["--metrics-access", "open"]),
    (error: Error) => error instanceof ConfigError && /http\.metricsAccess/.test(error.message),
  );
  assert.match(
    describeAccess(edgeConfig({})),
    /\/metrics open to anyone .*http\.metricsAccess any/,
  );
  assert.match(
    describeAccess(edgeConfig({ metricsAccess: "local" })),
    /\/metrics to this machine, an API key or the operator token \(http\.metricsAccess local\)/,
  );
});

Deno.test("http.metricsAccess key on a node with no API key and no operator token (--no-dashboard) is refused at start: nothing could read /metrics", () => {
  assert.throws(
    () => parseNodeConfig({ http: { metricsAccess: "key" }, dashboard: { enabled: false } }),
    (error: Error) =>
      error instanceof ConfigError && /http\.metricsAccess: is "key"/.test(error.message),
  );
  // A key, or the dashboard's operator token, is something to read it with.
  parseNodeConfig({
    http: { metricsAccess: "key", apiKeys: [KEY] },
    dashboard: { enabled: false },
  });
  parseNodeConfig({ http: { metricsAccess: "key" } });
});
