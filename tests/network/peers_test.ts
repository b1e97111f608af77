/**
 * The NetworkActor's peer bookkeeping: a peer's several connections (its load, its pledges), the
 * hello's storage reading, and the peer table's change feed (`PeerChanges`).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  INFERENCE_PROTOCOL,
  ListModelsMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { job } from "../proof/_ledger_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import { nodeHello } from "../../node/node_hello.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import {
  handReceipt,
  honestReceipt,
  joinLedgerNodes,
  spawnFreshPledgedNode,
} from "./_ledger_node.ts";
import { type PeerChange, PeerChanges } from "../../network/peer_changes.ts";
import { connectWorker, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

// ---- peers ----------------------------------------------------------------------------------------
// The network's peer bookkeeping: hellos, the worker choice over the peer table, pledge budgets,
// connection limits. Each test pins one defect found in the review.

const MODEL_PEERS = { cid: "m", name: "m", kind: "text" as const };

/**
 * A fake worker with `identity` connects to the router `network` once more; it answers the
 * router's first model listing on this connection and holds every later request: every job
 * (`inference.submit`) and every later listing (a request in flight that is not a job).
 * Resolves with the router's side and the worker's side.
 */
async function joinWorker(network: ActorRef<NetworkMessage>, identity: Identity) {
  const [near, far] = memoryDuplexPair();
  let listed = 0;
  const [routerSide, workerSide] = await Promise.all([
    network.ask<Connection>({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, { identity, protocols: [INFERENCE_PROTOCOL, PEER_PROTOCOL] }),
  ]);
  workerSide.handle(
    ListModelsMessage,
    () => listed++ === 0 ? { models: [MODEL_PEERS] } : new Promise<never>(() => {}),
  );
  workerSide.handle(SubmitMessage, () => new Promise<never>(() => {}));
  return { routerSide, workerSide };
}

function load(running: number, slots: number): PeerHelloBody {
  return {
    version: "1",
    roles: ["inference"],
    models: ["m"],
    load: { running, queued: 0, slots, queueLimit: 0 },
  };
}

Deno.test("s46: a worker connected twice is full by the router's own count of jobs sent to it on either connection: the job goes to the worker with room", async () => {
  const system = new ActorSystem({ name: "s46-two-connections" });
  const router = Identity.generate();
  const [twice, other] = [Identity.generate(), Identity.generate()];
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () => new NetworkActor({ identity: router, services: {} }),
    });
    // `twice`: one slot, idle by its hello, connected twice (a TCP connection and a swarm one).
    const first = await joinWorker(network, twice);
    const second = await joinWorker(network, twice);
    // `other`: two jobs running of four slots: room for two more.
    const third = await joinWorker(network, other);
    let seq = 0;
    const hello = (id: Identity, body: PeerHelloBody, c: Connection) =>
      c.notify(PeerHelloMessage, { hello: signPeerHello(id, body, ++seq, Date.now()) });
    await hello(twice, load(0, 1), first.workerSide);
    await hello(twice, load(0, 1), second.workerSide);
    await hello(other, load(2, 4), third.workerSide);
    await eventually(async () => {
      const rows = await network.ask<PeerInfo[]>({ type: "peers" });
      return rows.length === 3 && rows.every((r) => r.load !== undefined && r.models.length > 0);
    }, "three rows with hellos and models");
    // The router sends `twice` a job on its first connection: its one slot is taken.
    const held = first.routerSide.openStream(SubmitMessage, { job: job(1) });
    await eventually(
      () => first.routerSide.pendingRequestsOf(SubmitMessage) === 1,
      "the job in flight",
    );
    const pick = await network.ask<Connection | undefined>({ type: "worker", model: "m" });
    assert.equal(
      toHex(pick!.peerKey!),
      toHex(other.publicKey),
      "not `twice` again over its other connection: it has no room",
    );
    await Promise.all([first.workerSide.close(), second.workerSide.close()]);
    await held.cancel().catch(() => {});
  } finally {
    await system.shutdown();
  }
});

