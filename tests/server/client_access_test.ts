/**
 * Who may use the API and from where: loopback only without keys (a reverse proxy's relayed client
 * is not), every client with a key when keys are set, the keys a node may be configured with,
 * per-key limits, the DNS-rebinding guard on `Host` and browser origins with CORS.
 */
import OpenAI from "openai";
import { assertEquals, assertRejects } from "./_assert.ts";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { type EdgeConfig, edgeConfig } from "../../server/edge_config.ts";
import { accessWarnings, describeAccess, isLoopback } from "../../server/client_access.ts";
import { ApiKeys, ApiKeysFileError } from "../../server/api_keys.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { ConfigError } from "../../node/config.ts";
import { notWholeNumber, parseWholeNumber } from "../../node/number_flags.ts";
import { join } from "node:path";
import assert from "node:assert/strict";
import { serve } from "../../server/serve.ts";

// Who may use the API: loopback only without keys, every client with a key when keys are set,
// and per-key concurrency and rate limits answered with 429 and Retry-After.

async function withNode(
  edge: Partial<EdgeConfig>,
  body: (node: TestNode) => Promise<void>,
): Promise<void> {
  const node = await startTestNode({ edge });
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

const KEY = "test-key-0123456789abcdef";
const OTHER_KEY = "test-key-fedcba9876543210";

/** A request from `hostname`, straight into the app (tests send traffic to loopback only). */
function fromHost(node: TestNode, hostname: string, path: string, init?: RequestInit) {
  return node.app.fetch(new Request(`http://127.0.0.1${path}`, init), {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
  });
}

const completion = (extra: Record<string, unknown> = {}) => ({
  method: "POST",
  body: JSON.stringify({ prompt: "Hello", max_tokens: 2, ...extra }),
});

Deno.test("Without API keys the node serves loopback clients only; a remote one gets 403 api_key_required saying what to do", async () => {
  await withNode({}, async (node) => {
    const remote = await fromHost(node, "192.0.2.7", "/v1/completions", completion());
    const { error } = await remote.json();
    assertEquals([remote.status, error.code], [403, "api_key_required"]);
    assert(error.message.includes("--api-key"), error.message);
    for (const host of ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"]) {
      const local = await fromHost(node, host, "/v1/models");
      assertEquals(local.status, 200, host);
      await local.body?.cancel();
    }
    // Called without the serve info the peer is unknown: treated as remote, not as loopback.
    const unknown = await node.app.fetch(new Request("http://node/v1/models"));
    assertEquals(unknown.status, 403);
    await unknown.body?.cancel();
    // Operational routes are not the inference API.
    assertEquals((await fromHost(node, "192.0.2.7", "/healthz")).status, 200);
    assertEquals((await node.stats()).jobsStarted, 0);
  });
  assert(!isLoopback({ transport: "tcp", hostname: "128.0.0.1", port: 1 }));
  assert(!isLoopback({ transport: "tcp", hostname: "::2", port: 1 }));
});

Deno.test("http.allowUnauthenticatedRemote serves remote clients without a key", async () => {
  await withNode({ allowUnauthenticatedRemote: true }, async (node) => {
    const remote = await fromHost(node, "192.0.2.7", "/v1/completions", completion());
    assertEquals(remote.status, 200);
    await remote.text();
  });
});

Deno.test("With API keys every client needs one (Authorization: Bearer, as OpenAI clients send it): 401 without or with a wrong one", async () => {
  await withNode({ apiKeys: [KEY] }, async (node) => {
    const none = await fetch(`${node.url}/v1/completions`, completion());
    const noneError = (await none.json()).error;
    assertEquals([none.status, noneError.code], [401, "missing_api_key"]);
    assert(none.headers.get("www-authenticate")!.startsWith("Bearer"));
    const wrong = await fetch(`${node.url}/v1/models`, {
      headers: { authorization: "Bearer nope" },
    });
    assertEquals([wrong.status, (await wrong.json()).error.code], [401, "invalid_api_key"]);
    // The official client, with the key, from a remote address as well as from loopback.
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: KEY, maxRetries: 0 });
    assertEquals(
      (await client.completions.create({ model: "default", prompt: "Hi", max_tokens: 2 })).object,
      "text_completion",
    );
    await assertRejects(
      () =>
        new OpenAI({ baseURL: `${node.url}/v1`, apiKey: OTHER_KEY, maxRetries: 0 }).models.list(),
      OpenAI.AuthenticationError,
    );
    const remote = await fromHost(node, "192.0.2.7", "/v1/models", {
      headers: { authorization: `Bearer ${KEY}` },
    });
    assertEquals(remote.status, 200);
    await remote.body?.cancel();
    // The WebSocket handshake carries the key too.
    await WsProbe.open(node.wsUrl).then(
      () => assert(false, "a handshake without a key must be refused"),
      () => {},
    );
    const ws = await WsProbe.open(node.wsUrl, { authorization: `Bearer ${KEY}` });
    ws.send({ type: "infer", id: "a", prompt: "Hi", max_tokens: 2 });
    assertEquals((await ws.end("a")).type, "done");
    await ws.close();
  });
});

