/**
 * DNS rebinding (`server/host_guard.ts`): a request from this machine must name the node by an
 * address, `localhost` or a name in `http.allowedHosts`. A page whose name was re-pointed at
 * 127.0.0.1 sends its own name as `Host` and no `Origin`; `/v1/models` and `/metrics` used to
 * answer it as a local client (a review at stop 34). Requests are written by hand over TCP:
 * fetch does not let a test choose `Host`.
 */
import assert from "node:assert/strict";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { edgeConfig } from "../../server/edge_config.ts";

const SOURCES: DashboardSources = {
  node: { key: "00".repeat(32), version: "test" },
  tree: () => ({}),
  onLifecycle: () => () => {},
  peers: () => Promise.resolve([]),
  validator: () => Promise.resolve(undefined),
  storage: () => Promise.resolve(undefined),
};
const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([{ cid: "bafkmodel", name: "private", kind: "text" }] as never),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** GET `path` from 127.0.0.1:`port` with exactly `headers`; the status and the body. */
async function rawGet(port: number, path: string, headers: Record<string, string>) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [`GET ${path} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  await conn.write(new TextEncoder().encode([...head, "Connection: close", "", ""].join("\r\n")));
  let text = "";
  const buf = new Uint8Array(1 << 16);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return { status: Number(text.split(" ")[1]), body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

Deno.test("a request from this machine under a name it was not given is refused on every route; an address, localhost, a listed name or a valid credential is served", async () => {
  const jobs = new JobMonitor();
  const key = "a-long-random-api-key-1234";
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: edgeConfig({ allowedHosts: ["proxy.example"], apiKeys: [key] }),
    dashboard: { sources: SOURCES, jobs, operatorToken: "op-token-0123456789abcdef" },
  });
  const server = serve({ app, hostname: "127.0.0.1", port: 0 });
  const port = Number(new URL(server.url).port);
  try {
    for (const path of ["/v1/models", "/metrics", "/healthz", "/dashboard/state"]) {
      const evil = await rawGet(port, path, { Host: `evil.example:${port}` });
      assert.equal(evil.status, 421, `${path} under a rebound name`);
      assert.match(evil.body, /misdirected_request/);
      assert.doesNotMatch(evil.body, /private/, "nothing of the node's");
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `proxy.example:${port}`]) {
      const ok = await rawGet(port, "/v1/models", { Host: host, Authorization: `Bearer ${key}` });
      assert.equal(ok.status, 200, host);
      assert.match(ok.body, /private/);
    }
    assert.equal((await rawGet(port, "/metrics", { Host: "proxy.example" })).status, 200);
    // A credential no rebinding page has lets a request in under any name; a made-up one not.
    const named = (authorization: string) =>
      rawGet(port, "/metrics", { Host: `node.example:${port}`, Authorization: authorization });
    assert.equal((await named(`Bearer ${key}`)).status, 200);
    assert.equal((await named("Bearer op-token-0123456789abcdef")).status, 200);
    assert.equal((await named("Bearer not-a-key-at-all-0000")).status, 421);
  } finally {
    await server.shutdown();
  }
});
