/**
 * The node's memory guard over its WebSockets (`server/websocket_memory_guard.ts`): Deno bounds no
 * WebSocket message (a fragmented one grows without limit), so past `server.wsMemoryLimitBytes`
 * the node drops the sockets running no job (a job only queued runs none), every group in one check
 * (those still to send their `auth` first, then keyless ones, then those with a key); a socket
 * running a job is dropped at the next check still over the limit. The RSS probe and the clock are
 * injected; the sockets are real, their clients raw TCP ones.
 */
import assert from "node:assert/strict";
import { MEMORY_CHECK_MS, WebSocketMemoryGuard } from "../../server/websocket_memory_guard.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { startTestNode } from "./_fixtures.ts";
import { dropAll, type RawSocket, rawUpgrade } from "./_raw_ws.ts";
import { connectionEnd, upgradeServer } from "./_upgrade_server.ts";
import { WsProbe } from "./_ws_probe.ts";

const LIMIT = 1 << 30;
/** Long enough to see that nothing happens by itself; an ordering pause, not a deadline. */
const NOTHING_HAPPENS_MS = 300;

Deno.test("memory guard: over the limit, every idle socket of every group is dropped in one check; one running a job only at the next check still over; under it nothing is", async () => {
  const timers = new FakeTimers();
  let rss = LIMIT;
  const lines: string[] = [];
  const guard = new WebSocketMemoryGuard({
    limitBytes: LIMIT,
    rss: () => rss,
    timers,
    log: (line) => lines.push(line),
  });
  const server = upgradeServer();
  const open: RawSocket[] = [];
  const connect = async () => {
    const client = await rawUpgrade(server.url, "/");
    open.push(client);
    return { client, socket: await server.opened() };
  };
  try {
    const keyed = await connect();
    const keyless = await connect();
    const busy = await connect();
    const preAuth = await connect();
    const tracked = [
      guard.track(keyed.socket, "keyed", () => false),
      guard.track(keyless.socket, "keyless", () => false),
      guard.track(busy.socket, "keyless", () => true),
      guard.track(preAuth.socket, "pre_auth", () => false),
    ];
    assert.deepEqual([...timers.armed.values()].map((t) => t.ms), [MEMORY_CHECK_MS]);

    timers.fireFor(MEMORY_CHECK_MS); // at the limit, not over it
    await delay(NOTHING_HAPPENS_MS);
    assert.deepEqual(lines, []);
    for (const { socket } of [keyed, keyless, busy, preAuth]) {
      assert.equal(socket.readyState, WebSocket.OPEN);
    }

    rss = LIMIT + 1;
    timers.fireFor(MEMORY_CHECK_MS);
    await Promise.all([preAuth, keyless, keyed].map(({ client }) => connectionEnd(client)));
    assert.equal(lines.length, 1, "one line for the check");
    assert.match(lines[0], /dropped 3 WebSocket\(s\) running no job/);
    assert.match(lines[0], /1 waiting for their auth, 1 without a key, 1 with a key/);
    assert.match(lines[0], /kept 1 running a job/);
    assert.equal(busy.socket.readyState, WebSocket.OPEN, "a job's socket waits for the next check");

    rss = LIMIT; // the drop was enough: the next check still over starts the count again
    assert.equal(guard.check(), 0);
    rss = LIMIT + 1;
    assert.equal(guard.check(), 0, "the first check over the limit keeps a socket running a job");
    assert.equal(busy.socket.readyState, WebSocket.OPEN);
    assert.equal(lines.length, 1, "no line when nothing is dropped");

    timers.fireFor(MEMORY_CHECK_MS); // still over, and no idle socket is left
    await connectionEnd(busy.client);
    assert.equal(lines.length, 2);
    assert.match(lines[1], /dropped 1 WebSocket\(s\) running a job/);

    for (const place of tracked) place.untrack();
    assert.equal(timers.armed.size, 0, "no socket tracked, no check armed");
  } finally {
    dropAll(open);
    await server.shutdown();
  }
});

/**
 * The node's own app served on a free port, with a limit every process is over (the real RSS
 * probe), its log kept in `lines`.
 */
