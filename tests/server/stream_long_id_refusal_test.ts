/**
 * A frame refused for an id over `MAX_REQUEST_ID_CHARS` is refused without echoing that id
 * (review s79 F3): the echo sent back as much as the client put in the field (up to
 * `maxRequestBytes`), and a 70,000-character one made a refusal longer than a client takes
 * (`MAX_FRAME_CHARS`), which then failed every job on the socket. An id within the limit is still
 * echoed on a refusal for another field, so the client can tell which request it ends.
 */
import assert from "node:assert/strict";
import { startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { MAX_REQUEST_ID_CHARS } from "../../server/request_schemas.ts";

const KEY = "stream-long-id-key-0123456789abcdef";
const AUTH = { authorization: `Bearer ${KEY}` };

Deno.test("WS /v1/stream: an infer whose id is over the limit is refused with an error that carries no id and does not repeat it", async () => {
  const node = await startTestNode({ edge: { apiKeys: [KEY] } });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    for (const length of [MAX_REQUEST_ID_CHARS + 1, 5_000]) {
      const id = "x".repeat(length);
      const before = probe.messages.length;
      probe.send({ type: "infer", id, model: "gated", prompt: "x", max_tokens: 1 });
      const refusal = await probe.next((m) =>
        m.type === "error" && probe.messages.indexOf(m) >= before
      );
      assert.equal(refusal.type === "error" && refusal.code, "invalid_request");
      assert.equal("id" in refusal, false, `length ${length}: no id`);
      assert.equal("refused_id" in refusal, false, `length ${length}: no refused_id`);
      assert.ok(!JSON.stringify(refusal).includes("x".repeat(MAX_REQUEST_ID_CHARS + 1)));
    }
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});

Deno.test("WS /v1/stream: an id at the limit is still echoed when another field is refused", async () => {
  const node = await startTestNode({ edge: { apiKeys: [KEY] } });
  try {
    const probe = await WsProbe.open(node.wsUrl, AUTH);
    const id = "y".repeat(MAX_REQUEST_ID_CHARS);
    probe.send({ type: "infer", id, model: "gated" }); // no prompt: refused
    const refusal = await probe.end(id);
    assert.equal(refusal.type === "error" && refusal.code, "invalid_request");
  } finally {
    node.gated.release(1_000_000);
    await node.close();
  }
});