Deno.test("s60: a request in flight to a worker that is not a job (a receipt announcement, a catch-up's receipt, a listing) is no load on it: the idle worker still gets the job", async () => {
  const system = new ActorSystem({ name: "s60-not-a-job" });
  const router = Identity.generate();
  const [idle, other] = [Identity.generate(), Identity.generate()];
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () => new NetworkActor({ identity: router, services: {} }),
    });
    // `idle`: one slot, nothing running; `other`: two jobs running of four slots.
    const a = await joinWorker(network, idle);
    const b = await joinWorker(network, other);
    let seq = 0;
    const hello = (id: Identity, body: PeerHelloBody, c: Connection) =>
      c.notify(PeerHelloMessage, { hello: signPeerHello(id, body, ++seq, Date.now()) });
    await hello(idle, load(0, 1), a.workerSide);
    await hello(other, load(2, 4), b.workerSide);
    await eventually(async () => {
      const rows = await network.ask<PeerInfo[]>({ type: "peers" });
      return rows.length === 2 && rows.every((r) => r.load !== undefined && r.models.length > 0);
    }, "two rows with hellos and models");
    // The router has a request in flight to `idle` that is not a job (its worker holds it, as a
    // peer's validator holds a receipt announcement while it records it).
    const listing = a.routerSide.request(ListModelsMessage, {}).catch(() => {});
    await eventually(() => a.routerSide.stats().pendingRequests === 1, "the request in flight");
    const pick = await network.ask<Connection | undefined>({ type: "worker", model: "m" });
    assert.equal(
      toHex(pick!.peerKey!),
      toHex(idle.publicKey),
      "the idle worker: a request that is not a job takes none of its slots",
    );
    await Promise.all([a.workerSide.close(), b.workerSide.close()]);
    await listing;
  } finally {
    await system.shutdown();
  }
});

/**
 * An honest node connected to a peer more than once (a TCP connection each way and a swarm one,
 * as `connection_limits.ts` allows, or a connection that dropped and came back) sends it
 * pledges within one budget: the peer's receiving budget is its key's, across its connections
 * (`pledge_budget.ts`), so a sending budget of each connection's own pushed the same pledges on
 * each, used up the peer's budget on copies, and the pledge the peer then needed (an honest
 * worker's, for its receipt) was refused: the receipt was never recorded there.
 */
