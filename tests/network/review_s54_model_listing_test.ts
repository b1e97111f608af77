/**
 * Review s54 of how a router lists and names its workers' models (`model_listing.ts`, read by
 * `NetworkActor`'s `worker_models`, `/v1/models` and the edge's `resolveModel`). Three doubts a
 * previous review left open: a peer whose conviction is still being checked (unroutable) listed
 * to clients; a listing stuck on the order peers connected in; and fresh keys (no stake, no
 * ledger history) taking a popular name from an honest model, or making it ambiguous.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { listedModels, type ModelListing } from "../../network/model_listing.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { cidOf, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { refusingPort } from "../server/_refusing_port.ts";
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
