// A local Hyperswarm DHT testnet on 127.0.0.1 for tests and the demo: prints one JSON line
// { bootstrap: ["127.0.0.1:port"] } once it is up, and runs until stdin closes or SIGTERM.
//   node network/swarm/testnet.mjs [size (3)] [port of its first node, the bootstrap (any)]
import { createInterface } from "node:readline";
import createTestnet from "@hyperswarm/testnet";

const size = Number(process.argv[2] ?? 3);
const port = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const testnet = await createTestnet(size, { host: "127.0.0.1", ...(port ? { port } : {}) });
process.stdout.write(
  JSON.stringify({ bootstrap: testnet.bootstrap.map((b) => `${b.host}:${b.port}`) }) + "\n",
);
const stop = async () => {
  await testnet.destroy();
  process.exit(0);
};
createInterface({ input: process.stdin }).on("close", stop);
process.on("SIGTERM", stop);
