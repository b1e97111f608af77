/**
 * Review (s62) of the loose ends the dashboard's per-client limits left (`server/dashboard_routes.ts`):
 * - a socket that never sends its `auth` held no place and got no snapshot, but stayed open for
 *   good: it now has a deadline (closed 1008), on the injected timers; this machine's sockets,
 *   which need no `auth`, have none;
 * - the limits could not be set from the node's configuration (`http.dashboard*`, passed through
 *   `createApp`);
 * - the dashboard's refusals (429, close 1013, the deadline's close) were not in `/metrics`'
 *   `veriflow_http_refused_total`;
 * - every anonymous reader (`http.allowUnauthenticatedRemote`) shared one allowance, so one of them
 *   could take every place: each address now has its own (an IPv6 one per /64).
 */
import assert from "node:assert/strict";
import { createApp } from "../../server/app.ts";
import {
  DASHBOARD_AUTH_TIMEOUT_MS,
  DEFAULT_DASHBOARD_LIMITS,
} from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { runStart, type StartCommandIo } from "../../node/start_command.ts";
import type { FakeTimers } from "../_helpers/fake_timers.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { openDashboardSocket } from "./_dashboard_socket.ts";
import {
  addr,
  dashboardNode,
  KEY,
  LOOPBACK,
  NO_JOBS_PORT as PORT,
  OPERATOR,
  REMOTE,
  upgradeRequest,
} from "./_dashboard_node.ts";

/** The deadline timers armed now (those of {@link DASHBOARD_AUTH_TIMEOUT_MS}). */
const authDeadlines = (timers: FakeTimers) =>
  [...timers.armed.values()].filter((t) => t.ms === DASHBOARD_AUTH_TIMEOUT_MS);

Deno.test("review s62: a dashboard socket that never authenticates is closed (1008) at its deadline, on the injected timers, and the refusal is counted", async () => {
  const { server, timers, stats } = dashboardNode();
  try {
    const page = await openDashboardSocket(server.url);
    await page.next((m) => m.code === "api_key_required", "asked to authenticate");
    assert.equal(authDeadlines(timers).length, 1, "a deadline armed for it");
    assert.equal(DASHBOARD_AUTH_TIMEOUT_MS, 10_000);
    timers.fireAll();
    const { code, reason } = await page.closed;
    assert.equal(code, 1008);
    assert.match(reason, /auth/);
    assert.ok(!page.messages.some((m) => m.type === "snapshot"), "never a snapshot");
    assert.equal(stats.refused.get("api_key_required"), 1, "counted for /metrics");
  } finally {
    await server.shutdown();
  }
});