Deno.test("The keys file (http.apiKeysFile) is read at start: one key per line, comments skipped; a bad line names the file and line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-keys-" });
  try {
    const path = `${dir}/keys`;
    await Deno.writeTextFile(path, `# clients\n${KEY}\n\n${OTHER_KEY}  # the other one\n`);
    const keys = ApiKeys.fromConfig({ apiKeys: [], apiKeysFile: path });
    assertEquals(keys.size, 2);
    assertEquals(keys.identify(`Bearer ${OTHER_KEY}`).keyId?.length, 64);
    assert(!keys.identify(`Bearer ${KEY}`).label.includes(KEY), "a log label never shows the key");
    await Deno.writeTextFile(path, `${KEY}\nshort\n`);
    try {
      ApiKeys.fromConfig({ apiKeys: [], apiKeysFile: path });
      assert(false, "a short key must be refused");
    } catch (error) {
      assert((error as Error).message.includes(`${path}, line 2`), (error as Error).message);
    }
    try {
      ApiKeys.fromConfig({ apiKeys: [], apiKeysFile: `${dir}/missing` });
      assert(false, "a missing file must be refused");
    } catch (error) {
      assert((error as Error).message.includes("http.apiKeysFile"), (error as Error).message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert(
    describeAccess({ apiKeys: [], allowUnauthenticatedRemote: false, allowedOrigins: [] })
      .includes("this machine only"),
  );
});

Deno.test("Per-key concurrency (http.perKeyConcurrency): the key's next job gets 429 with Retry-After; another key is unaffected", async () => {
  await withNode({ apiKeys: [KEY, OTHER_KEY], perKeyConcurrency: 1 }, async (node) => {
    const auth = (key: string) => ({ authorization: `Bearer ${key}` });
    const first = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: auth(KEY),
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 2, stream: true }),
    });
    await eventually(() => node.gated.waiting === 1);
    const second = await fetch(`${node.url}/v1/completions`, {
      ...completion(),
      headers: auth(KEY),
    });
    const error = (await second.json()).error;
    assertEquals([second.status, error.code, error.type], [
      429,
      "key_concurrency_exceeded",
      "rate_limit_error",
    ]);
    assert(error.message.includes("http.perKeyConcurrency"), error.message);
    assertEquals(second.headers.get("retry-after"), "1");
    const other = await fetch(`${node.url}/v1/completions`, {
      ...completion(),
      headers: auth(OTHER_KEY),
    });
    assertEquals(other.status, 200);
    await other.text();
    // The slot comes back when the job ends.
    node.gated.release(2);
    await first.text();
    const again = await fetch(`${node.url}/v1/completions`, {
      ...completion(),
      headers: auth(KEY),
    });
    assertEquals(again.status, 200);
    await again.text();
  });
});

