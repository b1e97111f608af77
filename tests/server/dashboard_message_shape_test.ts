/**
 * What `/dashboard/live` does with a message that parses as JSON but is no message object
 * (review s82 dash F0): `null` from a client nobody let in threw in `onmessage` (`message.type`
 * of null), uncaught, and ended the node's process. Each such message is refused `bad_message`
 * and the socket goes on; a throw while one socket's message is handled closes that socket
 * (1011), never the process, and is logged and counted as the node's failure. A `type` or a
 * `fraud_proof`'s `id` that is no string (`{"toString":null}`, which `String()` throws on) is
 * `bad_message` too, and spends no ask (review s82 vdash V1); a tick's snapshot that throws is
 * logged and the ticks go on. Run in-process: an uncaught error fails the test.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { ApiKeys } from "../../server/api_keys.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import {
  type DashboardOptions,
  dashboardRoutes,
  type DashboardSources,
} from "../../server/dashboard_routes.ts";
import { EdgeStats, INTERNAL_ERROR_CODE } from "../../server/edge_stats.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { KEY, NO_JOBS_PORT, OPERATOR, REMOTE } from "./_dashboard_node.ts";
import { quietSources } from "./_dashboard_sources.ts";

/** JSON texts that are no message object, a deeply nested one included. */
const NOT_MESSAGES = ["null", "[]", "1", '"x"', "true", "[".repeat(100) + "]".repeat(100)];

