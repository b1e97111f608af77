/**
 * Who may open the dashboard (`server/dashboard_routes.ts`) and what each reader is sent: the
 * socket's allowed origins and hosts, the bearer token read as strictly as on `/v1`, and the job
 * text blanked for a page reading with an API key or from behind a reverse proxy.
 */
import { assertEquals } from "./_assert.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { type DashboardSources, withoutJobText } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import type { TextJob } from "../../protocols/job.ts";
import { quietSources } from "./_dashboard_sources.ts";
import assert from "node:assert/strict";
import { eventually } from "../_helpers/wait.ts";
import { oneTokenJob } from "./_one_token_job.ts";

// Which pages may open the dashboard's socket (`/dashboard/live`): the node's own page, reached
// at an address or `localhost`, and the origins in `http.allowedOrigins`; nothing else, however
// the request's `Host` and `Origin` agree. Handshakes are written by hand over TCP, since a
// DNS-rebinding page sets a `Host` no WebSocket client lets a test choose.

/** A node with nothing running: the socket's admission is all these tests look at. */
const IDLE_SOURCES: DashboardSources = quietSources();
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs in this test")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** Send a WebSocket handshake with these headers; the status and, when refused, the body. */
async function handshake(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      "GET /dashboard/live HTTP/1.1",
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
    ];
    await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(1 << 16);
    let received = "";
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += decoder.decode(buffer.subarray(0, n), { stream: true });
      const end = received.indexOf("\r\n\r\n");
      if (end === -1) continue;
      const status = Number(received.split(" ")[1]);
      if (status === 101) return { status, body: "" };
      const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0);
      const body = received.slice(end + 4);
      if (body.length >= length) return { status, body };
    }
    throw new Error(`the connection closed after ${JSON.stringify(received)}`);
  } finally {
    conn.close();
  }
}

Deno.test("The dashboard socket admits the node's own page (an address or localhost) and listed origins; a DNS-rebinding page is refused by its name (421), Origin: null gets 403 origin_not_allowed, as on /v1", async () => {
  const app = createApp({
    inference: IDLE_PORT,
    edge: { allowedOrigins: ["https://app.example"] },
    dashboard: { sources: IDLE_SOURCES, jobs: new JobMonitor(), operatorToken: "operator" },
  });
  const server = serve({ app, port: 0 });
  try {
    const port = Number(new URL(server.url).port);
    const status = async (host: string, origin?: string) => {
      const { status, body } = await handshake(port, {
        Host: host,
        ...(origin === undefined ? {} : { Origin: origin }),
      });
      return status === 403 ? `403 ${JSON.parse(body).error.code}` : String(status);
    };
    // A DNS-rebinding page: evil.example resolved to this machine, so Host and Origin agree.
    const evil = `evil.example:${port}`;
    // Refused before any route, by its name (`host_guard.ts`).
    assertEquals(await status(evil, `http://${evil}`), "421");
    // /v1 refuses that page too: the same rule.
    const v1 = await fetch(`${server.url}/v1/models`, { headers: { origin: `http://${evil}` } });
    assertEquals([v1.status, (await v1.json()).error.code], [403, "origin_not_allowed"]);
    // A sandboxed frame or a file: page sends "null"; nothing parsable is no origin of ours.
    assertEquals(await status(`127.0.0.1:${port}`, "null"), "403 origin_not_allowed");
    assertEquals(await status(`127.0.0.1:${port}`, "not a url"), "403 origin_not_allowed");
    // Another page on this machine (another port) is another origin.
    assertEquals(await status(`127.0.0.1:${port}`, "http://127.0.0.1:1"), "403 origin_not_allowed");

    // The node's own page, however the browser reached it by address.
    assertEquals(await status(`127.0.0.1:${port}`, `http://127.0.0.1:${port}`), "101");
    assertEquals(await status(`localhost:${port}`, `http://localhost:${port}`), "101");
    assertEquals(await status(`[::1]:${port}`, `http://[::1]:${port}`), "101");
    // A listed origin, and a client that is not a browser (no Origin).
    assertEquals(await status(`127.0.0.1:${port}`, "https://app.example"), "101");
    assertEquals(await status(`127.0.0.1:${port}`), "101");
  } finally {
    await server.shutdown();
  }
});

/**
 * `GET path` with this `Host` (and a bearer token), written by hand (a fetch cannot choose its
 * Host); the status and the body.
 */