Deno.test("Without a key under http.allowUnauthenticatedRemote, a client address gets the per-key limits: its next job is a 429 naming the address, another address (an IPv6 /64 as one) is unaffected; this machine's clients are not limited", async () => {
  // Review s72 (WS/SSE F2): keyless clients had no share at all, and one took every seat and
  // every queue place (72 of 200 jobs in, another client's only job refused too_many_jobs).
  await withNode({ allowUnauthenticatedRemote: true, perKeyConcurrency: 1 }, async (node) => {
    const gated = { ...completion({ model: "gated", stream: true }) };
    const first = await fromHost(node, "2001:db8:1:2::7", "/v1/completions", gated);
    // Read, as a client does: the gated model steps only when its tokens are pulled.
    const held = first.text();
    await eventually(() => node.gated.waiting === 1);
    const second = await fromHost(node, "2001:db8:1:2::99", "/v1/completions", completion());
    const error = (await second.json()).error;
    assertEquals([second.status, error.code], [429, "key_concurrency_exceeded"]);
    assert(error.message.includes("this address"), error.message);
    assert(error.message.includes("http.perKeyConcurrency"), error.message);
    const other = await fromHost(node, "192.0.2.7", "/v1/completions", completion());
    assertEquals(other.status, 200);
    await other.text();
    // The operator's own clients on this machine are not limited (a proxy's are not its own).
    const local = await fromHost(node, "127.0.0.1", "/v1/completions", completion());
    assertEquals(local.status, 200);
    await local.text();
    node.gated.release(2);
    await held;
    const again = await fromHost(node, "2001:db8:1:2::99", "/v1/completions", completion());
    assertEquals(again.status, 200);
    await again.text();
  });
});

