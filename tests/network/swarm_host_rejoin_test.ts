/**
 * join(topic) again with other options: the node records the new ones (and a restarted host joins
 * with them), but the running host only added a Hyperswarm session to the topic: the first
 * session's `server` stayed, so the node kept announcing a topic it asked only to look up (a
 * review at stop 34). The host now leaves the topic and joins it again with the new options, and
 * runs the ops on one topic one after another.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SwarmHost } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";

/**
 * A host on a fresh local testnet, a random topic it joined, and whether the DHT lists the host
 * among the topic's announcers now.
 */
function withJoinedHost(
  fn: (host: SwarmHost, topic: Uint8Array, announced: () => Promise<boolean>) => Promise<void>,
) {
  return async () => {
    const testnet = await startLocalTestnet();
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (p) => p.close(),
    });
    const topic = crypto.getRandomValues(new Uint8Array(32));
    const lookup = fileURLToPath(new URL("./_dht_lookup.mjs", import.meta.url));
    const announced = async () => {
      const out = await new Deno.Command("node", {
        args: [lookup, testnet.bootstrap[0], toHex(topic)],
      }).output();
      const keys: string[] = JSON.parse(new TextDecoder().decode(out.stdout));
      return keys.includes(toHex(host.publicKey));
    };
    try {
      await host.join(topic); // server + client
      assert.ok(await announced(), "announced after the first join");
      await fn(host, topic, announced);
    } finally {
      await host.close();
      await testnet.stop();
    }
  };
}

Deno.test({
  name: "swarm host: joining a topic again as client only stops announcing it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withJoinedHost(async (host, topic, announced) => {
    await host.join(topic, { server: false, client: true }); // resolved: "joined"
    assert.ok(!(await announced()), "still announced as client only");
    await host.join(topic); // and announced again when asked
    assert.ok(await announced());
  }),
});

Deno.test({
  name: "swarm host: a join with other options then a leave at once ends with the topic left",
  sanitizeResources: false,
  sanitizeOps: false,
  // The rejoin leaves the topic first; a leave sent meanwhile used to finish during it, and the
  // join then announced the topic again after the node was told "left" (a review at stop 34).
  fn: withJoinedHost(async (host, topic, announced) => {
    const rejoin = host.join(topic, { server: true, client: false }).catch((e) => e);
    await host.leave(topic); // the host answers in order: the join is done by now
    await rejoin;
    assert.ok(!(await announced()), "the node left the topic, yet its host still announces it");
  }),
});
