/**
 * A peer's hellos are cheap to send and each may name other models: the NetworkActor must not
 * turn a flood of them into a flood of `inference.list_models` requests held open on its side.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, ListModelsMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type PeerHelloBody, signPeerHello } from "../../protocols/peer_hello.ts";
import { ScriptedModel } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test("a flood of hellos each naming other models asks the peer for its model list at most twice: one in flight, one after it", async () => {
  const system = new ActorSystem({ name: "hello-flood-test" });
  const worker = Identity.generate();
  const model = new ScriptedModel();
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    // The least time between two lists asked of one peer: short, so the second comes soon.
    factory: () =>
      new NetworkActor({ identity: Identity.generate(), services: {}, helloIntervalMs: 50 }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [near, far] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  let asked = 0;
  far.handle(ListModelsMessage, () => {
    asked++;
    return { models: [{ ...model.info }] };
  });
  try {
    await network.tell({ type: "peer_up", connection: near, address: "memory", outbound: true });
    const hellos = 500;
    for (let seq = 1; seq <= hellos; seq++) {
      const body: PeerHelloBody = {
        version: "1",
        roles: ["inference"],
        models: [`model-${seq}`], // never what the list says: each hello differs from it
        load: { running: 0, queued: 0, slots: 4, queueLimit: 4 },
      };
      await network.tell({
        type: "peer_hello",
        connection: near,
        hello: signPeerHello(worker, body, seq, Date.now()),
      });
    }
    // Mailboxes are FIFO: once this is answered, every hello has been handled.
    await network.ask<PeerInfo[]>({ type: "peers" });
    // The hellos named other models while the first list was out: it is asked once more.
    await eventually(() => asked >= 2 ? true : undefined, "the list asked again");
    await new Promise((resolve) => setTimeout(resolve, 200)); // room for any further asks
    assert.equal(asked, 2, `list_models asked ${asked} times for ${hellos} hellos`);
    const [row] = await network.ask<PeerInfo[]>({ type: "peers" });
    assert.deepEqual(row.models, [model.info.cid]);
  } finally {
    await near.close();
    await far.close();
    await system.shutdown();
  }
});
