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
import { toHex } from "../../protocols/hash.ts";
import { floodedVictim, settled } from "./_swarm_host_fixture.ts";

Deno.test({
  name:
    "swarm review s52: strangers holding the host's maxConnections do not make it refuse a peer this node dials by key",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const MAX = 4;
    const refused = Promise.withResolvers<"refused">();
    const scene = await floodedVictim({
      count: MAX,
      maxConnections: MAX,
      log: (line, honest) => {
        // The host's line for a connection it closed past its bound, for the honest peer's.
        if (
          line.includes(`peer ${toHex(honest).slice(0, 16)}`) && line.includes("connection refused")
        ) {
          refused.resolve("refused");
        }
      },
    });
    try {
      // The node dials the honest peer by its key (a validator reaching a worker).
      scene.victim.dial(scene.honest.publicKey);
      const outcome = await settled(
        Promise.race([scene.found.promise.then(() => "connected" as const), refused.promise]),
        "the victim's connection to the honest peer, or its refusal",
        30_000,
      );
      assert.equal(outcome, "connected", "the host closed the connection its node dialled");
    } finally {
      await scene.close();
    }
  },
});
