/**
 * What the swarm host holds of its peers' bytes while the node does not read them is bounded in
 * all, not only per connection: peers with fresh keys (free to make) could each send just under
 * the per-connection limit, and the host held K × that (a review at stop 34: 16 peers × 3 MiB
 * under a 4 MiB limit, 48 MiB held). Past `maxUnreadTotalBytes`, the connections holding the
 * most are closed until the rest fit.
 */
import assert from "node:assert/strict";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { floodPeers } from "./_swarm_host_fixture.ts";

const MIB = 1024 * 1024;

Deno.test({
  name:
    "swarm host: the bytes it holds unread are bounded in all; the connections holding most are closed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const K = 12;
    const PER_PEER = 3 * MIB; // under the per-connection limit
    const TOTAL = 8 * MIB;
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const logs: string[] = [];
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxUnreadBytes: 4 * MIB,
      maxUnreadTotalBytes: TOTAL,
      onPeer: (p) => peers.push(p), // the node is busy: it does not read them yet
      log: (l) => logs.push(l),
    });
    let attacker: ReturnType<typeof floodPeers> | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      attacker = floodPeers(testnet.bootstrap[0], victim.publicKey, K, PER_PEER);
      // Every byte taken in by the host, or its connection closed by it.
      const done = JSON.parse((await attacker.report())!) as { closed: number };
      assert.ok(done.closed > 0, "some connections were closed");
      // The host checks every 100 ms and closes in one pass: its lines, once all came.
      const closed = () => logs.filter((l) => l.includes("connection closed")).length;
      while (closed() < done.closed) await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        logs.some((l) =>
          /the most of all connections, which held .* over the 8\.0 MiB limit/.test(l)
        ),
        logs.join("\n"),
      );
      // The node reads now: what is left of every connection.
      let total = 0;
      await Promise.all(peers.map(async (p) => {
        const reader = p.duplex.readable.getReader();
        const cut = setTimeout(() => p.close(), 5_000);
        try {
          for (let got = 0; got < PER_PEER;) {
            const { value, done } = await reader.read();
            if (done) break;
            got += value.length;
            total += value.length;
          }
        } catch {
          // closed by the host
        } finally {
          clearTimeout(cut);
          p.close();
        }
      }));
      // The limit, plus what each link's socket holds in the kernel on the node's side.
      assert.ok(total <= TOTAL + K * 512 * 1024, `${(total / MIB).toFixed(1)} MiB were held`);
    } finally {
      await attacker?.stop();
      await victim.close();
      await testnet.stop();
    }
  },
});
