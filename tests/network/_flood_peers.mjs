// A remote attacker (tests/network/swarm_host_limits_test.ts): K fresh key pairs (free to make),
// each connects to the victim by its key through the DHT and sends BYTES, staying under the
// victim's per-connection limit, and keeps the connection open. Prints one line
// {"sent": n, "closed": m} once every connection has had all its bytes taken in by the victim's
// host, or was closed by it.
//   node _flood_peers.mjs <bootstrap host:port> <victim key hex> <K> <BYTES>
import { DHT, testnetDht } from "./_testnet_dht.mjs";

const [bootstrap, victim, k, bytes] = process.argv.slice(2);
const dht = await testnetDht(bootstrap);
const chunk = Buffer.alloc(64 * 1024, 0x41);
let sent = 0;
let closed = 0;
await Promise.all(Array.from({ length: Number(k) }, async () => {
  const conn = dht.connect(Buffer.from(victim, "hex"), { keyPair: DHT.keyPair() });
  conn.on("error", () => {});
  const gone = new Promise((resolve) => conn.once("close", () => resolve("closed")));
  await Promise.race([new Promise((resolve) => conn.once("open", resolve)), gone]);
  const send = async () => {
    for (let n = 0; n < Number(bytes) && !conn.destroyed; n += chunk.length) {
      if (!conn.write(chunk)) await new Promise((r) => conn.once("drain", r));
      sent += chunk.length;
    }
    // Every byte acknowledged: the victim's host has taken them in.
    while (!conn.destroyed && conn.rawStream.inflight > 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  if ((await Promise.race([send(), gone])) === "closed") closed++;
}));
process.stdout.write(JSON.stringify({ sent, closed }) + "\n");
process.stdin.resume();
process.stdin.on("close", () => process.exit(0));
