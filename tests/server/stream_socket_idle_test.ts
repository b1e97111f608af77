/**
 * The idle close of a `/v1/stream` socket (`STREAM_SOCKET_IDLE_MS`, `server/stream_session.ts`,
 * review s75 verify F1): a socket that runs no job and sends no frame is closed by the node, so
 * idle clients cannot keep the node's few socket places forever. On the injected clock.
 */
import assert from "node:assert/strict";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { STREAM_SOCKET_IDLE_MS, WS_CLOSE } from "../../server/stream_session.ts";
import { MAX_STREAM_SOCKETS_PER_CLIENT } from "../../server/stream_sockets.ts";
import { rawUpgrade } from "./_raw_ws.ts";

const KEY = "stream-idle-key-0123456789abcdef";

async function withNode(body: (node: TestNode, timers: FakeTimers) => Promise<void>) {
  const timers = new FakeTimers();
  const node = await startTestNode({ edge: { apiKeys: [KEY] }, timers });
  try {
    await body(node, timers);
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
}

/** Whether an idle close's countdown is armed on `timers`. */
function idleArmed(timers: FakeTimers): boolean {
  return [...timers.armed.values()].some((timer) => timer.ms === STREAM_SOCKET_IDLE_MS);
}

const AUTH = { authorization: `Bearer ${KEY}` };

Deno.test("WS /v1/stream: a socket with no job and no frame for STREAM_SOCKET_IDLE_MS is closed by the node (1000), and its place comes back", async () => {
  await withNode(async (node, timers) => {
    const idle: WsProbe[] = [];
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      idle.push(await WsProbe.open(node.wsUrl, AUTH));
    }
    const refused = await rawUpgrade(node.url, "/v1/stream", AUTH);
    refused.conn.close();
    assert.equal(refused.status, 429, "the client's places are all held");

    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    for (const probe of idle) {
      await eventually(() => probe.closeEvent, "the idle socket closed by the node");
      assert.equal(probe.closeEvent?.code, WS_CLOSE.normal);
      assert.match(probe.closeEvent?.reason ?? "", /no job for/);
    }
    const again = await WsProbe.open(node.wsUrl, AUTH);
    await again.close();
  });
});

Deno.test("WS /v1/stream: a socket running a job is not closed as idle; once its job ends, the countdown starts again", async () => {
  await withNode(async (node, timers) => {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    probe.send({ type: "infer", id: "g", model: "gated", prompt: "x", max_tokens: 3 });
    await probe.next((m) => m.type === "start" && m.id === "g");
    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    node.gated.release(3);
    assert.equal((await probe.end("g")).type, "done", "the job ran to its end");
    const whileRunning = probe.closeEvent;
    assert.equal(whileRunning, undefined, "not closed while the job ran");
    await eventually(
      () => Promise.resolve(idleArmed(timers)),
      "the idle countdown armed again at the job's end",
    );

    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    await eventually(() => probe.closeEvent, "the socket closed once idle after its job");
    assert.equal(probe.closeEvent?.code, WS_CLOSE.normal, "idle again after its job");
  });
});
