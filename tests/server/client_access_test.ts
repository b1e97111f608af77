/**
 * Who may use the API: loopback only without keys, every client with a key when keys are set,
 * and per-key concurrency and rate limits answered with 429 and Retry-After.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { describeAccess, isLoopback } from "../../server/client_access.ts";
import { ApiKeys } from "../../server/api_keys.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";

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
