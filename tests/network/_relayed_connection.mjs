// The swarm host's peer addresses (network/swarm/peer_address.mjs) on a local testnet of its own
// (127.0.0.1 only), for tests/network/swarm_peer_address_test.ts. A node A (its DHT watched by
// peerAddresses, as the host's is) serves two keys: one that asks every client to come through a
// blind relay R (hyperdht's relayThrough, holepunching off on both sides so the relay path is the
// one taken), and one served directly. A client connects to each. Prints one JSON line: what A
// reads of each connection's address, the relayed stream's remote port, R's DHT port, whether
// hyperdht says the relay was used, and the direct client's DHT port.
import { createRequire } from "node:module";
import DHT from "hyperdht";
import createTestnet from "hyperdht/testnet.js";
import { peerAddresses } from "../../network/swarm/peer_address.mjs";

// blind-relay as hyperdht itself loads it (its own dependency, not one of the project's).
const { Server: RelayServer } = createRequire(import.meta.resolve("hyperdht"))("blind-relay");
/** Give up on a connection that never comes (the test then fails on the missing line). */
const GIVE_UP_MS = 20_000;

const testnet = await createTestnet(3, { host: "127.0.0.1" });
const node = (options) =>
  new DHT({ bootstrap: testnet.bootstrap, host: "127.0.0.1", ephemeral: true, ...options });
const within = (promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`no ${what}`)), GIVE_UP_MS)),
  ]);

const r = node({ firewalled: false });
const relay = new RelayServer({ createStream: (o) => r.createRawStream({ ...o, framed: true }) });
const relayKeys = DHT.keyPair();
await r.createServer((socket) => {
  relay.accept(socket, { id: socket.remotePublicKey }).on("error", () => {});
}).listen(relayKeys);

const a = node({ firewalled: true });
const addressOf = peerAddresses(a);
/** A server of A's under `keys` (`options`: hyperdht's); resolves with its first connection. */
function serve(keys, options) {
  return new Promise((resolve) => {
    a.createServer(options, (socket) => {
      socket.on("error", () => {});
      resolve(socket);
    }).listen(keys);
  });
}
const relayedKeys = DHT.keyPair();
const directKeys = DHT.keyPair();
const relayed = serve(relayedKeys, {
  relayThrough: relayKeys.publicKey,
  holepunch: false,
  shareLocalAddress: false,
});
const direct = serve(directKeys, {});
await a.ready();

const b = node({ firewalled: true });
b.connect(relayedKeys.publicKey, { holepunch: () => false, localConnection: false })
  .on("error", () => {});
const c = node({ firewalled: false });
c.connect(directKeys.publicKey).on("error", () => {});
const [viaRelay, straight] = await Promise.all([
  within(relayed, "relayed connection"),
  within(direct, "direct connection"),
]);
console.log(JSON.stringify({
  relayedAddress: addressOf(viaRelay),
  relayedRemotePort: viaRelay.rawStream.remotePort,
  relayPort: r.address().port,
  relayingSuccesses: a.stats.relaying.successes,
  directAddress: addressOf(straight),
  directRemotePort: straight.rawStream.remotePort,
  directClientPort: c.address().port,
}));
for (const dht of [b, c, a, r]) await dht.destroy();
await testnet.destroy();
process.exit(0);
