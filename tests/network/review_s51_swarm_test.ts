/**
 * Review s51 of the swarm host (network/swarm_host.ts, network/swarm/host.mjs): what its pipes
 * hand the node's log (stand-in hosts, `_fake_swarm_host.mjs` behind a script), and what
 * strangers' connections to a node leave of its own (the real host on a local testnet). Nothing
 * leaves 127.0.0.1.
 */
import assert from "node:assert/strict";
import { SwarmHost } from "../../network/swarm_host.ts";
import { base, FAKE_HOST, floodedVictim, script, settled } from "./_swarm_host_fixture.ts";

/** A `node` command line that writes `text` to `fd` (1 or 2) in one write, then exits. */
const oneWrite = (fd: 1 | 2, text: string) =>
  `node -e 'require("fs").writeSync(${fd}, ${JSON.stringify(text).replaceAll("'", "")})'`;

Deno.test({
  name:
    "swarm review s51: a long line the host writes whole, newline and all, reaches the log cut to the line limit like one that comes in pieces (stderr and an error event on stdout)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const LONG = 20_000;
    const { dir, nodePath } = await script(
      `${oneWrite(2, `${"x".repeat(LONG)}\n`)}\n` +
        `${oneWrite(1, `${JSON.stringify({ ev: "error", message: "y".repeat(LONG) })}\n`)}\n` +
        `exec node ${FAKE_HOST}`,
    );
    const logs: string[] = [];
    try {
      const host = await SwarmHost.start({ ...base(), nodePath, log: (l) => logs.push(l) });
      await host.close();
      const xs = logs.find((l) => l.includes("xxxx"));
      const ys = logs.find((l) => l.includes("yyyy"));
      assert.ok(xs !== undefined && ys !== undefined, logs.join("\n").slice(0, 500));
      // MAX_LINE_CHARS is 4 KiB: a line is cut there, whether or not its end came with it.
      for (const line of [xs, ys]) {
        assert.ok(line.length <= 4 * 1024 + 64, `a log line of ${line.length} characters`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm review s51: strangers holding more connections to a node than Hyperswarm's maxPeers do not stop it connecting to a peer its lookup finds",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // More than Hyperswarm's maxPeers (64): each a fresh key (free to make), held open.
    const K = 70;
    const topic = crypto.getRandomValues(new Uint8Array(32));
    const scene = await floodedVictim({ count: K, honestTopic: topic });
    try {
      // The victim looks the topic up: it finds the honest peer, and must connect to it.
      await scene.victim.join(topic, { server: false });
      const peer = await settled(scene.found.promise, "the victim's connection to the honest peer");
      assert.equal(peer.initiator, true);
    } finally {
      await scene.close();
    }
  },
});
