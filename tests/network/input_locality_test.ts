/**
 * Data locality on a router: a job that names an input by CID (`protocols/job_input.ts`) goes to
 * one of that CID's storage holders — the peers the router's storage would place its chunk on
 * (rendezvous over its storage peers) — before an equally idle worker that would have to fetch
 * it; a job without an input keeps the order the workers connected in.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, ListModelsMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { DEFAULT_REPLICAS } from "../../storage/replicated_store.ts";
import { eventually } from "../_helpers/wait.ts";

const MODEL = { cid: "m", name: "m", kind: "text" as const };

/** A worker that also stores joins the router, lists the model and says it is idle. */
async function joinStoringWorker(network: ActorRef<NetworkMessage>, identity: Identity) {
  const [near, far] = memoryDuplexPair();
  const [, workerSide] = await Promise.all([
    network.ask<Connection>({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, {
      identity,
      protocols: [INFERENCE_PROTOCOL, PEER_PROTOCOL, STORAGE_PROTOCOL],
    }),
  ]);
  workerSide.handle(ListModelsMessage, () => ({ models: [MODEL] }));
  const body: PeerHelloBody = {
    version: "1",
    roles: ["inference", "storage"],
    models: ["m"],
    load: { running: 0, queued: 0, slots: 4, queueLimit: 0 },
  };
  await workerSide.notify(PeerHelloMessage, {
    hello: signPeerHello(identity, body, 1, Date.now()),
  });
  return workerSide;
}

/**
 * Four idle workers that store join a router (storing itself or not); a job naming an input goes
 * to a holder of it, one without goes to the first worker.
 */
async function routesToHolder(routerStores: boolean): Promise<void> {
  const system = new ActorSystem({ name: "input-locality" });
  try {
    // The router stores too (so it speaks the storage protocol with its peers); no StorageActor
    // runs under that name here, which the router's choice does not need.
    const router = Identity.generate();
    const network = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () =>
        new NetworkActor({ identity: router, services: { storage: "router/storage" } }),
    });
    const workers = Array.from({ length: DEFAULT_REPLICAS + 1 }, () => Identity.generate());
    const keys = workers.map((w) => toHex(w.publicKey));
    const sides = [];
    for (const worker of workers) sides.push(await joinStoringWorker(network, worker));
    await eventually(async () => {
      const rows = await network.ask<PeerInfo[]>({ type: "peers" });
      return rows.length === workers.length && rows.every((r) => r.models.length > 0);
    }, "every worker listed with its model");
    // An input whose holders (the first r by rendezvous) leave out the first worker to connect,
    // the one a job without an input goes to.
    let input = "";
    let holders: string[] = [];
    for (
      let i = 0;
      holders.length === 0 || holders.includes(keys[0]) || !keys.some((k) => holders.includes(k));
      i++
    ) {
      input = cidOf(new TextEncoder().encode(`stored text ${i}`));
      const placed = [...keys, ...(routerStores ? [toHex(router.publicKey)] : [])]
        .map((id) => ({ id }));
      holders = rankPeers(input, placed).slice(0, DEFAULT_REPLICAS).map((p) => p.id);
    }
    const plain = await network.ask<Connection | undefined>({ type: "worker", model: "m" });
    assert.equal(toHex(plain!.peerKey!), keys[0], "without an input: the first idle worker");
    const near = await network.ask<Connection | undefined>({ type: "worker", model: "m", input });
    assert.ok(
      holders.includes(toHex(near!.peerKey!)),
      `with input ${input}: a holder of it (${holders.join(", ")}), not ${toHex(near!.peerKey!)}`,
    );
    await Promise.all(sides.map((side) => side.close()));
  } finally {
    await system.shutdown();
  }
}

Deno.test("a job naming an input CID goes to a storage holder of it, where a job without one goes to the first idle worker: on a router that stores", async () => {
  await routesToHolder(true);
});

Deno.test("a job naming an input CID goes to a storage holder of it: on a router that stores nothing, by its peers' hellos", async () => {
  await routesToHolder(false);
});
