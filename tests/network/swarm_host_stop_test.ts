/**
 * Stopping a swarm host that is still starting (review s71, finding 3): `SwarmHost.start`'s
 * `signal` kills the starting host and rejects at once, and a node stopped while its host starts
 * leaves no host process behind once its stop resolved. Stand-in hosts (shell scripts that write
 * their pid and never say ready): no DHT plays a part.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SwarmHost } from "../../network/swarm_host.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { base, script, settled } from "./_swarm_host_fixture.ts";

/** A `node` that writes its pid beside itself and hangs without a word (exec keeps the pid). */
const HANGS = `echo $$ > "$(dirname "$0")/pid"\nexec sleep 600`;

/** The pid the stand-in wrote, once it has. */
function pidOf(dir: string): Promise<number> {
  return eventually(async () => {
    const text = await Deno.readTextFile(join(dir, "pid"));
    return text.endsWith("\n") ? Number(text) : undefined;
  }, "the stand-in host's pid");
}

/** Whether process `pid` exists (running, or exited and not reaped). Linux's /proc. */
function exists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Kill `pid` if it still runs (a test that failed must not leave a process behind). */
function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

Deno.test({
  name:
    "swarm host stop: aborting start() kills the host still starting and rejects with the signal's reason, logging nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(HANGS);
    const controller = new AbortController();
    const logs: string[] = [];
    let pid: number | undefined;
    try {
      const starting = SwarmHost.start({
        ...base(),
        nodePath,
        readyTimeoutMs: 60_000, // the stop, not this, must end the start
        log: (line) => logs.push(line),
        signal: controller.signal,
      }).then(async (host) => {
        await host.close();
        return "started";
      }, (error) => error);
      pid = await pidOf(dir);
      controller.abort();
      const outcome = await settled(starting, "start() after the abort", 10_000);
      assert.equal(outcome, controller.signal.reason);
      assert.ok(!exists(pid), `the starting host ${pid} still exists after start() rejected`);
      assert.deepEqual(logs, []);
    } finally {
      killQuietly(pid);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm host stop: start() with a signal already aborted runs no host",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(HANGS);
    try {
      const signal = AbortSignal.abort();
      const outcome = await settled(
        SwarmHost.start({ ...base(), nodePath, signal }).then(() => "started", (e) => e),
        "start()",
        10_000,
      );
      assert.equal(outcome, signal.reason);
      assert.equal(await Deno.readTextFile(join(dir, "pid")).catch(() => "none"), "none");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host stop: a node stopped while its swarm host is starting has no host process once its stop resolved",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(HANGS);
    const system = new ActorSystem({ name: "swarm-stop" });
    const logs: string[] = [];
    let pid: number | undefined;
    try {
      await system.spawn<NetworkMessage>({
        name: "n/network",
        factory: () =>
          new NetworkActor(
            {
              identity: Identity.generate(),
              services: {},
              log: (line: string) => logs.push(line),
              swarm: { bootstrap: [], nodePath },
            } as ConstructorParameters<typeof NetworkActor>[0],
          ),
      });
      pid = await pidOf(dir);
      await settled(system.shutdown(), "the node's stop", 15_000);
      // The host was left to its 30 s ready timeout: the node's process could not exit before it,
      // and a node started again with the same key would run two hosts on the DHT meanwhile.
      assert.ok(!exists(pid), `the starting host ${pid} outlived the node's stop`);
      assert.deepEqual(logs.filter((l) => l.includes("swarm")), [], logs.join("\n"));
    } finally {
      killQuietly(pid);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
