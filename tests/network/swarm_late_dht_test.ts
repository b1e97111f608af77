/**
 * A swarm host started while no DHT node answers at its bootstrap (a node started at boot before
 * its network, a laptop offline, a testnet restarted) finds its peers once one does, and the node
 * is degraded (`swarm_no_dht`) meanwhile. Before, it asked its bootstrap once: its topics'
 * lookups all ran against an empty routing table, two such nodes had still not met 11.5 min after
 * the DHT came up, and `/healthz` said `ok` throughout (review s78, finding 3).
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { SwarmHost } from "../../network/swarm_host.ts";
import { SWARM_NO_DHT, SwarmHostHealth } from "../../network/swarm_host_health.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";

/** A UDP port on loopback that nothing listens on (bound, then closed). */
async function freeUdpPort(): Promise<number> {
  const probe = createSocket("udp4");
  await new Promise<void>((resolve) => probe.bind(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * Asked again fast, so the test waits little once the DHT is up; the default backoff (2 s doubling
 * to 30 s) is the same loop, slower.
 */
const TEST_DHT_RETRY = { initialMs: 100, maxMs: 400 };

Deno.test({
  name:
    "swarm hosts started before their DHT meet once it answers, and are swarm_no_dht until then",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const port = await freeUdpPort();
    const topic = crypto.getRandomValues(new Uint8Array(32));
    /** A host on the silent bootstrap; its DHT reports feed a node's health, as the node's do. */
    const start = async () => {
      const health = new SwarmHostHealth();
      const peers: boolean[] = [];
      const host = await SwarmHost.start({
        identity: Identity.generate(),
        bootstrap: [`127.0.0.1:${port}`],
        bind: "127.0.0.1",
        dhtRetry: TEST_DHT_RETRY,
        onPeer: (peer) => {
          peers.push(peer.initiator);
          peer.close();
        },
        onState: (state) => state === "up" && health.up(),
        onDht: (reachable, message) => reachable ? health.dhtAnswered() : health.noDht(message),
      });
      return { host, health, peers };
    };
    const a = await start();
    const b = await start();
    let testnet: Awaited<ReturnType<typeof startLocalTestnet>> | undefined;
    try {
      await Promise.all([a.host.join(topic), b.host.join(topic)]);
      for (const { health } of [a, b]) {
        const [condition] = await eventually(() => {
          const conditions = health.conditions();
          return conditions.length > 0 ? conditions : undefined;
        }, "the host to report that no DHT node answered");
        assert.equal(condition.code, SWARM_NO_DHT);
        assert.equal(condition.status, "degraded");
        assert.match(condition.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      }
      assert.deepEqual([a.peers, b.peers], [[], []], "no peer without a DHT");
      // The DHT comes up where the hosts look for it.
      testnet = await startLocalTestnet(3, { port });
      assert.deepEqual(testnet.bootstrap, [`127.0.0.1:${port}`]);
      await eventually(
        () => a.peers.length > 0 && b.peers.length > 0,
        "the two hosts to meet once the DHT answered",
      );
      await eventually(
        () => a.health.conditions().length === 0 && b.health.conditions().length === 0,
        "swarm_no_dht to clear once a DHT node answered",
      );
    } finally {
      await a.host.close();
      await b.host.close();
      await testnet?.stop();
    }
  },
});

Deno.test("dhtRetry that is not 1 <= initialMs <= maxMs in whole ms is refused", async () => {
  for (
    const dhtRetry of [{ initialMs: 0, maxMs: 10 }, { initialMs: 20, maxMs: 10 }, {
      initialMs: 1.5,
      maxMs: 10,
    }]
  ) {
    await assert.rejects(
      SwarmHost.start({ identity: Identity.generate(), bootstrap: [], onPeer() {}, dhtRetry }),
      (error: Error) => error instanceof RangeError && error.message.includes("dhtRetry"),
    );
  }
});
