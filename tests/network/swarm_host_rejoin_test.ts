/**
 * join(topic) again with other options: the node records the new ones (and a restarted host joins
 * with them), but the running host only adds a Hyperswarm session to the topic: the first
 * session's `server` stays, so the node keeps announcing a topic it asked only to look up (a
 * review at stop 34). The host now leaves the topic and joins it again with the new options.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SwarmHost } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";

async function announcers(bootstrap: string, topic: Uint8Array): Promise<string[]> {
  const out = await new Deno.Command("node", {
    args: [fileURLToPath(new URL("./_dht_lookup.mjs", import.meta.url)), bootstrap, toHex(topic)],
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test({
  name: "swarm host: joining a topic again as client only stops announcing it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (p) => p.close(),
    });
    try {
      const topic = crypto.getRandomValues(new Uint8Array(32));
      await host.join(topic); // server + client
      const first = await announcers(testnet.bootstrap[0], topic);
      assert.ok(first.includes(toHex(host.publicKey)), "announced after the first join");
      await host.join(topic, { server: false, client: true }); // resolved: "joined"
      const second = await announcers(testnet.bootstrap[0], topic);
      assert.ok(!second.includes(toHex(host.publicKey)), "still announced as client only");
      await host.join(topic); // and announced again when asked
      assert.ok((await announcers(testnet.bootstrap[0], topic)).includes(toHex(host.publicKey)));
    } finally {
      await host.close();
      await testnet.stop();
    }
  },
});

Deno.test({
  name: "swarm host: a join with other options then a leave at once ends with the topic left",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The rejoin leaves the topic first; a leave sent meanwhile used to finish during it, and the
    // join then announced the topic again after the node was told "left" (a review at stop 34).
    const testnet = await startLocalTestnet();
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (p) => p.close(),
    });
    try {
      const topic = crypto.getRandomValues(new Uint8Array(32));
      await host.join(topic);
      assert.ok((await announcers(testnet.bootstrap[0], topic)).includes(toHex(host.publicKey)));
      const rejoin = host.join(topic, { server: true, client: false }).catch((e) => e);
      await host.leave(topic); // the host answers in order: the join is done by now
      await rejoin;
      assert.ok(
        !(await announcers(testnet.bootstrap[0], topic)).includes(toHex(host.publicKey)),
        "the node left the topic, yet its host still announces it",
      );
    } finally {
      await host.close();
      await testnet.stop();
    }
  },
});
