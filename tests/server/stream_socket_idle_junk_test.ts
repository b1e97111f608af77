/**
 * The idle close of a `/v1/stream` socket is not put off by frames that start no job (review s75
 * vhandshake F1): a client that sends junk or cancels nothing every 110 s, just under
 * `STREAM_SOCKET_IDLE_MS`, is still closed 120 s after its last job. On the injected clock: the
 * test checks that the countdown armed at the last job's end is the one still running.
 */
import assert from "node:assert/strict";
import { eventually, startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { STREAM_SOCKET_IDLE_MS, WS_CLOSE } from "../../server/stream_session.ts";

const KEY = "stream-idle-junk-key-0123456789ab";
const AUTH = { authorization: `Bearer ${KEY}` };
/** Rounds of junk, each sent "110 s" after the last: far more than one countdown's worth. */
const JUNK_ROUNDS = 5;

/** The handles of the idle close's countdowns now armed on `timers`. */
function idleHandles(timers: FakeTimers): number[] {
  return [...timers.armed].filter(([, t]) => t.ms === STREAM_SOCKET_IDLE_MS).map(([h]) => h);
}

Deno.test("WS /v1/stream: refused frames and cancels of nothing do not restart the idle countdown; the socket closes 120 s after its last job", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ edge: { apiKeys: [KEY] }, timers });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    probe.send({ type: "infer", id: "j", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "j");
    assert.deepEqual(idleHandles(timers), [], "no idle countdown while a job runs");
    node.gated.release(1);
    assert.equal((await probe.end("j")).type, "done");
    await eventually(
      () => Promise.resolve(idleHandles(timers).length === 1),
      "the countdown armed at the job's end",
    );
    const [afterJob] = idleHandles(timers);

    for (let round = 0; round < JUNK_ROUNDS; round++) {
      probe.send({});
      await probe.next((m) => m.type === "error" && m.code === "invalid_request");
      probe.send({ type: "cancel", id: "nothing-runs-under-this-id" });
      probe.send({ type: "infer", id: "j2", model: "gated" }); // no prompt: refused
      await probe.next((m) => m.type === "error" && m.id === "j2");
      assert.deepEqual(idleHandles(timers), [afterJob], `round ${round}: same countdown`);
    }

    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    await eventually(() => probe.closeEvent, "the socket closed despite the junk");
    assert.equal(probe.closeEvent?.code, WS_CLOSE.normal);
    assert.match(probe.closeEvent?.reason ?? "", /no job for 120000 ms/);
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});