Deno.test("review s62: a socket that authenticates in time has its deadline cleared; this machine's sockets get none", async () => {
  const { server, timers, peer } = dashboardNode();
  const open: WebSocket[] = [];
  try {
    const page = await openDashboardSocket(server.url);
    open.push(page.ws);
    page.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await page.next((m) => m.type === "snapshot", "its snapshot");
    assert.equal(authDeadlines(timers).length, 0, "cleared once it authenticated");

    peer.now = LOOPBACK;
    const mine = await openDashboardSocket(server.url);
    open.push(mine.ws);
    await mine.next((m) => m.type === "snapshot", "this machine's snapshot, without auth");
    assert.equal(authDeadlines(timers).length, 0, "none armed for this machine's socket");
    timers.fireAll();
    page.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    mine.ws.send(JSON.stringify({ type: "auth", token: OPERATOR }));
    await page.next((m) => m.type === "hello" && m.access === "read", "still answering");
    await mine.next((m) => m.access === "operator", "still answering");
    assert.equal(page.ws.readyState, WebSocket.OPEN);
    assert.equal(mine.ws.readyState, WebSocket.OPEN);
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("review s62: a dashboard socket refused over its client's allowance (close 1013) is counted by code", async () => {
  const { server, stats } = dashboardNode({ limits: { socketsPerClient: 1 } });
  const open: WebSocket[] = [];
  try {
    const first = await openDashboardSocket(server.url);
    open.push(first.ws);
    first.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await first.next((m) => m.type === "snapshot", "its snapshot");
    const second = await openDashboardSocket(server.url);
    second.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    assert.equal((await second.closed).code, 1013);
    assert.equal(stats.refused.get("key_concurrency_exceeded"), 1);
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("review s62: anonymous readers each have their own allowance by address (IPv6 by /64): one cannot take every place", async () => {
  const { server, fetchFrom, peer } = dashboardNode({
    allowUnauthenticatedRemote: true,
    limits: { socketsPerClient: 2, stateReadsPerMinute: 2 },
  });
  const open: WebSocket[] = [];
  const read = async (from: Deno.NetAddr) => {
    peer.now = from;
    const response = await fetchFrom(new Request(`${server.url}/dashboard/state`));
    await response.body?.cancel();
    return response.status;
  };
  try {
    for (let i = 0; i < 2; i++) {
      const page = await openDashboardSocket(server.url);
      await page.next((m) => m.type === "snapshot", "an anonymous snapshot");
      open.push(page.ws);
    }
    const over = await fetchFrom(upgradeRequest(`${server.url}/dashboard/live`));
    assert.equal(over.status, 429, "this address is at its cap");
    await over.body?.cancel();
    peer.now = addr("203.0.113.7");
    const other = await openDashboardSocket(server.url);
    open.push(other.ws);
    await other.next((m) => m.type === "snapshot", "another address still gets in");

    // State reads: per address too; an IPv6 client is one client across its /64.
    assert.deepEqual([await read(REMOTE), await read(REMOTE)], [200, 200]);
    assert.equal(await read(REMOTE), 429);
    assert.equal(await read(addr("203.0.113.8")), 200);
    assert.deepEqual(
      [await read(addr("2001:db8:1:2::1")), await read(addr("2001:db8:1:2:ffff::9"))],
      [200, 200],
    );
    assert.equal(await read(addr("2001:db8:1:2:0:0:0:77")), 429, "the same /64");
    assert.equal(await read(addr("2001:db8:1:3::1")), 200, "another /64");
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("review s62: the node's app takes the dashboard's limits from its http settings and counts their refusals in /metrics", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: { apiKeys: [KEY], dashboardStateReadsPerMinute: 1 },
    dashboard: { sources: quietSources(), jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  const read = () =>
    app.fetch(
      new Request("http://node.example/dashboard/state", {
        headers: { authorization: `Bearer ${KEY}` },
      }),
      { remoteAddr: REMOTE },
    );
  const ok = await read();
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const refused = await read();
  assert.equal(refused.status, 429);
  assert.match((await refused.json()).error.message, /http\.dashboardStateReadsPerMinute/);
  const keyless = await app.fetch(new Request("http://node.example/dashboard/state"), {
    remoteAddr: REMOTE,
  });
  assert.equal(keyless.status, 401);
  await keyless.body?.cancel();
  const metrics = await app.fetch(new Request("http://127.0.0.1/metrics"), {
    remoteAddr: LOOPBACK,
  });
  const text = await metrics.text();
  assert.match(text, /^veriflow_http_refused_total\{code="rate_limited"\} 1$/m);
  assert.match(text, /^veriflow_http_refused_total\{code="api_key_required"\} 1$/m);
});

Deno.test("review s62: the dashboard limits are http settings: defaults, validated naming the key, shown by --print-config", async () => {
  const { http } = parseNodeConfig({});
  assert.equal(http.dashboardSocketsPerClient, DEFAULT_DASHBOARD_LIMITS.socketsPerClient);
  assert.equal(http.dashboardSocketOpensPerMinute, DEFAULT_DASHBOARD_LIMITS.socketOpensPerMinute);
  assert.equal(http.dashboardStateReadsPerMinute, DEFAULT_DASHBOARD_LIMITS.stateReadsPerMinute);
  for (
    const key of [
      "dashboardSocketsPerClient",
      "dashboardSocketOpensPerMinute",
      "dashboardStateReadsPerMinute",
    ]
  ) {
    for (const bad of [0, 1.5, -3]) {
      assert.throws(() => parseNodeConfig({ http: { [key]: bad } }), (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, new RegExp(`http\\.${key}`));
        return true;
      }, `${key} ${bad}`);
    }
  }

  const out: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: (line) => void out.push(line),
    err: (line) => void out.push(`ERR ${line}`),
    now: () => 0,
    env: () => ({
      VERIFLOW_DATA_DIR: "/nonexistent/never-created",
      VERIFLOW_HTTP_DASHBOARD_SOCKETS_PER_CLIENT: "3",
    }),
  };
  assert.equal(await runStart(["--print-config"], io), 0, out.join("\n"));
  const text = out.join("\n");
  assert.match(text, /^http\.dashboardSocketsPerClient\s+3\s+env VERIFLOW_HTTP_DASHBOARD_SOCKETS/m);
  assert.match(text, /^http\.dashboardSocketOpensPerMinute\s+60\s+default$/m);
  assert.match(text, /^http\.dashboardStateReadsPerMinute\s+60\s+default$/m);
});

Deno.test("review s62: per-client allowances forget a client idle for a minute (anonymous readers are many addresses): what is kept stays bounded", () => {
  let ms = 0;
  const limits = new KeyLimits({ concurrency: 2, requestsPerMinute: 5, now: () => ms });
  for (let i = 0; i < 1000; i++) limits.admit(`anonymous 198.51.${i >> 8}.${i & 255}`)();
  const holding = limits.admit("anonymous 203.0.113.1"); // still open: never forgotten
  ms += 60_000;
  limits.admit("anonymous 203.0.113.2")();
  assert.equal(limits.size, 2, "the idle ones forgotten, the open one and the new one kept");
  // The open one's allowance is intact: its place is still taken.
  limits.admit("anonymous 203.0.113.1")();
  const second = limits.admit("anonymous 203.0.113.1");
  assert.throws(() => limits.admit("anonymous 203.0.113.1"), /already has 2/);
  holding();
  second();
});
