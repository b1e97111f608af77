// A local Hyperswarm DHT testnet on 127.0.0.1 for tests and the demo: prints one JSON line
// { bootstrap: ["127.0.0.1:port"] } once it is up, and runs until stdin closes or SIGTERM.
//   node network/swarm/testnet.mjs [size (3)]
import { createInterface } from "node:readline";
import createTestnet from "@hyperswarm/testnet";

const size = Number(process.argv[2] ?? 3);
const testnet = await createTestnet(size, { host: "127.0.0.1" });
process.stdout.write(
  JSON.stringify({ bootstrap: testnet.bootstrap.map((b) => `${b.host}:${b.port}`) }) + "\n",
);
const stop = async () => {
  await testnet.destroy();
  process.exit(0);
};
createInterface({ input: process.stdin }).on("close", stop);
process.on("SIGTERM", stop);
