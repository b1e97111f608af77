/**
 * Reaching a peer by its key (the NetworkActor's `reach`): two nodes on a local DHT testnet
 * (127.0.0.1) that share no topic never meet on their own; one asks to reach the other and the
 * connection comes up, with the peer's hello, as any other. A node never dials itself, and one
 * without a swarm has nothing to dial with.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test({
  name:
    "reach: a node dials a peer by its key over the swarm when they share no topic, and their connection comes up",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const system = new ActorSystem({ name: "reach" });
    const [v, w] = [Identity.generate(), Identity.generate()];
    try {
      // Each on a network topic of its own: neither looks the other up.
      const node = (name: string, identity: Identity) =>
        system.spawn<NetworkMessage>({
          name: `${name}/network`,
          factory: () =>
            new NetworkActor({
              identity,
              services: {},
              swarm: {
                bootstrap: testnet.bootstrap,
                bind: "127.0.0.1",
                topic: crypto.getRandomValues(new Uint8Array(32)),
              },
            }),
        });
      const [vNet] = await Promise.all([node("v", v), node("w", w)]);
      const peersOf = async () =>
        (await vNet.ask<PeerInfo[]>({ type: "peers" })).map((peer) => peer.key);
      // The swarm starts in the background: reach answers false until it is up.
      await eventually(
        () => vNet.ask<boolean>({ type: "reach", key: w.publicKey, forMs: 30_000 }),
        "V's swarm to dial W",
      );
      assert.equal(
        await vNet.ask<boolean>({ type: "reach", key: v.publicKey, forMs: 30_000 }),
        false,
        "a node does not dial itself",
      );
      const keys = await eventually(
        async () => (await peersOf()).includes(toHex(w.publicKey)) ? await peersOf() : undefined,
        "V's connection to W",
      );
      assert.deepEqual(keys, [toHex(w.publicKey)]);
      assert.equal(
        await vNet.ask<boolean>({ type: "reach", key: w.publicKey, forMs: 30_000 }),
        false,
        "connected: nothing more to dial",
      );
    } finally {
      await system.shutdown();
      await testnet.stop();
    }
  },
});

Deno.test("reach: a node without a swarm has nothing to dial with", async () => {
  const system = new ActorSystem({ name: "reach-tcp" });
  try {
    const net = await system.spawn<NetworkMessage>({
      name: "n/network",
      factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
    });
    const key = Identity.generate().publicKey;
    assert.equal(await net.ask<boolean>({ type: "reach", key, forMs: 1_000 }), false);
  } finally {
    await system.shutdown();
  }
});
