/**
 * The dashboard's limits per client (`server/dashboard_routes.ts`): message sizes and bad tokens on
 * the socket, and each client's allowance of sockets and state reads (429 with `Retry-After`, an
 * `error` and close 1013), with other clients not affected.
 */
import assert from "node:assert/strict";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import {
  type DashboardLimits,
  dashboardRoutes,
  type DashboardSources,
} from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { Hono } from "hono";
import { ApiKeys } from "../../server/api_keys.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { openDashboardSocket } from "./_dashboard_socket.ts";

// The dashboard socket's limits (`server/dashboard_routes.ts`): a client nobody let in may send
// only an `auth`-sized message (a 16 MiB one was read and answered, the socket left open); once in,
// messages are bounded by `http.maxRequestBytes` (close 1009, as on `/v1/stream`); an `auth` that
// changes nothing costs a hello, not a snapshot (2,000 cost 2,000 snapshots); three bad tokens
// close the socket; and `/dashboard/state` runs only for the node's own page or an allowed origin.
// A client on another machine is simulated by handing the app a non-loopback peer address.

const KEY = "a-real-api-key-0123456789";
const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};

/** A node whose every client is on another machine, counting the snapshots it computes. */
function remoteNode() {
  let snapshots = 0;
  const sources: DashboardSources = {
    node: { key: "00".repeat(32), version: "test" },
    tree: () => ({}),
    onLifecycle: () => () => {},
    peers: () => (snapshots++, Promise.resolve(undefined)),
    validator: () => Promise.resolve(undefined),
    storage: () => Promise.resolve(undefined),
  };
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: { maxRequestBytes: 4096, apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 60_000 },
  });
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  const server = serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: remote }) },
    hostname: "127.0.0.1",
    port: 0,
  });
  return { server, snapshots: () => snapshots };
}

/** The dashboard socket of `url`: the messages it got, and its close code once closed. */
async function openSocket(url: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: { type: string; code?: string; access?: string }[] = [];
  const closed = Promise.withResolvers<number>();
  ws.onmessage = (e) => messages.push(JSON.parse(e.data));
  ws.onclose = (e) => closed.resolve(e.code);
  await new Promise((r) => (ws.onopen = r));
  await eventually(() => messages.length >= 2 ? true : undefined, "the hello and the refusal");
  return { ws, messages, closed: closed.promise };
}

Deno.test("a client nobody let in is closed (1009) for a message larger than an auth; one let in, for one over http.maxRequestBytes", async () => {
  const { server } = remoteNode();
  try {
    const stranger = await openSocket(server.url);
    assert.equal(stranger.messages[0].access, "none");
    stranger.ws.send("x".repeat(5_000));
    assert.equal(await stranger.closed, 1009);

    const reader = await openSocket(server.url);
    reader.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => reader.messages.some((m) => m.access === "read") || undefined, "in");
    reader.ws.send(JSON.stringify({ type: "cancel", pad: "x".repeat(3_000) })); // within 4096
    reader.ws.send(JSON.stringify({ type: "cancel", pad: "é".repeat(2_100) })); // 4,200 bytes
    assert.equal(await reader.closed, 1009);
  } finally {
    await server.shutdown();
  }
});

Deno.test("an auth that changes nothing costs a hello, not a snapshot; the third bad token closes the socket (1008)", async () => {
  const { server, snapshots } = remoteNode();
  try {
    const page = await openSocket(server.url);
    page.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => page.messages.some((m) => m.type === "snapshot") || undefined, "in");
    const before = snapshots();
    for (let i = 0; i < 200; i++) page.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(
      () => page.messages.filter((m) => m.type === "hello").length >= 201 || undefined,
      "200 hellos",
    );
    assert.equal(snapshots(), before, "no snapshot for an auth that changed nothing");
    for (let i = 0; i < 3; i++) page.ws.send(JSON.stringify({ type: "auth", token: "wrong" }));
    assert.equal(await page.closed, 1008);
    assert.equal(page.messages.filter((m) => m.code === "bad_token").length, 2);
  } finally {
    await server.shutdown();
  }
});

Deno.test("/dashboard/state runs for no page of another origin", async () => {
  const { server, snapshots } = remoteNode();
  try {
    const response = await fetch(`${server.url}/dashboard/state`, {
      headers: { origin: "http://evil.example", authorization: `Bearer ${KEY}` },
    });
    assert.equal(response.status, 403);
    assert.match((await response.json()).error.code, /origin_not_allowed/);
    assert.equal(snapshots(), 0, "nothing computed for it");
  } finally {
    await server.shutdown();
  }
});

// The dashboard's per-client limits: one API key, the operator token or this machine could open
// dashboard sockets (each a live-state subscription, fed a snapshot every second) until the node
// ran out of them, and read `GET /dashboard/state` (a round of asks to every actor) as fast as it
// liked. Each client now has its own allowance: a socket over it is refused (429 with `Retry-After`
// before the upgrade when the client is known then, else an `error` and close 1013 at its `auth`),
// a state read over it is 429 with `Retry-After`; other clients are not affected.

const OTHER_KEY = "another-api-key-0123456789";
const OPERATOR = "op-token-0123456789abcdef";
const REMOTE = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 4242 } as Deno.NetAddr;

/**
 * The dashboard's routes alone, with `limits` and a clock the test moves, every request coming
 * from `peer`; served on a free port.
 */
