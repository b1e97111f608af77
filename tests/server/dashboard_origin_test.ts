/**
 * Which pages may open the dashboard's socket (`/dashboard/live`): the node's own page, reached
 * at an address or `localhost`, and the origins in `http.allowedOrigins`; nothing else, however
 * the request's `Host` and `Origin` agree. Handshakes are written by hand over TCP, since a
 * DNS-rebinding page sets a `Host` no WebSocket client lets a test choose.
 */
import { assertEquals } from "./_assert.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import type { TextJob } from "../../protocols/job.ts";
import { quietSources } from "./_dashboard_sources.ts";

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