function overLimitServer(
  node: Awaited<ReturnType<typeof startTestNode>>,
  timers: FakeTimers,
  lines: string[],
  signal: AbortSignal,
) {
  const app = createApp({
    inference: node.port,
    defaultModel: node.model.info.cid,
    timers,
    wsMemoryLimitBytes: 1,
    log: (line) => lines.push(line),
  });
  return serve({ app, port: 0, signal });
}

Deno.test("memory guard: on the node, a /v1/stream socket whose job is only queued counts as idle and is dropped; one whose job runs is dropped at the next check still over, its job cancelled", async () => {
  const timers = new FakeTimers();
  // One slot: the second job waits in the queue behind the first (gated: it holds the slot).
  const node = await startTestNode({ concurrency: 1 });
  const lines: string[] = [];
  const abort = new AbortController();
  const server = overLimitServer(node, timers, lines, abort.signal);
  let running: WsProbe | undefined;
  let queued: WsProbe | undefined;
  try {
    const wsUrl = `${server.url.replace("http:", "ws:")}/v1/stream`;
    running = await WsProbe.open(wsUrl);
    running.send({ type: "infer", id: "r", model: "gated", prompt: "x", max_tokens: 2 });
    await running.next((m) => m.type === "start" && m.id === "r");
    queued = await WsProbe.open(wsUrl);
    queued.send({ type: "infer", id: "q", model: "gated", prompt: "x", max_tokens: 2 });
    await queued.next((m) => m.type === "queued" && m.id === "q");

    await eventually(
      () => [...timers.armed.values()].some((t) => t.ms === MEMORY_CHECK_MS),
      "the memory check armed",
    );
    timers.fireFor(MEMORY_CHECK_MS);
    const dropped = (probe: WsProbe) => probe.closeEvent !== undefined;
    await eventually(() => dropped(queued!), "the socket with only a queued job dropped");
    const guardLines = () => lines.filter((l) => l.startsWith("memory guard:"));
    assert.match(guardLines()[0], /dropped 1 WebSocket\(s\) running no job/);
    assert.match(guardLines()[0], /kept 1 running a job/);
    assert.equal(running.socket.readyState, WebSocket.OPEN, "kept at the first check over");

    timers.fireFor(MEMORY_CHECK_MS);
    await eventually(() => dropped(running!), "the socket running a job dropped");
    assert.match(guardLines()[1], /dropped 1 WebSocket\(s\) running a job/);
    // Both jobs go through the session's cancel: the slot and the queue turn are free, and a
    // cancelled job earns no receipt (docs/API.md).
    await eventually(async () => {
      const stats = await node.stats();
      return stats.jobsCancelled === 2 && stats.activeJobs === 0 && stats.queuedJobs === 0;
    }, "both jobs cancelled");
    assert.equal((await node.stats()).jobsFinished, 0);
  } finally {
    await running?.close();
    await queued?.close();
    abort.abort();
    await server.finished;
    await node.close();
  }
});

Deno.test("memory guard: on the node, a /v1/stream socket running a job is kept and an idle one dropped when the RSS is over server.wsMemoryLimitBytes", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode();
  const lines: string[] = [];
  const abort = new AbortController();
  const server = overLimitServer(node, timers, lines, abort.signal);
  const open: RawSocket[] = [];
  let running: WsProbe | undefined;
  try {
    const wsUrl = `${server.url.replace("http:", "ws:")}/v1/stream`;
    running = await WsProbe.open(wsUrl);
    running.send({ type: "infer", id: "g", model: "gated", prompt: "x", max_tokens: 2 });
    await running.next((m) => m.type === "start" && m.id === "g");
    const idle = await rawUpgrade(server.url, "/v1/stream");
    open.push(idle);
    assert.equal(idle.status, 101);

    await eventually(
      () => [...timers.armed.values()].some((t) => t.ms === MEMORY_CHECK_MS),
      "the memory check armed",
    );
    timers.fireFor(MEMORY_CHECK_MS);
    await connectionEnd(idle);
    assert.equal(lines.filter((l) => l.startsWith("memory guard:")).length, 1);
    assert.match(lines.find((l) => l.startsWith("memory guard:"))!, /kept 1 running a job/);

    node.gated.release(2);
    const end = await running.end("g");
    assert.equal(end.type, "done", "the job on the kept socket ran to its end");
    assert.equal(running.socket.readyState, WebSocket.OPEN);
  } finally {
    await running?.close();
    dropAll(open);
    abort.abort();
    await server.finished;
    await node.close();
  }
});
