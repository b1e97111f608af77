/**
 * Review s53 of how a routing node lists the models its workers serve (`NetworkActor`'s
 * `worker_models`, which `NetworkInferencePort.models()`, `/v1/models`, the edge's model names
 * and its default model read). Every listing is a peer's claim: the CID addresses the model's
 * bytes and says its kind (a text model's id is a dag-cbor CID, a tensor model's a raw one),
 * a name is only what its lister chose. Workers are in-memory connections with signed hellos
 * (`_router_fixture.ts`); the client side is the edge's `InferenceGateway` over the router's
 * port.
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { cidOf, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, INFO, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

/** A worker that lists `listing` (whatever it runs). */
class ListingWorker extends TwoTokenWorker {
  constructor(readonly listing: ServedModelInfo[]) {
    super(false, "", "");
  }
  override models(): Promise<ServedModelInfo[]> {
    return Promise.resolve(this.listing);
  }
}

const LOAD = { running: 0, queued: 0, slots: 4, queueLimit: 0 };

/** Stands in for the router's ledger: each key's stake; nobody is convicted. */
class Ledger implements Actor<{ type: string; key?: Uint8Array }> {
  constructor(readonly stakes: Map<string, number>) {}
  receive(message: { type: string; key?: Uint8Array }): unknown {
    if (message.type === "convicted") return false;
    if (message.type === "account") {
      return { stake: this.stakes.get(toHex(message.key!)) ?? 0, locked: 0, balance: 0 };
    }
    return undefined;
  }
}

/** A router's network actor, with a ledger of `stakes` when given. */
async function router(name: string, stakes?: Map<string, number>) {
  const system = new ActorSystem({ name });
  if (stakes !== undefined) {
    await system.spawn({ name: "router/validator", factory: () => new Ledger(stakes) });
  }
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: stakes === undefined ? {} : { validator: "router/validator" },
      }),
  });
  return { system, net, port: new NetworkInferencePort(net) };
}

/** Waits until `n` peer connections have each answered their model list. */
function listed(net: ActorRef<NetworkMessage>, n: number): Promise<true> {
  return eventually(async () => {
    const peers = await net.ask<PeerInfo[]>({ type: "peers" });
    return (peers.length === n && peers.every((p) => p.models.length > 0)) || undefined;
  }, `${n} model lists`);
}

