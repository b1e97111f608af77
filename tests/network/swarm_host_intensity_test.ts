/**
 * The swarm host's restart intensity (review s71, finding 5): a host that keeps dying is restarted
 * at most `maxRestarts` times within `withinMs`; past it the host gives up, reports `failed`, logs
 * once with the dead host's last lines, and the node's `/healthz` shows it. Stand-in hosts
 * (`_fake_swarm_host.mjs` behind a script whose later runs fail): no DHT plays a part.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SwarmHost, SwarmHostError } from "../../network/swarm_host.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { swarmHostConditions } from "../../network/swarm_host_health.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { base, FAKE_HOST, script, settled, stateWatch } from "./_swarm_host_fixture.ts";

/** Run 1 is the fake host; every later run says why on stderr and exits 1 (a broken upgrade). */
const FIRST_RUN_ONLY = `n=$(cat "$(dirname "$0")/runs" 2>/dev/null || echo 0); n=$((n+1)); ` +
  `echo $n > "$(dirname "$0")/runs"\n` +
  `if [ $n -gt 1 ]; then echo "run $n: node cannot start" >&2; exit 1; fi\n` +
  `exec node ${FAKE_HOST}`;

Deno.test({
  name:
    "swarm host intensity: past maxRestarts within withinMs the host is not restarted, reports failed, logs once with its last lines, and refuses joins",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(FIRST_RUN_ONLY);
    const watch = stateWatch();
    const logs: string[] = [];
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 1, maxMs: 1, maxRestarts: 3, withinMs: 60_000 },
      onState: watch.onState,
      log: (line) => logs.push(line),
    });
    try {
      const failed = watch.next("failed");
      Deno.kill(host.pid!, "SIGKILL");
      // A join made while it restarts waits for a host that never comes: it fails with it.
      const joining = host.join(new Uint8Array(32).fill(1)).then(() => "joined", (e) => e);
      await settled(failed, "the failed state");
      assert.deepEqual(watch.states, ["up", "down", "failed"]);
      assert.equal(host.restarts, 3);
      // The first run and three restarts: the fourth death is not restarted.
      assert.equal((await Deno.readTextFile(join(dir, "runs"))).trim(), "4");
      const gaveUp = logs.filter((l) => l.includes("gave up"));
      assert.equal(gaveUp.length, 1, logs.join("\n"));
      assert.match(gaveUp[0], /3 restarts within 60 s/);
      assert.match(gaveUp[0], /run 4: node cannot start/);
      const joinError = await settled(joining, "the join waiting for a restart");
      assert.ok(joinError instanceof SwarmHostError, String(joinError));
      assert.match(joinError.message, /gave up/);
      await assert.rejects(host.join(new Uint8Array(32).fill(2)), /gave up/);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm host intensity: restarts further apart than withinMs never add up to a give-up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(`exec node ${FAKE_HOST}`);
    const watch = stateWatch();
    // Each restart waits 100 ms after its death, longer than the 50 ms window: at most one
    // restart is ever within it, and one is allowed.
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 100, maxMs: 100, maxRestarts: 1, withinMs: 50 },
      onState: watch.onState,
    });
    try {
      for (let i = 0; i < 3; i++) {
        const up = watch.next("up");
        Deno.kill(host.pid!, "SIGKILL");
        await settled(up, `restart ${i + 1}`);
      }
      assert.deepEqual(watch.states, ["up", "down", "up", "down", "up", "down", "up"]);
      assert.equal(host.restarts, 3);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host intensity: restart options that cannot be a limit (maxRestarts below 0, withinMs not positive) are refused",
  fn: async () => {
    for (
      const restart of [
        { initialMs: 1, maxMs: 1, maxRestarts: -1 },
        { initialMs: 1, maxMs: 1, maxRestarts: 1.5 },
        { initialMs: 1, maxMs: 1, withinMs: 0 },
      ]
    ) {
      await assert.rejects(SwarmHost.start({ ...base(), restart }), RangeError);
    }
  },
});

Deno.test({
  name:
    "swarm host intensity: a node whose swarm host cannot run has the degraded condition swarm_host_failed for /healthz",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(`echo "no Node.js here" >&2\nexit 1`);
    const system = new ActorSystem({ name: "swarm-health" });
    try {
      assert.deepEqual(swarmHostConditions(system), []);
      await system.spawn<NetworkMessage>({
        name: "n/network",
        factory: () =>
          new NetworkActor(
            {
              identity: Identity.generate(),
              services: {},
              swarm: { bootstrap: [], nodePath },
            } as ConstructorParameters<typeof NetworkActor>[0],
          ),
      });
      const [condition] = await eventually(() => {
        const conditions = swarmHostConditions(system);
        return conditions.length > 0 ? conditions : undefined;
      }, "the swarm's condition");
      assert.equal(condition.component, "swarm");
      assert.equal(condition.status, "degraded");
      assert.equal(condition.code, "swarm_host_failed");
      assert.match(condition.message, /no Node\.js here/);
      assert.ok(condition.since > 0);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
