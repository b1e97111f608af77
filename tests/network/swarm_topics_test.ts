/** The topics a node joins on Hyperswarm (`network/swarm_topics.ts`). */
import assert from "node:assert/strict";
import { modelTopic, NETWORK_TOPIC, nodeTopics, roleTopic } from "../../network/swarm_topics.ts";
import { toHex } from "../../protocols/hash.ts";

Deno.test("a worker announces its roles and models; a router without a model looks workers up", () => {
  const worker = nodeTopics(["inference", "storage"], ["bafk-model"], true);
  assert.deepEqual(worker.map((t) => [t.name, t.server, t.client]), [
    ["network", true, true],
    ["role:inference", true, false],
    ["role:storage", true, false],
    ["model:bafk-model", true, false],
  ]);
  assert.equal(toHex(worker[3].topic), toHex(modelTopic("bafk-model")));
  const router = nodeTopics(["validator"], [], true);
  assert.deepEqual(router.map((t) => [t.name, t.server, t.client]), [
    ["network", true, true],
    ["role:validator", true, false],
    ["role:inference", false, true],
  ]);
  assert.equal(toHex(router[2].topic), toHex(roleTopic("inference")));
  // Distinct, 32 bytes, the same on every node.
  const all = new Set([NETWORK_TOPIC, roleTopic("storage"), modelTopic("a"), modelTopic("b")]
    .map((t) => (assert.equal(t.length, 32), toHex(t))));
  assert.equal(all.size, 4);
});