Deno.test("Per-key rate (http.perKeyRequestsPerMinute): over it, 429 rate_limited with Retry-After; on the WebSocket too", async () => {
  await withNode({ apiKeys: [KEY], perKeyRequestsPerMinute: 2 }, async (node) => {
    const headers = { authorization: `Bearer ${KEY}` };
    for (let i = 0; i < 2; i++) {
      const ok = await fetch(`${node.url}/v1/completions`, { ...completion(), headers });
      assertEquals(ok.status, 200);
      await ok.text();
    }
    const limited = await fetch(`${node.url}/v1/completions`, { ...completion(), headers });
    assertEquals([limited.status, (await limited.json()).error.code], [429, "rate_limited"]);
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${retryAfter}`);
    const ws = await WsProbe.open(node.wsUrl, headers);
    ws.send({ type: "infer", id: "r", prompt: "Hi", max_tokens: 2 });
    const error = await ws.end("r") as WsErrorMessage;
    assertEquals(error.code, "rate_limited");
    assert(error.retry_after_s! >= 1, JSON.stringify(error));
    await ws.close();
  });
});

Deno.test("KeyLimits: a token bucket of one minute's starts, refilled over time; Retry-After is when the next start fits", () => {
  let now = 0;
  const limits = new KeyLimits({ concurrency: 10, requestsPerMinute: 6, now: () => now });
  for (let i = 0; i < 6; i++) limits.admit("k")();
  const refused = (() => {
    try {
      limits.admit("k");
    } catch (error) {
      return error as { code: string; retryAfterS: number };
    }
  })();
  assertEquals([refused?.code, refused?.retryAfterS], ["rate_limited", 10]);
  now += 4_000; // 0.4 of a start refilled
  assertEquals(
    (() => {
      try {
        limits.admit("k");
      } catch (error) {
        return (error as { retryAfterS: number }).retryAfterS;
      }
    })(),
    6,
  );
  now += 6_000;
  limits.admit("k")(); // one start refilled
  limits.admit("other")(); // keys do not share a bucket
});

// The operator's and the API's edges: who counts as this machine's own client, which API keys a
// node may be configured with, and how numbers are read from flags.

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
  models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
  stats: () => Promise.resolve({} as InferenceStats),
};

Deno.test("a loopback request a reverse proxy relays (Forwarded, X-Forwarded-For, X-Real-IP) is not this machine's client: without keys /v1 and the dashboard's state refuse it", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: edgeConfig({}),
    dashboard: { sources: SOURCES, jobs, operatorToken: "op-token-0123456789abcdef" },
  });
  const loopback = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;
  const get = (path: string, headers: Record<string, string>) =>
    app.fetch(new Request(`http://127.0.0.1${path}`, { headers }), { remoteAddr: loopback });
  // A proxy on this machine reached by its public address keeps that address as `Host` (Caddy,
  // nginx's `proxy_set_header Host $host`), or sends the upstream's (nginx's default
  // `$proxy_host`): either names the node by an address, as this machine's own clients do.
  const relayed: Record<string, string>[] = [
    { host: "203.0.113.5", "x-forwarded-for": "198.51.100.7" },
    { host: "127.0.0.1:8080", "x-real-ip": "198.51.100.7" },
    { host: "[2001:db8::5]", forwarded: "for=198.51.100.7;proto=https" },
  ];
  for (const headers of relayed) {
    for (const path of ["/v1/models", "/dashboard/state"]) {
      const response = await get(path, headers);
      const { error } = await response.json();
      assertEquals([response.status, error?.code], [
        path === "/v1/models" ? 403 : 401,
        "api_key_required",
      ], `${path} ${JSON.stringify(headers)}`);
    }
  }
  // This machine's own client, which relays nobody, is still served without a key.
  for (const path of ["/v1/models", "/dashboard/state"]) {
    const own = await get(path, { host: "127.0.0.1:8080" });
    assertEquals(own.status, 200, path);
    await own.body?.cancel();
  }
});

Deno.test("a client relayed by a trusted proxy on loopback (http.trustedProxies) is not this machine's, nor is the proxy when it names nobody: without keys /v1 and the dashboard's state refuse both", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: edgeConfig({ trustedProxies: ["127.0.0.1"] }),
    dashboard: { sources: SOURCES, jobs, operatorToken: "op-token-0123456789abcdef" },
  });
  const get = (hostname: string, path: string, headers: Record<string, string>) =>
    app.fetch(new Request(`http://127.0.0.1${path}`, { headers }), {
      remoteAddr: { transport: "tcp", hostname, port: 40000 },
    });
  // The relayed client is named 127.0.0.1 too (a client on the proxy's machine): still not ours.
  const cases: Record<string, string>[] = [
    { host: "127.0.0.1:8080", "x-forwarded-for": "198.51.100.7" },
    { host: "127.0.0.1:8080", "x-forwarded-for": "127.0.0.1" },
    { host: "127.0.0.1:8080" },
  ];
  for (const headers of cases) {
    for (const path of ["/v1/models", "/dashboard/state"]) {
      const response = await get("127.0.0.1", path, headers);
      const { error } = await response.json();
      assertEquals([response.status, error?.code], [
        path === "/v1/models" ? 403 : 401,
        "api_key_required",
      ], `${path} ${JSON.stringify(headers)}`);
    }
  }
  // The start-up line says whose forwarding headers the node believes, and which header.
  const said = describeAccess(edgeConfig({ trustedProxies: ["127.0.0.1"] }));
  assert(said.includes("proxies at 127.0.0.1 in their X-Forwarded-For (http.trustedProxies"), said);
  // ::1 is not listed: a client there, relaying nobody, is still this machine's.
  for (const path of ["/v1/models", "/dashboard/state"]) {
    const own = await get("::1", path, { host: "127.0.0.1:8080" });
    assertEquals(own.status, 200, path);
    await own.body?.cancel();
  }
});

