/**
 * Review s63 (peer changes): the NetworkActor's peer table had no change event, so whoever waited
 * on a peer (`VeriflowNode.waitForPeer`) asked for the whole table every 250 ms. The actor now
 * tells a {@link PeerChanges} feed (`NetworkActorOptions.peerChanges`) each change as it makes it:
 * `up` when a connection enters the table, `updated` when what the table shows of it changes (its
 * models listed, its hello, its conviction), `down` when it leaves (closed, or the actor stopped);
 * each with the peer as the table shows it then.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { type PeerChange, PeerChanges } from "../../network/peer_changes.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

const LOAD = { running: 1, queued: 0, slots: 4, queueLimit: 4 };

Deno.test({
  name:
    "review s63: the NetworkActor tells its peer changes: up, updated (models, hello, conviction) and down, each with the peer as the table shows it",
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

Deno.test("review s63: a peer change listener that throws does not keep the change from the others", () => {
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
