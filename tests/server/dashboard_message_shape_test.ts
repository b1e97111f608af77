/**
 * What `/dashboard/live` does with a message that parses as JSON but is no message object
 * (review s82 dash F0): `null` from a client nobody let in threw in `onmessage` (`message.type`
 * of null), uncaught, and ended the node's process. Each such message is refused `bad_message`
 * and the socket goes on; a throw while one socket's message is handled closes that socket
 * (1011), never the process. Run in-process: an uncaught error fails the test.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { ApiKeys } from "../../server/api_keys.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { dashboardRoutes, type DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { KEY, NO_JOBS_PORT, OPERATOR, REMOTE } from "./_dashboard_node.ts";
import { quietSources } from "./_dashboard_sources.ts";

/** JSON texts that are no message object, a deeply nested one included. */
const NOT_MESSAGES = ["null", "[]", "1", '"x"', "true", "[".repeat(100) + "]".repeat(100)];

/** The dashboard's routes on a free port, every request from another machine. */
function node(sources: DashboardSources = quietSources()) {
  const jobs = new JobMonitor();
  const app = new Hono<EdgeEnv>();
  app.get("/healthz", (c) => c.text("ok"));
  app.route(
    "/",
    dashboardRoutes({
      sources,
      inference: jobs.wrap(NO_JOBS_PORT),
      jobs,
      operatorToken: OPERATOR,
      keys: new ApiKeys([KEY]),
      allowUnauthenticatedRemote: false,
      allowedOrigins: [],
      tickMs: 60_000,
      timers: new FakeTimers(),
    }),
  );
  return serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: REMOTE }) },
    hostname: "127.0.0.1",
    port: 0,
  });
}

/** A socket to the dashboard with every message it got and its close. */
async function open(url: string) {
  const socket = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: { type: string; code?: string; access?: string }[] = [];
  socket.onmessage = (e) => messages.push(JSON.parse(e.data));
  const closed = new Promise<CloseEvent>((resolve) => (socket.onclose = resolve));
  await new Promise((resolve) => (socket.onopen = resolve));
  /** The `error` that answers the next message sent. */
  const answer = async (text: string) => {
    const before = messages.length;
    socket.send(text);
    return await eventually(
      () => messages.slice(before).find((m) => m.type === "error"),
      `the answer to ${text.slice(0, 20)}`,
    );
  };
  return { socket, messages, closed, answer };
}

Deno.test("dashboard socket: null, an array, a number, a string or deep nesting is refused bad_message, before and after auth, and the node serves on", async () => {
  const server = node();
  const page = await open(server.url);
  try {
    await eventually(() => page.messages.find((m) => m.type === "hello"), "the hello");
    for (const text of NOT_MESSAGES) {
      assert.equal((await page.answer(text)).code, "bad_message", `before auth: ${text}`);
    }
    page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    for (const text of NOT_MESSAGES) {
      assert.equal((await page.answer(text)).code, "bad_message", `after auth: ${text}`);
    }
    assert.equal(page.socket.readyState, WebSocket.OPEN, "the socket goes on");
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    page.socket.close();
    await page.closed;
    await server.shutdown();
  }
});

Deno.test("dashboard socket: a throw while one socket's message is handled closes that socket (1011), not the node nor another socket", async () => {
  const server = node(quietSources({
    activity: {
      recent: () => [],
      subscribe: () => () => {},
      fraudProof: () => {
        throw new Error("a source that fails");
      },
    },
  }));
  const failing = await open(server.url);
  const other = await open(server.url);
  try {
    for (const page of [failing, other]) {
      page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
      await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    }
    failing.socket.send(JSON.stringify({ type: "fraud_proof", id: "p1" }));
    assert.equal((await failing.closed).code, 1011);
    assert.equal(other.socket.readyState, WebSocket.OPEN, "the other page reads on");
    assert.equal((await other.answer("null")).code, "bad_message");
  } finally {
    other.socket.close();
    await other.closed;
    await server.shutdown();
  }
});