Deno.test("s46: a node connected three times to a peer still gets it the worker's pledge it needs: the honest worker's receipt is recorded there with its stake", async () => {
  const system = new ActorSystem({ name: "s46-pledge-three" });
  const dir = await Deno.makeTempDir();
  const now = () => 1_000_000; // the budgets' clock never moves: no room comes back
  try {
    const node = (name: string) => spawnFreshPledgedNode(system, dir, name, now);
    const [a, c] = [await node("a"), await node("c")];
    const worker = Identity.generate();
    await a.validator.ask({
      type: "pledge",
      pledge: signStakePledge(worker, 1_000_000, 1),
      origin: "local",
    });
    for (let i = 0; i < 100; i++) {
      const pledge = signStakePledge(Identity.generate(), 1_000, 2);
      await a.validator.ask({ type: "pledge", pledge, origin: "local" });
    }
    const pledgesIn = () => c.validator.ask<StakePledge[]>({ type: "pledges" });
    const joins: Connection[] = [];
    for (let i = 0; i < 3; i++) joins.push(await joinLedgerNodes(a, c));
    const pushed = PLEDGES_PUSHED_ON_CONNECT + 1;
    await eventually(async () => (await pledgesIn()).length >= pushed, "C to record A's push");
    for (const j of joins) await j.ping(); // whatever else was pushed came before the pongs
    for (const j of joins) await j.ping();
    const r = honestReceipt(2, worker);
    const handled = await handReceipt(a, r, 2);
    assert.equal(handled.recorded, true);
    const atC = await eventually(
      () =>
        c.validator.ask<ReceiptRecord | undefined>({
          type: "receipt_status",
          receiptId: receiptId(r),
        }),
      "C to record the worker's receipt",
    );
    assert.equal(atC.status, "pending");
    const account = await c.validator.ask<Account>({ type: "account", key: worker.publicKey });
    assert.equal(account.stake, 1_000_000);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A node's hello carries its inference load, which routers weigh, and its storage use: a storage
 * reading that failed (the StorageActor timing out, its store failing to list a directory) made
 * the whole hello fail, so the node sent none, and its peers went on weighing its last load — a
 * worker whose last hello said it was full got no jobs while it stood idle.
 */
Deno.test("s46: a storage reading that fails does not stop the hello: the load is still told, with the last storage reading", async () => {
  let running = 4;
  const port = {
    models: () => Promise.resolve([{ cid: "m", name: "m", kind: "text" }]),
    stats: () => Promise.resolve({ ...emptyInferenceStats(), activeJobs: running, queuedJobs: 0 }),
  } as unknown as InferencePort;
  let failing = false;
  let reads = 0;
  const storage = {
    ask: () => {
      reads++;
      return failing ? Promise.reject(new Error("ask timed out")) : Promise.resolve({
        ok: true,
        value: { usedBytes: 100, quotaBytes: null, objectCount: 0, pinCount: 0, replicaCount: 0 },
      });
    },
  } as unknown as ActorRef<StorageMessage>;
  const clock = { t: 0 };
  const describe = nodeHello({
    roles: { inference: true, storage: true, prover: false, validator: false },
    inference: () => port,
    storage: () => storage,
    queueLimit: 0,
  }, () => clock.t);
  assert.equal((await describe()).load?.running, 4);
  failing = true;
  running = 0; // the jobs ended: routers must hear it
  clock.t = 30_000;
  const body = await describe();
  assert.equal(body.load?.running, 0, "the new load is told");
  assert.deepEqual(body.storage, { usedBytes: 100, quotaBytes: null }, "the last reading");
  clock.t = 31_000;
  await describe();
  assert.equal(reads, 2, "a failed reading is not retried at every hello");
  failing = false;
  clock.t = 60_000;
  assert.deepEqual((await describe()).storage, { usedBytes: 100, quotaBytes: null });
  assert.equal(reads, 3);
});

// ---- peer changes ---------------------------------------------------------------------------------
// The NetworkActor's peer table had no change event, so whoever waited on a peer
// (`VeriflowNode.waitForPeer`) asked for the whole table every 250 ms. The actor now tells a {@link
// PeerChanges} feed (`NetworkActorOptions.peerChanges`) each change as it makes it: `up` when a
// connection enters the table, `updated` when what the table shows of it changes (its models
// listed, its hello, its conviction), `down` when it leaves (closed, or the actor stopped); each
// with the peer as the table shows it then.

const LOAD = { running: 1, queued: 0, slots: 4, queueLimit: 4 };

Deno.test({
  name:
    "the NetworkActor tells its peer changes: up, updated (models, hello, conviction) and down, each with the peer as the table shows it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const changes = new PeerChanges();
    const heard: PeerChange[] = [];
    changes.subscribe((change) => heard.push(change));
    const system = new ActorSystem({ name: "review-s63-peer-changes" });
    try {
      const net = await system.spawn<NetworkMessage>({
        name: "n/network",
        factory: () =>
          new NetworkActor({ identity: Identity.generate(), services: {}, peerChanges: changes }),
      });
      const identity = Identity.generate();
      const key = toHex(identity.publicKey);
      const worker = new TwoTokenWorker(false, "", "");
      const peer = await connectWorker(net, worker, LOAD, { identity });
      assert.equal(heard[0]?.type, "up", "the connection's entry into the table comes first");
      assert.equal(heard[0].peer.key, key);
      assert.deepEqual(heard[0].peer.models, [], "not listed yet");

      // Its models are listed and its hello arrives: each is an `updated`.
      const last = () => heard.at(-1)!.peer;
      await eventually(
        () => last().models.length > 0 && last().roles.length > 0 || undefined,
        "its models and hello told",
      );
      const updates = heard.slice(1);
      assert.ok(updates.length >= 2 && updates.every((c) => c.type === "updated"));
      assert.ok(updates.some((c) => c.peer.models.includes(MODEL)), "the models listed");
      assert.ok(updates.some((c) => c.peer.roles.includes("inference")), "the hello");
      assert.deepEqual(last().load, LOAD);
      const [shown] = await net.ask<PeerInfo[]>({ type: "peers" });
      assert.deepEqual(last(), shown, "the last change shows the peer as the table does");

      // Convicted in this node's ledger: an `updated` that says so.
      await net.ask({ type: "peer_convicted", key });
      assert.deepEqual(heard.at(-1), { type: "updated", peer: { ...shown, convicted: true } });

      // A copy: a listener that changes what it heard does not change the table.
      heard.at(-1)!.peer.models.push("not-served");
      const [after] = await net.ask<PeerInfo[]>({ type: "peers" });
      assert.deepEqual(after.models, [MODEL]);

      // Its connection closes: `down`, and nothing after.
      const count = heard.length;
      await peer.close();
      await eventually(() => heard.length > count || undefined, "its close told");
      assert.deepEqual(heard.slice(count).map((c) => [c.type, c.peer.key]), [["down", key]]);

      // Peers still in the table when the actor stops leave it: `down` for each.
      const other = Identity.generate();
      await connectWorker(net, worker, LOAD, { identity: other });
      const otherKey = toHex(other.publicKey);
      await eventually(
        () => last().key === otherKey && last().models.length > 0 || undefined,
        "the other listed",
      );
      const before = heard.length;
      await system.shutdown();
      assert.deepEqual(
        heard.slice(before).map((c) => [c.type, c.peer.key]),
        [["down", otherKey]],
      );
    } finally {
      await system.shutdown();
    }
  },
});

Deno.test("a peer change listener that throws does not keep the change from the others", () => {
  const changes = new PeerChanges();
  const heard: string[] = [];
  const quiet = console.error;
  console.error = () => {};
  try {
    changes.subscribe(() => {
      throw new Error("bad listener");
    });
    const stop = changes.subscribe((change) => heard.push(change.peer.key));
    const peer: PeerInfo = {
      key: "aa",
      address: "mem",
      outbound: true,
      protocols: [],
      models: [],
      convicted: false,
      roles: [],
    };
    changes.emit({ type: "up", peer });
    stop();
    stop();
    changes.emit({ type: "down", peer });
    assert.deepEqual(heard, ["aa"]);
    assert.equal(changes.size, 1);
  } finally {
    console.error = quiet;
  }
});
