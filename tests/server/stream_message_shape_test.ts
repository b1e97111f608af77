/**
 * `/v1/stream` with frames that parse as JSON but are no message object (review s82 dash F0, the
 * same class as the dashboard's: reading a field of `null` in a WebSocket handler is an uncaught
 * error, which ends the process). Each is refused with an `error` frame and the socket runs the
 * next job. Run in-process: an uncaught error fails the test.
 */
import assert from "node:assert/strict";
import { startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";

const KEY = "stream-message-shape-0123456789abcd";
const AUTH = { authorization: `Bearer ${KEY}` };
/** JSON texts that are no message object, a deeply nested one included. */
const NOT_MESSAGES = ["null", "[]", "1", '"x"', "true", "[".repeat(100) + "]".repeat(100)];

Deno.test("WS /v1/stream: null, an array, a number, a string or deep nesting is refused with an error frame, and the socket and node serve on", async () => {
  const node = await startTestNode({ edge: { apiKeys: [KEY] } });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    for (const text of NOT_MESSAGES) {
      const before = probe.messages.length;
      probe.send(text);
      const refusal = await probe.next((m) => probe.messages.indexOf(m) >= before);
      assert.equal(refusal.type, "error", text);
      assert.match(refusal.type === "error" ? refusal.code : "", /^invalid_(request|json)$/, text);
      assert.equal("id" in refusal, false, "no request named");
    }
    probe.send({ type: "infer", id: "ok", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "ok");
    node.gated.release(1);
    assert.equal((await probe.end("ok")).type, "done");
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    await probe.close();
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});
