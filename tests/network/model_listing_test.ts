/**
 * How a routing node lists and names the models its workers serve (`network/model_listing.ts`,
 * `NetworkActor`'s `worker_models`, read by `NetworkInferencePort.models()`, `/v1/models` and the
 * edge's model names): convicted workers, every listing a peer's claim, and names fresh keys cannot
 * take.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
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
import { connectWorker, INFO, MODEL, TwoTokenWorker } from "./_router_fixture.ts";
import type { Actor } from "../../actors/actor.ts";
import { cidOf, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import { listedModels, type ModelListing } from "../../network/model_listing.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { refusingPort } from "../server/_refusing_port.ts";

// ---- convicted models -----------------------------------------------------------------------------
// How a router picks workers: what a convicted worker still connected to a routing node does to the
// models that node offers its clients (`NetworkActor`'s `worker_models`, which
// `NetworkInferencePort.models()` and the edge's model names read). Workers are in-memory
// connections with signed hellos; the client side is the edge's `InferenceGateway` over the
// router's `NetworkInferencePort`.

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

// ---- every listing a peer's claim -----------------------------------------------------------------
// How a routing node lists the models its workers serve (`NetworkActor`'s `worker_models`, which
// `NetworkInferencePort.models()`, `/v1/models`, the edge's model names and its default model
// read). Every listing is a peer's claim: the CID addresses the model's bytes and says its kind (a
// text model's id is a dag-cbor CID, a tensor model's a raw one), a name is only what its lister
// chose. Workers are in-memory connections with signed hellos (`_router_fixture.ts`); the client
// side is the edge's `InferenceGateway` over the router's port.

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

// ---- listing and naming against fresh keys --------------------------------------------------------
// How a router lists and names its workers' models (`model_listing.ts`, read by `NetworkActor`'s
// `worker_models`, `/v1/models` and the edge's `resolveModel`). Three doubts a previous review left
// open: a peer whose conviction is still being checked (unroutable) listed to clients; a listing
// stuck on the order peers connected in; and fresh keys (no stake, no ledger history) taking a
// popular name from an honest model, or making it ambiguous.

const text = (seed: string) => cidOf(new TextEncoder().encode(seed), DAG_CBOR_CODEC);

/** What resolving `name` on an edge over `models` gives: a CID, or an error code. */
async function resolved(models: ServedModelInfo[], name?: string): Promise<string> {
  const inference = { ...refusingPort(() => undefined), models: () => Promise.resolve(models) };
  const gateway = new InferenceGateway({ inference });
  return await gateway.resolveModel(name).then((m) => m.cid, (e) => (e as VeriflowError).code);
}

/** `n` fresh keys (no account in the ledger) each listing `model`. */
function fresh(n: number, model: ServedModelInfo): ModelListing[] {
  return Array.from({ length: n }, (_, i) => ({ key: `f${i}`.padEnd(8, "0"), models: [model] }));
}

// --- 1. A peer whose conviction is still being checked -------------------------------------

/**
 * Stands in for the router's ledger: answers whether a key is convicted at once, except for the
 * keys in `held`, answered once the test opens `gate` (a busy validator).
 */
class CheckingLedger implements Actor<{ type: string; key?: Uint8Array }> {
  readonly gate = Promise.withResolvers<void>();
  constructor(readonly convicted: Set<string>, readonly held: Set<string>) {}
  async receive(message: { type: string; key?: Uint8Array }): Promise<unknown> {
    if (message.type === "convicted") {
      const key = toHex(message.key!);
      if (this.held.has(key)) await this.gate.promise;
      return this.convicted.has(key);
    }
    if (message.type === "account") return { stake: 0, locked: 0, balance: 0 };
    return undefined;
  }
}

