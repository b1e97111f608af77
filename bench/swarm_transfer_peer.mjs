// The swarm bench's baseline: one plain Node.js Hyperswarm peer, no Veriflow in between, moving
// the same bulk transfer as bench/swarm_bench.ts's Deno peers do through their swarm hosts.
//
//   node bench/swarm_transfer_peer.mjs '{"bootstrap":["127.0.0.1:PORT"],"topic":HEX,
//                                        "role":"send"|"recv","chunkBytes":65536}'
//
// Both roles join the topic on a DHT bound to 127.0.0.1 (as the swarm host does for a local
// testnet). Once connected, each prints `{"ev":"connected"}`. The transfer protocol, the same
// in the Deno peer (bench/swarm_bench.ts):
//   sender → receiver:  length (8 bytes, big-endian) ‖ that many bytes
//   receiver → sender:  one byte, once the last byte has arrived
// The sender starts one on each stdin line `{"bytes":N}` and prints `{"ms":…}`, the time from its
// first write to the receiver's acknowledgement. It exits when stdin closes.
import { createInterface } from "node:readline";
import Hyperswarm from "hyperswarm";
import DHT from "hyperdht";

const config = JSON.parse(process.argv[2]);
const send = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const dht = new DHT({
  bootstrap: config.bootstrap.map((entry) => {
    const at = entry.lastIndexOf(":");
    return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
  }),
  host: "127.0.0.1",
  ephemeral: true,
  firewalled: false,
});
const swarm = new Hyperswarm({ dht });
let peer = null;

swarm.on("connection", (socket) => {
  socket.on("error", () => {});
  if (peer !== null) {
    socket.destroy(); // one connection per run; a duplicate from the other direction is dropped
    return;
  }
  peer = socket;
  if (config.role === "recv") receive(socket);
  send({ ev: "connected" });
});

// Count the announced length, acknowledge with one byte, and wait for the next transfer.
function receive(socket) {
  let expected = -1;
  let got = 0;
  let header = Buffer.alloc(0);
  socket.on("data", (data) => {
    let at = 0;
    while (at < data.length) {
      if (expected < 0) {
        const take = Math.min(8 - header.length, data.length - at);
        header = Buffer.concat([header, data.subarray(at, at + take)]);
        at += take;
        if (header.length === 8) {
          expected = Number(header.readBigUInt64BE(0));
          header = Buffer.alloc(0);
          got = 0;
        }
        continue;
      }
      const take = Math.min(expected - got, data.length - at);
      got += take;
      at += take;
      if (got === expected) {
        expected = -1;
        socket.write(Buffer.from([1]));
      }
    }
  });
}

// Write the length and the bytes with backpressure (`drain`), then wait for the acknowledgement.
function transfer(socket, bytes) {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(config.chunkBytes, 0x5a);
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(bytes));
    const t0 = performance.now();
    socket.once("data", () => resolve(performance.now() - t0));
    socket.write(header);
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

// Look the topic up again soon after joining, as the swarm host does (network/swarm/host.mjs):
// two peers that join at the same moment may each look it up before the other has announced,
// and Hyperswarm's own next lookup is 10 minutes away (seen: one pair in a few never met).
const EARLY_REFRESHES_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
const discovery = swarm.join(Buffer.from(config.topic, "hex"), { server: true, client: true });
const refreshes = EARLY_REFRESHES_MS.map((ms) =>
  setTimeout(() => {
    if (peer === null) discovery.refresh({ server: true, client: true }).catch(() => {});
  }, ms)
);

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  const { bytes } = JSON.parse(line);
  queue = queue.then(async () => send({ ms: await transfer(peer, bytes) }));
});
lines.on("close", async () => {
  await queue.catch(() => {});
  for (const timer of refreshes) clearTimeout(timer);
  await swarm.destroy();
  process.exit(0);
});
