/**
 * A local Hyperswarm DHT testnet on 127.0.0.1 (tests, the demo): the Node.js program
 * `network/swarm/testnet.mjs` as a child process, running until stopped. Nothing leaves the
 * machine.
 *
 * @module
 */
import { SWARM_TESTNET_SCRIPT, SwarmHostError } from "./swarm_host.ts";
import { denoStandInNode, standInNodeSentence } from "./_swarm_node_path.ts";

/** A running testnet: its bootstrap list (`host:port`) and how to stop it. */
export interface LocalTestnet {
  /** The DHT bootstrap nodes. */
  bootstrap: string[];
  /** Stop the testnet process. */
  stop(): Promise<void>;
}

/** Options of {@link startLocalTestnet}. */
export interface LocalTestnetOptions {
  /**
   * The UDP port of its first node, the bootstrap (default: any free one): a test starts the
   * testnet where nodes started earlier already look for it.
   */
  port?: number;
}

/**
 * Start a testnet of `size` DHT nodes and wait until it prints its bootstrap list.
 * @throws {SwarmHostError} when `node` is Deno's stand-in (no Node.js installed: the testnet
 *   would die on Hyperswarm's native addon with a libuv symbol error, review s78 finding 4), or
 *   the testnet exits before it is up.
 */
export async function startLocalTestnet(
  size = 3,
  options: LocalTestnetOptions = {},
): Promise<LocalTestnet> {
  const standIn = denoStandInNode("node");
  if (standIn !== undefined) {
    throw new SwarmHostError(`cannot start the DHT testnet with ${standInNodeSentence(standIn)}`);
  }
  const child = new Deno.Command("node", {
    args: [
      SWARM_TESTNET_SCRIPT,
      String(size),
      ...(options.port === undefined ? [] : [String(options.port)]),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      throw new SwarmHostError(
        "the DHT testnet exited before it was up (is Node.js 20+ installed?)",
      );
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