// Failed before the worker routing's `workerModels` (`network/_worker_routing.ts`) skipped a
// `checking` entry, as its `worker` does.
Deno.test({
  name:
    "s54: a peer whose conviction the ledger has not yet answered (it routes no job) does not list its model: a worker convicted in an earlier run, reconnecting with another model under an honest model's name, neither makes that name ambiguous nor shows in /v1/models",
  fn: async () => {
    const cheat = Identity.generate();
    const ledger = new CheckingLedger(
      new Set([toHex(cheat.publicKey)]),
      new Set([toHex(cheat.publicKey)]),
    );
    const system = new ActorSystem({ name: "s54-checking" });
    await system.spawn({ name: "router/validator", factory: () => ledger });
    const net = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: { validator: "router/validator" },
        }),
    });
    const port = new NetworkInferencePort(net);
    const gateway = new InferenceGateway({ inference: port });
    const squat = { ...INFO, cid: text("the convicted worker's model") };
    const peers: Connection[] = [];
    try {
      peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
      await eventually(
        async () => (await net.ask({ type: "worker", model: MODEL })) !== undefined || undefined,
        "the honest worker routable",
      );
      peers.push(
        await connectWorker(net, new ListingWorker([squat]), LOAD, {
          identity: cheat,
          model: squat.cid,
        }),
      );
      await eventually(async () => {
        const listed = await net.ask<PeerInfo[]>({ type: "peers" });
        return (listed.length === 2 && listed.every((p) => p.models.length > 0)) || undefined;
      }, "both model lists");
      // It is not routable while checked...
      assert.equal(await net.ask({ type: "worker", model: squat.cid }), undefined);
      // ...so it is not listed either: the name stays the honest model's.
      const named = await gateway.resolveModel(INFO.name).then(
        (m) => m.cid,
        (e) => (e as VeriflowError).code,
      );
      assert.equal(named, MODEL);
      assert.deepEqual((await port.models()).map((m) => m.cid), [MODEL]);
      // Once the ledger answered (convicted) it stays off the list.
      ledger.gate.resolve();
      await eventually(async () => {
        const listed = await net.ask<PeerInfo[]>({ type: "peers" });
        return listed.some((p) => p.convicted) || undefined;
      }, "the conviction known");
      assert.deepEqual((await port.models()).map((m) => m.cid), [MODEL]);
    } finally {
      ledger.gate.resolve();
      await Promise.all(peers.map((p) => p.close()));
      await system.shutdown();
    }
  },
});

// --- 2. The listing follows the peers connected now ----------------------------------------

Deno.test("s54: the listing re-resolves as peers come: a stranger's name and default model, the only ones at first, give way to what the workers that connect after it list", async () => {
  const system = new ActorSystem({ name: "s54-reorder" });
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const port = new NetworkInferencePort(net);
  const own: ServedModelInfo = { cid: text("the stranger's own model"), name: "m", kind: "text" };
  const peers: Connection[] = [];
  const lists = (n: number) =>
    eventually(async () => {
      const listed = await net.ask<PeerInfo[]>({ type: "peers" });
      return (listed.length === n && listed.every((p) => p.models.length > 0)) || undefined;
    }, `${n} model lists`);
  try {
    peers.push(
      await connectWorker(net, new ListingWorker([own, { ...INFO, name: "evil" }]), LOAD, {
        model: own.cid,
      }),
    );
    await lists(1);
    const before = await port.models();
    assert.deepEqual(before.map((m) => [m.cid, m.name]), [[own.cid, "m"], [MODEL, "evil"]]);
    assert.equal(await resolved([...before]), own.cid);
    for (let i = 0; i < 2; i++) {
      peers.push(await connectWorker(net, new ListingWorker([INFO]), LOAD));
    }
    await lists(3);
    const after = await port.models();
    assert.deepEqual(after.map((m) => [m.cid, m.name]), [[MODEL, "m"], [own.cid, own.cid]]);
    assert.equal(await resolved([...after]), MODEL);
    assert.equal(await resolved([...after], "m"), MODEL);
    // And back, when they leave.
    await Promise.all(peers.slice(1).map((p) => p.close()));
    await lists(1);
    assert.deepEqual((await port.models()).map((m) => [m.cid, m.name]), [
      [own.cid, "m"],
      [MODEL, "evil"],
    ]);
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await system.shutdown();
  }
});

// --- 3. Fresh keys against an honest model's name -------------------------------------------

const HONEST: ServedModelInfo = {
  cid: text("brown, the honest model"),
  name: "brown",
  kind: "text",
};
const SYBIL: ServedModelInfo = {
  cid: text("brown, the sybils' model"),
  name: "brown",
  kind: "text",
};

