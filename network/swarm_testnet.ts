/**
 * A local Hyperswarm DHT testnet on 127.0.0.1 (tests, the demo): the Node.js program
 * `network/swarm/testnet.mjs` as a child process, running until stopped. Nothing leaves the
 * machine.
 *
 * @module
 */
import { SWARM_TESTNET_SCRIPT } from "./swarm_host.ts";

/** A running testnet: its bootstrap list (`host:port`) and how to stop it. */
export interface LocalTestnet {
  /** The DHT bootstrap nodes. */
  bootstrap: string[];
  /** Stop the testnet process. */
  stop(): Promise<void>;
}

/** Start a testnet of `size` DHT nodes and wait until it prints its bootstrap list. */
export async function startLocalTestnet(size = 3): Promise<LocalTestnet> {
  const child = new Deno.Command("node", {
    args: [SWARM_TESTNET_SCRIPT, String(size)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error("the DHT testnet exited before it was up (is Node.js 20+ installed?)");
    }
    text += value;
  }
  reader.cancel().catch(() => {});
  const { bootstrap } = JSON.parse(text.slice(0, text.indexOf("\n"))) as { bootstrap: string[] };
  return {
    bootstrap,
    stop: async () => {
      await child.stdin.close().catch(() => {});
      await child.status;
    },
  };
}
