/**
 * Review s64: a swarm node's "still connecting" window (`SWARM_SETTLE_MS`, the retry hint of a
 * job it has no worker for) counts from when its swarm host came up and joined its topics, not
 * from the NetworkActor's start. The host starts in the background and may take up to its 30 s
 * ready timeout: before, a node whose host came up late had no window left to find its peers in,
 * a node whose host was still starting counted as settled once 30 s passed, and a node whose
 * swarm could not start at all said "connecting" for 30 s. Each on the actor's fake clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { SWARM_SETTLE_MS } from "../../network/_swarm_settling.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";

/** Whether `net` says it is still connecting to its peers. */
async function connecting(
  net: { ask: <T>(message: NetworkMessage) => Promise<T> },
): Promise<boolean> {
  return (await net.ask<{ connecting: boolean }>({ type: "connecting" })).connecting;
}

/**
 * A swarm node on `swarm`'s settings and a fake clock, under `system`: the clock moves on by more
 * than the window as the actor is built (before its host can be up), and its log lines are kept.
 */
async function swarmNode(
  system: ActorSystem,
  swarm: NonNullable<ConstructorParameters<typeof NetworkActor>[0]["swarm"]>,
) {
  const clock = { t: 1_000_000 };
  const lines: string[] = [];
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () => {
      const actor = new NetworkActor({
        identity: Identity.generate(),
        services: {},
        swarm,
        now: () => clock.t,
        log: (line) => lines.push(line),
      });
      clock.t += SWARM_SETTLE_MS + 1; // the host's start took longer than the window
      return actor;
    },
  });
  return { net, clock, lines };
}

Deno.test({
  name:
    "review s64: a swarm node whose host came up after the window's length is connecting for the window from its join, then settled",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const system = new ActorSystem({ name: "s64-swarm-window" });
    try {
      const { net, clock, lines } = await swarmNode(system, {
        bootstrap: testnet.bootstrap,
        bind: "127.0.0.1",
        topic: crypto.getRandomValues(new Uint8Array(32)),
      });
      await eventually(() => lines.some((l) => l.startsWith("swarm joined")), "the swarm joined");
      // Before: false (the window had run out since the actor's start).
      assert.equal(await connecting(net), true, "just joined: its peers may still come");
      clock.t += SWARM_SETTLE_MS - 1;
      assert.equal(await connecting(net), true, "inside the window");
      clock.t += 1;
      assert.equal(await connecting(net), false, "the window over: settled");
    } finally {
      await system.shutdown();
      await testnet.stop();
    }
  },
});

Deno.test({
  name:
    "review s64: a swarm node whose host is still starting past the window's length counts as connecting",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-slow-host-" });
    const system = new ActorSystem({ name: "s64-swarm-starting" });
    try {
      // A "Node.js" that never says ready (it reads its stdin until it is closed).
      const nodePath = join(dir, "node");
      await Deno.writeTextFile(nodePath, "#!/bin/sh\nexec cat >/dev/null\n");
      await Deno.chmod(nodePath, 0o755);
      const { net, lines } = await swarmNode(system, { bootstrap: [], nodePath });
      // Before: false (the window ran from the actor's start).
      assert.equal(await connecting(net), true, "its host is still starting");
      assert.ok(!lines.some((l) => l.startsWith("swarm")), `not up: ${lines.join(" | ")}`);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "review s64: a swarm node whose host could not start is not connecting",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-no-host-" });
    const system = new ActorSystem({ name: "s64-swarm-unavailable" });
    try {
      const clock = { t: 1_000_000 };
      const lines: string[] = [];
      const net = await system.spawn<NetworkMessage>({
        name: "n/network",
        factory: () =>
          new NetworkActor({
            identity: Identity.generate(),
            services: {},
            swarm: { bootstrap: [], nodePath: join(dir, "no-such-node") },
            now: () => clock.t,
            log: (line) => lines.push(line),
          }),
      });
      await eventually(
        () => lines.some((l) => l.startsWith("swarm unavailable")),
        "the swarm given up",
      );
      // Before: true for 30 s from the actor's start, though no swarm peer can come.
      assert.equal(await connecting(net), false, "nothing to wait for");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
