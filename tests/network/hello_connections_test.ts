/**
 * A node's changed hello goes on every open connection of each peer: the peer keeps a hello per
 * connection and weighs each as a routing candidate. Sent on the first only, a full worker still
 * looked idle on its other connections (a TCP one each way, a swarm one), in routing and in
 * `/metrics` (found by a review at stop 33).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { PeerHelloBody } from "../../protocols/peer_hello.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test("a peer connected twice sees a node's new hello on both connections", async () => {
  const system = new ActorSystem({ name: "hello-second" });
  const [a, b] = [Identity.generate(), Identity.generate()];
  let running = 0;
  const describeB = (): Promise<PeerHelloBody> =>
    Promise.resolve({
      version: "1",
      roles: ["inference"],
      models: ["m"],
      load: { running, queued: 0, slots: 4, queueLimit: 0 },
    });
  try {
    const na = await system.spawn<NetworkMessage>({
      name: "a/network",
      factory: () => new NetworkActor({ identity: a, services: {} }),
    });
    const nb = await system.spawn<NetworkMessage>({
      name: "b/network",
      factory: () =>
        new NetworkActor({ identity: b, services: {}, describe: describeB, helloIntervalMs: 10 }),
    });
    const join = async () => {
      const [da, db] = memoryDuplexPair();
      await Promise.all([
        na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
        nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
      ]);
    };
    await join();
    await join(); // e.g. B's swarm connection beside the TCP one
    const rows = () => na.ask<PeerInfo[]>({ type: "peers" });
    await eventually(
      async () => (await rows()).every((r) => r.load?.running === 0) || undefined,
      "hellos",
    );
    running = 4; // B is full now: its next hello says so
    await eventually(
      async () => (await rows()).some((r) => r.load?.running === 4) || undefined,
      "B's new hello",
    );
    await eventually(
      async () => (await rows()).every((r) => r.load?.running === 4) || undefined,
      "B's new hello on both of its connections",
    );
    assert.equal((await rows()).length, 2);
  } finally {
    await system.shutdown();
  }
});