function dashboardNode(peer: Deno.NetAddr, limits: Partial<DashboardLimits>) {
  let ms = 0;
  const jobs = new JobMonitor();
  const app = new Hono<EdgeEnv>();
  app.route(
    "/",
    dashboardRoutes({
      sources: quietSources(),
      inference: jobs.wrap(PORT),
      jobs,
      operatorToken: OPERATOR,
      keys: new ApiKeys([KEY, OTHER_KEY]),
      allowUnauthenticatedRemote: false,
      allowedOrigins: [],
      tickMs: 60_000,
      limits: { ...limits, now: () => ms },
    }),
  );
  const fetchFrom = (req: Request) => app.fetch(req, { remoteAddr: peer });
  const server = serve({ app: { fetch: fetchFrom }, hostname: "127.0.0.1", port: 0 });
  return { server, fetchFrom, advance: (by: number) => (ms += by) };
}

/** A socket of `url` let in with `token`: it has had its first snapshot. */
async function pageWith(url: string, token: string) {
  const page = await openDashboardSocket(url);
  page.ws.send(JSON.stringify({ type: "auth", token }));
  await page.next((m) => m.type === "snapshot", "the first snapshot");
  return page;
}

/** A WebSocket upgrade of `/dashboard/live` as `fetchFrom` answers it, before any upgrade. */
function upgradeRequest(url: string): Request {
  return new Request(`${url}/dashboard/live`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
}

Deno.test("one API key's dashboard sockets are capped (error + close 1013 at its auth); another key and the operator still get in; a closed socket frees its place", async () => {
  const { server } = dashboardNode(REMOTE, { socketsPerClient: 2 });
  const open: WebSocket[] = [];
  try {
    for (let i = 0; i < 2; i++) open.push((await pageWith(server.url, KEY)).ws);
    const third = await openDashboardSocket(server.url);
    third.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    const refusal = await third.next(
      (m) => m.type === "error" && m.code !== "api_key_required",
      "refused",
    );
    assert.equal(refusal.code, "key_concurrency_exceeded");
    assert.ok((refusal.retryAfterS ?? 0) >= 1, "says when to retry");
    const { code, reason } = await third.closed;
    assert.equal(code, 1013, "Try Again Later");
    assert.match(reason, /dashboard sockets/);
    assert.ok(!third.messages.some((m) => m.type === "snapshot"), "no snapshot for it");

    open.push((await pageWith(server.url, OTHER_KEY)).ws);
    open.push((await pageWith(server.url, OPERATOR)).ws);

    // One of the key's sockets closes: the key may open one again.
    open[0].close();
    await eventually(async () => {
      const again = await openDashboardSocket(server.url);
      again.ws.send(JSON.stringify({ type: "auth", token: KEY }));
      const answer = await again.next(
        (m) => m.type === "snapshot" || (m.type === "error" && m.code !== "api_key_required"),
        "an answer",
      );
      if (answer.type === "snapshot") return open.push(again.ws);
      await again.closed;
      return undefined;
    }, "a place for the key again");
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("this machine's page over its socket cap is answered 429 with Retry-After before the upgrade", async () => {
  const { server, fetchFrom } = dashboardNode(LOOPBACK, { socketsPerClient: 2 });
  const open: WebSocket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const page = await openDashboardSocket(server.url);
      await page.next((m) => m.type === "snapshot", "the first snapshot");
      open.push(page.ws);
    }
    const response = await fetchFrom(upgradeRequest(server.url));
    assert.equal(response.status, 429);
    assert.ok(Number(response.headers.get("retry-after")) >= 1);
    assert.equal((await response.json()).error.code, "key_concurrency_exceeded");
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("sockets opened per minute are capped per client, refilling with the clock", async () => {
  const { server, fetchFrom, advance } = dashboardNode(LOOPBACK, { socketOpensPerMinute: 2 });
  try {
    for (let i = 0; i < 2; i++) {
      const page = await openDashboardSocket(server.url);
      await page.next((m) => m.type === "snapshot", "the first snapshot");
      page.ws.close();
      await page.closed;
    }
    const refused = await fetchFrom(upgradeRequest(server.url));
    assert.equal(refused.status, 429);
    assert.equal((await refused.json()).error.code, "rate_limited");
    assert.equal(refused.headers.get("retry-after"), "30", "one open every 30 s");
    advance(30_000);
    const page = await openDashboardSocket(server.url);
    await page.next((m) => m.type === "snapshot", "a snapshot after the wait");
    page.ws.close();
    await page.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("GET /dashboard/state is rate-limited per client (429, Retry-After); other clients unaffected; it refills with the clock", async () => {
  const { server, fetchFrom, advance } = dashboardNode(REMOTE, { stateReadsPerMinute: 3 });
  const read = (token: string) =>
    fetchFrom(
      new Request(`${server.url}/dashboard/state`, {
        headers: { authorization: `Bearer ${token}` },
      }),
    );
  try {
    for (let i = 0; i < 3; i++) {
      const ok = await read(KEY);
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
    }
    const refused = await read(KEY);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "20");
    assert.equal((await refused.json()).error.code, "rate_limited");
    for (const other of [OTHER_KEY, OPERATOR]) {
      const ok = await read(other);
      assert.equal(ok.status, 200, "another client reads");
      await ok.body?.cancel();
    }
    advance(20_000);
    const again = await read(KEY);
    assert.equal(again.status, 200);
    await again.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("the node's app caps state reads per API key by default", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: { apiKeys: [KEY] },
    dashboard: { sources: quietSources(), jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  const statuses: number[] = [];
  for (let i = 0; i < 200 && !statuses.includes(429); i++) {
    const response = await app.fetch(
      new Request("http://node.example/dashboard/state", {
        headers: { authorization: `Bearer ${KEY}` },
      }),
      { remoteAddr: REMOTE },
    );
    statuses.push(response.status);
    await response.body?.cancel();
  }
  assert.ok(statuses.includes(429), "refused at some point");
  assert.ok(statuses.filter((s) => s === 200).length >= 30, "a burst of reads first");
});