Deno.test("a keyless node trusting 127.0.0.1 says at start that this machine's tools there are refused, and how to fix it; its 403 names http.trustedProxies (review s74 verify1, F3)", async () => {
  const config = edgeConfig({ trustedProxies: ["127.0.0.1"] });
  // The start line no longer says plainly "serving clients on this machine only".
  const said = describeAccess(config);
  assert.match(
    said,
    /this machine only, except those connecting from 127\.0\.0\.1, a trusted proxy/,
  );
  const [warning, ...more] = accessWarnings(config);
  assertEquals(more, []);
  assert.match(warning, /^warning: http\.trustedProxies covers 127\.0\.0\.1, where this machine/);
  for (
    const fix of ["proxy_bind 127.0.0.2", "--trust-proxy 127.0.0.2", "--api-key", "operator token"]
  ) {
    assert(warning.includes(fix), fix);
  }
  // Open to anyone: the local tools are served, as one anonymous client, and told so.
  const open = accessWarnings({ ...config, allowUnauthenticatedRemote: true });
  assert.match(open[0], /served as one anonymous client/);
  // With keys every client needs one anyway; a proxy on 127.0.0.2 leaves 127.0.0.1 alone.
  assertEquals(accessWarnings({ ...config, apiKeys: [KEY] }), []);
  const proxyBind = edgeConfig({ trustedProxies: ["127.0.0.2"] });
  assertEquals(accessWarnings(proxyBind), []);
  assert(!describeAccess(proxyBind).includes("except"), describeAccess(proxyBind));
  // ::1 and a range over 127.0.0.0/8 are the same mistake.
  assert.match(accessWarnings(edgeConfig({ trustedProxies: ["::1"] }))[0], /covers ::1,/);
  assert.match(
    accessWarnings(edgeConfig({ trustedProxies: ["127.0.0.0/8"] }))[0],
    /covers 127\.0\.0\.1,/,
  );
  // The refusal the operator's own curl gets says why.
  const app = createApp({ inference: PORT, edge: config });
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/models", { headers: { host: "127.0.0.1:8080" } }),
    { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
  );
  const { error } = await response.json();
  assertEquals([response.status, error.code], [403, "api_key_required"]);
  assert.match(error.message, /127\.0\.0\.1 is a trusted proxy's address \(http\.trustedProxies\)/);
});

Deno.test("a trusted range wider than the private ones (0.0.0.0/0, ::/0) gets a warning line at start; 10.0.0.0/8 and fc00::/7 do not (review s74 verify1, F3)", () => {
  const warned = accessWarnings(
    edgeConfig({ trustedProxies: ["0.0.0.0/0", "10.0.0.0/8", "::/0", "fc00::/7"], apiKeys: [KEY] }),
  );
  assertEquals(warned.length, 1, warned.join("\n"));
  assert.match(
    warned[0],
    /^warning: http\.trustedProxies 0\.0\.0\.0\/0 ::\/0 covers addresses of the open internet/,
  );
  assertEquals(
    accessWarnings(edgeConfig({ trustedProxies: ["10.0.0.0/8", "fc00::/7"], apiKeys: [KEY] })),
    [],
  );
});

Deno.test("under http.allowUnauthenticatedRemote, clients a trusted proxy relays each get their own per-address concurrency; a peer that is not trusted cannot pose as another address with X-Forwarded-For", async () => {
  await withNode({
    allowUnauthenticatedRemote: true,
    perKeyConcurrency: 1,
    trustedProxies: ["192.0.2.1"],
  }, async (node) => {
    const via = (hostname: string, client: string, init?: RequestInit) =>
      node.app.fetch(
        new Request("http://127.0.0.1/v1/completions", {
          ...init,
          headers: { "x-forwarded-for": client },
        }),
        { remoteAddr: { transport: "tcp", hostname, port: 40000 } },
      );
    const gated = completion({ model: "gated", stream: true });
    const first = await via("192.0.2.1", "198.51.100.7", gated);
    assertEquals(first.status, 200);
    const held = first.text();
    await eventually(() => node.gated.waiting === 1);
    // Another user behind the same proxy: a client of its own, not the proxy's second job.
    const other = await via("192.0.2.1", "198.51.100.8", completion());
    assertEquals(other.status, 200);
    await other.text();
    // The same user again (a port on the hop does not make it another client): its one job runs.
    const same = await via("192.0.2.1", "198.51.100.7:5000", completion());
    assertEquals([same.status, (await same.json()).error?.code], [429, "key_concurrency_exceeded"]);
    // Straight from 198.51.100.7 is that same client: its address is its own, relayed or not.
    const direct = await fromHost(node, "198.51.100.7", "/v1/completions", completion());
    assertEquals(direct.status, 429);
    await direct.body?.cancel();
    // An untrusted peer running a job cannot start another by writing someone else's address.
    const untrusted = await via("203.0.113.9", "198.51.100.1", gated);
    assertEquals(untrusted.status, 200);
    const untrustedHeld = untrusted.text();
    await eventually(() => node.gated.waiting === 2);
    const spoofed = await via("203.0.113.9", "198.51.100.2", completion());
    assertEquals(spoofed.status, 429);
    await spoofed.body?.cancel();
    node.gated.release(4);
    await held;
    await untrustedHeld;
  });
});

Deno.test("the dashboard's anonymous allowances count each client a trusted proxy relays by its own address", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: edgeConfig({
      allowUnauthenticatedRemote: true,
      dashboardStateReadsPerMinute: 1,
      trustedProxies: ["127.0.0.1"],
    }),
    dashboard: { sources: SOURCES, jobs, operatorToken: "op-token-0123456789abcdef" },
  });
  const read = (client: string) =>
    app.fetch(
      new Request("http://127.0.0.1/dashboard/state", {
        headers: { "x-forwarded-for": client },
      }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
    );
  const first = await read("198.51.100.7");
  assertEquals(first.status, 200);
  await first.body?.cancel();
  const again = await read("198.51.100.7");
  assertEquals(again.status, 429);
  await again.body?.cancel();
  const other = await read("198.51.100.8");
  assertEquals(other.status, 200, "another relayed reader has its own allowance");
  await other.body?.cancel();
});

