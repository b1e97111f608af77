/**
 * The dashboard's caps on sockets (`server/dashboard_routes.ts`): node-wide caps on anonymous
 * sockets and on sockets still to send their `auth`, a cap per address (an IPv6 client per /64),
 * the `auth` deadline on the injected timers, the caps set from the node's configuration, and every
 * refusal counted in `/metrics`' `veriflow_http_refused_total`.
 */
import assert from "node:assert/strict";
import { createApp } from "../../server/app.ts";
import {
  DASHBOARD_AUTH_TIMEOUT_MS,
  DEFAULT_DASHBOARD_LIMITS,
} from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { openDashboardSocket } from "./_dashboard_socket.ts";
import {
  addr,
  dashboardNode,
  KEY,
  LOOPBACK,
  NO_JOBS_PORT,
  NO_JOBS_PORT as PORT,
  OPERATOR,
  REMOTE,
  upgradeRequest,
} from "./_dashboard_node.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { runStart, type StartCommandIo } from "../../cli/start_command.ts";

// The dashboard's node-wide caps (`server/dashboard_routes.ts`): each anonymous reader
// (`http.allowUnauthenticatedRemote`) and each socket still to send its `auth` was limited per
// address only, so many addresses (an IPv6 client has as many /64s as it likes) took as many
// sockets as they liked. Now:
// - anonymous sockets have a node-wide cap (`http.dashboardAnonymousSockets`); past it a socket
//   is told so and may still read with a key or the operator token (key holders are not starved
//   by anonymous readers); one that does not is closed at its `auth` deadline (1013);
// - sockets waiting for their `auth` have a cap per address (`http.dashboardAuthPendingSocketsPerAddress`)
//   and one node-wide (`http.dashboardAuthPendingSockets`): 429 past either;
// - a wrong token (`bad_token`) is counted in `veriflow_http_refused_total` as the other refusals.

/** An address in the `i`th /64 of one IPv6 client: each is an anonymous client of its own. */
const ipv6Net = (i: number) => addr(`2001:db8:${i.toString(16)}:1::7`);

