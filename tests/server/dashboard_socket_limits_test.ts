/**
 * The dashboard socket's limits (`server/dashboard_routes.ts`), found by a review at stop 34: a
 * client nobody let in may send only an `auth`-sized message (a 16 MiB one was read and answered,
 * the socket left open); once in, messages are bounded by `http.maxRequestBytes` (close 1009, as
 * on `/v1/stream`); an `auth` that changes nothing costs a hello, not a snapshot (2,000 cost
 * 2,000 snapshots); three bad tokens close the socket; and `/dashboard/state` runs only for the
 * node's own page or an allowed origin. A client on another machine is simulated by handing the
 * app a non-loopback peer address.
 */
import assert from "node:assert/strict";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";

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
