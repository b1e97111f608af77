/**
 * Nodes that meet on Hyperswarm: the topics they join (`network/swarm_topics.ts`), reaching a peer
 * by its key, and two nodes in two processes that find each other on a local DHT testnet.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamClient } from "../../client/stream_client.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { sha256, toHex } from "../../protocols/hash.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { modelTopic, NETWORK_TOPIC, nodeTopics, roleTopic } from "../../network/swarm_topics.ts";

// ---- swarm nodes ----------------------------------------------------------------------------------
// Two Veriflow nodes in two processes that know nothing of each other's address: both join
// Hyperswarm through a local DHT testnet on 127.0.0.1, find each other on the network topic, and a
// client's job on A (which runs no model) streams from B's model.

Deno.test({
  name: "two nodes find each other on Hyperswarm (local testnet) and a job on A runs on B",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-swarm-" });
    const testnet = await startLocalTestnet();
    const swarm = [
      ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
      "--swarm-bind",
      "127.0.0.1",
      "--no-listen", // no TCP peers at all: the swarm is the only way to meet
    ];
    const common = ["--port", "0", "--heartbeat", "0", ...swarm];
    const processes: NodeProcess[] = [];
    try {
      const b = NodeProcess.start("B", [...common, "--data", join(root, "b")]);
      processes.push(b);
      const a = NodeProcess.start("A", [
        ...common,
        "--data",
        join(root, "a"),
        "--no-inference",
        "--no-prover",
      ]);
      processes.push(a);
      const aUrl = await a.httpUrl();
      await eventually(
        async () => {
          const m = await a.metrics();
          return (m.get("veriflow_peer_workers") ?? 0) >= 1 ? true : undefined;
        },
        "A to find B on the swarm",
        { timeoutMs: 30_000 },
      );
      const client = await StreamClient.connect(aUrl);
      try {
        const job = client.infer({ prompt: "Over the swarm", max_tokens: 12, seed: 1 });
        let tokens = 0;
        for await (const _ of job.tokens) tokens++;
        const done = await job.done;
        assert.equal(tokens, 12);
        const bKey = toHex((await loadOrCreateIdentity(join(root, "b"))).publicKey);
        assert.equal((done.receipt as { worker: string }).worker, bKey, "B ran it");
      } finally {
        client.close();
      }
      assert.ok(a.lines.some((l) => l.includes("swarm joined")), a.lines.join("\n"));
      await Promise.all(processes.map((p) => p.stop()));
    } catch (error) {
      for (const p of processes) {
        console.error(`--- ${p.name} ---\n${p.lines.slice(-30).join("\n")}`);
      }
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await testnet.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

// ---- reach ----------------------------------------------------------------------------------------
// Reaching a peer by its key (the NetworkActor's `reach`): two nodes on a local DHT testnet
// (127.0.0.1) that share no topic never meet on their own; one asks to reach the other and the
// connection comes up, with the peer's hello, as any other. A node never dials itself, and one
// without a swarm has nothing to dial with.

Deno.test({
  name:
    "reach: a node dials a peer by its key over the swarm when they share no topic, and their connection comes up",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const system = new ActorSystem({ name: "reach" });
    const [v, w] = [Identity.generate(), Identity.generate()];
    try {
      // Each on a network topic of its own: neither looks the other up.
      const node = (name: string, identity: Identity) =>
        system.spawn<NetworkMessage>({
          name: `${name}/network`,
          factory: () =>
            new NetworkActor({
              identity,
              services: {},
              swarm: {
                bootstrap: testnet.bootstrap,
                bind: "127.0.0.1",
                topic: crypto.getRandomValues(new Uint8Array(32)),
              },
            }),
        });
      const [vNet] = await Promise.all([node("v", v), node("w", w)]);
      const peersOf = async () =>
        (await vNet.ask<PeerInfo[]>({ type: "peers" })).map((peer) => peer.key);
      // The swarm starts in the background: reach answers false until it is up.
      await eventually(
        () => vNet.ask<boolean>({ type: "reach", key: w.publicKey, forMs: 30_000 }),
        "V's swarm to dial W",
      );
      assert.equal(
        await vNet.ask<boolean>({ type: "reach", key: v.publicKey, forMs: 30_000 }),
        false,
        "a node does not dial itself",
      );
      const keys = await eventually(
        async () => (await peersOf()).includes(toHex(w.publicKey)) ? await peersOf() : undefined,
        "V's connection to W",
      );
      assert.deepEqual(keys, [toHex(w.publicKey)]);
      assert.equal(
        await vNet.ask<boolean>({ type: "reach", key: w.publicKey, forMs: 30_000 }),
        false,
        "connected: nothing more to dial",
      );
    } finally {
      await system.shutdown();
      await testnet.stop();
    }
  },
});

Deno.test("reach: a node without a swarm has nothing to dial with", async () => {
  const system = new ActorSystem({ name: "reach-tcp" });
  try {
    const net = await system.spawn<NetworkMessage>({
      name: "n/network",
      factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
    });
    const key = Identity.generate().publicKey;
    assert.equal(await net.ask<boolean>({ type: "reach", key, forMs: 1_000 }), false);
  } finally {
    await system.shutdown();
  }
});

// ---- swarm topics ---------------------------------------------------------------------------------
// The topics a node joins on Hyperswarm (`network/swarm_topics.ts`).

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
