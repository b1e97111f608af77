// A stand-in for network/swarm/host.mjs in tests/network/swarm_host_test.ts: no Hyperswarm, no
// DHT. It speaks the host's stdin/stdout protocol and, on each `join`, delivers one "peer"
// connection to the node's link (socket file or port) whose first bytes are the topic's last byte repeated
// five times, sent either in the same write as the header (topic[0] === 1) or 100 ms after it,
// so both ways the header and a peer's first bytes can reach the node are exercised. Its header
// is the host's: token ‖ key (32 bytes of 7) ‖ initiator (1) ‖ address length ‖ address, the
// address 192.0.2.N for topic[1] === N, none for topic[1] === 0.
// With FAKE_SWARM_HOST_PEERS set (a JSON list of { port, key, address?, initiator? }), its first
// join delivers instead one connection per entry that carries the bytes of a TCP connection to
// 127.0.0.1:port both ways, under that key (hex) and address (none when absent), and its later
// joins deliver nothing: a test peer listening there speaks to the node as a swarm peer would.
// One at a time, in the list's order: the next once the node has written on the one before (its
// handshake began) or closed it, so what the node counts of each is counted in that order.
// A join of a topic whose first byte is 0xee fails: { ev: "error", topic, op, message }, as the
// host reports a join it could not do. With FAKE_SWARM_HOST_LOG set, each op is appended to that
// file as a line { pid, op, topic } before it is answered.
import { appendFileSync } from "node:fs";
import { createConnection } from "node:net";
import { createInterface } from "node:readline";
import { createPrivateKey, createPublicKey } from "node:crypto";

const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";
const send = (event) => process.stdout.write(JSON.stringify(event) + "\n");
let config = null;

createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  if (config === null) {
    config = message;
    const key = createPrivateKey({
      key: Buffer.from(PKCS8_ED25519_PREFIX + config.seed, "hex"),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(key).export({ format: "der", type: "spki" });
    send({ ev: "ready", publicKey: spki.subarray(-32).toString("hex") });
    return;
  }
  if (message.op === "ping") {
    send({ ev: "pong" }); // the node's liveness check
    return;
  }
  if (process.env.FAKE_SWARM_HOST_LOG) {
    const entry = { pid: process.pid, op: message.op, topic: message.topic };
    appendFileSync(process.env.FAKE_SWARM_HOST_LOG, JSON.stringify(entry) + "\n");
  }
  if (message.op === "leave") send({ ev: "left", topic: message.topic });
  if (message.op !== "join") return;
  const topic = Buffer.from(message.topic, "hex");
  if (topic[0] === 0xee) {
    send({ ev: "error", topic: message.topic, op: "join", message: "flush failed (fake)" });
    return;
  }
  if (process.env.FAKE_SWARM_HOST_PEERS) {
    if (!proxied) {
      proxied = true;
      proxyInTurn(JSON.parse(process.env.FAKE_SWARM_HOST_PEERS));
    }
    send({ ev: "joined", topic: message.topic });
    return;
  }
  const header = headerOf(Buffer.alloc(32, 7), true, topic[1] === 0 ? "" : `192.0.2.${topic[1]}`);
  const first = Buffer.alloc(5, topic[31]);
  const socket = createConnection(linkAddress(), () => {
    if (topic[0] === 1) socket.write(Buffer.concat([header, first]));
    else {
      socket.write(header);
      setTimeout(() => socket.write(first), 100);
    }
    send({ ev: "joined", topic: message.topic });
  });
  socket.on("error", () => {});
});
process.stdin.on("close", () => process.exit(0));

/** Whether the test peers of FAKE_SWARM_HOST_PEERS were delivered (on the first join). */
let proxied = false;

/** The host's header: token ‖ key ‖ initiator ‖ address length ‖ address (see host.mjs). */
function headerOf(key, initiator, address) {
  const text = Buffer.from(address, "latin1");
  return Buffer.concat([
    Buffer.from(config.token, "hex"),
    key,
    Buffer.from([initiator ? 1 : 0, text.length]),
    text,
  ]);
}

function linkAddress() {
  return config.dataPath ? { path: config.dataPath } : { host: "127.0.0.1", port: config.dataPort };
}

/** Each of `peers` proxied (see proxy), the next once the node wrote on or closed the last. */
function proxyInTurn(peers) {
  if (peers.length === 0) return;
  const link = proxy(peers[0]);
  let next = () => {
    next = () => {};
    proxyInTurn(peers.slice(1));
  };
  link.once("data", () => next());
  link.once("close", () => next());
}

/** One link connection carrying a TCP connection to the test peer at `peer.port`, both ways. */
function proxy(peer) {
  const link = createConnection(linkAddress(), () => {
    link.write(headerOf(Buffer.from(peer.key, "hex"), peer.initiator === true, peer.address ?? ""));
    const far = createConnection({ host: "127.0.0.1", port: peer.port });
    far.on("error", () => link.destroy());
    link.on("error", () => far.destroy());
    link.pipe(far);
    far.pipe(link);
  });
  return link;
}
