/**
 * A well-formed `infer` the node refuses after the schema (here an unknown model; the gateway's
 * other refusals, `too_many_jobs`, `context_length_exceeded`, `rate_limited`, take the same path)
 * starts no job, so it does not restart the socket's idle countdown (review s79 F2): a client
 * that sent one every 110 s held its socket place, and one of the node's, forever. On the
 * injected clock: the countdown armed before the refused frames is the one still running, and it
 * closes the socket.
 */
import assert from "node:assert/strict";
import { eventually, startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { STREAM_SOCKET_IDLE_MS, WS_CLOSE } from "../../server/stream_session.ts";

const KEY = "stream-idle-refused-key-0123456789";
const AUTH = { authorization: `Bearer ${KEY}` };
/** Refused `infer`s sent one after another: any restart would show as a new handle. */
const REFUSED_ROUNDS = 3;

/** The handles of the idle close's countdowns now armed on `timers`. */
function idleHandles(timers: FakeTimers): number[] {
  return [...timers.armed].filter(([, t]) => t.ms === STREAM_SOCKET_IDLE_MS).map(([h]) => h);
}

Deno.test("WS /v1/stream: an infer refused by the node (unknown_model) does not restart the idle countdown; the socket still closes on the countdown armed before it", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ edge: { apiKeys: [KEY] }, timers });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    await eventually(() => Promise.resolve(idleHandles(timers).length === 1), "first countdown");
    const [first] = idleHandles(timers);
    for (let round = 0; round < REFUSED_ROUNDS; round++) {
      const id = `u${round}`;
      probe.send({ type: "infer", id, model: "no-such-model", prompt: "x", max_tokens: 1 });
      const end = await probe.end(id);
      assert.equal(end.type, "error");
      assert.equal(end.code, "unknown_model");
      assert.deepEqual(idleHandles(timers), [first], `round ${round}: same countdown`);
    }
    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    await eventually(() => probe.closeEvent, "the socket closed despite the refused infers");
    assert.equal(probe.closeEvent?.code, WS_CLOSE.normal);
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});

Deno.test("WS /v1/stream: an accepted infer still stops the idle countdown while it runs and restarts it at its end", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ edge: { apiKeys: [KEY] }, timers });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    await eventually(() => Promise.resolve(idleHandles(timers).length === 1), "first countdown");
    const [first] = idleHandles(timers);
    probe.send({ type: "infer", id: "j", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "j");
    assert.deepEqual(idleHandles(timers), [], "no idle countdown while a job runs");
    node.gated.release(1);
    assert.equal((await probe.end("j")).type, "done");
    await eventually(() => Promise.resolve(idleHandles(timers).length === 1), "re-armed");
    assert.notEqual(idleHandles(timers)[0], first, "a fresh countdown after the job's end");
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});