Deno.test("s53: a stranger that connected first and lists an honest model's CID under another name (twice, over two connections) does not rename it: /v1/models shows the name the honest workers list, and that name resolves to it", async () => {
  const { system, net, port } = await router("s53-renamed");
  const stranger = Identity.generate();
  const renamed = { ...INFO, name: "evil" };
  const peers: Connection[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const worker = new ListingWorker([renamed, renamed, renamed]);
      peers.push(await connectWorker(net, worker, LOAD, { identity: stranger }));
    }
    for (let i = 0; i < 2; i++) {
      peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
    }
    await listed(net, 4);
    assert.deepEqual(
      (await port.models()).map((m) => [m.cid, m.name]),
      [[MODEL, INFO.name]],
    );
    const gateway = new InferenceGateway({ inference: port });
    assert.equal((await gateway.resolveModel(INFO.name)).cid, MODEL);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s53: where one stranger and one worker disagree on a model's name, the worker backed by stake in this node's ledger names it, whoever connected first", async () => {
  const stranger = Identity.generate();
  const honest = Identity.generate();
  const stakes = new Map([[toHex(honest.publicKey), 1_000]]);
  const { system, net, port } = await router("s53-staked-name", stakes);
  const peers: Connection[] = [];
  try {
    peers.push(
      await connectWorker(net, new ListingWorker([{ ...INFO, name: "evil" }]), LOAD, {
        identity: stranger,
      }),
    );
    peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD, { identity: honest }));
    await listed(net, 2);
    // The standing of each comes from the ledger once its hello is in: asked in the background.
    const names = await eventually(
      async () => {
        const models = await port.models();
        return models[0].name === INFO.name ? models.map((m) => m.name) : undefined;
      },
      "the staked worker's name",
    ).catch(async () => (await port.models()).map((m) => m.name));
    assert.deepEqual(names, [INFO.name]);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s53: a listing whose kind its CID contradicts is not believed: a stranger connected first that calls a text model (dag-cbor id) a tensor one and a tensor model (raw id) a text one neither hides the text model from the default nor makes the tensor model the default", async () => {
  const { system, net, port } = await router("s53-kinds");
  const text = cidOf(new TextEncoder().encode("a text model's id block"), DAG_CBOR_CODEC);
  const tensor = cidOf(new TextEncoder().encode("a tensor model's model.onnx"));
  const truth: ServedModelInfo[] = [
    { cid: text, name: "t", kind: "text" },
    { cid: tensor, name: "n", kind: "tensor" },
  ];
  const lies: ServedModelInfo[] = [
    { cid: tensor, name: "n", kind: "text" },
    { cid: text, name: "t", kind: "tensor" },
  ];
  const peers: Connection[] = [];
  try {
    peers.push(await connectWorker(net, new ListingWorker(lies), LOAD, { model: text }));
    peers.push(await connectWorker(net, new ListingWorker(truth), LOAD, { model: text }));
    await listed(net, 2);
    const kinds = Object.fromEntries((await port.models()).map((m) => [m.cid, m.kind]));
    assert.deepEqual(kinds, { [text]: "text", [tensor]: "tensor" });
    const gateway = new InferenceGateway({ inference: port });
    assert.equal((await gateway.resolveModel(undefined)).cid, text);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s53: the default model of a router is the text model the most workers serve, not the one a stranger that connected first lists", async () => {
  const { system, net, port } = await router("s53-default");
  const own: ServedModelInfo = { cid: "bafkstrangersmodel", name: "mine", kind: "text" };
  const peers: Connection[] = [];
  try {
    peers.push(await connectWorker(net, new ListingWorker([own]), LOAD, { model: own.cid }));
    for (let i = 0; i < 2; i++) {
      peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
    }
    await listed(net, 3);
    const gateway = new InferenceGateway({ inference: port });
    assert.equal((await gateway.resolveModel(undefined)).cid, MODEL);
    // The stranger's model is still listed (asked by CID or name, it is its to serve).
    assert.deepEqual((await port.models()).map((m) => m.cid), [MODEL, own.cid]);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s53: a model stays listed while one worker still serves it, and drops out when its last worker leaves", async () => {
  const { system, net, port } = await router("s53-leave");
  const other: ServedModelInfo = { cid: "bafkothermodel", name: "o", kind: "text" };
  try {
    const a = await connectWorker(net, new ListingWorker([INFO, other]), LOAD);
    const b = await connectWorker(net, new ListingWorker([INFO]), LOAD);
    await listed(net, 2);
    assert.deepEqual((await port.models()).map((m) => m.cid).sort(), [MODEL, other.cid].sort());
    await a.close();
    await eventually(
      async () => (await net.ask<PeerInfo[]>({ type: "peers" })).length === 1 || undefined,
      "the first worker gone",
    );
    assert.deepEqual((await port.models()).map((m) => m.cid), [MODEL]);
    await b.close();
    await eventually(
      async () => (await net.ask<PeerInfo[]>({ type: "peers" })).length === 0 || undefined,
      "both workers gone",
    );
    await assert.rejects(port.models(), { code: "no_worker" });
  } finally {
    await system.shutdown();
  }
});

Deno.test("s53: a stranger that lists a model of its own under a name two workers serve another model by does not make that name ambiguous: it resolves to the model the most keys name so, and the stranger's is listed by its CID", async () => {
  const { system, net, port } = await router("s53-name-squat");
  const squat = { ...INFO, cid: cidOf(new TextEncoder().encode("squat"), DAG_CBOR_CODEC) };
  const peers: Connection[] = [];
  try {
    // The stranger connects first, with the name the honest workers use for their model.
    peers.push(await connectWorker(net, new ListingWorker([squat]), LOAD));
    for (let i = 0; i < 2; i++) {
      peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
    }
    await listed(net, 3);
    const gateway = new InferenceGateway({ inference: port });
    assert.equal((await gateway.resolveModel(INFO.name)).cid, MODEL);
    assert.deepEqual(
      (await port.models()).map((m) => [m.cid, m.name]),
      [[MODEL, INFO.name], [squat.cid, squat.cid]],
    );
    // By its CID the stranger's model is still there to ask for.
    assert.equal((await gateway.resolveModel(squat.cid)).cid, squat.cid);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

Deno.test("s53: two models each listed under one name by as many keys stay ambiguous: a tie names neither", async () => {
  const { system, net, port } = await router("s53-name-tie");
  const other = { ...INFO, cid: cidOf(new TextEncoder().encode("other"), DAG_CBOR_CODEC) };
  const peers: Connection[] = [];
  try {
    peers.push(await connectWorker(net, new ListingWorker([other]), LOAD));
    peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
    await listed(net, 2);
    const gateway = new InferenceGateway({ inference: port });
    await assert.rejects(gateway.resolveModel(INFO.name), { code: "ambiguous_model" });
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});
