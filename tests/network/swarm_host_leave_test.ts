/**
 * A swarm host asked to stop leaves the swarm within its leave grace and exits on its own, even
 * when no DHT node can be reached any more: it was killed by the node 5 s later instead, while
 * the network actor's stop was abandoned at the same moment (a node stopped after its testnet,
 * or with its network gone, took 5 s and warned "postStop … did not finish").
 */
import assert from "node:assert/strict";
import { SwarmHost } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";

/** A host on `bootstrap` with its log collected, joined to one topic. */
async function joinedHost(bootstrap: string[], leaveGraceMs: number) {
  const log: string[] = [];
  const host = await SwarmHost.start({
    identity: Identity.generate(),
    bootstrap,
    bind: "127.0.0.1",
    onPeer: (peer) => peer.close(),
    log: (line) => log.push(line),
    leaveGraceMs,
  });
  await host.join(crypto.getRandomValues(new Uint8Array(32)), { server: true, client: true });
  return { host, log };
}

Deno.test("a host whose DHT is gone gives up leaving after its grace and exits by itself, not killed", async () => {
  const testnet = await startLocalTestnet();
  let stopped = false;
  try {
    const { host, log } = await joinedHost(testnet.bootstrap, 300);
    await testnet.stop();
    stopped = true;
    await host.close();
    assert.ok(
      log.some((line) => line.includes("could not leave the swarm within 300 ms")),
      `the host says why it left uncleanly:\n${log.join("\n")}`,
    );
    assert.deepEqual(log.filter((line) => line.includes("killed")), [], "and was not killed");
  } finally {
    if (!stopped) await testnet.stop();
  }
});

Deno.test("a host whose DHT answers leaves cleanly: no give-up line", async () => {
  const testnet = await startLocalTestnet();
  try {
    const { host, log } = await joinedHost(testnet.bootstrap, 4_000);
    await host.close();
    assert.deepEqual(log.filter((line) => /could not leave|killed/.test(line)), []);
  } finally {
    await testnet.stop();
  }
});

Deno.test("leaveGraceMs outside 1 … 4,999 ms is refused", async () => {
  for (const leaveGraceMs of [0, 5_000, 1.5, NaN]) {
    await assert.rejects(
      SwarmHost.start({ identity: Identity.generate(), bootstrap: [], onPeer() {}, leaveGraceMs }),
      (error: Error) => error instanceof RangeError && error.message.includes("leaveGraceMs"),
    );
  }
});