/** The dashboard's routes on a free port, every request from another machine; `more` overrides. */
function node(sources: DashboardSources = quietSources(), more: Partial<DashboardOptions> = {}) {
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
      ...more,
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

Deno.test("dashboard socket: a throw while one socket's message is handled closes that socket (1011), not the node nor another socket, and is logged and counted as the node's failure once", async () => {
  const stats = new EdgeStats();
  const log: string[] = [];
  const server = node(
    quietSources({
      activity: {
        recent: () => [],
        subscribe: () => () => {},
        fraudProof: () => {
          throw new Error("a source that fails");
        },
      },
    }),
    { stats, log: (line) => log.push(line) },
  );
  const failing = await open(server.url);
  const other = await open(server.url);
  try {
    for (const page of [failing, other]) {
      page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
      await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    }
    // Two in a row: the second, if it arrives before the close, is not handled (nor counted).
    failing.socket.send(JSON.stringify({ type: "fraud_proof", id: "p1" }));
    failing.socket.send(JSON.stringify({ type: "fraud_proof", id: "p2" }));
    assert.equal((await failing.closed).code, 1011);
    assert.equal(other.socket.readyState, WebSocket.OPEN, "the other page reads on");
    assert.equal((await other.answer("null")).code, "bad_message");
    assert.equal(stats.errors.get(INTERNAL_ERROR_CODE), 1, "counted once, as the node's failure");
    assert.equal(log.length, 1, `one line: ${log.join(" | ")}`);
    assert.match(log[0], /^error: .*dashboard.*1011.*a source that fails/s);
    assert.match(log[0], /fraudProof|dashboard_routes/, "with its stack");
  } finally {
    other.socket.close();
    await other.closed;
    await server.shutdown();
  }
});

/**
 * Objects a message's `type` or a `fraud_proof`'s `id` may be that `String()` cannot convert (a
 * `toString` that is no function: `String()` throws), beside plain wrong kinds.
 */
const NOT_STRINGS = ['{"toString":null}', '{"toString":1,"valueOf":null}', "{}", "[]", "null", "7"];

Deno.test("dashboard socket: a message whose type is no string ({toString:null} included) is refused bad_message, before and after auth, not closed as a node bug", async () => {
  const stats = new EdgeStats();
  const log: string[] = [];
  const server = node(quietSources(), { stats, log: (line) => log.push(line) });
  const page = await open(server.url);
  try {
    await eventually(() => page.messages.find((m) => m.type === "hello"), "the hello");
    for (const type of NOT_STRINGS) {
      const text = `{"type":${type}}`;
      assert.equal((await page.answer(text)).code, "bad_message", `before auth: ${text}`);
    }
    assert.equal((await page.answer("{}")).code, "bad_message", "no type at all");
    page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    for (const type of NOT_STRINGS) {
      const text = `{"type":${type}}`;
      assert.equal((await page.answer(text)).code, "bad_message", `after auth: ${text}`);
    }
    assert.equal(page.socket.readyState, WebSocket.OPEN, "the socket goes on");
    assert.equal(stats.errors.get(INTERNAL_ERROR_CODE), 0, "no node failure counted");
    assert.deepEqual(log, []);
  } finally {
    page.socket.close();
    await page.closed;
    await server.shutdown();
  }
});

Deno.test("dashboard socket: a fraud_proof ask whose id is no string is refused bad_message and spends none of the client's asks", async () => {
  const stats = new EdgeStats();
  const server = node(
    quietSources({
      activity: { recent: () => [], subscribe: () => () => {}, fraudProof: () => undefined },
    }),
    { stats, limits: { fraudProofAsksPerMinute: 1, now: () => 0 } },
  );
  const page = await open(server.url);
  try {
    page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    for (const id of [...NOT_STRINGS, undefined]) {
      const text = id === undefined
        ? '{"type":"fraud_proof"}'
        : `{"type":"fraud_proof","id":${id}}`;
      assert.equal((await page.answer(text)).code, "bad_message", text);
    }
    assert.equal(page.socket.readyState, WebSocket.OPEN, "the socket goes on");
    // The key's one ask this minute is still there: a well-formed ask is answered, the next not.
    const ask = JSON.stringify({ type: "fraud_proof", id: "no-such-proof" });
    assert.equal((await page.answer(ask)).code, "not_found", "the allowance was left whole");
    assert.equal((await page.answer(ask)).code, "rate_limited", "and is one ask");
    assert.equal(stats.refused.get("rate_limited"), 1);
    assert.equal(stats.errors.get(INTERNAL_ERROR_CODE), 0);
  } finally {
    page.socket.close();
    await page.closed;
    await server.shutdown();
  }
});

Deno.test("dashboard ticks: a snapshot that throws is logged once and the ticks go on (no unhandled rejection ending the process); the next that works is sent and logged", async () => {
  const log: string[] = [];
  let failing = false;
  let thrown = 0;
  const sources = quietSources({
    // Throws, not rejects: what `#askSources` does not absorb (a sync source, a cycle to encode).
    tree: () => {
      if (!failing) return {};
      thrown++;
      throw new Error("a tree that cannot be read");
    },
  });
  // Ticks of 5 ms: the test waits for their effects, never against their timing.
  const server = node(sources, { tickMs: 5, log: (line) => log.push(line) });
  const page = await open(server.url);
  try {
    page.socket.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => page.messages.find((m) => m.type === "snapshot"), "let in");
    failing = true;
    await eventually(() => thrown >= 3, "three ticks failed");
    failing = false;
    const before = page.messages.length;
    await eventually(
      () => page.messages.slice(before).find((m) => m.type === "snapshot"),
      "a tick's snapshot once the tree reads again",
    );
    await eventually(() => log.some((line) => line.includes("work again")), "the recovery line");
    const failures = log.filter((line) => line.startsWith("error: "));
    assert.equal(failures.length, 1, `one line for the run of failures: ${log.join(" | ")}`);
    assert.match(failures[0], /a tree that cannot be read/);
    const recovered = log.find((line) => line.includes("work again"))!;
    assert.ok(Number(/after (\d+) failed ticks/.exec(recovered)?.[1]) >= 3, recovered);
    assert.equal(page.socket.readyState, WebSocket.OPEN, "the page reads on");
  } finally {
    page.socket.close();
    await page.closed;
    await server.shutdown();
  }
});
