/**
 * A `/v1/stream` frame that writes a key twice is refused naming that key (review s79 F4):
 * `JSON.parse` keeps the last copy, so `{"type":"infer",…,"type":"cancel"}` was read as a cancel
 * and refused for its `prompt` ("unknown field"), which told the client nothing of its mistake.
 * The same check refuses a configuration file that repeats a key (`node/config.ts`).
 */
import assert from "node:assert/strict";
import { startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";

const KEY = "stream-repeated-key-0123456789abcd";
const AUTH = { authorization: `Bearer ${KEY}` };

Deno.test("WS /v1/stream: a frame with a repeated key is refused naming the key, attributed to its id, and the socket stays usable", async () => {
  const node = await startTestNode({ edge: { apiKeys: [KEY] } });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    probe.send('{"type":"infer","id":"d","prompt":"x","type":"cancel"}');
    const refusal = await probe.end("d");
    assert.equal(refusal.type, "error");
    if (refusal.type !== "error") return;
    assert.equal(refusal.code, "invalid_request");
    assert.match(refusal.message, /"type"/);
    assert.match(refusal.message, /twice/);
    // Nested keys are named by their path.
    probe.send('{"type":"infer","id":"n","prompt":"x","stop":["a"],"x":{"k":1,"k":2}}');
    const nested = await probe.end("n");
    assert.equal(nested.type === "error" && nested.code, "invalid_request");
    assert.match(nested.type === "error" ? nested.message : "", /x\.k/);
    // A repeated id names no request surely: the refusal carries none.
    const before = probe.messages.length;
    probe.send('{"type":"infer","id":"a","id":"b","prompt":"x"}');
    const unnamed = await probe.next((m) => probe.messages.indexOf(m) >= before);
    assert.equal(unnamed.type === "error" && unnamed.code, "invalid_request");
    assert.equal("id" in unnamed, false);
    assert.match(unnamed.type === "error" ? unnamed.message : "", /"id"/);
    probe.send({ type: "infer", id: "ok", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "ok");
    node.gated.release(1);
    assert.equal((await probe.end("ok")).type, "done");
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});
