/**
 * The dashboard's edge, from a security review on the operator's side (`server/dashboard_routes.ts`):
 * `/dashboard/state` reads its bearer token as strictly as `/v1` and the DNS-rebinding guard do
 * (a bare token with no `Bearer` scheme was accepted there, and only there), and the live socket
 * blanks other clients' job text for a page behind a reverse proxy on the node's machine (a
 * loopback peer under a listed `http.allowedHosts` name), as `/dashboard/state` already did: the
 * socket counted every loopback peer as the operator's own machine.
 */
import assert from "node:assert/strict";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { quietSources } from "./_dashboard_sources.ts";

const KEY = "a-real-api-key-0123456789";
const OPERATOR = "op-token-0123456789abcdef";

const SOURCES: DashboardSources = quietSources();
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs in this test")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** A port whose one job streams "secret answer" (another client's output) and ends. */
const SECRET_PORT: InferencePort = {
  ...IDLE_PORT,
  submit: () => {
    const ended = Promise.withResolvers<JobSummary>();
    const summary = {
      jobId: "j",
      finishReason: "length",
      usage: { promptTokens: 1, completionTokens: 1 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    } as JobSummary;
    const tokens = ReadableStream.from([{ index: 0, tokenId: 0, text: "secret answer" }])
      .pipeThrough(new TransformStream({ flush: () => ended.resolve(summary) }));
    return Promise.resolve({
      jobId: "j",
      model: { cid: "m", name: "m", kind: "text" },
      promptTokens: 1,
      tokens,
      done: ended.promise,
      cancel: () => {},
    } as unknown as InferenceHandle);
  },
};

Deno.test("/dashboard/state takes a token only as 'Authorization: Bearer TOKEN', as /v1 does: a bare operator token or API key is refused (401)", async () => {
  const app = createApp({
    inference: IDLE_PORT,
    edge: { apiKeys: [KEY] },
    dashboard: { sources: SOURCES, jobs: new JobMonitor(), operatorToken: OPERATOR },
  });
  // A client on another machine: only a credential lets it read.
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  const server = serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: remote }) },
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const status = async (path: string, authorization: string) => {
      const response = await fetch(`${server.url}${path}`, { headers: { authorization } });
      await response.body?.cancel();
      return response.status;
    };
    // The API's rule, for reference.
    assert.equal(await status("/v1/models", KEY), 401);
    assert.equal(await status("/v1/models", `Bearer ${KEY}`), 200);
    // The dashboard's state: the same rule.
    assert.equal(await status("/dashboard/state", KEY), 401, "a bare API key");
    assert.equal(await status("/dashboard/state", OPERATOR), 401, "a bare operator token");
    assert.equal(await status("/dashboard/state", `Basic ${OPERATOR}`), 401);
    assert.equal(await status("/dashboard/state", `Bearer ${KEY}`), 200);
    assert.equal(await status("/dashboard/state", `bearer  ${OPERATOR}`), 200);
  } finally {
    await server.shutdown();
  }
});

/**
 * A reverse proxy on the node's machine: each connection to it goes on to `upstream` with its
 * `Host` replaced by `host` (what a proxy that passes the public name sends), bytes copied both
 * ways after that.
 */
function reverseProxy(upstream: number, host: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const relay = async (client: Deno.Conn) => {
    const node = await Deno.connect({ hostname: "127.0.0.1", port: upstream });
    open.add(node);
    const buffer = new Uint8Array(1 << 16);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await client.read(buffer);
      if (n === null) return;
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
    await node.write(new TextEncoder().encode(head.replace(/^host:.*$/im, `Host: ${host}`)));
    await Promise.allSettled([
      client.readable.pipeTo(node.writable),
      node.readable.pipeTo(client.writable),
    ]);
  };
  const accepting = (async () => {
    for await (const client of listener) {
      open.add(client);
      relay(client).catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** Stop accepting and cut every connection (a kept-alive fetch's included). */
    close: async () => {
      listener.close();
      await accepting;
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* already closed by its pipe */ }
      }
    },
  };
}

Deno.test("behind a reverse proxy on the node's machine (http.allowedHosts), a page reading with an API key gets no job text on the live socket, as on /dashboard/state", async () => {
  const jobs = new JobMonitor();
  const job = await jobs.wrap(SECRET_PORT).submit({} as TextJob);
  for await (const _ of job.tokens) { /* run it to its end */ }
  await job.done;
  const app = createApp({
    inference: IDLE_PORT,
    edge: { apiKeys: [KEY], allowedHosts: ["node.example"] },
    dashboard: { sources: SOURCES, jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  const server = serve({ app, port: 0 });
  const proxy = reverseProxy(Number(new URL(server.url).port), "node.example");
  let ws: WebSocket | undefined;
  let closed: Promise<unknown> | undefined;
  try {
    // The state through the proxy: numbers, not text.
    const state = await fetch(`http://127.0.0.1:${proxy.port}/dashboard/state`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    assert.equal(state.status, 200);
    assert.equal((await state.json()).jobs.recent[0].text, "");

    // The socket through the proxy, unlocked with the same key.
    const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}/dashboard/live`);
    ws = socket;
    const messages: { type: string; access?: string; jobs?: { recent: { text: string }[] } }[] = [];
    socket.onmessage = (event) => messages.push(JSON.parse(event.data));
    closed = new Promise((resolve) => socket.onclose = resolve);
    await new Promise((resolve) => socket.onopen = resolve);
    await eventually(() => messages.some((m) => m.type === "hello") || undefined, "the hello");
    assert.equal(messages[0].access, "none", "a name is no address: the page must say who it is");
    socket.send(JSON.stringify({ type: "auth", token: KEY }));
    const snapshot = await eventually(
      () => messages.find((m) => m.type === "snapshot"),
      "the snapshot",
    );
    assert.equal(snapshot.jobs?.recent[0].text, "", "another client's output, blanked");
  } finally {
    ws?.close();
    await closed;
    await proxy.close();
    await server.shutdown();
  }
});
