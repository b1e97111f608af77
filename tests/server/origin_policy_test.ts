/** Browser origins: refused unless allowed; allowed ones get CORS headers and preflights. */
import OpenAI from "openai";
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";

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
  await withNode({ allowedOrigins: [APP] }, async (node) => {
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
      headers: { origin: APP, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Hello", max_tokens: 2 }),
    });
    assertEquals(post.status, 200);
    assertEquals(post.headers.get("access-control-allow-origin"), APP);
    assertEquals(post.headers.get("vary"), "Origin");
    assertEquals((await post.json()).object, "text_completion");
    // Error bodies are readable by the allowed page too.
    const missing = await fetch(`${node.url}/v1/nothing`, { headers: { origin: APP } });
    assertEquals(missing.status, 404);
    assertEquals(missing.headers.get("access-control-allow-origin"), APP);
    await missing.body?.cancel();
    const ws = await WsProbe.open(node.wsUrl, { origin: APP });
    ws.send({ type: "infer", id: "a", prompt: "Hi", max_tokens: 2 });
    assertEquals((await ws.end("a")).type, "done");
    await ws.close();
    const other = await fetch(`${node.url}/v1/models`, { headers: { origin: EVIL } });
    assertEquals(other.status, 403);
    await other.body?.cancel();
  });
});

Deno.test('The openai client works from an allowed origin with "*"', async () => {
  await withNode({ allowedOrigins: ["*"] }, async (node) => {
    const client = new OpenAI({
      baseURL: `${node.url}/v1`,
      apiKey: "unused",
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
