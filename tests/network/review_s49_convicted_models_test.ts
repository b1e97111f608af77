/**
 * Review s49 of how a router picks workers: what a convicted worker still connected to a
 * routing node does to the models that node offers its clients (`NetworkActor`'s
 * `worker_models`, which `NetworkInferencePort.models()` and the edge's model names read).
 * Workers are in-memory connections with signed hellos; the client side is the edge's
 * `InferenceGateway` over the router's `NetworkInferencePort`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { eventually } from "../_helpers/wait.ts";
import { params } from "../server/_fixtures.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { connectWorker, INFO, TwoTokenWorker } from "./_router_fixture.ts";

/** A worker that lists another model under the honest model's name. */
class OtherModelWorker extends TwoTokenWorker {
  static readonly info: ServedModelInfo = { cid: "bafkothermodel", name: INFO.name, kind: "text" };
  override models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([OtherModelWorker.info]);
  }
}

/** A worker serving `cid` under `identity`, connected to the router with room for 4 jobs. */
function connect(
  net: ActorRef<NetworkMessage>,
  worker: TwoTokenWorker,
  identity: Identity,
  cid: string,
): Promise<Connection> {
  const load = { running: 0, queued: 0, slots: 4, queueLimit: 0 };
  return connectWorker(net, worker, load, { identity, model: cid });
}

Deno.test("s49: a convicted worker still connected no longer offers its model to the router's clients: a job by the honest model's name, or by none, runs on the honest worker", async () => {
  const system = new ActorSystem({ name: "s49-convicted-models" });
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const cheatKey = Identity.generate();
  const cheat = new OtherModelWorker(false, "", "");
  const honest = new TwoTokenWorker(false, "", "");
  const peers: Connection[] = [];
  try {
    // The cheat connected first: its listing comes first.
    peers.push(await connect(net, cheat, cheatKey, OtherModelWorker.info.cid));
    peers.push(await connect(net, honest, Identity.generate(), INFO.cid));
    const port = new NetworkInferencePort(net);
    await eventually(
      async () => (await port.models().catch(() => [])).length === 2 || undefined,
      "both workers' models listed",
    );
    // This node's ledger slashes the cheat; it stays connected.
    await net.tell({ type: "peer_convicted", key: toHex(cheatKey.publicKey) });
    const gateway = new InferenceGateway({ inference: port });
    for (const name of [INFO.name, undefined]) {
      const model = await gateway.resolveModel(name);
      assert.equal(model.cid, INFO.cid, `the model named ${name ?? "by default"}`);
      const handle = await port.submit({
        kind: "text",
        model: model.cid,
        prompt: "hi",
        params: params({ maxTokens: 2 }),
        nonce: `n-${name}`,
      });
      let text = "";
      for await (const t of handle.tokens) text += t.text;
      assert.equal(text, "ab");
      assert.equal((await handle.done).finishReason, "length");
    }
    assert.equal(honest.ran, 2);
    // What `/v1/models` lists: the cheat's model is gone.
    assert.deepEqual((await port.models()).map((m) => m.cid), [INFO.cid]);
    assert.equal(cheat.submits, 0);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s49: /metrics counts as workers only the peers jobs can go to: not a convicted worker still connected (as the heartbeat counts them)", async () => {
  const system = new ActorSystem({ name: "s49-convicted-metrics" });
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const cheatKey = Identity.generate();
  const peers: Connection[] = [];
  try {
    peers.push(await connect(net, new TwoTokenWorker(false, "", ""), cheatKey, INFO.cid));
    peers.push(
      await connect(net, new TwoTokenWorker(false, "", ""), Identity.generate(), INFO.cid),
    );
    const metrics = new MetricsRegistry();
    const collectors = nodeCollectors({
      publicKey: new Uint8Array(32),
      prover: () => undefined,
      validator: () => undefined,
      network: () => net,
    });
    for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
    await eventually(
      async () => /^veriflow_peer_workers 2$/m.test(await metrics.render()) || undefined,
      "both workers counted",
    );
    await net.tell({ type: "peer_convicted", key: toHex(cheatKey.publicKey) });
    const lines: string[] = [];
    const heartbeat = startHeartbeat({
      everyMs: 1,
      publicKey: new Uint8Array(32),
      validator: () => undefined,
      network: () => net,
      log: (line) => lines.push(line),
    });
    try {
      await eventually(() => Promise.resolve(lines.length > 0 || undefined), "a heartbeat");
    } finally {
      heartbeat.stop();
    }
    assert.match(lines[0], /peers 2 \(workers 1, convicted 1\)/);
    const text = await metrics.render();
    assert.match(text, /^veriflow_peers 2$/m);
    assert.match(text, /^veriflow_peer_workers 1$/m);
    assert.match(text, /^veriflow_peer_info\{[^}]*convicted="true"[^}]*\} 1$/m);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});
