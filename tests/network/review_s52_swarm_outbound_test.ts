/**
 * Review s52 of the swarm host's bound on the connections it hands on (`maxConnections`,
 * `network/swarm/host.mjs`). The bound is for the connections peers make (keys are free, and
 * Hyperswarm takes every one); the host counted this node's own too, and closed a connection the
 * node itself made once strangers held the bound: a peer it dialled by key (`reach`, a
 * validator's fetch of a challenged worker's proof data) or looked up on a topic was refused by
 * its own host for as long as they held them. Swarm connections skip the node's handshake
 * limits, so strangers that connect and never speak are held by the node for its handshake
 * timeout each: enough of them arriving keeps the bound full.
 */
import assert from "node:assert/strict";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { base, floodPeers, settled } from "./_swarm_host_fixture.ts";

Deno.test({
  name:
    "swarm review s52: strangers holding the host's maxConnections do not make it refuse a peer this node dials by key",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const MAX = 4;
    const testnet = await startLocalTestnet();
    const honest = await SwarmHost.start({
      ...base(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
    });
    const peers: SwarmPeer[] = [];
    const found = Promise.withResolvers<"connected">();
    const refused = Promise.withResolvers<"refused">();
    const honestShort = toHex(honest.publicKey).slice(0, 16);
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxConnections: MAX,
      onPeer: (p) => {
        peers.push(p); // the node holds them (strangers mid-handshake, say)
        if (bytesEqual(p.remoteKey, honest.publicKey)) found.resolve("connected");
      },
      log: (line) => {
        // The host's line for a connection it closed past its bound, for the honest peer's.
        if (line.includes(`peer ${honestShort}`) && line.includes("connection refused")) {
          refused.resolve("refused");
        }
      },
    });
    let attacker: ReturnType<typeof floodPeers> | undefined;
    try {
      // Both listen, so that peers can connect to them by their keys.
      await honest.join(crypto.getRandomValues(new Uint8Array(32)), { client: false });
      await victim.join(crypto.getRandomValues(new Uint8Array(32)), { client: false });
      attacker = floodPeers(testnet.bootstrap[0], victim.publicKey, MAX, 0);
      assert.ok(await attacker.report(), "the attacker reports once its connections are open");
      await settled(
        (async () => {
          while (peers.length < MAX) await new Promise((r) => setTimeout(r, 20));
        })(),
        `the ${MAX} strangers' connections handed on`,
      );
      // The node dials the honest peer by its key (a validator reaching a worker).
      victim.dial(honest.publicKey);
      const outcome = await settled(
        Promise.race([found.promise, refused.promise]),
        "the victim's connection to the honest peer, or its refusal",
        30_000,
      );
      assert.equal(outcome, "connected", "the host closed the connection its node dialled");
    } finally {
      for (const p of peers) p.close();
      await attacker?.stop();
      await victim.close();
      await honest.close();
      await testnet.stop();
    }
  },
});