Deno.test("an API key no client can send (a blank inside, a character outside visible ASCII) is refused at start naming the option, from a flag and from the keys file alike", async () => {
  for (
    const key of [
      "correct horse battery staple",
      "clé-secrète-0123456789",
      "tab\tseparated-key-0123",
    ]
  ) {
    const error = await assertRejects(
      () => resolveStartConfig(["--api-key", key]),
      ConfigError,
    );
    assert(error.message.includes("http.apiKeys"), error.message);
    // The message must not echo the secret itself.
    assert(!error.message.includes(key), error.message);
  }
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/keys`;
    await Deno.writeTextFile(file, "# keys\nclé-secrète-0123456789\n");
    const error = await assertRejects(
      () => Promise.resolve().then(() => describeAccess({ ...edgeConfig({ apiKeysFile: file }) })),
      ApiKeysFileError,
    );
    assert(error.message.includes("line 2"), error.message);
    assert(!error.message.includes("clé"), error.message);
    // A well-formed key (visible ASCII, one word) is still accepted both ways.
    await Deno.writeTextFile(file, "# keys\nsk-0123456789abcdef_~+/=.\n");
    assert(describeAccess({ ...edgeConfig({ apiKeysFile: file }) }).includes("1 API key"));
    const { config } = await resolveStartConfig(["--api-key", "sk-0123456789abcdef_~+/=."]);
    assertEquals(config.http.apiKeys, ["sk-0123456789abcdef_~+/=."]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a whole number past 2^53 is refused as too large, not read as a neighbouring number nobody wrote", () => {
  // 2^53 + 1 has no double of its own: Number() reads it as 2^53.
  assertEquals(parseWholeNumber("9007199254740993"), undefined);
  assertEquals(parseWholeNumber("99999999999999999999"), undefined);
  assertEquals(parseWholeNumber("9007199254740991"), Number.MAX_SAFE_INTEGER);
  const message = notWholeNumber("--quota", "99999999999999999999");
  assert(message.includes("too large"), message);
});

// An API key may hold `#` (`--api-key` takes any visible ASCII), but the keys file cut every line
// at its first `#`, as if a comment began there: the same key read from the file became its first
// part, a key clients never send (or, shorter than 16 characters, refused the file). A comment now
// starts at a line's start or after a space.

/** Which of `asked` a node with `file` as its keys file accepts. */
async function accepted(file: string, asked: string[]): Promise<string[]> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "keys");
    await Deno.writeTextFile(path, file);
    const keys = ApiKeys.fromConfig({ apiKeys: [], apiKeysFile: path });
    return asked.filter((key) => {
      try {
        keys.identify(`Bearer ${key}`);
        return true;
      } catch {
        return false;
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a key with a # in it read from the keys file is that whole key, as --api-key takes it", async () => {
  const key = "team#7-3f9a1c0de8b24f67a5";
  assertEquals(await accepted(`${key}\n`, [key, "team"]), [key]);
});

Deno.test("comments in the keys file still start a line or follow a space", async () => {
  const a = "aaaaaaaaaaaaaaaaaaaa";
  const b = "bbbbbbbbbbbbbbbbbbbb";
  const file = `# the team's keys\n${a} # alice\n\t# ${b} retired\n`;
  assertEquals(await accepted(file, [a, b]), [a]);
});

// DNS rebinding (`server/host_guard.ts`): a request from this machine must name the node by an
// address, `localhost` or a name in `http.allowedHosts`. A page whose name was re-pointed at
// 127.0.0.1 sends its own name as `Host` and no `Origin`; `/v1/models` and `/metrics` used to
// answer it as a local client. Requests are written by hand over TCP: fetch does not let a test
// choose `Host`.

const GUARD_PORT: InferencePort = {
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
    inference: jobs.wrap(GUARD_PORT),
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

// Browser origins: refused unless allowed; allowed ones get CORS headers and preflights.

const EVIL = "http://evil.example";
const APP = "https://app.example";

Deno.test("By default a page from another origin cannot drive the node: a text/plain POST and a WebSocket are refused (403 origin_not_allowed)", async () => {
  await withNode({}, async (node) => {
    // The "simple request" a page can send without a preflight.
    const post = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { origin: EVIL, "content-type": "text/plain" },
      body: JSON.stringify({ prompt: "Hello", max_tokens: 2 }),
    });
    const { error } = await post.json();
    assertEquals([post.status, error.code], [403, "origin_not_allowed"]);
    assert(error.message.includes("--allow-origin"), error.message);
    assertEquals(post.headers.get("access-control-allow-origin"), null);
    await WsProbe.open(node.wsUrl, { origin: EVIL }).then(
      () => assert(false, "the WebSocket handshake must be refused"),
      () => {},
    );
    assertEquals((await node.stats()).jobsStarted, 0);
    // Clients that are not browsers send no Origin and are served as before.
    const plain = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Hello", max_tokens: 2 }),
    });
    assertEquals(plain.status, 200);
    await plain.text();
  });
});

