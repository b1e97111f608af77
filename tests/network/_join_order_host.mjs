// A stand-in for network/swarm/host.mjs in tests/network/swarm_host_join_overlap_test.ts: no
// Hyperswarm, no DHT. It answers join and leave one after another in the order they came, each
// 50 ms after the one before (so a test's requests of one topic overlap), echoing the request's
// id as host.mjs does. By the topic's first byte:
// - 0x06: the first join of the topic in this process succeeds, every later one fails (as
//   host.mjs reports a join whose flush failed; it then leaves the topic);
// - 0xdd: a join is never answered in the first process started for the test's directory, and
//   succeeds in a restarted one;
// - anything else: a join succeeds.
// A leave is answered "left". With JOIN_ORDER_DIR set, each join or leave is appended to
// JOIN_ORDER_DIR/ops.jsonl as { pid, op, id, topic, server, client } when it comes.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createPrivateKey, createPublicKey } from "node:crypto";

const send = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const dir = process.env.JOIN_ORDER_DIR;
const firstRun = dir === undefined || !existsSync(join(dir, "ran"));
if (dir !== undefined) writeFileSync(join(dir, "ran"), "");
const seen = new Set();
let chain = Promise.resolve();
let configured = false;

createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  if (!configured) {
    configured = true;
    const key = createPrivateKey({
      key: Buffer.from("302e020100300506032b657004220420" + message.seed, "hex"),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(key).export({ format: "der", type: "spki" });
    send({ ev: "ready", publicKey: spki.subarray(-32).toString("hex") });
    return;
  }
  if (message.op === "ping") return send({ ev: "pong" });
  if (message.op !== "join" && message.op !== "leave") return;
  if (dir !== undefined) {
    const { op, id, topic, server, client } = message;
    const entry = { pid: process.pid, op, id, topic, server, client };
    appendFileSync(join(dir, "ops.jsonl"), JSON.stringify(entry) + "\n");
  }
  const { id, topic } = message;
  chain = chain.then(() => new Promise((resolve) => setTimeout(resolve, 50))).then(() => {
    if (message.op === "leave") return send({ ev: "left", id, topic });
    const first = Number.parseInt(topic.slice(0, 2), 16);
    if (first === 0xdd && firstRun) return; // never answered
    if (first === 0x06 && seen.has(topic)) {
      return send({ ev: "error", id, topic, op: "join", message: "flush failed (stand-in)" });
    }
    seen.add(topic);
    send({ ev: "joined", id, topic });
  });
});
process.stdin.on("close", () => process.exit(0));
