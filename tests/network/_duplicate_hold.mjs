// A remote attacker (tests/network/swarm_host_limits_test.ts): one key pair, two connections to
// the victim by its key. The first trickles a byte every 200 ms and stays open; the second, a
// "reconnect" of the same key that Hyperswarm holds back until the first closes, sends BYTES.
// Prints one line {"sent": n, "closed": bool} once the second connection's bytes were all
// acknowledged by the victim's host, or it was closed by it.
//   node _duplicate_hold.mjs <bootstrap host:port> <victim key hex> <BYTES>
// With COUNT and CLOSED: COUNT more connections of that key instead, each sending nothing; prints
// {"closed": n} once CLOSED of them were closed by the victim's host.
//   node _duplicate_hold.mjs <bootstrap host:port> <victim key hex> 0 <COUNT> <CLOSED>
import { DHT, testnetDht } from "./_testnet_dht.mjs";

const [bootstrap, victim, bytes, count, target] = process.argv.slice(2);
const dht = await testnetDht(bootstrap);
const keyPair = DHT.keyPair();
const open = async () => {
  const conn = dht.connect(Buffer.from(victim, "hex"), { keyPair });
  conn.on("error", () => {});
  const gone = new Promise((resolve) => conn.once("close", () => resolve("closed")));
  await Promise.race([new Promise((resolve) => conn.once("open", resolve)), gone]);
  return { conn, gone };
};
const first = await open();
const trickle = setInterval(() => {
  if (!first.conn.destroyed) first.conn.write(Buffer.from([0x42]));
}, 200);
// Let the victim's node see the first one and both sides write on it.
await new Promise((r) => setTimeout(r, 1_000));
if (count !== undefined) {
  let closed = 0;
  let done;
  const all = new Promise((resolve) => done = resolve);
  for (let i = 0; i < Number(count); i++) {
    const { gone } = await open();
    gone.then(() => {
      if (++closed === Number(target)) done();
    });
  }
  await all;
  process.stdout.write(JSON.stringify({ closed }) + "\n");
  process.stdin.resume();
  process.stdin.on("close", () => process.exit(0));
} else {
  const { conn, gone } = await open();
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let sent = 0;
  const send = async () => {
    for (let n = 0; n < Number(bytes) && !conn.destroyed; n += chunk.length) {
      if (!conn.write(chunk)) await new Promise((r) => conn.once("drain", r));
      sent += chunk.length;
    }
    while (!conn.destroyed && conn.rawStream.inflight > 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const closed = (await Promise.race([send(), gone])) === "closed";
  process.stdout.write(JSON.stringify({ sent, closed }) + "\n");
  process.stdin.resume();
  process.stdin.on("close", () => {
    clearInterval(trickle);
    process.exit(0);
  });
}
