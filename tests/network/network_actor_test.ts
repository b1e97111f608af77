/**
 * The NetworkActor's routing: jobs go to a connected worker that lists the model, and never to
 * one this node's ledger has slashed — told by the validator when the slash lands, or asked when
 * the worker connects again.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { PeerListenError } from "../../network/peer_listener.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { helloPair } from "./_hello_pair.ts";
import { type PeerHelloBody, signPeerHello } from "../../protocols/peer_hello.ts";
import { ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

/** Stands in for the ValidatorActor: answers whether a key is convicted, from a set. */
class Convictions implements Actor<{ type: "convicted"; key: Uint8Array }> {
  constructor(readonly convicted: Set<string>) {}
  receive(message: { type: "convicted"; key: Uint8Array }): boolean {
    return this.convicted.has(toHex(message.key));
  }
}

Deno.test("jobs are routed around a worker slashed in this node's ledger, now or from before", async () => {
  const system = new ActorSystem({ name: "routing-test" });
  const model = new ScriptedModel();
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () => new InferenceActor({ models }),
  });
  const convicted = new Set<string>();
  await system.spawn({ name: "node/validator", factory: () => new Convictions(convicted) });
  const network = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: { validator: "node/validator" },
      }),
  });
  const opened: Connection[] = [];
  /** A worker peer serving the scripted model, connected to the network actor. */
  const connectWorker = async (worker: Identity) => {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [near, far] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: worker, protocols }),
    ]);
    opened.push(near, far);
    serveInference(far, new LocalInferencePort({ inference, models }));
    await network.tell({ type: "peer_up", connection: near, address: "memory", outbound: true });
    return near;
  };
  const listed = (n: number) =>
    eventually(async () => {
      const peers = await network.ask<PeerInfo[]>({ type: "peers" });
      return peers.filter((p) => p.models.length > 0).length === n ? peers : undefined;
    }, `${n} workers listing their models`);
  try {
    const [earlier, cheat, honest] = [
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ];
    // Connected in this order, each would win a tie over the ones after it.
    convicted.add(toHex(earlier.publicKey)); // slashed in an earlier run or connection
    await connectWorker(earlier);
    const toCheat = await connectWorker(cheat);
    const toHonest = await connectWorker(honest);
    await listed(3);
    // The ledger's earlier conviction is asked about on connect: that worker is never picked.
    await eventually(async () => {
      const peers = await network.ask<PeerInfo[]>({ type: "peers" });
      return peers.find((p) => p.key === toHex(earlier.publicKey))?.convicted;
    }, "the earlier conviction to be known");
    const pick = () => network.ask<Connection>({ type: "worker", model: model.info.cid });
    assert.equal(await pick(), toCheat);
    // The validator slashes the cheat: it is routed around from then on.
    await network.tell({ type: "peer_convicted", key: toHex(cheat.publicKey) });
    for (let i = 0; i < 5; i++) assert.equal(await pick(), toHonest);
    const peers = await network.ask<PeerInfo[]>({ type: "peers" });
    assert.deepEqual(
      peers.map((p) => [p.key, p.convicted]).sort(),
      [
        [toHex(earlier.publicKey), true],
        [toHex(cheat.publicKey), true],
        [toHex(honest.publicKey), false],
      ].sort(),
    );
  } finally {
    await Promise.all(opened.map((c) => c.close()));
    await system.shutdown();
  }
});

Deno.test("two network actors joined by an in-memory pair (attach) each see the other's proven key", async () => {
  const system = new ActorSystem({ name: "attach-test" });
  const [a, b] = [Identity.generate(), Identity.generate()];
  const spawn = (name: string, identity: Identity) =>
    system.spawn<NetworkMessage>({
      name,
      factory: () => new NetworkActor({ identity, services: {} }),
    });
  try {
    const [na, nb] = await Promise.all([spawn("a/network", a), spawn("b/network", b)]);
    const [da, db] = memoryDuplexPair();
    const [ca, cb] = await Promise.all([
      na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
      nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
    ]);
    assert.equal(toHex(ca.peerKey!), toHex(b.publicKey));
    assert.equal(toHex(cb.peerKey!), toHex(a.publicKey));
    const peersOfA = await na.ask<PeerInfo[]>({ type: "peers" });
    assert.deepEqual(peersOfA.map((p) => [p.key, p.address, p.outbound]), [
      [toHex(b.publicKey), "mem:b", true],
    ]);
    // Closing one end takes the peer out of both tables.
    await ca.close();
    await eventually(async () => {
      const left = await nb.ask<PeerInfo[]>({ type: "peers" });
      return left.length === 0 ? true : undefined;
    }, "B to see A leave");
  } finally {
    await system.shutdown();
  }
});

