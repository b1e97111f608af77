/** The topics a node joins on Hyperswarm (`network/swarm_topics.ts`). */
import assert from "node:assert/strict";
import { modelTopic, NETWORK_TOPIC, nodeTopics, roleTopic } from "../../network/swarm_topics.ts";
import { sha256, toHex } from "../../protocols/hash.ts";

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

Deno.test("a separate network's role and model topics are its own: none is the default network's or another's", () => {
  const topicsOf = (network?: Uint8Array) =>
    nodeTopics(["inference", "validator"], ["bafk-model"], true, network).map((t) =>
      toHex(t.topic)
    );
  const main = topicsOf();
  // The default network's topics are what they were (deployed nodes must still meet).
  assert.deepEqual(main, [
    toHex(NETWORK_TOPIC),
    toHex(sha256(new TextEncoder().encode("veriflow/role/v1/inference"))),
    toHex(sha256(new TextEncoder().encode("veriflow/role/v1/validator"))),
    toHex(sha256(new TextEncoder().encode("veriflow/model/v1/bafk-model"))),
  ]);
  const [a, b] = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
  const ofA = topicsOf(a);
  const ofB = topicsOf(b);
  assert.equal(ofA[0], toHex(a));
  assert.deepEqual(topicsOf(a), ofA, "the same on every node of the network");
  const seen = new Set([...main, ...ofA, ...ofB]);
  assert.equal(seen.size, main.length * 3, "no topic shared between the three networks");
  // A router of network A looks workers up on A's inference topic, not the default one.
  const router = nodeTopics(["validator"], [], true, a);
  assert.equal(toHex(router[2].topic), toHex(roleTopic("inference", a)));
  assert.notEqual(toHex(router[2].topic), toHex(roleTopic("inference")));
});
