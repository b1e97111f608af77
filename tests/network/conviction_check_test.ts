/**
 * A worker reconnecting to a node is routed nothing until the node's ledger said whether it is
 * convicted: a worker the ledger convicted in an earlier run (the NetworkActor's own memory of
 * convictions starts empty) was picked for jobs from its model list until a busy validator
 * answered (found by a review at stop 33).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

/** A ledger that knows which keys are convicted, and answers once the test lets it (busy). */
class GatedConvictions implements Actor<{ type: "convicted"; key: Uint8Array }> {
  readonly gate = Promise.withResolvers<void>();
  constructor(readonly convicted: Set<string>) {}
  async receive(message: { type: "convicted"; key: Uint8Array }): Promise<boolean> {
    await this.gate.promise;
    return this.convicted.has(toHex(message.key));
  }
}

for (const convicted of [true, false]) {
  Deno.test(`a reconnecting worker${convicted ? " the ledger convicted" : ""} gets no job until the ledger answered, ${convicted ? "and none after" : "and jobs after"}`, async () => {
    const system = new ActorSystem({ name: "convicted-window" });
    const model = new ScriptedModel();
    const models = new StaticModels([model]);
    const inference = await system.spawn<InferenceMessage>({
      name: "w/inference",
      factory: () => new InferenceActor({ models }),
    });
    const cheat = Identity.generate();
    const ledger = new GatedConvictions(new Set(convicted ? [toHex(cheat.publicKey)] : []));
    await system.spawn({ name: "node/validator", factory: () => ledger });
    const network = await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: { validator: "node/validator" },
        }),
    });
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [near, far] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: cheat, protocols }),
    ]);
    serveInference(far, new LocalInferencePort({ inference, models }));
    try {
      await network.tell({ type: "peer_up", connection: near, address: "mem", outbound: false });
      await eventually(async () => {
        const peers = await network.ask<PeerInfo[]>({ type: "peers" });
        return peers[0]?.models.length ? true : undefined;
      }, "the worker's model list");
      const job = () =>
        network.ask<Connection | undefined>({ type: "worker", model: model.info.cid });
      assert.equal(await job(), undefined, "not while the ledger has not answered");
      ledger.gate.resolve();
      if (convicted) {
        await eventually(async () => {
          const peers = await network.ask<PeerInfo[]>({ type: "peers" });
          return peers[0].convicted ? true : undefined;
        }, "the ledger's answer");
        assert.equal(await job(), undefined);
      } else {
        await eventually(async () => (await job()) === near ? true : undefined, "routable");
      }
    } finally {
      await near.close();
      await far.close();
      await system.shutdown();
    }
  });
}
