/**
 * The log lines peers cause are limited (`network/log_limiter.ts`): a host that holds the
 * node's handshake slots with stalled sockets and then opens and drops connections in a loop
 * gets a few lines written and the rest counted, and the count is written when the node stops.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";

Deno.test("refused connects from one host are a few log lines and a count, not a line each", async () => {
  const system = new ActorSystem({ name: "peer-log-limit" });
  const lines: string[] = [];
  const network = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        listen: { hostname: "127.0.0.1", port: 0 },
        log: (line) => lines.push(line),
        now: () => 0, // one window for the whole test
      }),
  });
  const { port } = await network.ask<Deno.NetAddr>({ type: "listening" });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port });
  // Every handshake slot of this host held by a socket that says nothing.
  const stalled = await Promise.all(Array.from({ length: 8 }, connect));
  const N = 200;
  try {
    for (let i = 0; i < N; i += 50) {
      for (const c of await Promise.all(Array.from({ length: 50 }, connect))) c.close();
    }
    const failed = () => lines.filter((l) => l.includes("handshake failed")).length;
    // The refusals come as the listener accepts them: the burst at least before stopping.
    while (failed() < 5) await new Promise((r) => setTimeout(r, 10));
  } finally {
    for (const c of stalled) c.close();
    await system.shutdown();
  }
  const written = lines.filter((l) => /^peer .*: handshake failed/.test(l));
  assert.equal(written.length, 5, "the burst, then counted");
  const summary = lines.find((l) => l.startsWith("handshake failed: "));
  assert.ok(summary, "the count written at stop");
  // As many as the listener accepted before the node stopped, at most every connect made.
  const leftOut = Number(/: (\d+) more line/.exec(summary)![1]);
  assert.ok(leftOut >= 1 && leftOut + 5 <= N + stalled.length, `${leftOut} left out`);
});