Deno.test("a peer that fails its handshake over an attached stream is logged and answered undefined; the actor keeps its table and serves on", async () => {
  const system = new ActorSystem({ name: "attach-fail" });
  const logs: string[] = [];
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "n/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          log: (line) => logs.push(line),
        }),
    });
    const good = Identity.generate();
    const [a, b] = memoryDuplexPair();
    const [, ours] = await Promise.all([
      network.ask({ type: "attach", duplex: a, address: "mem:good", outbound: false }),
      Connection.open(b, { identity: good, protocols: [INFERENCE_PROTOCOL] }),
    ]);
    // A peer that answers the handshake with garbage.
    const [c, d] = memoryDuplexPair();
    const writer = d.writable.getWriter();
    const failed = network.ask({ type: "attach", duplex: c, address: "mem:bad", outbound: false });
    await writer.write(new Uint8Array(64).fill(0xff));
    assert.equal(await failed, undefined);
    assert.ok(
      logs.some((line) => line.startsWith("peer mem:bad: handshake failed")),
      logs.join("\n"),
    );
    // Not restarted: the good peer is still in the table.
    const peers = await network.ask<PeerInfo[]>({ type: "peers" });
    assert.deepEqual(peers.map((p) => p.key), [toHex(good.publicKey)]);
    writer.releaseLock();
    await d.writable.abort().catch(() => {});
    await ours.close();
  } finally {
    await system.shutdown();
  }
});

Deno.test("signed hellos: each peer's roles, load and version reach the other's table, refreshed on change; a hello signed by another key is refused", async () => {
  const system = new ActorSystem({ name: "hello-test" });
  let running = 0;
  const describeB = (): Promise<PeerHelloBody> =>
    Promise.resolve({
      version: "9.9.9",
      roles: ["inference", "storage"],
      models: ["m"],
      load: { running, queued: 0, slots: 4, queueLimit: 8 },
      storage: { usedBytes: 1234, quotaBytes: null },
    });
  try {
    const { b, na, nb, toB, lines } = await helloPair(system, describeB, 10);
    const rowOfB = (check: (p: PeerInfo) => boolean, what: string) =>
      eventually(async () => {
        const [row] = await na.ask<PeerInfo[]>({ type: "peers" });
        return row !== undefined && check(row) ? row : undefined;
      }, what);
    const row = await rowOfB((p) => p.version === "9.9.9", "B's hello");
    assert.deepEqual(row.roles, ["inference", "storage"]);
    assert.deepEqual(row.load, { running: 0, queued: 0, slots: 4, queueLimit: 8 });
    assert.deepEqual(row.storage, { usedBytes: 1234, quotaBytes: null });
    running = 3; // a job started on B: its next hello says so
    await rowOfB((p) => p.load?.running === 3, "B's refreshed hello");
    // A copy of B's hello with the load edited is refused; the third such closes the connection
    // (an honest node signs its own hellos).
    const genuine = signPeerHello(b, await describeB(), 1_000_000, Date.now());
    const edited = (running: number) => ({ ...genuine, load: { ...genuine.load!, running } });
    const refusals = () => lines.filter((l) => /^peer [0-9a-f]+: hello refused/.test(l));
    for (let n = 1; n <= 2; n++) {
      await na.tell({ type: "peer_hello", connection: toB, hello: edited(n) });
      await eventually(() => refusals().length === n ? true : undefined, `refusal ${n}`);
    }
    assert.equal(toB.isClosed, false, "two bad hellos are dropped, the connection stays");
    assert.equal((await rowOfB(() => true, "B")).load?.running, 3, "and nothing of them kept");
    await na.tell({ type: "peer_hello", connection: toB, hello: edited(9) });
    await toB.closed;
    assert.match(String(toB.closeReason), /hello refused \(not signed by its key; 3 of 3\)/);
    await eventually(
      async () => (await na.ask<PeerInfo[]>({ type: "peers" })).length === 0 ? true : undefined,
      "B gone from the table",
    );
    // Someone else's hello on a new connection from B closes it at once.
    const [da2, db2] = memoryDuplexPair();
    const [toB2] = await Promise.all([
      na.ask<Connection>({ type: "attach", duplex: da2, address: "mem:b", outbound: true }),
      nb.ask<Connection>({ type: "attach", duplex: db2, address: "mem:a", outbound: false }),
    ]);
    await rowOfB((p) => p.load?.running === 3, "B's hello on the new connection");
    const mallory = Identity.generate();
    const forged = signPeerHello(mallory, { ...(await describeB()), roles: [] }, 99, Date.now());
    await na.tell({ type: "peer_hello", connection: toB2, hello: forged });
    await toB2.closed;
    assert.match(String(toB2.closeReason), /for another key than its connection's/);
    assert.equal(refusals().length, 4);
  } finally {
    await system.shutdown();
  }
});

Deno.test("a peer address this machine does not have is blamed on --p2p-host; a taken port on --p2p-port", () => {
  const notOurs = new PeerListenError(
    { hostname: "10.255.255.1", port: 7700 },
    new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)"),
  );
  assert.match(notOurs.message, /10\.255\.255\.1 is not an address of this machine.*--p2p-host/);
  assert.doesNotMatch(notOurs.message, /--p2p-port/);
  const taken = new PeerListenError(
    { hostname: "127.0.0.1", port: 7700 },
    new Deno.errors.AddrInUse("Address already in use (os error 98)"),
  );
  assert.match(taken.message, /choose one with --p2p-port/);
});