Deno.test("s54: fifty fresh keys listing their model under the name one staked worker lists its model by neither take the name nor make it ambiguous", async () => {
  const honest = { key: "aa", standing: { stake: 1_000, locked: 0, balance: 0 }, models: [HONEST] };
  for (const listings of [[...fresh(50, SYBIL), honest], [honest, ...fresh(50, SYBIL)]]) {
    const list = listedModels(listings);
    assert.equal(await resolved(list, "brown"), HONEST.cid);
    assert.equal(await resolved(list), HONEST.cid, "the default model");
    assert.equal(await resolved(list, SYBIL.cid), SYBIL.cid, "still there by its CID");
  }
});

Deno.test("s54: a busy honest worker, its stake all locked by its open receipts and with credit for work done, keeps its model's name against fresh keys: two do not take it, one does not make it ambiguous", async () => {
  // Every receipt it signs locks a multiple of its reward until final: a worker in demand
  // has no free stake for a while, which is when its name matters most.
  const busy = { stake: 1_000, locked: 1_000, balance: 250 };
  const honest = { key: "aa", standing: busy, models: [HONEST] };
  const names: Record<string, string> = {};
  for (const n of [1, 2, 5]) {
    // Those the router saw first, as when it restarted and they connected faster.
    for (
      const [order, list] of [["after", [honest, ...fresh(n, SYBIL)]], ["before", [
        ...fresh(n, SYBIL),
        honest,
      ]]] as const
    ) {
      const models = listedModels(list);
      names[`${n} fresh keys ${order}: brown`] = await resolved(models, "brown");
      names[`${n} fresh keys ${order}: default`] = await resolved(models);
    }
  }
  assert.deepEqual(names, Object.fromEntries(Object.keys(names).map((k) => [k, HONEST.cid])));
  // Nor do fresh keys rename the honest model's CID (a name its worker does not list).
  const renamed = listedModels([honest, ...fresh(3, { ...HONEST, name: "evil" })]);
  assert.deepEqual(renamed.map((m) => [m.cid, m.name]), [[HONEST.cid, "brown"]]);
});

Deno.test("s54: keys whose only standing is a stake they pledged themselves (free to sign) neither take the name of a model whose worker has credit for work done here nor make it ambiguous", async () => {
  // A pledge is a fresh key's own signed word (`stake_pledge.ts`): each sybil pushes its own on
  // connect, and is then as backed as an honest worker. Credit for work is what it cannot sign.
  const honest = {
    key: "aa",
    standing: { stake: 1_000, locked: 0, balance: 250 },
    models: [HONEST],
  };
  const pledged = (n: number) =>
    fresh(n, SYBIL).map((l) => ({ ...l, standing: { stake: 1_000_000, locked: 0, balance: 0 } }));
  const names: Record<string, string> = {};
  for (const n of [1, 2, 5]) {
    names[`${n} pledged keys: brown`] = await resolved(
      listedModels([honest, ...pledged(n)]),
      "brown",
    );
    names[`${n} pledged keys: default`] = await resolved(listedModels([...pledged(n), honest]));
  }
  assert.deepEqual(names, Object.fromEntries(Object.keys(names).map((k) => [k, HONEST.cid])));
});

Deno.test("s54: among keys with no credit for work, stake still counts first: two staked keys outnumber one and take the name from a model only unstaked keys list; as many on each side stay ambiguous", () => {
  const staked = (key: string, model: ServedModelInfo) => ({
    key,
    standing: { stake: 500, locked: 500, balance: 0 },
    models: [model],
  });
  const worked = (key: string, model: ServedModelInfo) => ({
    key,
    standing: { stake: 500, locked: 0, balance: 10 },
    models: [model],
  });
  const two = listedModels([staked("cc", SYBIL), staked("aa", HONEST), staked("bb", HONEST)]);
  assert.deepEqual(two.map((m) => [m.cid, m.name]), [[HONEST.cid, "brown"], [
    SYBIL.cid,
    SYBIL.cid,
  ]]);
  const overUnstaked = listedModels([...fresh(3, SYBIL), staked("aa", HONEST)]);
  assert.deepEqual(overUnstaked.map((m) => m.name), ["brown", SYBIL.cid]);
  const tie = listedModels([worked("aa", HONEST), worked("bb", SYBIL)]);
  assert.deepEqual(tie.map((m) => m.name), ["brown", "brown"]);
});
