// A DHT node on a local testnet (127.0.0.1, not firewalled), ready, for the Node.js helper scripts
// of the swarm tests (_dht_lookup.mjs, _flood_peers.mjs).
import DHT from "hyperdht";

/** A ready DHT node bootstrapped from `bootstrap` ("host:port"). */
export async function testnetDht(bootstrap) {
  const at = bootstrap.lastIndexOf(":");
  const dht = new DHT({
    bootstrap: [{ host: bootstrap.slice(0, at), port: Number(bootstrap.slice(at + 1)) }],
    host: "127.0.0.1",
    ephemeral: true,
    firewalled: false,
  });
  await dht.ready();
  return dht;
}

export { DHT };