Deno.test("An allowed origin (http.allowedOrigins) gets a working preflight and CORS headers; others stay refused", async () => {
  // With a key: a page of another origin is never this machine's client (review s78 dash, F1).
  const auth = { authorization: `Bearer ${KEY}` };
  await withNode({ allowedOrigins: [APP], apiKeys: [KEY] }, async (node) => {
    const preflight = await fetch(`${node.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin: APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    assertEquals(preflight.status, 204);
    assertEquals(preflight.headers.get("access-control-allow-origin"), APP);
    assert(preflight.headers.get("access-control-allow-methods")!.includes("POST"));
    assert(preflight.headers.get("access-control-allow-headers")!.includes("authorization"));
    const post = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { origin: APP, "content-type": "application/json", ...auth },
      body: JSON.stringify({ prompt: "Hello", max_tokens: 2 }),
    });
    assertEquals(post.status, 200);
    assertEquals(post.headers.get("access-control-allow-origin"), APP);
    assertEquals(post.headers.get("vary"), "Origin");
    assertEquals((await post.json()).object, "text_completion");
    // Error bodies are readable by the allowed page too.
    const missing = await fetch(`${node.url}/v1/nothing`, { headers: { origin: APP, ...auth } });
    assertEquals(missing.status, 404);
    assertEquals(missing.headers.get("access-control-allow-origin"), APP);
    await missing.body?.cancel();
    const ws = await WsProbe.open(node.wsUrl, { origin: APP, ...auth });
    ws.send({ type: "infer", id: "a", prompt: "Hi", max_tokens: 2 });
    assertEquals((await ws.end("a")).type, "done");
    await ws.close();
    const other = await fetch(`${node.url}/v1/models`, { headers: { origin: EVIL } });
    assertEquals(other.status, 403);
    await other.body?.cancel();
  });
});

Deno.test('The openai client works from an allowed origin with "*"', async () => {
  // With a key: a page of another origin is never this machine's client (review s78 dash, F1).
  await withNode({ allowedOrigins: ["*"], apiKeys: [KEY] }, async (node) => {
    const client = new OpenAI({
      baseURL: `${node.url}/v1`,
      apiKey: KEY,
      maxRetries: 0,
      defaultHeaders: { origin: EVIL },
    });
    const completion = await client.completions.create({
      model: "default",
      prompt: "Hi",
      max_tokens: 2,
    });
    assertEquals(completion.object, "text_completion");
  });
});

Deno.test("A browser running the official openai client passes the preflight: the headers it sends (x-stainless-*) are allowed for an allowed origin, and a malformed header list is not echoed", async () => {
  // The header names the official client sends with a streamed chat request, as it sends them.
  let sent: string[] = [];
  const capture = new OpenAI({
    baseURL: "http://127.0.0.1:9/v1",
    apiKey: "sk-browser",
    maxRetries: 0,
    dangerouslyAllowBrowser: true,
    fetch: (_url, init) => {
      sent = [...new Headers(init?.headers).keys()];
      return Promise.reject(new Error("captured"));
    },
  });
  await capture.chat.completions.create({
    model: "default",
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
  }).catch(() => {});
  // What a browser's preflight asks for: not the simple headers, nor those a page cannot set.
  const custom = sent.filter((name) => !["accept", "content-type", "user-agent"].includes(name));
  assert(custom.some((name) => name.startsWith("x-stainless-")), `sent: ${sent.join(", ")}`);
  await withNode({ allowedOrigins: [APP] }, async (node) => {
    const preflight = (requested: string) =>
      fetch(`${node.url}/v1/chat/completions`, {
        method: "OPTIONS",
        headers: {
          origin: APP,
          "access-control-request-method": "POST",
          "access-control-request-headers": requested,
        },
      });
    const answer = await preflight(custom.join(","));
    assertEquals(answer.status, 204);
    const allowed = (answer.headers.get("access-control-allow-headers") ?? "")
      .split(",").map((name) => name.trim().toLowerCase());
    for (const name of custom) assert(allowed.includes(name), `${name} not allowed: ${allowed}`);
    assert(answer.headers.get("vary")!.includes("Access-Control-Request-Headers"));
    // Only a list of header names is echoed back.
    const odd = await preflight("x-a, x-b: evil");
    assertEquals(odd.headers.get("access-control-allow-headers"), "authorization, content-type");
  });
});
