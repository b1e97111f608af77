/**
 * A local Hyperswarm DHT testnet on 127.0.0.1 for tests: a Node.js child process
 * (`network/swarm/testnet.mjs`) that runs until stopped. Nothing leaves the machine.
 */
import { SWARM_TESTNET_SCRIPT } from "../../network/swarm_host.ts";

/** A running testnet: its bootstrap list (`host:port`) and how to stop it. */
export interface Testnet {
  /** The DHT bootstrap nodes. */
  bootstrap: string[];
  /** Stop the testnet process. */
  stop(): Promise<void>;
}

/** Start a testnet of `size` DHT nodes and wait until it prints its bootstrap list. */
export async function startTestnet(size = 3): Promise<Testnet> {
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
    if (done) throw new Error("the testnet exited before it was up");
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
