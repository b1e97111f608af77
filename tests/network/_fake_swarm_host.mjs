// A stand-in for network/swarm/host.mjs in tests/network/swarm_host_test.ts: no Hyperswarm, no
// DHT. It speaks the host's stdin/stdout protocol and, on each `join`, delivers one "peer"
// connection to the node's link (socket file or port) whose first bytes are the topic's last byte repeated
// five times, sent either in the same write as the header (topic[0] === 1) or 100 ms after it,
// so both ways the header and a peer's first bytes can reach the node are exercised.
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
  const header = Buffer.concat([
    Buffer.from(config.token, "hex"),
    Buffer.alloc(32, 7), // the "peer's" public key
    Buffer.from([1]), // initiator
  ]);
  const first = Buffer.alloc(5, topic[31]);
  const where = config.dataPath
    ? { path: config.dataPath }
    : { host: "127.0.0.1", port: config.dataPort };
  const socket = createConnection(where, () => {
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
