// Look a topic up on the DHT and print the announcers' keys, one JSON array (tests/network/swarm_host_test.ts):
//   node _dht_lookup.mjs <bootstrap host:port> <topic hex>
import { testnetDht } from "./_testnet_dht.mjs";

const [bootstrap, topic] = process.argv.slice(2);
const dht = await testnetDht(bootstrap);
const keys = new Set();
for await (const data of dht.lookup(Buffer.from(topic, "hex"))) {
  for (const p of data.peers) keys.add(p.publicKey.toString("hex"));
}
process.stdout.write(JSON.stringify([...keys]) + "\n");
await dht.destroy();