async function get(
  port: number,
  path: string,
  host: string,
  bearer?: string,
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const auth = bearer === undefined ? "" : `Authorization: Bearer ${bearer}\r\n`;
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const buffer = new Uint8Array(1 << 16);
    let received = "";
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += new TextDecoder().decode(buffer.subarray(0, n));
    }
    const end = received.indexOf("\r\n\r\n");
    return { status: Number(received.split(" ")[1]), body: received.slice(end + 4) };
  } finally {
    conn.close();
  }
}

async function getStatus(port: number, path: string, host: string): Promise<number> {
  return (await get(port, path, host)).status;
}

/** A port whose one job streams "secret answer" and ends. */
const SECRET_PORT: InferencePort = {
  submit: () => {
    let ended: (s: JobSummary) => void = () => {};
    const done = new Promise<JobSummary>((resolve) => ended = resolve);
    const summary = {
      jobId: "j",
      finishReason: "length",
      usage: { promptTokens: 1, completionTokens: 1 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    } as JobSummary;
    const tokens = ReadableStream.from([{ index: 0, tokenId: 0, text: "secret answer" }])
      .pipeThrough(new TransformStream({ flush: () => ended(summary) }));
    return Promise.resolve({
      jobId: "j",
      model: { cid: "m", name: "m", kind: "text" },
      promptTokens: 1,
      tokens,
      done,
      cancel: () => {},
    } as unknown as InferenceHandle);
  },
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

Deno.test("The dashboard's state is read keyless from this machine only under an address or localhost: a DNS-rebinding page's same-origin read (its own name as Host, no Origin) is refused (421)", async () => {
  const app = createApp({
    inference: IDLE_PORT,
    dashboard: { sources: IDLE_SOURCES, jobs: new JobMonitor(), operatorToken: "operator" },
  });
  const server = serve({ app, port: 0 });
  try {
    const port = Number(new URL(server.url).port);
    // Refused before any route, by its name (`host_guard.ts`).
    assertEquals(await getStatus(port, "/dashboard/state", `evil.example:${port}`), 421);
    assertEquals(await getStatus(port, "/dashboard/state", `127.0.0.1:${port}`), 200);
    assertEquals(await getStatus(port, "/dashboard/state", `localhost:${port}`), 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("The dashboard's state shows job text only to this machine and the operator token, as the socket does: an API key reads the numbers, not the text", async () => {
  const jobs = new JobMonitor();
  const job = await jobs.wrap(SECRET_PORT).submit({} as TextJob);
  for await (const _ of job.tokens) { /* run it to its end */ }
  await job.done;
  const key = "a-long-random-api-key-1234";
  const app = createApp({
    inference: IDLE_PORT,
    edge: { apiKeys: [key] },
    dashboard: { sources: IDLE_SOURCES, jobs, operatorToken: "operator-token" },
  });
  const server = serve({ app, port: 0 });
  try {
    const port = Number(new URL(server.url).port);
    const textFor = async (host: string, bearer?: string) => {
      const { status, body } = await get(port, "/dashboard/state", host, bearer);
      assertEquals(status, 200);
      return JSON.parse(body).jobs.recent[0].text;
    };
    assertEquals(await textFor(`127.0.0.1:${port}`), "secret answer");
    // Not this machine's own page (here: under a name): the key reads, the operator sees.
    assertEquals(await textFor(`node.example:${port}`, key), "");
    assertEquals(await textFor(`node.example:${port}`, "operator-token"), "secret answer");
  } finally {
    await server.shutdown();
  }
});

Deno.test("The dashboard page runs one prompt after another on one socket: once a prompt is done the next is taken, not refused busy", async () => {
  const app = createApp({
    inference: SECRET_PORT,
    dashboard: { sources: IDLE_SOURCES, jobs: new JobMonitor(), operatorToken: "operator" },
  });
  const server = serve({ app, port: 0 });
  const port = Number(new URL(server.url).port);
  const socket = new WebSocket(`ws://127.0.0.1:${port}/dashboard/live`, {
    headers: { origin: `http://127.0.0.1:${port}` },
  } as unknown as string[]);
  const seen: { type: string; code?: string }[] = [];
  const waiters: (() => void)[] = [];
  socket.onmessage = (event) => {
    seen.push(JSON.parse(event.data));
    for (const wake of waiters.splice(0)) wake();
  };
  const until = async (ok: () => boolean) => {
    while (!ok()) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  const count = (type: string) => seen.filter((m) => m.type === type).length;
  try {
    await new Promise((resolve) => socket.onopen = resolve);
    socket.send(JSON.stringify({ type: "auth", token: "operator" }));
    const job = {
      kind: "text",
      model: "m",
      prompt: "hi",
      params: { maxTokens: 1, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
      nonce: "1",
    };
    for (let n = 1; n <= 2; n++) {
      socket.send(JSON.stringify({ type: "prompt", job: { ...job, nonce: String(n) } }));
      await until(() => count("prompt_done") === n || count("error") > 0);
    }
    assertEquals(seen.filter((m) => m.type === "error"), []);
    assertEquals(count("prompt_done"), 2);
  } finally {
    socket.close();
    await new Promise((resolve) => socket.onclose = resolve);
    await server.shutdown();
  }
});

Deno.test("The dashboard's first snapshot carries the activity feed; the ticks after it do not (new items come as activity messages)", async () => {
  const feed = [{ kind: "receipt", id: "r1" }, { kind: "verdict", id: "v1" }];
  const app = createApp({
    inference: IDLE_PORT,
    dashboard: {
      sources: {
        ...IDLE_SOURCES,
        activity: { recent: () => feed, subscribe: () => () => {}, fraudProof: () => undefined },
      },
      jobs: new JobMonitor(),
      operatorToken: "operator",
      tickMs: 5,
    },
  });
  const server = serve({ app, port: 0 });
  const port = Number(new URL(server.url).port);
  const socket = new WebSocket(`ws://127.0.0.1:${port}/dashboard/live`, {
    headers: { origin: `http://127.0.0.1:${port}` },
  } as unknown as string[]);
  const snapshots: Record<string, unknown>[] = [];
  const enough = Promise.withResolvers<void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") snapshots.push(message);
    if (snapshots.length === 3) enough.resolve();
  };
  try {
    await enough.promise;
    assertEquals(snapshots[0].activity, feed);
    assertEquals(snapshots.slice(1).map((s) => "activity" in s), [false, false]);
  } finally {
    socket.close();
    await new Promise((resolve) => socket.onclose = resolve);
    await server.shutdown();
  }
});

// The dashboard's edge as the operator's security depends on it (`server/dashboard_routes.ts`):
// `/dashboard/state` reads its bearer token as strictly as `/v1` and the DNS-rebinding guard do (a
// bare token with no `Bearer` scheme was accepted there, and only there), and the live socket
// blanks other clients' job text for a page behind a reverse proxy on the node's machine (a
// loopback peer under a listed `http.allowedHosts` name), as `/dashboard/state` already did: the
// socket counted every loopback peer as the operator's own machine.

const KEY = "a-real-api-key-0123456789";
const OPERATOR = "op-token-0123456789abcdef";

const SOURCES: DashboardSources = quietSources();
/** A port whose one job streams "secret answer" (another client's output) and ends. */
const SECRET_ANSWER_PORT: InferencePort = {
  ...IDLE_PORT,
  submit: () => oneTokenJob("secret answer"),
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
  const job = await jobs.wrap(SECRET_ANSWER_PORT).submit({} as TextJob);
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

// What a dashboard page reading with an API key (not the operator) is sent about jobs.

Deno.test("a page reading with an API key gets every job's numbers but no job's text", () => {
  const job = {
    jobId: "j1",
    model: "tiny",
    promptTokens: 3,
    tokens: 2,
    text: "secret answer",
    submittedAt: 1,
    state: "streaming",
  };
  const snapshot = {
    type: "snapshot",
    tree: { name: "node", text: "the tree keeps its fields" },
    jobs: { active: [job], recent: [{ ...job, jobId: "j0", state: "stop" }] },
  };
  const seen = withoutJobText(snapshot) as typeof snapshot;
  assert.deepEqual(seen.jobs.active, [{ ...job, text: "" }]);
  assert.equal(seen.jobs.recent[0].text, "");
  assert.equal(seen.jobs.recent[0].tokens, 2);
  assert.equal(seen.tree.text, "the tree keeps its fields", "only jobs are blanked");
  assert.equal(snapshot.jobs.active[0].text, "secret answer", "the hub's copy is untouched");
  const token = { type: "job", event: { type: "job_token", jobId: "j1", index: 4, text: "x" } };
  assert.deepEqual(withoutJobText(token), {
    type: "job",
    event: { type: "job_token", jobId: "j1", index: 4, text: "" },
  });
  const ended = {
    type: "job",
    event: { type: "job_ended", job, summary: { finishReason: "stop" } },
  };
  assert.equal((withoutJobText(ended) as typeof ended).event.job.text, "");
  const other = { type: "lifecycle", event: { text: "kept" } };
  assert.equal(withoutJobText(other), other);
});