Deno.test("dashboard caps: anonymous sockets from many /64s stop at http.dashboardAnonymousSockets; a key holder still reads; this machine too", async () => {
  const { server, timers, stats, peer } = dashboardNode({
    allowUnauthenticatedRemote: true,
    limits: { anonymousSockets: 3 },
  });
  const open: WebSocket[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      peer.now = ipv6Net(i);
      const page = await openDashboardSocket(server.url);
      open.push(page.ws);
      await page.next((m) => m.type === "snapshot", `anonymous reader ${i}`);
    }
    // The fourth /64: no place left for reading without a key.
    peer.now = ipv6Net(3);
    const over = await openDashboardSocket(server.url);
    open.push(over.ws);
    const told = await over.next((m) => m.code === "too_many_sockets", "told the node is full");
    assert.match(
      (told as { message?: string }).message ?? "",
      /3 anonymous dashboard sockets.*http\.dashboardAnonymousSockets/,
    );
    assert.equal(over.messages.find((m) => m.type === "hello")?.access, "none");
    assert.equal(stats.refused.get("too_many_sockets"), 1, "counted for /metrics");

    // A key holder's page (it sends its token as it opens) is not starved by them.
    peer.now = ipv6Net(4);
    const holder = await openDashboardSocket(server.url);
    open.push(holder.ws);
    holder.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await holder.next((m) => m.type === "snapshot", "the key holder's snapshot");
    peer.now = LOOPBACK;
    const mine = await openDashboardSocket(server.url);
    open.push(mine.ws);
    await mine.next((m) => m.type === "snapshot", "this machine's snapshot");

    // The one that did not authenticate is closed at its deadline, as over an allowance.
    timers.fireAll();
    const { code, reason } = await over.closed;
    assert.equal(code, 1013);
    assert.match(reason, /anonymous/);
    assert.ok(!over.messages.some((m) => m.type === "snapshot"), "never a snapshot");
    // The key holder's page was refused an anonymous place too (then read with its key).
    assert.equal(stats.refused.get("too_many_sockets"), 2, "once a socket, not again at the close");
    assert.equal(stats.refused.get("api_key_required"), 0, "listed at 0, never counted");

    // A place given back is taken by the next anonymous reader.
    open[0].close();
    peer.now = ipv6Net(5);
    await eventuallyReads(server.url);
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

/** Open anonymous sockets until one reads (a closed socket's place comes back on its close). */
async function eventuallyReads(url: string): Promise<void> {
  for (let tries = 0; tries < 50; tries++) {
    const page = await openDashboardSocket(url);
    const first = await page.next(
      (m) => m.type === "snapshot" || m.code === "too_many_sockets",
      "a snapshot or a refusal",
    );
    page.ws.close();
    await page.closed;
    if (first.type === "snapshot") return;
  }
  assert.fail("a place given back was never taken again");
}

Deno.test("dashboard caps: sockets waiting for their auth are capped per address (IPv6 by /64: 429) and node-wide (the oldest pushed out, 1013), counted; an accepted auth gives the place back", async () => {
  const { server, upgrade, timers, stats, peer } = dashboardNode({
    limits: { authPendingSocketsPerAddress: 2, authPendingSockets: 3 },
  });
  const open: WebSocket[] = [];
  const waiting = async (from: Deno.NetAddr) => {
    peer.now = from;
    const page = await openDashboardSocket(server.url);
    open.push(page.ws);
    await page.next((m) => m.code === "api_key_required", "asked to authenticate");
    return page;
  };
  try {
    const a1 = await waiting(addr("2001:db8:1:2::1"));
    const a2 = await waiting(addr("2001:db8:1:2::ffff"));
    peer.now = addr("2001:db8:1:2:3::9");
    const sameNet = await upgrade();
    assert.equal(sameNet.status, 429, "a third from the same /64");
    assert.equal(sameNet.headers.get("retry-after"), "10", "each waiting socket is gone by then");
    const body = await sameNet.json();
    assert.equal(body.error.code, "key_concurrency_exceeded");
    assert.match(body.error.message, /2 dashboard sockets waiting.*PendingSocketsPerAddress\)/);
    assert.equal(stats.refused.get("key_concurrency_exceeded"), 1, "counted");

    // Node-wide: three waiting, so the next pushes the oldest out instead of being refused.
    const b1 = await waiting(REMOTE);
    const c1 = await waiting(addr("203.0.113.7"));
    const told = await a1.next((m) => m.code === "too_many_sockets", "the oldest told why");
    assert.match(
      (told as { message?: string }).message ?? "",
      /at most 3 dashboard sockets waiting.*http\.dashboardAuthPendingSockets\).*waited longest/,
    );
    assert.equal((await a1.closed).code, 1013);
    assert.equal(stats.refused.get("too_many_sockets"), 1, "counted");

    // A page that sends its token at once reads: an accepted auth frees its waiting place.
    c1.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await c1.next((m) => m.type === "snapshot", "its snapshot");
    await waiting(addr("203.0.113.8"));
    assert.equal(stats.refused.get("too_many_sockets"), 1, "room for it: nobody pushed out");
    assert.equal(a2.ws.readyState, WebSocket.OPEN);
    assert.equal(b1.ws.readyState, WebSocket.OPEN);

    // The deadline closes those that never authenticate (1008), and their places come back.
    timers.fireAll();
    assert.equal((await a2.closed).code, 1008);
    assert.equal((await b1.closed).code, 1008);
    peer.now = addr("2001:db8:1:2::1");
    await eventuallyWaits(server.url);
    assert.equal(c1.ws.readyState, WebSocket.OPEN, "the authenticated one stays");
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

/** Open a socket until one is asked for its auth rather than refused (places come back on close). */
async function eventuallyWaits(url: string): Promise<void> {
  for (let tries = 0; tries < 50; tries++) {
    try {
      const page = await openDashboardSocket(url);
      page.ws.close();
      await page.closed;
      return;
    } catch {
      // refused: the closed sockets' places not given back yet
    }
  }
  assert.fail("the places of sockets closed at their deadline never came back");
}

Deno.test("dashboard caps: a wrong token (bad_token) is counted in the refusals, each time", async () => {
  const { server, stats } = dashboardNode();
  try {
    const page = await openDashboardSocket(server.url);
    for (let i = 1; i <= 2; i++) {
      page.ws.send(JSON.stringify({ type: "auth", token: `not-a-key-${i}-0123456789` }));
      await page.next(
        () => page.messages.filter((m) => m.code === "bad_token").length === i,
        "told",
      );
    }
    assert.equal(stats.refused.get("bad_token"), 2);
    page.ws.send(JSON.stringify({ type: "auth", token: "still-not-a-key-0123456789" }));
    assert.equal((await page.closed).code, 1008);
    assert.equal(stats.refused.get("bad_token"), 3, "the one that closed the socket too");
  } finally {
    await server.shutdown();
  }
});

Deno.test("dashboard caps: http settings with defaults, validated naming the key, passed through createApp and counted in /metrics", async () => {
  const { http } = parseNodeConfig({});
  assert.equal(http.dashboardAnonymousSockets, DEFAULT_DASHBOARD_LIMITS.anonymousSockets);
  assert.equal(http.dashboardAuthPendingSockets, DEFAULT_DASHBOARD_LIMITS.authPendingSockets);
  assert.equal(
    http.dashboardAuthPendingSocketsPerAddress,
    DEFAULT_DASHBOARD_LIMITS.authPendingSocketsPerAddress,
  );
  for (
    const key of [
      "dashboardAnonymousSockets",
      "dashboardAuthPendingSockets",
      "dashboardAuthPendingSocketsPerAddress",
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

  // Through createApp, each a setting of 1: an anonymous reader, a second told the node has no
  // anonymous place left (waiting for its auth), a third from its address refused (429), and
  // another address's pushing the waiting one out.
  const jobs = new JobMonitor();
  const peer = { now: addr("198.51.100.1") };
  const app = createApp({
    inference: jobs.wrap(NO_JOBS_PORT),
    edge: {
      allowUnauthenticatedRemote: true,
      dashboardAnonymousSockets: 1,
      dashboardAuthPendingSockets: 1,
      dashboardAuthPendingSocketsPerAddress: 1,
    },
    dashboard: { sources: quietSources(), jobs, operatorToken: OPERATOR, tickMs: 60_000 },
    timers: new FakeTimers(),
  });
  const server = serve({
    app: { fetch: (req) => app.fetch(req, { remoteAddr: peer.now }) },
    hostname: "127.0.0.1",
    port: 0,
  });
  const open: WebSocket[] = [];
  try {
    const reader = await openDashboardSocket(server.url);
    open.push(reader.ws);
    await reader.next((m) => m.type === "snapshot", "the anonymous reader's snapshot");
    peer.now = addr("198.51.100.2");
    const second = await openDashboardSocket(server.url);
    open.push(second.ws);
    const full = await second.next((m) => m.code === "too_many_sockets", "no anonymous place");
    assert.match((full as { message?: string }).message ?? "", /http\.dashboardAnonymousSockets/);
    const third = await app.fetch(upgradeRequest(`${server.url}/dashboard/live`), {
      remoteAddr: peer.now,
    });
    assert.equal(third.status, 429);
    assert.match((await third.json()).error.message, /http\.dashboardAuthPendingSocketsPerAddress/);
    peer.now = addr("198.51.100.3");
    const fourth = await openDashboardSocket(server.url);
    open.push(fourth.ws);
    await fourth.next((m) => m.code === "too_many_sockets", "no anonymous place");
    assert.equal((await second.closed).code, 1013, "pushed out of the one waiting place");

    const metrics = await app.fetch(new Request("http://127.0.0.1/metrics"), {
      remoteAddr: LOOPBACK,
    });
    const text = await metrics.text();
    // Two told there was no anonymous place, and one pushed out.
    assert.match(text, /^veriflow_http_refused_total\{code="too_many_sockets"\} 3$/m);
    assert.match(text, /^veriflow_http_refused_total\{code="key_concurrency_exceeded"\} 1$/m);
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

// The loose ends the dashboard's per-client limits left:
// - a socket that never sends its `auth` held no place and got no snapshot, but stayed open for
//   good: it now has a deadline (closed 1008), on the injected timers; this machine's sockets,
//   which need no `auth`, have none;
// - the limits could not be set from the node's configuration (`http.dashboard*`, passed through
//   `createApp`);
// - the dashboard's refusals (429, close 1013, the deadline's close) were not in `/metrics`'
//   `veriflow_http_refused_total`;
// - every anonymous reader (`http.allowUnauthenticatedRemote`) shared one allowance, so one of them
//   could take every place: each address now has its own (an IPv6 one per /64).

/** The deadline timers armed now (those of {@link DASHBOARD_AUTH_TIMEOUT_MS}). */
const authDeadlines = (timers: FakeTimers) =>
  [...timers.armed.values()].filter((t) => t.ms === DASHBOARD_AUTH_TIMEOUT_MS);

Deno.test("a dashboard socket that never authenticates is closed (1008) at its deadline, on the injected timers, and the refusal is counted", async () => {
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

Deno.test("a socket that authenticates in time has its deadline cleared; this machine's sockets get none", async () => {
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

Deno.test("a dashboard socket refused over its client's allowance (close 1013) is counted by code", async () => {
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

Deno.test("anonymous readers each have their own allowance by address (IPv6 by /64): one cannot take every place", async () => {
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

Deno.test("the node's app takes the dashboard's limits from its http settings and counts their refusals in /metrics", async () => {
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

Deno.test("the dashboard limits are http settings: defaults, validated naming the key, shown by --print-config", async () => {
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

Deno.test("per-client allowances forget a client idle for a minute (anonymous readers are many addresses): what is kept stays bounded", () => {
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
